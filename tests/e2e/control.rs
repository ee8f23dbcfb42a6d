//! The control socket and the scripting CLI, against a real running stack.

use crate::common::{Stack, alive, all_gone, number_after};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The port `api` of `two()` declares (it never binds it, and it is not proxied, so that the
/// stacks of several tests may declare it at once), picked free once.
static API_PORT: std::sync::LazyLock<u16> = std::sync::LazyLock::new(crate::common::free_port);

fn two() -> String {
    format!(
        r#"
[services.db]
run = "echo db=$$; sleep 300"
[services.api]
run = "echo api=$$; while :; do echo tick; sleep 0.2; done"
port = {}
proxy = false
depends_on = ["db"]
[services.api.health]
log = "tick"
"#,
        *API_PORT
    )
}

/// A stack running in the foreground, with its socket answering.
fn running(toml: &str) -> Stack {
    let mut stack = Stack::new(toml);
    stack.start(&["up"]);
    stack.wait_socket(20);
    stack
}

fn cli(stack: &Stack, args: &[&str]) -> (i32, String, String) {
    let out = stack.command(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ps_json(stack: &Stack) -> Vec<Value> {
    let (code, out, err) = cli(stack, &["ps", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap()["services"]
        .as_array()
        .unwrap()
        .clone()
}

fn socket(stack: &Stack) -> (BufReader<UnixStream>, UnixStream) {
    let s = UnixStream::connect(stack.path().join(".devstack/devstack.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

fn roundtrip(conn: &mut (BufReader<UnixStream>, UnixStream), line: &str) -> Value {
    conn.1.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    conn.0.read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn shut(mut stack: Stack) {
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}

#[test]
fn ps_shows_every_service_as_a_table_and_as_json() {
    let stack = running(&two());
    stack.wait_for("health: healthy", 20);
    let (code, out, _) = cli(&stack, &["ps"]);
    assert_eq!(code, 0);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "STATE", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS"
        ]
    );
    assert!(
        out.lines().any(|l| l.starts_with("api")
            && l.contains("running")
            && l.contains("healthy")
            && l.contains(&API_PORT.to_string())),
        "{out}"
    );
    let services = ps_json(&stack);
    assert_eq!(services[0]["name"], "db");
    assert_eq!(services[1]["state"], "running");
    assert_eq!(services[1]["health"], "healthy");
    assert_eq!(services[1]["port"], *API_PORT);
    assert!(services[1]["pid"].as_i64().unwrap() > 0);
    shut(stack);
}

#[test]
fn restart_gives_a_new_pid_and_waits_until_ready() {
    let stack = running(&two());
    let old = stack.wait_number("api=", 20);
    let (code, out, err) = cli(&stack, &["restart", "api"]);
    assert_eq!(code, 0, "{err}");
    let new = number_after(&out, "(pid ");
    assert_ne!(new, old);
    assert!(!alive(old));
    let api = &ps_json(&stack)[1];
    assert_eq!(api["pid"], new);
    assert_eq!(
        api["health"], "healthy",
        "restart answers once the new process is ready"
    );
    shut(stack);
}

#[test]
fn stop_then_start() {
    let stack = running(&two());
    let old = stack.wait_number("api=", 20);
    let (code, out, _) = cli(&stack, &["stop", "api"]);
    assert_eq!(code, 0);
    assert!(out.contains("api: stopped"), "{out}");
    assert!(!alive(old));
    assert_eq!(ps_json(&stack)[1]["state"], "stopped");
    let (code, out, _) = cli(&stack, &["start", "api"]);
    assert_eq!(code, 0, "{out}");
    let new = number_after(&out, "(pid ");
    assert!(alive(new) && new != old);
    shut(stack);
}

#[test]
fn actions_on_unknown_services_fail_with_the_candidates() {
    let stack = running(&two());
    let (code, _, err) = cli(&stack, &["restart", "apii"]);
    assert_eq!(code, 2, "bad usage, as for `up` and `ci`");
    assert!(
        err.contains("unknown service `apii`; services are: db, api"),
        "{err}"
    );
    shut(stack);
}

#[test]
fn logs_prints_the_tail_and_follow_streams_new_lines() {
    let stack = running(&two());
    stack.wait_for("| tick", 20);
    let (code, out, _) = cli(&stack, &["logs", "-n", "3", "api"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().all(|l| l.starts_with("api | ")), "{out}");

    let mut follow = stack.command(&["logs", "-f", "-n", "0", "api"]);
    follow.stdout(std::process::Stdio::piped());
    let mut child = follow.spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        seen.push(line);
    }
    assert!(seen.iter().all(|l| l == "api | tick\n"), "{seen:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The follower is gone; the stack doesn't mind.
    assert_eq!(cli(&stack, &["ps"]).0, 0);
    shut(stack);
}

#[test]
fn logs_read_the_files_when_no_stack_runs() {
    let mut stack =
        Stack::new("[services.once]\nrun = \"echo one; echo two; echo three\"\nrestart = \"no\"\n");
    stack.start(&["up"]);
    stack.wait_exit(20);
    let (code, out, _) = cli(&stack, &["logs", "-n", "2", "once"]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("once | three\nonce | [devstack] exited with code 0\n"),
        "{out}"
    );
}

#[test]
fn malformed_requests_get_errors_and_the_connection_stays_usable() {
    let stack = running(&two());
    let mut conn = socket(&stack);
    let bad = roundtrip(&mut conn, "this is not json");
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap().starts_with("bad request"),
        "{bad}"
    );
    let unknown = roundtrip(&mut conn, r#"{"cmd":"explode"}"#);
    assert_eq!(unknown["ok"], false);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `explode`"),
        "{unknown}"
    );
    let missing = roundtrip(&mut conn, r#"{"cmd":"restart"}"#);
    assert_eq!(missing["ok"], false);
    let nobody = roundtrip(&mut conn, r#"{"cmd":"stop","service":"nobody"}"#);
    assert_eq!(
        nobody["error"],
        "unknown service `nobody`; services are: db, api"
    );
    let ps = roundtrip(&mut conn, r#"{"cmd":"ps"}"#);
    assert_eq!(ps["ok"], true);
    assert_eq!(ps["services"].as_array().unwrap().len(), 2);
    let traffic = roundtrip(&mut conn, r#"{"cmd":"traffic"}"#);
    assert_eq!(traffic["ok"], true);
    shut(stack);
}

#[test]
fn subscribe_streams_state_changes() {
    let stack = running(&two());
    stack.wait_for("health: healthy", 20);
    let mut conn = socket(&stack);
    let first = roundtrip(&mut conn, r#"{"cmd":"subscribe"}"#);
    assert_eq!(first["ok"], true);
    let (code, _, err) = cli(&stack, &["stop", "db"]);
    assert_eq!(code, 0, "{err}");
    let mut states = Vec::new();
    while !states.contains(&json!("stopped")) {
        let mut line = String::new();
        conn.0.read_line(&mut line).unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["event"], "state");
        if event["service"]["name"] == "db" {
            states.push(event["service"]["state"].clone());
        }
    }
    assert_eq!(states, [json!("stopping"), json!("stopped")]);
    // A subscriber that hangs up costs nothing.
    drop(conn);
    assert_eq!(cli(&stack, &["ps"]).0, 0);
    shut(stack);
}

#[test]
fn the_socket_is_private_and_a_stale_one_is_replaced() {
    let stack = Stack::new(&two());
    std::fs::create_dir_all(stack.path().join(".devstack")).unwrap();
    let path = stack.path().join(".devstack/devstack.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // a socket nobody serves
    assert!(UnixStream::connect(&path).is_err());
    let mut stack = stack;
    stack.start(&["up"]);
    stack.wait_socket(20);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    shut(stack);
    assert!(!path.exists(), "the socket is removed on exit");
}

#[test]
fn up_detached_then_down_leaves_nothing_running() {
    let stack = Stack::new(&two());
    let (code, _, err) = cli(&stack, &["up", "-d"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stack started in the background"), "{err}");
    // `up -d` returns once the socket answers; the services start meanwhile (api after its port
    // check).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let services = loop {
        let services = ps_json(&stack);
        if services.iter().all(|s| s["pid"].is_i64()) || std::time::Instant::now() > deadline {
            break services;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let pids: Vec<i32> = services
        .iter()
        .map(|s| s["pid"].as_i64().unwrap() as i32)
        .collect();
    let daemon = number_after(&err, "(pid ");
    assert!(pids.iter().all(|&p| alive(p)));
    let (code, _, err) = cli(&stack, &["up", "-d"]);
    assert_eq!(code, 1, "a second stack is refused: {err}");
    let (code, _, err) = cli(&stack, &["down"]);
    assert_eq!(code, 0, "{err}");
    assert!(all_gone(&pids, 5) && all_gone(&[daemon], 5));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
    let (code, _, err) = cli(&stack, &["ps"]);
    assert_eq!(code, 1);
    assert!(err.contains("no stack is running"), "{err}");
}

#[test]
fn rebuild_restarts_on_success_and_keeps_the_old_process_on_failure() {
    let stack = running(
        r#"
        [services.app]
        build = "echo compiling; test ! -f broken"
        run = "echo app=$$; sleep 300"
        "#,
    );
    let old = stack.wait_number("app=", 20);
    let (code, out, err) = cli(&stack, &["rebuild", "app"]);
    assert_eq!(code, 0, "{err}");
    let new = number_after(&out, "(pid ");
    assert_ne!(new, old);

    stack.touch("broken", true);
    let (code, _, err) = cli(&stack, &["rebuild", "app"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("app: build failed; the previous process keeps running"),
        "{err}"
    );
    assert!(alive(new));
    assert_eq!(ps_json(&stack)[0]["pid"], new);
    shut(stack);
}

#[test]
fn kill_sigkills_the_group() {
    let stack = running("[services.hard]\nrun = \"trap '' TERM; echo hard=$$; sleep 300\"\n");
    let pid = stack.wait_number("hard=", 20);
    let (code, _, err) = cli(&stack, &["kill", "hard"]);
    assert_eq!(code, 0, "{err}");
    assert!(!alive(pid));
    assert_eq!(ps_json(&stack)[0]["state"], "stopped");
    shut(stack);
}

#[test]
fn logs_reach_back_into_earlier_runs_and_rotated_files_in_time_order() {
    let mut stack = Stack::new("[services.svc]\nrun = \"echo first-1; echo first-2; sleep 300\"\n");
    // A rotated file, as a long-gone run left it.
    let dir = stack.path().join(".devstack/logs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("svc.log.1"),
        "2020-01-01T00:00:00.000Z ancient-1\n2020-01-01T00:00:01.000Z [devstack] ancient-2\n",
    )
    .unwrap();
    stack.start(&["up"]);
    stack.wait_for("svc | first-2", 20);
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    // The same folder, started again: its memory holds only this run.
    stack.write_config("[services.svc]\nrun = \"echo second-1; sleep 300\"\n");
    stack.start(&["up"]);
    stack.wait_for("svc | second-1", 20);
    stack.wait_socket(20);

    let (code, out, err) = cli(&stack, &["logs", "-n", "1000", "svc"]);
    assert_eq!(code, 0, "{err}");
    let all: Vec<&str> = out.lines().collect();
    let at = |text: &str| {
        all.iter()
            .position(|l| l.ends_with(text))
            .unwrap_or_else(|| panic!("no `{text}` in:\n{out}"))
    };
    assert_eq!(all[0], "svc | ancient-1", "{out}");
    let order = ["ancient-2", "first-1", "first-2", "second-1"].map(at);
    assert!(order.is_sorted(), "out of order: {order:?}\n{out}");
    // Whatever N, the files and the buffer meet without a gap or a repeat.
    for n in 1..=all.len() {
        let (_, tail, _) = cli(&stack, &["logs", "-n", &n.to_string(), "svc"]);
        assert_eq!(
            tail.lines().collect::<Vec<_>>(),
            all[all.len() - n..],
            "logs -n {n}"
        );
    }
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
    // With no stack running, the files alone give the same, rotated ones included.
    let (code, out, _) = cli(&stack, &["logs", "-n", "1000", "svc"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("{}\n", all.join("\n"))), "{out}");
}

/// `ready` answers with how the wait ended, as the stack judges it: ready, a service that
/// failed with its last lines, one not meant to be up, or the time out with what each waits
/// for; a failed rebuild's error carries that build's lines (no second request for them).
#[test]
fn ready_says_how_the_wait_ended_and_a_failed_build_sends_its_lines() {
    let stack = running(
        r#"
        [services.app]
        build = "echo compiling; if test -f broken; then echo 'error: broken'; exit 1; fi"
        run = "echo app=$$; sleep 300"
        [services.crasher]
        run = "echo 'panic: no config'; sleep 1; exit 3"
        restart = "no"
        autostart = false
        [services.crasher.health]
        cmd = "false"
        [services.slow]
        run = "sleep 300"
        autostart = false
        [services.slow.health]
        cmd = "false"
        "#,
    );
    stack.wait_number("app=", 20);
    let mut conn = socket(&stack);
    let ready = roundtrip(
        &mut conn,
        r#"{"cmd":"ready","services":["app"],"timeout_ms":20000}"#,
    );
    assert_eq!(ready["ok"], true, "{ready}");
    assert_eq!(ready["readiness"]["outcome"], "ready", "{ready}");
    assert!(ready["readiness"]["took_ms"].is_u64(), "{ready}");

    // Asked for, but not meant to be up.
    let unwanted = roundtrip(
        &mut conn,
        r#"{"cmd":"ready","services":["crasher"],"timeout_ms":20000}"#,
    );
    assert_eq!(unwanted["readiness"]["outcome"], "unwanted", "{unwanted}");
    assert_eq!(unwanted["readiness"]["service"], "crasher");

    let started = roundtrip(
        &mut conn,
        r#"{"cmd":"start","service":"crasher","wait":false}"#,
    );
    assert_eq!(started["ok"], true, "{started}");
    let failed = roundtrip(
        &mut conn,
        r#"{"cmd":"ready","services":["crasher"],"timeout_ms":20000}"#,
    );
    assert_eq!(failed["readiness"]["outcome"], "failed", "{failed}");
    let lines = failed["readiness"]["lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l == "panic: no config"), "{failed}");

    let start = roundtrip(
        &mut conn,
        r#"{"cmd":"start","service":"slow","wait":false}"#,
    );
    assert_eq!(start["ok"], true, "{start}");
    let late = roundtrip(
        &mut conn,
        r#"{"cmd":"ready","services":["slow"],"timeout_ms":1500}"#,
    );
    assert_eq!(late["readiness"]["outcome"], "timed-out", "{late}");
    assert_eq!(late["readiness"]["waiting"][0]["service"], "slow", "{late}");
    assert!(
        late["readiness"]["waiting"][0]["what"]
            .as_str()
            .unwrap()
            .contains("starting"),
        "{late}"
    );

    stack.touch("broken", true);
    let rebuild = roundtrip(&mut conn, r#"{"cmd":"rebuild","service":"app"}"#);
    assert_eq!(rebuild["ok"], false, "{rebuild}");
    assert_eq!(
        rebuild["lines"],
        json!(["compiling", "error: broken"]),
        "only this build's lines: {rebuild}"
    );
    shut(stack);
}
