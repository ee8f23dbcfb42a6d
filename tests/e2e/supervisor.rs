//! The supervisor against real processes and real signals, through the real binary.

use crate::common::{Stack, alive, all_gone, lines_with, number_after};
use nix::sys::signal::Signal;

/// The service name each of these lines is prefixed with, in order.
fn names(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split(" |").next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn start_order_follows_dependencies_and_stop_order_is_the_reverse() {
    let mut stack = Stack::new(
        r#"
        [services.web]
        run = "echo web up; sleep 300"
        depends_on = ["api"]
        [services.api]
        run = "echo api up; sleep 300"
        depends_on = ["db"]
        [services.db]
        run = "echo db up; sleep 300"
        "#,
    );
    stack.start(&["up", "--headless"]);
    stack.wait_for("web | web up", 20);
    stack.signal(Signal::SIGINT);
    assert!(stack.wait_exit(20).success());
    let out = stack.output();
    assert_eq!(
        names(&lines_with(&out, "spawned pid")),
        ["db", "api", "web"],
        "{out}"
    );
    assert_eq!(
        names(&lines_with(&out, "] stopped")),
        ["web", "api", "db"],
        "{out}"
    );
    assert!(stack.leftovers().is_empty());
}

#[test]
fn a_crashing_service_restarts_with_growing_backoff_and_counts_restarts() {
    let mut stack = Stack::new(
        r#"
        [services.flaky]
        run = "echo attempt; exit 3"
        "#,
    );
    stack.start(&["up"]);
    let out = stack.wait_for("restarting in 4s (restart #3)", 30);
    let restarts = lines_with(&out, "restarting in");
    assert!(
        restarts[0].ends_with("exited with code 3; restarting in 1s (restart #1)"),
        "{out}"
    );
    assert!(
        restarts[1].ends_with("restarting in 2s (restart #2)"),
        "{out}"
    );
    assert_eq!(lines_with(&out, "| attempt").len(), 3);
    stack.signal(Signal::SIGTERM);
    stack.wait_exit(20);
}

#[test]
fn restart_no_leaves_a_crashed_service_exited() {
    let mut stack = Stack::new(
        r#"
        [services.once]
        run = "echo bye; exit 3"
        restart = "no"
        "#,
    );
    stack.start(&["up"]);
    // Nothing is left to run, so devstack ends, reporting the failure.
    let status = stack.wait_exit(20);
    let out = stack.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("once | [devstack] exited with code 3"),
        "{out}"
    );
    assert!(!out.contains("restarting"), "{out}");
    assert!(out.contains("once crashed (code 3)"), "{out}");
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_its_grace() {
    let mut stack = Stack::new(
        r#"
        [services.stubborn]
        run = "trap '' TERM; echo pid=$$; while :; do sleep 0.1; done"
        grace = "700ms"
        "#,
    );
    stack.start(&["up"]);
    let pid = stack.wait_number("pid=", 20);
    stack.signal(Signal::SIGINT);
    assert!(stack.wait_exit(20).success());
    let out = stack.output();
    assert!(out.contains("sent TERM to process group"), "{out}");
    assert!(
        out.contains("still running 700ms after the stop signal: sent KILL"),
        "{out}"
    );
    assert!(out.contains("stopped (signal KILL)"), "{out}");
    assert!(!alive(pid));
}

#[test]
fn grandchildren_die_with_their_service() {
    let mut stack = Stack::new(
        r#"
        [services.parent]
        run = "sleep 300 & echo child=$!; (trap '' TERM HUP; sleep 300) & echo stubborn=$!; wait"
        grace = "1s"
        "#,
    );
    stack.start(&["up"]);
    let pids = [
        stack.wait_number("child=", 20),
        stack.wait_number("stubborn=", 20),
    ];
    assert!(pids.iter().all(|&p| alive(p)));
    stack.signal(Signal::SIGTERM);
    stack.wait_exit(20);
    assert!(all_gone(&pids, 5), "grandchildren survived: {pids:?}");
}

#[test]
fn sigkill_of_devstack_leaves_no_survivor() {
    let mut stack = Stack::new(
        r#"
        [services.a]
        run = "sleep 300 & echo child=$!; echo leader=$$; wait"
        [services.b]
        run = "echo b=$$; exec sleep 300"
        "#,
    );
    stack.start(&["up"]);
    let pids = [
        stack.wait_number("child=", 20),
        stack.wait_number("leader=", 20),
        stack.wait_number("b=", 20),
    ];
    stack.signal(Signal::SIGKILL);
    stack.wait_exit(10);
    assert!(all_gone(&pids, 3), "survivors of SIGKILL: {pids:?}");
}

#[test]
fn the_next_run_reaps_a_group_that_outlived_a_killed_devstack() {
    // Ignoring SIGHUP gets past the terminal hang-up; the record under .devstack/ must catch it.
    let toml = r#"
        [services.deaf]
        run = "trap '' HUP TERM; echo deaf=$$; while :; do sleep 0.1; done"
        restart = "no"
        "#;
    let mut first = Stack::new(toml);
    first.start(&["up"]);
    let pid = first.wait_number("deaf=", 20);
    // Recorded first (its writer thread may lag on a loaded machine).
    let record = first.path().join(".devstack/pgroups");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{pid} ")))
    {
        assert!(std::time::Instant::now() < deadline, "{pid} never recorded");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    first.signal(Signal::SIGKILL);
    first.wait_exit(10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(alive(pid), "the fixture should outlive the hang-up");

    // A new run in the same folder.
    first.write_config(&toml.replace("deaf=", "again="));
    first.start(&["up"]);
    first.wait_number("again=", 20);
    let out = first.output();
    assert!(
        out.contains(&format!(
            "reaped leftover process group {pid} of `deaf` from a previous run"
        )),
        "{out}"
    );
    assert!(all_gone(&[pid], 3));
    first.signal(Signal::SIGINT);
    first.wait_exit(20);
}

#[test]
fn a_build_failure_blocks_dependents_and_is_reported() {
    let mut stack = Stack::new(
        r#"
        [services.lib]
        build = "echo 'error[E0425]: cannot find value'; exit 2"
        run = "sleep 300"
        [services.app]
        run = "echo should-not-run"
        depends_on = ["lib"]
        "#,
    );
    stack.start(&["up"]);
    assert_eq!(stack.wait_exit(20).code(), Some(1));
    let out = stack.output();
    assert!(
        out.contains("lib | [build] error[E0425]: cannot find value"),
        "{out}"
    );
    assert!(
        out.contains("lib | [devstack] build failed (code 2)"),
        "{out}"
    );
    assert!(
        out.contains("app | [devstack] blocked: dependency `lib` is build-failed (code 2)"),
        "{out}"
    );
    assert!(!out.contains("should-not-run"), "{out}");
}

#[test]
fn a_one_shot_task_gates_its_dependents() {
    let mut stack = Stack::new(
        r#"
        [services.migrate]
        build = "sleep 0.3; echo migrated"
        [services.api]
        run = "echo api-started; sleep 300"
        depends_on = ["migrate"]
        "#,
    );
    stack.start(&["up"]);
    let out = stack.wait_for("api-started", 20);
    let done = out.find("task completed").expect("task completed");
    assert!(done < out.find("api-started").unwrap(), "{out}");
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
}

#[test]
fn up_with_names_starts_only_those_and_their_dependencies() {
    let mut stack = Stack::new(
        r#"
        [services.db]
        run = "echo db-up; sleep 300"
        [services.api]
        run = "echo api-up; sleep 300"
        depends_on = ["db"]
        [services.other]
        run = "echo other-up; sleep 300"
        "#,
    );
    stack.start(&["up", "api"]);
    stack.wait_for("api-up", 20);
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
    let out = stack.output();
    assert!(out.contains("db-up") && !out.contains("other-up"), "{out}");
}

#[test]
fn services_get_port_name_and_url_variables() {
    let (db, api) = (crate::common::free_port(), crate::common::free_port());
    let mut stack = Stack::new(&format!(
        r#"
        [env]
        GREETING = "hi"
        [services.user-db]
        run = "sleep 300"
        port = {db}
        [services.api]
        run = "echo port=$PORT svc=$DEVSTACK_SERVICE db=$USER_DB_URL greet=$GREETING; sleep 300"
        port = {api}
        proxy = false
        "#
    ));
    stack.start(&["up"]);
    // (The spawn line shows the command itself, `greet=$GREETING`.)
    let out = stack.wait_for("greet=hi", 20);
    assert!(
        out.contains(&format!(
            "port={api} svc=api db=http://127.0.0.1:{db} greet=hi"
        )),
        "{out}"
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
}

#[test]
fn the_users_variables_win_over_derived_urls_whose_scheme_fits_the_service() {
    let [database, redis, queue, api] = std::array::from_fn(|_| crate::common::free_port());
    let mut stack = Stack::new(&format!(
        r#"
        [stack]
        env_file = ".env"
        [services.database]
        run = "sleep 300"
        port = {database}
        [services.redis]
        run = "sleep 300"
        port = {redis}
        [services.queue]
        run = "sleep 300"
        port = {queue}
        protocol = "tcp"
        [services.api]
        run = "echo db=$DATABASE_URL redis=$REDIS_URL queue=$QUEUE_URL; sleep 300"
        port = {api}
        proxy = false
        "#
    ));
    std::fs::write(
        stack.path().join(".env"),
        "DATABASE_URL=postgres://app@127.0.0.1/app\n",
    )
    .unwrap();
    stack.start(&["up"]);
    let out = stack.wait_for("queue=tcp", 20);
    assert!(
        out.contains(&format!(
            "db=postgres://app@127.0.0.1/app redis=redis://127.0.0.1:{redis} queue=tcp://127.0.0.1:{queue}"
        )),
        "{out}"
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
}

#[test]
fn a_second_signal_kills_at_once_and_sighup_stops_the_stack() {
    let mut stack = Stack::new(
        r#"
        [services.slow]
        run = "trap '' TERM; echo slow=$$; while :; do sleep 0.1; done"
        grace = "60s"
        "#,
    );
    stack.start(&["up"]);
    let pid = stack.wait_number("slow=", 20);
    stack.signal(Signal::SIGHUP);
    stack.wait_for("sent TERM to process group", 10);
    assert!(alive(pid), "TERM is ignored; the grace period is long");
    stack.signal(Signal::SIGINT);
    stack.wait_exit(10);
    assert!(stack.output().contains("killing every service"));
    assert!(all_gone(&[pid], 3));
}

#[test]
fn a_second_devstack_in_the_same_folder_is_refused_and_leaves_the_first_alone() {
    let mut first = Stack::new(
        r#"
        [services.s]
        run = "echo first=$$; sleep 300"
        "#,
    );
    first.start(&["up"]);
    let pid = first.wait_number("first=", 20);
    let out = first.command(&["up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already running this stack (pid {})", first.pid())),
        "{err}"
    );
    assert!(
        alive(pid),
        "the second run must not reap the first one's services"
    );
    first.signal(Signal::SIGINT);
    first.wait_exit(20);
}

#[test]
fn a_grandchild_that_leaves_the_session_but_keeps_the_terminal_dies_too() {
    let mut stack = Stack::new(
        r#"
        [services.sneaky]
        run = "setsid sleep 300 & echo escaped=$!; sleep 0.3; echo leaving"
        restart = "no"
        "#,
    );
    stack.start(&["up"]);
    let escaped = stack.wait_number("escaped=", 20);
    assert!(stack.wait_exit(20).success(), "{}", stack.output());
    assert!(all_gone(&[escaped], 3), "the setsid grandchild survived");
}

#[test]
fn a_start_sent_while_stopping_starts_it_again() {
    let mut stack = Stack::new(
        r#"
        [services.slow]
        run = "trap 'sleep 0.5; exit 0' TERM; echo slow=$$; while :; do sleep 0.1; done"
        "#,
    );
    stack.start(&["up"]);
    let first = stack.wait_number("slow=", 20);
    stack.wait_socket(20);
    let mut stop = stack.command(&["stop", "slow"]).spawn().unwrap();
    stack.wait_for("sent TERM", 10);
    let out = stack.command(&["start", "slow"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.wait().unwrap();
    stack.wait_for("stopped (code 0)", 10);
    // The new process says its pid a moment after the old one stopped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (again, pids) = loop {
        let again = stack.output();
        let pids: Vec<i32> = lines_with(&again, "| slow=")
            .iter()
            .map(|l| number_after(l, "slow="))
            .collect();
        if pids.len() >= 2 || std::time::Instant::now() > deadline {
            break (again, pids);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    };
    assert_eq!(pids.len(), 2, "{again}");
    assert_ne!(pids[1], first);
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
}
