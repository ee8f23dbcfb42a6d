//! "No process a service started outlives the stack": a stack whose services leave every kind of
//! descendant behind (grandchildren, a job-control group, a double-forked daemon that closed its
//! terminal, a `setsid` child, a process ignoring every stop signal), stopped every way a stack is
//! stopped. Each process writes its pid into a file of the stack's folder; none may survive.

use crate::common::{ESCAPING, Stack, alive, all_gone, escaping_started, survivors};
use nix::sys::signal::Signal;

fn stopped_by(signal: Signal) {
    let mut stack = Stack::new(ESCAPING);
    stack.start(&["up", "--headless"]);
    let pids = escaping_started(&stack);
    stack.signal(signal);
    stack.wait_exit(30);
    assert_eq!(
        survivors(&pids),
        [],
        "survived {signal:?}:\n{}",
        stack.output()
    );
}

#[test]
fn nothing_survives_sigint() {
    stopped_by(Signal::SIGINT);
}

#[test]
fn nothing_survives_sigterm() {
    stopped_by(Signal::SIGTERM);
}

#[test]
fn nothing_survives_sighup() {
    stopped_by(Signal::SIGHUP);
}

#[test]
fn nothing_survives_down() {
    let mut stack = Stack::new(ESCAPING);
    stack.start(&["up", "--headless"]);
    let pids = escaping_started(&stack);
    stack.wait_socket(20);
    assert!(stack.command(&["down"]).status().unwrap().success());
    stack.wait_exit(30);
    assert_eq!(survivors(&pids), [], "{}", stack.output());
}

#[test]
fn nothing_survives_sigkill_and_the_next_up() {
    let mut stack = Stack::new(ESCAPING);
    stack.start(&["up", "--headless"]);
    let pids = escaping_started(&stack);
    stack.signal(Signal::SIGKILL);
    stack.wait_exit(10);
    // The next `up` in the folder kills what the hang-up didn't.
    stack.start(&["up", "--headless"]);
    let out = stack.wait_for("from a previous run", 30);
    assert_eq!(survivors(&pids), [], "{out}");
    assert!(out.contains("it had left its session"), "{out}");
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}

#[test]
fn a_double_forked_daemon_dies_with_its_service_while_the_stack_runs() {
    let mut stack = Stack::new(ESCAPING);
    stack.start(&["up", "--headless"]);
    let pids = escaping_started(&stack);
    let daemon = pids[2];
    stack.wait_socket(20);
    assert!(
        stack
            .command(&["stop", "daemon"])
            .status()
            .unwrap()
            .success()
    );
    assert!(all_gone(&[daemon], 5), "the daemon outlived its service");
    // The others are untouched.
    assert!(alive(pids[0]) && alive(pids[4]));
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert_eq!(survivors(&pids), []);
}

/// The pid a fixture process wrote into `name` in the stack's folder.
fn pid_file(stack: &Stack, name: &str, secs: u64) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(pid) = std::fs::read_to_string(stack.path().join(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {name}:\n{}",
            stack.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_escaped_daemon_gets_its_stop_signal_before_kill() {
    let mut stack = Stack::new(
        r#"
        [services.db]
        run = "(setsid sh -c 'trap \"echo term > got-term; exit 0\" TERM; echo $$ > d.pid; while :; do sleep 0.1; done' </dev/null >/dev/null 2>&1 &); exec sleep 300"
        [services.other]
        run = "sleep 300"
        "#,
    );
    stack.start(&["up"]);
    let daemon = pid_file(&stack, "d.pid", 20);
    std::thread::sleep(std::time::Duration::from_millis(800));
    stack.wait_socket(20);
    assert!(stack.command(&["stop", "db"]).status().unwrap().success());
    assert!(all_gone(&[daemon], 10), "the daemon outlived its service");
    assert!(
        stack.path().join("got-term").exists(),
        "the daemon was killed without its stop signal:\n{}",
        stack.output()
    );
    stack.stop();
}

#[test]
fn a_daemon_a_task_starts_lives_until_the_stack_stops() {
    let mut stack = Stack::new(
        r#"
        [services.initdb]
        build = "(setsid sh -c 'echo $$ > db.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &); while [ ! -s db.pid ]; do sleep 0.05; done; echo started"
        [services.app]
        run = "sleep 300"
        depends_on = ["initdb"]
        "#,
    );
    stack.start(&["up"]);
    let daemon = pid_file(&stack, "db.pid", 20);
    stack.wait_for("task completed", 20);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        alive(daemon),
        "the task's daemon was killed after the task ended"
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert!(
        all_gone(&[daemon], 5),
        "the task's daemon outlived the stack"
    );
}

#[test]
fn an_escaped_process_that_cleared_its_environment_still_dies_with_its_service() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "setsid env -i sh -c 'echo $$ > e.pid; exec sleep 300' </dev/null >/dev/null 2>&1 & exec sleep 300"
        "#,
    );
    stack.start(&["up"]);
    let escaped = pid_file(&stack, "e.pid", 20);
    // The keeper sees it leave the session while its parent still runs.
    crate::common::wait_recorded(&stack, &[escaped]);
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert!(all_gone(&[escaped], 5), "it outlived the stack");
    let record =
        std::fs::read_to_string(stack.path().join(".devstack/pgroups")).unwrap_or_default();
    assert!(
        record.trim().is_empty(),
        "a clean stop leaves the record empty: {record}"
    );
}

#[test]
fn what_a_cmd_probe_leaves_outside_its_group_dies_with_the_probe() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "sleep 300"
        [services.svc.health]
        cmd = "setsid sleep 300 & echo $! >> probe.pids; true"
        interval = "200ms"
        "#,
    );
    stack.start(&["up"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let pids = loop {
        let text = std::fs::read_to_string(stack.path().join("probe.pids")).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= 6 {
            break pids;
        }
        assert!(std::time::Instant::now() < deadline, "{}", stack.output());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (done, _) = pids.split_at(pids.len() - 2);
    assert!(
        all_gone(done, 5),
        "probes' escaped children pile up: {:?}",
        done.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
    stack.stop();
}
