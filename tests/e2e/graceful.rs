//! A stop reaches the service's program however its `run` is written: a program that cleans up
//! for a second on TERM finishes its cleanup (its last line reaches the log) as a simple string
//! (dash does not exec the single command of `sh -c`), a compound one, a list, and under a
//! wrapper script whose shell dies at once (a program that ignores the terminal's hang-up, as
//! redis does); and when its session's leader crashes, the rest gets the stop signal and the
//! grace.

use crate::common::Stack;
use nix::sys::signal::Signal;

/// Cleans up for a second on TERM, then says so. (Its `sleep` is not the program's.)
const CLEAN: &str = "trap 'sleep 1; echo \"cleaned up $1\"; exit 0' TERM\n\
                     echo \"ready $1\"\n\
                     while :; do sleep 0.1; done\n";
/// The same, ignoring the hang-up its terminal sends when the shell that ran it exits, as
/// redis, nginx and postgres do.
const CLEAN_NOHUP: &str = "trap '' HUP\n. ./clean.sh\n";

fn stack(services: &str) -> Stack {
    let stack = Stack::new(&format!("[stack]\ngrace = \"20s\"\n{services}"));
    std::fs::write(stack.path().join("clean.sh"), CLEAN).unwrap();
    std::fs::write(stack.path().join("clean-nohup.sh"), CLEAN_NOHUP).unwrap();
    // A wrapper script whose shell runs the program as a child (not exec'd).
    std::fs::write(
        stack.path().join("wrapper-nohup.sh"),
        "sh clean-nohup.sh wrapped\n",
    )
    .unwrap();
    stack
}

fn cleaned(stack: &Stack, service: &str) -> bool {
    let want = format!("cleaned up {service}");
    stack.log_lines(service).iter().any(|l| l.contains(&want))
}

#[test]
fn a_stop_lets_the_program_under_a_shell_finish_its_cleanup() {
    let mut stack = stack(
        r#"
        [services.simple]
        run = "sh clean.sh simple"
        [services.compound]
        run = "cd . && sh clean.sh compound"
        [services.background]
        run = "sh clean.sh background & wait"
        [services.list]
        run = ["sh", "clean.sh", "list"]
        [services.wrapped]
        run = ["sh", "wrapper-nohup.sh"]
        "#,
    );
    let all = ["simple", "compound", "background", "list", "wrapped"];
    stack.start(&["up"]);
    for s in all {
        stack.wait_for(&format!("ready {s}"), 20);
    }
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    let out = stack.output();
    for s in all {
        assert!(cleaned(&stack, s), "{s}: {:?}\n{out}", stack.log_lines(s));
    }
    assert!(!out.contains("sent KILL"), "{out}");
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn after_its_leader_crashed_the_rest_of_a_session_gets_the_stop_signal_and_the_grace() {
    let mut stack = stack(
        r#"
        [services.crash]
        run = "sh clean-nohup.sh crash & sleep 0.5; exit 3"
        restart = "no"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("ready crash", 20);
    stack.wait_for("exited", 20);
    assert!(
        cleaned(&stack, "crash"),
        "{:?}\n{}",
        stack.log_lines("crash"),
        stack.output()
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}
