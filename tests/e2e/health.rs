//! Health probes, dependency conditions, liveness, `ci` and `run`, against real processes.

use crate::common::{Stack, free_port, lines_with, testsvc};
use nix::sys::signal::Signal;

/// A service probed by `probe` (TOML lines), fast intervals, and a file `healthy` as its switch.
fn probed(probe: &str, port: u16) -> Stack {
    Stack::new(&format!(
        r#"
        [services.svc]
        run = "{}"
        port = {port}
        restart = "no"
        [services.svc.health]
        {probe}
        interval = "100ms"
        timeout = "500ms"
        retries = 2
        "#,
        testsvc()
    ))
}

#[test]
fn http_probe_turns_healthy_and_unhealthy() {
    let port = free_port();
    let mut stack = probed(r#"http = "/healthz""#, port);
    stack.touch("healthy", true);
    stack.start(&["up"]);
    stack.wait_for("svc | [devstack] health: healthy", 20);
    stack.touch("healthy", false);
    let out = stack.wait_for("health: unhealthy after 2 failed checks", 20);
    assert!(out.contains("HTTP 503"), "{out}");
    stack.stop();
}

#[test]
fn tcp_probe_turns_healthy_and_unhealthy() {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        r#"
        [services.svc]
        run = "{}"
        port = {port}
        [services.svc.health]
        tcp = true
        interval = "100ms"
        retries = 2
        [services.nobody]
        run = "sleep 300"
        port = {}
        [services.nobody.health]
        tcp = true
        interval = "100ms"
        retries = 2
        start_period = "0s"
        "#,
        testsvc(),
        free_port()
    ));
    stack.start(&["up"]);
    stack.wait_for("svc    | [devstack] health: healthy", 20);
    let out = stack.wait_for(
        "nobody | [devstack] health: unhealthy after 2 failed checks",
        20,
    );
    assert!(
        out.contains("Connection refused") || out.contains("connection refused"),
        "{out}"
    );
    stack.stop();
}

#[test]
fn cmd_probe_turns_healthy_and_unhealthy_in_the_services_folder_and_env() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "sleep 300"
        restart = "no"
        env = { FLAG = "healthy" }
        [services.svc.health]
        cmd = "test -f $FLAG"
        interval = "100ms"
        retries = 2
        "#,
    );
    stack.start(&["up"]);
    stack.touch("healthy", true);
    stack.wait_for("health: healthy", 20);
    stack.touch("healthy", false);
    stack.wait_for(
        "health: unhealthy after 2 failed checks: `test -f $FLAG` exited with code 1",
        20,
    );
    stack.stop();
}

#[test]
fn log_probe_turns_healthy_when_the_output_matches() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "echo booting; sleep 0.3; echo 'ready to serve on 8080'; sleep 300"
        [services.svc.health]
        log = "ready to serve on \\d+"
        "#,
    );
    stack.start(&["up"]);
    let out = stack.wait_for("health: healthy", 20);
    assert!(out.find("ready to serve").unwrap() < out.find("health: healthy").unwrap());
    stack.stop();
}

#[test]
fn start_period_and_retries_are_honoured() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "sleep 300"
        restart = "no"
        [services.svc.health]
        cmd = "false"
        interval = "100ms"
        retries = 4
        start_period = "1s"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("health: unhealthy after 4 failed checks", 20);
    // The file log's timestamps: spawned → unhealthy spans the start period and then 4 failures.
    let log = std::fs::read_to_string(stack.path().join(".devstack/logs/svc.log")).unwrap();
    let at = |needle: &str| {
        let line = log.lines().find(|l| l.contains(needle)).unwrap();
        humantime::parse_rfc3339(line.split(' ').next().unwrap()).unwrap()
    };
    let took = at("health: unhealthy")
        .duration_since(at("spawned pid"))
        .unwrap();
    assert!(
        took >= std::time::Duration::from_millis(1000 + 3 * 100),
        "unhealthy after only {took:?}"
    );
    stack.stop();
}

#[test]
fn a_dependent_starts_only_after_its_dependency_is_healthy() {
    let mut stack = Stack::new(
        r#"
        [services.db]
        run = "sleep 0.5; touch ready; echo db-ready-file; sleep 300"
        [services.db.health]
        cmd = "test -f ready"
        interval = "100ms"
        [services.api]
        run = "echo api-started; sleep 300"
        depends_on = ["db"]
        "#,
    );
    stack.start(&["up"]);
    let out = stack.wait_for("api-started", 20);
    let healthy = out
        .find("db  | [devstack] health: healthy")
        .expect("db turned healthy");
    let spawned = out.find("api | [devstack] spawned").expect("api spawned");
    assert!(healthy < spawned, "{out}");
    stack.stop();
}

#[test]
fn a_failing_dependency_blocks_its_dependents_with_a_reason() {
    let mut stack = Stack::new(
        r#"
        [services.migrate]
        build = "echo 'relation exists'; exit 4"
        [services.db]
        run = "exit 1"
        restart = "no"
        [services.db.health]
        log = "never printed"
        [services.api]
        run = "sleep 300"
        depends_on = ["migrate"]
        [services.web]
        run = "sleep 300"
        depends_on = ["db"]
        "#,
    );
    stack.start(&["up"]);
    assert_eq!(stack.wait_exit(20).code(), Some(1));
    let out = stack.output();
    assert!(
        out.contains("api     | [devstack] blocked: dependency `migrate` is failed (code 4)"),
        "{out}"
    );
    assert!(
        out.contains("web     | [devstack] blocked: dependency `db` is crashed (code 1)"),
        "{out}"
    );
}

#[test]
fn an_unhealthy_service_that_was_healthy_is_restarted() {
    let mut stack = Stack::new(
        r#"
        [services.svc]
        run = "echo pid=$$; touch healthy; sleep 300"
        [services.svc.health]
        cmd = "test -f healthy"
        interval = "100ms"
        retries = 2
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("health: healthy", 20);
    stack.touch("healthy", false);
    let out = stack.wait_for("restart #1", 20);
    assert!(
        out.contains("restarting: it was healthy and stopped answering its probe"),
        "{out}"
    );
    // The new process recreates the file and is healthy again.
    let out = stack.wait_for("restarting in 1s (restart #1)", 5);
    assert_eq!(lines_with(&out, "| pid=").len(), 1);
    stack.wait_for("spawned pid", 5);
    stack.wait_for("restart #1", 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lines_with(&stack.output(), "| pid=").len() < 2
        || lines_with(&stack.output(), "health: healthy").len() < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy again: {}",
            stack.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stack.stop();
}

fn ci(toml: &str, extra: &[&str]) -> (i32, String) {
    let mut stack = Stack::new(toml);
    let mut args = vec!["ci"];
    args.extend_from_slice(extra);
    stack.start(&args);
    let code = stack.wait_exit(60).code().unwrap_or(-1);
    let out = stack.output();
    assert!(stack.leftovers().is_empty(), "ci left processes behind");
    (code, out)
}

#[test]
fn ci_succeeds_once_every_service_is_ready() {
    let (code, out) = ci(
        r#"
        [services.task]
        build = "echo done"
        [services.api]
        run = "echo up; sleep 300"
        depends_on = ["task"]
        [services.api.health]
        log = "up"
        "#,
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ci: every service is ready"), "{out}");
}

#[test]
fn ci_fails_on_a_broken_build_naming_it_with_its_last_lines() {
    let (code, out) = ci(
        "[services.api]\nbuild = \"echo 'error: expected one of'; exit 101\"\nrun = \"sleep 300\"\n",
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("devstack: `api` failed: build-failed (code 101)"),
        "{out}"
    );
    assert!(out.contains("last 3 lines of `api`:"), "{out}");
    assert!(out.contains("  api | error: expected one of"), "{out}");
}

#[test]
fn ci_fails_on_a_crashing_service() {
    // A service without a probe is ready once started; these have one, so the crash comes first.
    let probe = "[services.api.health]\nlog = \"listening\"\n";
    let (code, out) = ci(
        &format!("[services.api]\nrun = \"echo boom; exit 2\"\nrestart = \"no\"\n{probe}"),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`api` failed: crashed (code 2)"), "{out}");
    let (code, out) = ci(
        &format!("[services.api]\nrun = \"echo boom; exit 2\"\n{probe}"),
        &["--timeout", "60s"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`api` failed: is crash-looping (3 restarts)"),
        "{out}"
    );
}

#[test]
fn ci_fails_on_a_failing_task() {
    let (code, out) = ci("[services.migrate]\nbuild = \"echo nope; exit 3\"\n", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`migrate` failed: failed (code 3)"), "{out}");
}

#[test]
fn ci_fails_on_timeout_naming_what_is_not_ready() {
    let (code, out) = ci(
        "[services.slow]\nrun = \"echo waiting; sleep 300\"\n[services.slow.health]\ncmd = \"false\"\ninterval = \"100ms\"\n",
        &["--timeout", "1s"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not ready after 1s"), "{out}");
    assert!(out.contains("`slow` is starting"), "{out}");
    assert!(out.contains("`false` exited with code 1"), "{out}");
    assert!(out.contains("  slow | waiting"), "{out}");
}

#[test]
fn run_executes_the_command_against_the_ready_stack_and_passes_its_status() {
    let port = free_port();
    let toml = format!(
        "[services.gateway]\nrun = \"{}\"\nport = {port}\n[services.gateway.health]\nhttp = \"/healthz\"\ninterval = \"100ms\"\n",
        testsvc()
    );
    let stack = Stack::new(&toml);
    stack.touch("healthy", true);
    let out = stack
        .command(&[
            "run",
            "--",
            "sh",
            "-c",
            "curl -fsS -o /dev/null -w '%{http_code}' $GATEWAY_URL/healthz",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "the command's output alone is on stdout"
    );
    assert!(stack.leftovers().is_empty());

    let out = stack
        .command(&["run", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(stack.leftovers().is_empty());
}

#[test]
fn ci_and_run_stopped_before_the_stack_is_ready_fail_without_running_the_command() {
    let toml = "[services.slow]\nrun = \"echo waiting; sleep 300\"\n[services.slow.health]\ncmd = \"false\"\ninterval = \"100ms\"\n";
    for args in [
        &["ci", "--timeout", "60s"][..],
        &["run", "--timeout", "60s", "--", "sh", "-c", "echo CMD-RAN"][..],
    ] {
        let mut stack = Stack::new(toml);
        stack.start(args);
        stack.wait_for("slow | waiting", 30);
        stack.signal(Signal::SIGTERM);
        let code = stack.wait_exit(30).code();
        let out = stack.output();
        assert_eq!(code, Some(1), "{args:?}: {out}");
        assert!(!out.contains("every service is ready"), "{out}");
        assert!(!out.contains("CMD-RAN"), "the command ran: {out}");
        assert!(
            out.contains("`slow` was stopped before the stack was ready"),
            "{out}"
        );
        assert!(stack.leftovers().is_empty());
    }
}
