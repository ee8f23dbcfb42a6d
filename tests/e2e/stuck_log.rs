//! A log file that takes nothing (a FIFO nobody reads, as a stuck disk would): its service's
//! output waits, devstack does not.

use crate::common::Stack;
use std::time::Duration;

/// `devstack ARGS` in the stack's folder, killed after 20 s: its output, or None if it hung.
fn answer(stack: &Stack, args: &[&str]) -> Option<std::process::Output> {
    let out = assert_cmd::Command::from_std(stack.command(args))
        .timeout(Duration::from_secs(20))
        .output()
        .ok()?;
    out.status.success().then_some(out)
}

#[test]
fn a_stuck_log_file_holds_up_its_service_not_devstack() {
    let mut stack = Stack::new(
        r#"
        [services.spew]
        run = "yes 'a line of output that nobody will ever read from the log file'"
        "#,
    );
    let logs = stack.path().join(".devstack/logs");
    std::fs::create_dir_all(&logs).unwrap();
    nix::unistd::mkfifo(&logs.join("spew.log"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    stack.start(&["up", "--headless"]);
    stack.wait_socket(20);
    // The pipe takes 64 kB and the service's queue a little more: `yes` fills them at once.
    std::thread::sleep(Duration::from_secs(1));
    let before = stack.services().unwrap()[0]["pid"].as_i64();
    let restart = answer(&stack, &["restart", "spew"]);
    assert!(
        restart.is_some(),
        "restart did not answer; output:\n{}",
        stack.output()
    );
    let ps = answer(&stack, &["ps", "--json"]).expect("ps answers");
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let spew = &ps["services"][0];
    assert_eq!(spew["state"], "running", "{ps}");
    assert_ne!(spew["pid"].as_i64(), before, "a new process: {ps}");
    // Ctrl-C still stops the stack, and its processes.
    stack.signal(nix::sys::signal::Signal::SIGINT);
    stack.wait_exit(30);
    assert_eq!(stack.leftovers(), Vec::<String>::new());
}
