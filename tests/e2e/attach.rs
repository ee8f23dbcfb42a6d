//! The dashboard on a stack running elsewhere (`up -d`, or another terminal): `devstack attach`
//! and plain `devstack`, through the control socket; the socket requests it needs (`input`,
//! `resize`, `logs` with colours); and `up -d --wait`.

use crate::common::tmux::{Tmux, pid_of};
use crate::common::{Stack, all_gone, number_after};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Kills a detached devstack by pid when a test ends, passed or not.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn cli(stack: &Stack, args: &[&str]) -> (i32, String, String) {
    let out = stack.command(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `devstack up -d ARGS`; the detached devstack is killed when the guard drops.
fn up_detached(stack: &Stack, args: &[&str]) -> (i32, String, Daemon) {
    let mut all = vec!["up", "-d"];
    all.extend(args);
    let (code, _, err) = cli(stack, &all);
    let daemon = Daemon(number_after(&err, "(pid "));
    (code, err, daemon)
}

/// The pid `ps --json` shows for `service`.
fn ps_pid(stack: &Stack, service: &str) -> Option<i64> {
    stack
        .services()?
        .iter()
        .find(|s| s["name"] == service)?
        .get("pid")?
        .as_i64()
}

fn wait_until(secs: u64, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {secs}s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const WEB: &str = r#"
[services.web]
run = "echo web=$$; sleep 300"
[services.repl]
run = "echo ready; while read line; do echo got:$line; done"
"#;

#[test]
fn attach_restarts_by_key_detaches_comes_back_with_the_history_and_stops_the_stack() {
    let stack = Stack::new(WEB);
    let (code, err, daemon) = up_detached(&stack, &[]);
    assert_eq!(code, 0, "{err}");
    let first = ps_pid(&stack, "web").expect("web runs");

    let attach = format!("{} attach; sleep 30", crate::common::BIN);
    let tmux = Tmux::start(stack.path(), &attach);
    // The log lines come on a follow of their own, maybe after the views.
    let line = format!("web={first}");
    let screen = tmux.wait(20, "the attached dashboard", |s| {
        s.contains("2/2 ready") && s.contains(&line)
    });
    assert_eq!(pid_of(&screen, "web"), Some(first as i32), "{screen}");

    // `web` is selected first: `r` restarts it, through the socket.
    tmux.keys(&["r"]);
    wait_until(20, "web restarted with a new pid", || {
        ps_pid(&stack, "web").is_some_and(|p| p != first)
    });
    let second = ps_pid(&stack, "web").unwrap();
    tmux.wait(20, "the new pid on the dashboard", |s| {
        pid_of(s, "web") == Some(second as i32)
    });

    // `q` asks; `d` detaches, and the stack runs on.
    tmux.keys(&["q"]);
    tmux.wait(10, "the detach question", |s| {
        s.contains("s stop the stack")
    });
    tmux.keys(&["d"]);
    tmux.wait(10, "the dashboard to leave", |s| {
        s.contains("detached; the stack keeps running")
    });
    assert_eq!(ps_pid(&stack, "web"), Some(second), "still running");
    drop(tmux);

    // Plain `devstack` attaches too; the earlier lines are there.
    let plain = format!("{} ; sleep 30", crate::common::BIN);
    let tmux = Tmux::start(stack.path(), &plain);
    let lines = [format!("web={first}"), format!("web={second}")];
    tmux.wait(20, "attached again, with the earlier lines", |s| {
        s.contains("2/2 ready") && lines.iter().all(|l| s.contains(l.as_str()))
    });

    // `q` then `s` stops the stack; the dashboard leaves once it has stopped.
    tmux.keys(&["q", "s"]);
    tmux.wait(30, "the stack to stop", |s| s.contains("the stack stopped"));
    assert!(all_gone(&[daemon.0, second as i32], 10));
    let (code, _, err) = cli(&stack, &["ps"]);
    assert_eq!(code, 1, "{err}");
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn two_attached_dashboards_both_see_a_restart() {
    let stack = Stack::new(WEB);
    let (code, err, _daemon) = up_detached(&stack, &[]);
    assert_eq!(code, 0, "{err}");
    let first = ps_pid(&stack, "web").expect("web runs") as i32;
    let attach = format!("{} attach; sleep 30", crate::common::BIN);
    let one = Tmux::start(stack.path(), &attach);
    let two = Tmux::start(stack.path(), &attach);
    for t in [&one, &two] {
        t.wait(20, "attached", |s| pid_of(s, "web") == Some(first));
    }
    one.keys(&["r"]);
    for t in [&one, &two] {
        t.wait(20, "the restart on both dashboards", |s| {
            pid_of(s, "web").is_some_and(|p| p != first) && s.contains("2/2 ready")
        });
    }
    // Ctrl-C detaches an attached dashboard; the stack runs on.
    two.keys(&["C-c"]);
    two.wait(10, "the second to detach", |s| s.contains("detached"));
    assert!(one.screen().contains("2/2 ready"));
    let (code, _, err) = cli(&stack, &["down"]);
    assert_eq!(code, 0, "{err}");
    one.wait(20, "the first to see the stack stop", |s| {
        s.contains("the stack stopped")
    });
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

/// A connection to the stack's socket.
struct Conn(BufReader<UnixStream>, UnixStream);

impl Conn {
    fn open(stack: &Stack) -> Conn {
        let s = UnixStream::connect(stack.path().join(".devstack/devstack.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn(BufReader::new(s.try_clone().unwrap()), s)
    }

    fn ask(&mut self, line: &str) -> Value {
        self.1.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        self.0.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    }
}

#[test]
fn input_and_resize_reach_a_services_terminal_and_logs_keep_colours_when_asked() {
    let mut stack = Stack::new(
        r#"
        [services.repl]
        run = "printf '\\033[31mred\\033[0m\\n'; while read line; do echo got:$line; stty size; done"
        [services.idle]
        run = "true"
        restart = "no"
        "#,
    );
    stack.start(&["up", "--headless"]);
    stack.wait_socket(20);
    stack.wait_for("red", 20);
    let mut conn = Conn::open(&stack);
    let answer = conn.ask(r#"{"cmd":"resize","service":"repl","rows":17,"cols":53}"#);
    assert_eq!(answer, serde_json::json!({"ok": true, "answer": "done"}));
    let answer = conn.ask(r#"{"cmd":"input","service":"repl","text":"hello\r"}"#);
    assert_eq!(answer, serde_json::json!({"ok": true, "answer": "done"}));
    stack.wait_for("got:hello", 20);
    stack.wait_for("17 53", 20);

    // Not running, or not there: a clear error, and the connection stays open.
    wait_until(20, "idle to have ended", || {
        stack
            .services()
            .is_some_and(|s| s.iter().any(|v| v["name"] == "idle" && v["pid"].is_null()))
    });
    let answer = conn.ask(r#"{"cmd":"input","service":"idle","text":"x"}"#);
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("idle is not running"), "{error}");
    let answer = conn.ask(r#"{"cmd":"input","service":"nope","text":"x"}"#);
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("unknown service `nope`"), "{error}");

    // Colours only when asked for.
    let mut red = |color: bool| {
        let answer = conn.ask(&format!(
            r#"{{"cmd":"logs","services":["repl"],"lines":50,"color":{color}}}"#
        ));
        answer["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["stream"] == "out")
            .map(|l| l["text"].as_str().unwrap().to_string())
            .find(|t| t.contains("red"))
            .unwrap()
    };
    assert_eq!(red(true), "\u{1b}[31mred\u{1b}[0m");
    assert_eq!(red(false), "red");
    stack.stop();
}

#[test]
fn up_detached_wait_returns_once_ready_or_names_the_failure() {
    let stack = Stack::new(
        r#"
        [services.slow]
        run = "sleep 1; echo listening; sleep 300"
        [services.slow.health]
        log = "listening"
        "#,
    );
    let (code, err, _daemon) = up_detached(&stack, &["--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("every service is ready"), "{err}");
    let services = stack.services().unwrap();
    assert_eq!(services[0]["ready"], true, "{services:?}");
    let (code, _, err) = cli(&stack, &["down"]);
    assert_eq!(code, 0, "{err}");

    stack.write_config(
        r#"
        [services.ok]
        run = "sleep 300"
        [services.bad]
        build = "echo about to fail; exit 3"
        run = "sleep 300"
        "#,
    );
    let (code, err, _daemon) = up_detached(&stack, &["--wait"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`bad` failed: build"), "{err}");
    assert!(err.contains("bad | about to fail"), "{err}");
    assert!(err.contains("the stack keeps running"), "{err}");
    let (code, _, err) = cli(&stack, &["down"]);
    assert_eq!(code, 0, "{err}");

    // A timeout names what is not ready.
    stack.write_config(
        r#"
        [services.never]
        run = "echo waiting; sleep 300"
        [services.never.health]
        log = "never printed"
        "#,
    );
    let (code, err, _daemon) = up_detached(&stack, &["--wait", "--timeout", "2s"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not ready after 2s"), "{err}");
    assert!(err.contains("`never` is"), "{err}");
    let (code, _, err) = cli(&stack, &["down"]);
    assert_eq!(code, 0, "{err}");
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}
