//! "No process a service started outlives the stack": a stack whose services leave every kind of
//! descendant behind (grandchildren, a job-control group, a double-forked daemon that closed its
//! terminal, a `setsid` child, a process ignoring every stop signal), stopped every way a stack is
//! stopped. Each process writes its pid into a file of the stack's folder; none may survive.

mod common;

use common::{Stack, alive, all_gone};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Each service leaves one kind of process behind and names it in `<kind>.pid`.
const STACK: &str = r#"
[stack]
grace = "1s"

[services.grandchildren]
run = "sleep 300 & echo $! > grandchild.pid; sleep 300 & wait"

[services.jobcontrol]
run = "set -m; sleep 300 & echo $! > jobgroup.pid; wait"

[services.daemon]
run = "(setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &); exec sleep 300"

[services.setsid]
run = "setsid sh -c 'echo $$ > setsid.pid; exec sleep 300' & wait"

[services.stubborn]
run = "trap '' TERM INT HUP; echo $$ > stubborn.pid; while :; do sleep 0.2; done"
"#;

const KINDS: [&str; 5] = ["grandchild", "jobgroup", "daemon", "setsid", "stubborn"];

/// Start the stack headless and wait until every kind of process is there; their pids.
fn started(stack: &mut Stack) -> Vec<i32> {
    stack.start(&["up", "--headless"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids: Vec<i32> = KINDS
            .iter()
            .filter_map(|k| {
                std::fs::read_to_string(stack.path().join(format!("{k}.pid")))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect();
        if pids.len() == KINDS.len() && pids.iter().all(|&p| alive(p)) {
            // The keeper looks every 300 ms: let it see (and record) the daemon.
            std::thread::sleep(Duration::from_millis(800));
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "not every process started: {pids:?}\n{}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn survivors(pids: &[i32]) -> Vec<(&'static str, i32)> {
    all_gone(pids, 5);
    KINDS
        .iter()
        .zip(pids)
        .filter(|&(_, &p)| alive(p))
        .map(|(k, &p)| (*k, p))
        .collect()
}

fn stopped_by(signal: Signal) {
    let mut stack = Stack::new(STACK);
    let pids = started(&mut stack);
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
    let mut stack = Stack::new(STACK);
    let pids = started(&mut stack);
    stack.wait_socket(20);
    assert!(stack.command(&["down"]).status().unwrap().success());
    stack.wait_exit(30);
    assert_eq!(survivors(&pids), [], "{}", stack.output());
}

#[test]
fn nothing_survives_sigkill_and_the_next_up() {
    let mut stack = Stack::new(STACK);
    let pids = started(&mut stack);
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
    let mut stack = Stack::new(STACK);
    let pids = started(&mut stack);
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
