//! The control socket against clients that could exhaust devstack: many stalled followers, floods
//! of connections, a follower that stops reading.

use crate::common::Stack;
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn connect(stack: &Stack) -> UnixStream {
    UnixStream::connect(stack.path().join(".devstack/devstack.sock")).unwrap()
}

fn rss_mb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb / 1024
}

/// Sockets devstack holds open (its other files come and go: log files, /proc scans).
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// `devstack ps` answers within `secs` (it is killed otherwise).
fn ps_answers(stack: &Stack, secs: u64) -> bool {
    let mut child = stack
        .command(&["ps"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn shut(mut stack: Stack) {
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}

#[test]
fn twenty_stalled_followers_asking_for_10000_lines_hold_little_memory() {
    // 10,000 lines of 1.4 KB buffered: 14 MB that each follower asks for.
    let mut stack = Stack::new(
        r#"
        [services.big]
        run = "X=$(printf '%01400d' 0); i=0; while [ $i -lt 10000 ]; do echo \"$i $X\"; i=$((i+1)); done; echo backlog done; sleep 300"
        "#,
    );
    stack.start_quiet(&["up", "--headless"]);
    stack.wait_socket(20);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = stack.command(&["logs", "-n", "1", "big"]).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("backlog done") {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = rss_mb(stack.pid());
    let followers: Vec<UnixStream> = (0..20)
        .map(|_| {
            let mut s = connect(&stack);
            s.write_all(
                b"{\"cmd\":\"logs\",\"services\":[\"big\"],\"lines\":10000,\"follow\":true}\n",
            )
            .unwrap();
            s
        })
        .collect();
    // They read nothing. Give devstack time to do whatever it does with them.
    std::thread::sleep(Duration::from_secs(3));
    let during = rss_mb(stack.pid());
    assert!(ps_answers(&stack, 10), "ps does not answer");
    eprintln!("devstack RSS: {before} MB before, {during} MB with 20 stalled followers");
    assert!(
        during < before + 50,
        "RSS grew from {before} MB to {during} MB"
    );
    drop(followers);
    shut(stack);
}

#[test]
fn past_the_connection_cap_ps_still_answers_and_file_descriptors_stay_bounded() {
    let mut stack = Stack::new("[services.quiet]\nrun = \"sleep 300\"\n");
    stack.start_quiet(&["up", "--headless"]);
    stack.wait_socket(20);
    let pid = stack.pid();
    let baseline = open_fds(pid);
    // More streams than allowed: the ones past the limit are told so.
    let mut refused = 0;
    let mut streams = Vec::new();
    for _ in 0..300 {
        let s = connect(&stack);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        (&s).write_all(b"{\"cmd\":\"subscribe\"}\n").unwrap();
        let mut first = String::new();
        BufReader::new(&s).read_line(&mut first).unwrap();
        if first.contains("too many streams") {
            refused += 1;
        } else {
            assert!(first.contains("\"ok\":true"), "{first}");
            streams.push(s);
        }
    }
    assert!(refused > 0, "no stream was refused");
    // Then a flood of idle connections.
    let idle: Vec<UnixStream> = (0..2000).map(|_| connect(&stack)).collect();
    assert!(ps_answers(&stack, 20), "ps does not answer");
    let fds = open_fds(pid);
    assert!(
        fds < baseline + 256 + 32,
        "devstack holds {fds} file descriptors ({baseline} before)"
    );
    // The oldest idle connections were closed to make room, saying why.
    let mut first = idle[0].try_clone().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut said = String::new();
    first.read_to_string(&mut said).unwrap();
    assert!(said.contains("too many"), "{said}");
    drop(idle);
    drop(streams);
    shut(stack);
}

#[test]
fn a_follower_that_stops_reading_is_dropped_and_its_connection_closed() {
    let mut stack =
        Stack::new("[services.flood]\nrun = \"while :; do seq 1 2000; sleep 0.05; done\"\n");
    stack.start_quiet(&["up", "--headless"]);
    stack.wait_socket(20);
    // Its log file is open once it has logged.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = stack
            .command(&["logs", "-n", "1", "flood"])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no line logged: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = stack.pid();
    let baseline = open_fds(pid);
    let mut follower = connect(&stack);
    follower
        .write_all(b"{\"cmd\":\"logs\",\"services\":[\"flood\"],\"lines\":0,\"follow\":true}\n")
        .unwrap();
    // Not reading: the socket's buffers fill up, and devstack gives up on it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while open_fds(pid) == baseline {
        assert!(Instant::now() < deadline, "never accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    while open_fds(pid) > baseline {
        assert!(
            Instant::now() < deadline,
            "the stalled follower was never dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ps_answers(&stack, 10), "ps does not answer");
    // What it was sent before, then the end.
    follower
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    // Bounded: a follower that was not dropped would stream for ever.
    (&mut follower)
        .take(256 << 20)
        .read_to_end(&mut rest)
        .expect("the connection ends");
    assert!(rest.len() < 256 << 20, "the follower was never dropped");
    assert!(!rest.is_empty());
    shut(stack);
}

#[test]
fn input_to_a_service_that_never_reads_is_refused_once_a_megabyte_waits() {
    // A raw terminal is not drained by the line discipline: unread input fills it, and the rest
    // would wait in devstack.
    let mut stack =
        Stack::new("[services.mute]\nrun = \"stty raw -echo; echo ready; exec sleep 300\"\n");
    stack.start_quiet(&["up", "--headless"]);
    stack.wait_socket(20);
    stack.wait_ready(20);
    let text = "x".repeat(60 * 1024);
    let request = format!(
        "{}\n",
        serde_json::json!({"cmd": "input", "service": "mute", "text": text})
    );
    let mut conn = connect(&stack);
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answers = BufReader::new(conn.try_clone().unwrap());
    let pid = stack.pid();
    let before = rss_mb(pid);
    // 3,000 of them took devstack's memory to 289 MB; past 1 MiB waiting, each is refused.
    let mut refused = None;
    for sent in 1..=200 {
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        answers.read_line(&mut answer).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        if answer["ok"] == false {
            refused = Some((sent, answer["error"].as_str().unwrap().to_string()));
            break;
        }
    }
    let (sent, why) =
        refused.expect("200 inputs of 60 KB to a service that never reads, all taken");
    assert!(sent <= 20, "refused only after {sent} inputs of 60 KB");
    assert!(
        why.contains("mute: input not sent") && why.contains("read its terminal"),
        "{why}"
    );
    // Refused again, not queued: devstack's memory stays where it was.
    for _ in 0..100 {
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        answers.read_line(&mut answer).unwrap();
        assert!(answer.contains("\"ok\":false"), "{answer}");
    }
    let after = rss_mb(pid);
    assert!(after < before + 40, "RSS {before} MB -> {after} MB");
    assert!(ps_answers(&stack, 10), "ps does not answer");
    shut(stack);
}
