//! devstack is the subreaper of what its services start: a grandchild whose parent is gone
//! comes back to it. When the stack stops, every such process that has exited is collected,
//! not left a zombie for whoever adopts it after devstack. (A file of its own: this test makes
//! its own process a subreaper, to see what devstack leaves behind.)

#[path = "e2e/common/mod.rs"]
mod common;

use common::Stack;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// The zombie children of `parent`.
fn zombie_children(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{parent}/task"))
        .unwrap()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            {
                out.push(pid);
            }
        }
    }
    out
}

#[test]
fn adopted_processes_that_exited_are_collected_when_the_stack_stops() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let mut stack = Stack::new(
        r#"
        [services.s]
        # A grandchild without devstack's variables, orphaned at once, that exits a second later.
        run = "(env -i /bin/sh -c 'sleep 1' &); echo started; sleep 300"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("started", 20);
    let devstack = stack.pid();
    let deadline = Instant::now() + Duration::from_secs(20);
    while zombie_children(devstack).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no adopted zombie:\n{}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    // What devstack left came to this process (a subreaper too) when it exited.
    let me = std::process::id() as i32;
    let left = zombie_children(me);
    for &pid in &left {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
    assert!(
        left.is_empty(),
        "zombies left: {left:?}\n{}",
        stack.output()
    );
}
