//! `-v` / `-vv` / `DEVSTACK_LOG`: devstack's own diagnostics go to `.devstack/devstack.log`
//! (0600), never to stdout or stderr; without them no file is made; `up -d` passes them on.

use crate::common::{Stack, free_port, number_after, testsvc};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

/// Kills a detached devstack by pid when a test ends, passed or not.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn config() -> String {
    format!(
        r#"
[services.web]
run = "{} http"
port = {}
[services.web.health]
tcp = true
"#,
        testsvc(),
        free_port()
    )
}

fn log_path(stack: &Stack) -> PathBuf {
    stack.path().join(".devstack/devstack.log")
}

/// Wait until the log holds every one of `needles` (the writer is a thread of its own).
fn wait_log(stack: &Stack, needles: &[&str], secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(log_path(stack)).unwrap_or_default();
        if needles.iter().all(|n| text.contains(n)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needles:?} not all in the log within {secs}s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a tracing line looks like: a level among the words, or a module path.
fn assert_no_tracing(what: &str, text: &str) {
    for line in text.lines() {
        let traced = [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "]
            .iter()
            .any(|l| line.contains(l))
            || line.contains("devstack::");
        assert!(!traced, "a tracing line on {what}: {line}\n{text}");
    }
}

fn assert_quiet(out: &Output) {
    assert!(out.status.success(), "{out:?}");
    assert_no_tracing("stdout", &String::from_utf8_lossy(&out.stdout));
    assert_no_tracing("stderr", &String::from_utf8_lossy(&out.stderr));
}

#[test]
fn with_v_a_stack_writes_its_private_log_and_the_terminal_gets_none_of_it() {
    let mut stack = Stack::new(&config());
    stack.start(&["-v", "up", "--headless"]);
    stack.wait_for("web | [devstack] health: healthy", 30);
    // Clients with -vv or DEVSTACK_LOG print what they always print, and nothing more.
    assert_quiet(&stack.command(&["-vv", "ps"]).output().unwrap());
    let traced = stack
        .command(&["ps", "--json"])
        .env("DEVSTACK_LOG", "trace")
        .output()
        .unwrap();
    assert_quiet(&traced);
    serde_json::from_slice::<serde_json::Value>(&traced.stdout).expect("stdout is only JSON");
    let out = stack.command(&["restart", "web"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");

    let text = wait_log(
        &stack,
        &[
            "devstack started",
            "config loaded",
            "control socket listening",
            "proxy listening",
            "spawned service=web",
            "socket request",
            "Restart",
            "exited service=web",
        ],
        30,
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    let mode = std::fs::metadata(log_path(&stack))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{text}");
    // Every line is a tracing line: a timestamp, a level, a target.
    for line in text.lines() {
        assert!(
            line.starts_with("20") && line.contains(" devstack::"),
            "{line}"
        );
    }
    // The stack's own terminal output has none of it.
    assert_no_tracing("the stack's output", &stack.output());
}

#[test]
fn without_v_or_devstack_log_no_file_is_made() {
    let mut stack = Stack::new(&config());
    stack.start(&["up", "--headless"]);
    stack.wait_for("web | [devstack] health: healthy", 30);
    let out = stack
        .command(&["ps"])
        .env_remove("DEVSTACK_LOG")
        .output()
        .unwrap();
    assert_quiet(&out);
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    assert!(stack.path().join(".devstack").exists());
    assert!(!log_path(&stack).exists());
    // An empty DEVSTACK_LOG is no filter either.
    let out = stack
        .command(&["check"])
        .env("DEVSTACK_LOG", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!log_path(&stack).exists());
    // With it, even `check` says what it loaded.
    let out = stack
        .command(&["check"])
        .env("DEVSTACK_LOG", "devstack=info")
        .output()
        .unwrap();
    assert_quiet(&out);
    wait_log(&stack, &["config loaded"], 10);
}

/// `up -d` passes `-v` (and `DEVSTACK_LOG`, through the environment) to the stack it starts.
#[test]
fn a_detached_stack_logs_as_asked() {
    for (flags, env) in [(vec!["-v"], None), (vec![], Some("devstack=debug"))] {
        let stack = Stack::new(&config());
        let mut cmd = stack.command(&[flags.as_slice(), &["up", "-d"]].concat());
        cmd.env_remove("DEVSTACK_LOG");
        if let Some(filter) = env {
            cmd.env("DEVSTACK_LOG", filter);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        assert_no_tracing("stderr of up -d", &err);
        let daemon = Daemon(number_after(&err, "(pid "));
        let text = wait_log(&stack, &["--stay", "spawned service=web"], 30);
        assert!(
            text.contains(&format!("devstack started pid={}", daemon.0)),
            "{flags:?} {env:?}:\n{text}"
        );
        let out = stack.command(&["down"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        wait_log(&stack, &["exited service=web"], 30);
    }
}
