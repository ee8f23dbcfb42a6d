//! "No process a service started outlives the stack": a stack whose services leave every kind of
//! descendant behind (grandchildren, a job-control group, a double-forked daemon that closed its
//! terminal, a `setsid` child, a process ignoring every stop signal), stopped every way a stack is
//! stopped. Each process writes its pid into a file of the stack's folder; none may survive.

mod common;

use common::{ESCAPING, Stack, alive, all_gone, escaping_started, survivors};
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
