//! Starting, restarting and gating services: ports held by others, missing programs, dense
//! dependency graphs, restart all, and what a waiting service says it waits for.

use crate::common::{Stack, free_port, lines_with, testsvc};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `ps --json` of the running stack.
fn ps(stack: &Stack) -> Vec<Value> {
    stack.services().expect("the stack answers `ps`")
}

pub(crate) fn service(stack: &Stack, name: &str) -> Value {
    ps(stack)
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in ps"))
}

/// Wait until `check` holds for the service's `ps` entry; panics with it after `secs`.
pub(crate) fn wait_service(
    stack: &Stack,
    name: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = service(stack, name);
        if check(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got there: {s}\n{}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a CLI command, failing the test if it doesn't end within `secs`.
pub(crate) fn run_within(stack: &Stack, args: &[&str], secs: u64) -> std::process::Output {
    let mut child = stack
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "`devstack {}` did not finish within {secs}s",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_port_held_by_another_process_blocks_the_service_and_names_the_holder() {
    let port = free_port();
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let me = std::process::id();
    let toml = format!(
        r#"
        [services.svc]
        run = "{}"
        port = {port}
        proxy = false
        [services.svc.health]
        tcp = true
        interval = "100ms"
        "#,
        testsvc()
    );
    // (A service that binds its port itself: a proxied one's public port is listened on before
    // anything starts; tests/traffic_stack.rs.)
    // `ci` fails at once, naming the holder, instead of passing on the other process's answers.
    let ci = Stack::new(&toml);
    let out = run_within(&ci, &["ci", "--timeout", "60s"], 60);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("port {port} is in use by pid {me}")),
        "{text}"
    );
    assert!(!text.contains("healthy after"), "{text}");
    assert!(!text.contains("spawned pid"), "{text}");

    // `up` waits for the port instead, and starts the service once it is free.
    let mut stack = Stack::new(&toml);
    stack.start(&["up"]);
    stack.wait_for(&format!("port {port} is in use by pid {me}"), 20);
    stack.wait_socket(20);
    let blocked = service(&stack, "svc");
    assert_eq!(blocked["state"], "blocked", "{blocked}");
    assert_eq!(blocked["pid"], Value::Null);
    drop(holder);
    let out = stack.wait_for("svc | [devstack] health: healthy", 20);
    // Said in order: the process exists before any probe result counts.
    let spawned = out.find("svc | [devstack] spawned pid").expect("spawned");
    assert!(spawned < out.find("health: healthy").unwrap(), "{out}");
    assert_eq!(
        lines_with(&out, "is in use by").len(),
        1,
        "said once: {out}"
    );
    stack.stop();
}

#[test]
fn the_spawn_is_announced_before_the_first_healthy_probe() {
    // A service that is listening at once: its probe may succeed in the first milliseconds.
    for _ in 0..3 {
        let port = free_port();
        let mut stack = Stack::new(&format!(
            r#"
            [services.svc]
            run = "{}"
            port = {port}
            [services.svc.health]
            tcp = true
            "#,
            testsvc()
        ));
        stack.start(&["up"]);
        let out = stack.wait_for("health: healthy", 20);
        assert!(
            out.find("spawned pid").unwrap() < out.find("health: healthy").unwrap(),
            "{out}"
        );
        stack.stop();
    }
}

#[test]
fn a_cmd_probe_leaves_no_background_process_behind() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "sleep 300"
        [services.svc.health]
        cmd = "sleep 300 & echo $! >> probe.pids; exit 0"
        interval = "100ms"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("health: healthy", 20);
    let deadline = Instant::now() + Duration::from_secs(20);
    let pids = loop {
        let text = std::fs::read_to_string(stack.path().join("probe.pids")).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= 5 {
            break pids;
        }
        assert!(Instant::now() < deadline, "only {} probes ran", pids.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every probe's group dies with the probe, while the stack runs.
    let (done, _latest) = pids.split_at(pids.len() - 1);
    assert!(
        crate::common::all_gone(done, 5),
        "background children of finished probes still run: {:?}",
        done.iter()
            .filter(|&&p| crate::common::alive(p))
            .collect::<Vec<_>>()
    );
    stack.stop();
}

#[test]
fn a_failing_cmd_probe_with_a_background_child_reports_its_exit_code() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "sleep 300"
        [services.svc.health]
        cmd = "sleep 300 & echo not ready yet >&2; exit 3"
        interval = "200ms"
        timeout = "2s"
        start_period = "0s"
        retries = 1
        "#,
    );
    stack.start(&["up"]);
    let out = stack.wait_for("health: unhealthy", 20);
    assert!(
        out.contains("exited with code 3: not ready yet"),
        "reported as something else: {out}"
    );
    assert!(!out.contains("no answer within"), "{out}");
    stack.stop();
}

#[test]
fn start_walks_a_densely_linked_graph_once() {
    // 40 services, each depending on every earlier one: 2^39 paths, 780 edges.
    let mut toml = String::new();
    for i in 0..40 {
        let deps: Vec<String> = (0..i).map(|d| format!("\"s{d}\"")).collect();
        toml += &format!(
            "[services.s{i}]\nrun = \"sleep 300\"\nautostart = false\ndepends_on = [{}]\n",
            deps.join(", ")
        );
    }
    toml += "[services.anchor]\nrun = \"sleep 300\"\n";
    let mut stack = Stack::new(&toml);
    stack.start(&["up"]);
    stack.wait_socket(20);
    let out = run_within(&stack, &["start", "s39"], 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ps(&stack).iter().all(|s| s["state"] == "running"));
    stack.stop();
}

#[test]
fn restart_of_a_stopped_service_starts_its_stopped_dependencies() {
    let mut stack = Stack::new(
        r#"
        [services.db]
        run = "sleep 300"
        [services.api]
        run = "sleep 300"
        depends_on = ["db"]
        "#,
    );
    stack.start(&["up"]);
    stack.wait_socket(20);
    wait_service(&stack, "api", 20, |s| s["state"] == "running");
    for name in ["api", "db"] {
        assert!(stack.command(&["stop", name]).status().unwrap().success());
    }
    let out = run_within(&stack, &["restart", "api"], 30);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(service(&stack, "db")["state"], "running");
    assert_eq!(service(&stack, "api")["state"], "running");
    stack.stop();
}

#[test]
fn a_missing_program_is_retried_with_backoff_until_it_appears() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = ["./bin/svc"]
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("svc | [devstack] could not start; restarting in 1s", 20);
    stack.wait_for("could not start; restarting in 2s", 20);
    // Something builds it now.
    let bin = stack.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tmp = bin.join("svc.tmp");
    std::fs::write(&tmp, "#!/bin/sh\necho built=$$\nexec sleep 300\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, bin.join("svc")).unwrap();
    stack.wait_number("built=", 30);
    stack.wait_socket(20);
    assert_eq!(service(&stack, "svc")["state"], "running");
    stack.stop();
}

#[test]
fn a_shell_command_not_found_three_times_stops_retrying() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "no-such-command-for-devstack-tests --flag"
        restart = "always"
        [services.other]
        run = "sleep 300"
        "#,
    );
    stack.start(&["up"]);
    let out = stack.wait_for("command not found", 30);
    assert!(out.contains("3 times in a row"), "{out}");
    stack.wait_socket(20);
    let svc = service(&stack, "svc");
    assert_eq!(svc["state"], "crashed", "{svc}");
    assert_eq!(svc["spawns"], 3, "{svc}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(service(&stack, "svc")["spawns"], 3, "no more tries");
    stack.stop();
}

#[test]
fn a_build_that_cannot_start_does_not_leave_the_loop_guard_thinking_it_runs() {
    let mut stack = Stack::new(
        r#"
        [stack]
        debounce = "50ms"
        [services.svc]
        build = ["./no-such-builder"]
        run = "sleep 300"
        watch = ["src/*.txt"]
        [services.anchor]
        run = "sleep 300"
        "#,
    );
    std::fs::create_dir_all(stack.path().join("src")).unwrap();
    stack.start(&["up"]);
    stack.wait_for("svc    | [devstack] build failed", 20);
    stack.wait_for("watching", 20);
    for n in 1..=4 {
        std::fs::write(stack.path().join("src/a.txt"), format!("edit {n}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines_with(&stack.output(), "build failed").len() < n + 1 {
            assert!(Instant::now() < deadline, "{}", stack.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let out = stack.output();
    assert!(!out.contains("Rebuild on change is now off"), "{out}");
    stack.stop();
}

#[test]
fn a_pending_service_says_what_it_waits_for() {
    let mut stack = Stack::new(&format!(
        r#"
        [services.db]
        run = "echo db down; exit 1"
        restart = "always"
        port = {}
        [services.db.health]
        tcp = true
        [services.api]
        run = "sleep 300"
        depends_on = ["db"]
        "#,
        free_port()
    ));
    stack.start(&["up"]);
    stack.wait_socket(20);
    let api = wait_service(&stack, "api", 30, |s| {
        s["detail"].as_str().unwrap_or("").contains("crash-looping")
    });
    let detail = api["detail"].as_str().unwrap();
    assert!(detail.starts_with("pending: waiting for `db`"), "{detail}");
    assert!(detail.contains("restarting in"), "{detail}");
    let table = stack.command(&["ps"]).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("waiting for `db`"));
    stack.stop();
}

#[test]
fn a_service_is_starting_never_unhealthy_until_its_first_success() {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        r#"
        [services.svc]
        run = "sleep 1.5; exec {}"
        port = {port}
        [services.svc.health]
        tcp = true
        interval = "100ms"
        retries = 1
        "#,
        testsvc()
    ));
    stack.start(&["up"]);
    stack.wait_socket(20);
    // (Its port is checked first, off the engine's thread.)
    let early = wait_service(&stack, "svc", 20, |s| !s["pid"].is_null());
    assert_eq!(early["state"], "starting", "{early}");
    assert_eq!(early["health"], "unknown", "{early}");
    assert_eq!(early["ready"], false);
    let out = stack.wait_for("svc | [devstack] health: healthy", 20);
    assert!(!out.contains("unhealthy"), "{out}");
    assert_eq!(service(&stack, "svc")["state"], "running");
    stack.stop();
}

#[test]
fn restart_all_goes_in_dependency_order_and_does_not_rerun_tasks() {
    let (db_port, api_port) = (free_port(), free_port());
    let mut stack = Stack::new(&format!(
        r#"
        [services.migrate]
        build = "echo migrated"
        [services.db]
        run = "sleep 0.5; exec {svc}"
        port = {db_port}
        [services.db.health]
        tcp = true
        [services.api]
        run = "exec {svc}"
        port = {api_port}
        depends_on = ["db", "migrate"]
        [services.api.health]
        tcp = true
        "#,
        svc = testsvc()
    ));
    stack.start(&["up"]);
    stack.wait_for("api     | [devstack] health: healthy", 30);
    stack.wait_socket(20);
    let before = stack.output().len();
    let out = run_within(&stack, &["restart", "--all"], 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = stack.output()[before..].to_string();
    let db_restart = after
        .find("db      | [devstack] restarting")
        .expect("db restarted");
    // Its new process serves once healthy (blue-green: it started beside the old one).
    let db_healthy = after
        .find("db      | [devstack] switched to pid")
        .expect("db's new process serves");
    let api_restart = after
        .find("api     | [devstack] restarting")
        .expect("api restarted");
    assert!(
        db_restart < db_healthy && db_healthy < api_restart,
        "api must restart after db is healthy again:\n{after}"
    );
    assert!(!after.contains("migrated"), "the task ran again:\n{after}");
    let api = service(&stack, "api");
    assert_eq!(api["ready"], true, "{api}");
    stack.stop();
}

#[test]
fn a_restart_waits_for_its_own_old_process_to_release_the_port() {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        r#"
        [services.web]
        run = "setsid {} </dev/null >/dev/null 2>&1 & exec sleep 300"
        port = {port}
        [services.web.health]
        tcp = true
        "#,
        testsvc()
    ));
    stack.start(&["up"]);
    stack.wait_for("health: healthy", 20);
    stack.wait_socket(20);
    for _ in 0..3 {
        let out = run_within(&stack, &["restart", "web"], 30);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            stack.output()
        );
    }
    assert!(
        !stack.output().contains("is in use by"),
        "{}",
        stack.output()
    );
    stack.stop();
}

#[test]
fn stopping_run_stops_its_command_too() {
    let mut stack = Stack::new("[services.svc]\nrun = \"sleep 300\"\n");
    stack.start(&["run", "--", "sh", "-c", "echo cmd=$$; exec sleep 300"]);
    let cmd = stack.wait_number("cmd=", 20);
    stack.signal(nix::sys::signal::Signal::SIGTERM);
    let status = stack.wait_exit(20);
    assert!(crate::common::all_gone(&[cmd], 5), "CMD outlived `run`");
    assert!(!status.success(), "{status}");
}

#[test]
fn the_stopping_line_comes_before_the_services_reaction_to_the_signal() {
    // A service that answers TERM at once, in a list `run` (no shell of devstack's between).
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = ["sh", "-c", "trap 'echo got-term; exit 0' TERM; echo svc=$$; while :; do sleep 0.05; done"]
        "#,
    );
    stack.start(&["up"]);
    stack.wait_number("svc=", 20);
    for round in 0..3 {
        let out = stack.command(&["restart", "svc"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let lines = stack.log_lines("svc");
        let stopping: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].contains("stopping: sent TERM"))
            .collect();
        let reactions: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i] == "got-term")
            .collect();
        assert_eq!(stopping.len(), round + 1, "{lines:#?}");
        assert_eq!(reactions.len(), round + 1, "{lines:#?}");
        assert!(
            stopping.iter().zip(&reactions).all(|(s, r)| s < r),
            "{lines:#?}"
        );
    }
    stack.stop();
}
