//! Soak and chaos: what long days do to a stack, each case bounded in time and stopping by
//! itself. Services SIGKILLed at random under traffic, hundreds of crash-restarts, a flood of ten
//! services, devstack itself SIGKILLed at random moments of start-up and shutdown. After each, the
//! stack is whole again and nothing leaked: no process, no file descriptor, no memory.
//! Ignored by a plain `cargo test` (a minute of soak); `cargo test -- --include-ignored`, which
//! CI runs, includes it.

use crate::common::{ESCAPING, KINDS, Stack, alive, example, free_port, http_status};
use devstack::control::Request;
use devstack::control::client::Client;
use devstack::engine::State;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A small random number generator (xorshift), seeded from the clock and printed, so a failing
/// run can be told apart; nothing here needs more.
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("{what}: seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn client(stack: &Stack) -> Client {
    let mut c = Client::connect(&stack.path().join(".devstack/devstack.sock")).expect("connect");
    c.hello().expect("hello");
    c
}

/// devstack's open file descriptors.
/// devstack's open files, but for the `/proc` files its keeper keeps open between passes (a
/// bounded cache: `process::tree`'s tests pin it).
fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| !t.starts_with("/proc/")))
            .count()
    })
}

/// devstack's resident memory in kB.
fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The processes whose parent is `pid`, the way the kernel lists them.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let kids = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            kids.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out.retain(|&p| alive(p));
    out
}

#[test]
#[ignore = "the chaos suite: cargo test -- --include-ignored (CI runs it)"]
fn services_sigkilled_at_random_under_traffic_all_come_back_and_nothing_leaks() {
    let names = ["alpha", "beta", "gamma"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let echo = example("http_echo");
    let mut toml = String::new();
    for (name, port) in names.iter().zip(&ports) {
        toml.push_str(&format!(
            "[services.{name}]\nrun = \"exec {echo} $PORT\"\nport = {port}\nrestart = \"always\"\n\
             [services.{name}.health]\nhttp = \"/\"\ninterval = \"100ms\"\n\n"
        ));
    }
    let mut stack = Stack::new(&toml);
    stack.start(&["up", "--headless"]);
    stack.wait_socket(30);
    stack.wait_ready(60);
    let devstack = stack.pid();

    // Warm up (the proxy's threads, the first connections), then take the baseline.
    for &port in &ports {
        for _ in 0..20 {
            assert_eq!(http_status(port, "/chaos"), 200);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds_before = fds(devstack);
    let children_before = children(devstack).len();

    // Traffic to every service from two threads while services are killed.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..2)
        .map(|t| {
            let (stop, ok, failed, ports) =
                (stop.clone(), ok.clone(), failed.clone(), ports.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    match http_status(ports[i % ports.len()], "/chaos") {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
            })
        })
        .collect();

    // Twelve kills, however long a loaded machine makes them take (a service killed again soon
    // waits out its backoff, without a pid to kill), within a minute.
    let mut rng = Rng::new("random service kills");
    let mut kills = 0;
    let until = Instant::now() + Duration::from_secs(60);
    while kills < 12 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200 + rng.below(500)));
        let services = stack.services().expect("ps answers during the chaos");
        let victim = &services[rng.below(services.len() as u64) as usize];
        if let Some(pid) = victim["pid"].as_i64() {
            // A service process this test's stack started.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            kills += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    eprintln!("{kills} kills");
    assert!(kills >= 10, "only {kills} kills in a minute");

    // Every service comes back healthy, and answers through the proxy again.
    stack.wait_ready(90);
    for &port in &ports {
        for _ in 0..10 {
            assert_eq!(http_status(port, "/chaos"), 200);
        }
    }
    let restarts: i64 = stack
        .services()
        .unwrap()
        .iter()
        .map(|s| s["restarts"].as_i64().unwrap())
        .sum();
    assert!(
        restarts >= kills as i64 / 2,
        "{restarts} restarts for {kills} kills"
    );

    // Nothing leaked: devstack's descriptors and its children are what they were.
    std::thread::sleep(Duration::from_millis(500));
    let fds_after = fds(devstack);
    let children_after = children(devstack).len();
    eprintln!(
        "{kills} kills, {restarts} restarts, {} requests answered, {} failed; fds {fds_before} -> {fds_after}; children {children_before} -> {children_after}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "traffic barely flowed");
    assert!(
        fds_after <= fds_before + 4,
        "file descriptors leaked: {fds_before} -> {fds_after}"
    );
    assert_eq!(children_after, children_before, "a process leaked");

    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert_eq!(stack.leftovers(), Vec::<String>::new());
}

#[test]
#[ignore = "the chaos suite: cargo test -- --include-ignored (CI runs it)"]
fn five_hundred_crash_restarts_keep_memory_flat_and_the_socket_answering() {
    let mut stack = Stack::new(
        "[services.crasher]\nrun = \"echo crashing; exit 3\"\nrestart = \"no\"\nautostart = false\n\n\
         [services.steady]\nrun = \"sleep 600\"\n",
    );
    stack.start_quiet(&["up", "--headless"]);
    stack.wait_socket(30);
    let devstack = stack.pid();
    let mut c = client(&stack);
    let crash = |c: &mut Client| {
        // The start waits for the outcome: the process ran and crashed.
        let _ = c.call(&Request::Start {
            service: "crasher".into(),
            wait: true,
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let views = c.ps().expect("ps answers");
            let v = views.iter().find(|v| v.name == "crasher").unwrap();
            if v.state == State::Crashed && v.pid.is_none() {
                return;
            }
            assert!(Instant::now() < deadline, "never crashed: {v:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    for _ in 0..100 {
        crash(&mut c);
    }
    let warm = rss_kb(devstack);
    let fds_warm = fds(devstack);
    for i in 100..500 {
        crash(&mut c);
        if i % 50 == 0 {
            // Another client, as a user's `ps` would be.
            assert!(client(&stack).ps().is_ok());
        }
    }
    let end = rss_kb(devstack);
    let fds_end = fds(devstack);
    let spawns = c
        .ps()
        .unwrap()
        .into_iter()
        .find(|v| v.name == "crasher")
        .unwrap()
        .spawns;
    eprintln!(
        "500 crash-restarts: RSS {warm} kB after 100, {end} kB after 500; fds {fds_warm} -> {fds_end}"
    );
    assert_eq!(spawns, 500);
    assert!(
        end <= warm + 4096,
        "memory grew with crash-restarts: {warm} kB -> {end} kB"
    );
    assert!(fds_end <= fds_warm + 2, "fds {fds_warm} -> {fds_end}");
    let lines = stack.log_lines("crasher");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("crashing")).count(),
        500,
        "every run's line is in the log"
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert_eq!(stack.leftovers(), Vec::<String>::new());
}

#[test]
#[ignore = "the chaos suite: cargo test -- --include-ignored (CI runs it)"]
fn ten_services_flooding_for_twenty_seconds_lose_no_line() {
    // Each prints numbered lines, ~10k a second, for 20 s, then how many it printed.
    let flood = r#"end=$(( $(date +%s) + 20 )); i=0; while [ $(date +%s) -lt $end ]; do seq $((i+1)) $((i+1000)); i=$((i+1000)); sleep 0.1; done; echo total=$i; exec sleep 600"#;
    let mut toml = String::new();
    for n in 0..10 {
        toml.push_str(&format!(
            "[services.flood{n}]\nrun = '{flood}'\nrestart = \"no\"\n\n"
        ));
    }
    let mut stack = Stack::new(&toml);
    stack.start_quiet(&["up", "--headless"]);
    stack.wait_socket(30);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut totals = Vec::new();
    for n in 0..10 {
        let name = format!("flood{n}");
        let total = loop {
            let lines = stack.log_lines(&name);
            if let Some(t) = lines.iter().find_map(|l| l.strip_prefix("total=")) {
                break t.parse::<u64>().unwrap();
            }
            assert!(Instant::now() < deadline, "{name} never finished");
            std::thread::sleep(Duration::from_millis(200));
        };
        // Every number from 1 to total, once and in order.
        let numbers: Vec<u64> = stack
            .log_lines(&name)
            .iter()
            .filter_map(|l| l.parse().ok())
            .collect();
        assert_eq!(numbers.len() as u64, total, "{name}: lines lost");
        assert!(
            numbers.iter().enumerate().all(|(i, &v)| v == i as u64 + 1),
            "{name}: lines out of order or repeated"
        );
        totals.push(total);
    }
    let sum: u64 = totals.iter().sum();
    eprintln!("10 services flooded {sum} lines in 20 s, none lost");
    assert!(sum >= 100_000, "the flood was too thin to mean much: {sum}");
    // ps still answers, and every service still runs.
    let services = stack.services().expect("ps answers");
    assert!(services.iter().all(|s| s["state"] == "running"));
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert_eq!(stack.leftovers(), Vec::<String>::new());
}

#[test]
#[ignore = "the chaos suite: cargo test -- --include-ignored (CI runs it)"]
fn devstack_sigkilled_at_random_moments_leaves_no_survivor_after_the_next_up() {
    let mut stack = Stack::new(ESCAPING);
    let mut rng = Rng::new("random devstack kills");
    let mut seen: Vec<i32> = Vec::new();
    for round in 0..8 {
        for k in KINDS {
            stack.touch(&format!("{k}.pid"), false);
        }
        stack.start_quiet(&["up", "--headless"]);
        if round % 2 == 0 {
            // During start-up: anywhere from before the first spawn to after the last.
            std::thread::sleep(Duration::from_millis(rng.below(1500)));
        } else {
            // During shutdown: Ctrl-C, then SIGKILL while services are being stopped.
            stack.wait_socket(30);
            std::thread::sleep(Duration::from_millis(300));
            stack.signal(Signal::SIGINT);
            std::thread::sleep(Duration::from_millis(rng.below(1200)));
        }
        seen.extend(crate::common::escaping_pids(&stack));
        stack.signal(Signal::SIGKILL);
        stack.wait_exit(10);
    }
    // The next `up` reaps whatever the killed runs left; then a clean stop.
    for k in KINDS {
        stack.touch(&format!("{k}.pid"), false);
    }
    stack.start(&["up", "--headless"]);
    stack.wait_socket(30);
    let last = crate::common::escaping_started(&stack);
    let survivors: Vec<i32> = seen
        .iter()
        .copied()
        .filter(|p| !last.contains(p))
        .filter(|&p| alive(p))
        .collect();
    if !crate::common::all_gone(&survivors, 5) {
        let described: Vec<String> = survivors
            .iter()
            .filter(|&&p| alive(p))
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                format!(
                    "{p} {} [{stat}]",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                )
            })
            .collect();
        let record =
            std::fs::read_to_string(stack.path().join(".devstack/pgroups")).unwrap_or_default();
        panic!(
            "processes of killed runs survived the next up:\n{}\nrecord:\n{record}\n{}",
            described.join("\n"),
            stack.output()
        );
    }
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert!(crate::common::all_gone(&last, 5), "{last:?}");
    assert_eq!(stack.leftovers(), Vec::<String>::new());
}

#[test]
#[ignore = "the chaos suite: cargo test -- --include-ignored (CI runs it)"]
fn an_edit_that_makes_devstack_toml_invalid_leaves_the_stack_running_and_says_why() {
    let config = "[services.api]\nrun = \"echo api=$$; exec sleep 600\"\n\n\
                  [services.web]\nrun = \"echo web=$$; exec sleep 600\"\n";
    let mut stack = Stack::new(config);
    stack.start(&["up", "--headless"]);
    let api = stack.wait_number("api=", 30);
    let web = stack.wait_number("web=", 30);
    stack.wait_socket(30);
    // The watcher is up once the socket answers; an invalid edit (a typo of a key, line 5).
    stack.write_config(&config.replace("[services.web]\nrun", "[services.web]\nrnu"));
    let out = stack.wait_for("devstack.toml:5:1: unknown key `rnu`", 20);
    assert!(
        out.contains("the stack keeps running on the config it started with"),
        "{out}"
    );
    // Both still run, the same processes, and the socket answers.
    std::thread::sleep(Duration::from_millis(500));
    let services = stack.services().expect("ps answers");
    let pids: Vec<i64> = services.iter().filter_map(|s| s["pid"].as_i64()).collect();
    assert_eq!(pids, vec![api as i64, web as i64]);
    assert!(services.iter().all(|s| s["state"] == "running"));
    // A valid edit of one service is named on that service only.
    stack.write_config(&config.replace("exec sleep 600\"\n\n", "exec sleep 601\"\n\n"));
    let out = stack.wait_for("this service's definition changed", 20);
    let told = crate::common::lines_with(&out, "this service's definition changed");
    assert_eq!(told.len(), 1, "{out}");
    assert!(told[0].starts_with("api"), "{out}");
    assert!(alive(api) && alive(web));
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert_eq!(stack.leftovers(), Vec::<String>::new());
}
