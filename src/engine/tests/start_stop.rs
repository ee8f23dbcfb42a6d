//! Start order, stop order, dependency conditions, blocking, kill, grace, ports, restart all.

use super::*;
use nix::sys::signal::Signal;

const CHAIN: &str = r#"
[services.db]
run = "db"
[services.api]
run = "api"
depends_on = ["db"]
[services.web]
run = "web"
depends_on = ["api"]
"#;

#[tokio::test(start_paused = true)]
async fn services_start_in_dependency_order() {
    let rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    assert_eq!(rig.fake.spawned(), ["db", "api", "web"]);
    for name in ["db", "api", "web"] {
        assert_eq!(rig.state(name), State::Running);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_in_reverse_dependency_order_and_ends_the_engine() {
    let mut rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    rig.apply(Command::Shutdown).await;
    let outcome = rig.ended().await;
    assert_eq!(rig.fake.stopped_services(), ["web", "api", "db"]);
    assert!(outcome.failures.is_empty());
    assert_eq!(rig.fake.reaped().len(), 3, "every process is collected");
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_dependent_to_exit_before_stopping_its_dependency() {
    let mut rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    rig.fake.stubborn("web");
    rig.apply(Command::Shutdown).await;
    rig.settle().await;
    assert_eq!(rig.fake.stopped_services(), ["web"], "api waits for web");
    rig.exit("web", Exit::Code(0)).await;
    rig.ended().await;
    assert_eq!(rig.fake.stopped_services(), ["web", "api", "db"]);
}

#[tokio::test(start_paused = true)]
async fn started_condition_waits_only_for_the_dependency_to_run() {
    let rig = rig(r#"
[services.db]
run = "db"
[services.db.health]
cmd = "probe"
[services.api]
run = "api"
depends_on = { db = "started" }
"#);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    assert_eq!(rig.view("db").health, Some(HealthState::Unknown));
}

#[tokio::test(start_paused = true)]
async fn healthy_condition_waits_for_the_first_healthy_probe() {
    let rig = rig(r#"
[services.db]
run = "db"
[services.db.health]
cmd = "probe"
[services.api]
run = "api"
depends_on = ["db"]
"#);
    rig.until("db runs", |r| r.fake.is_running("db")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!rig.fake.is_running("api"), "api waits for db's health");
    rig.probe("db", Err("refused")).await;
    assert!(!rig.fake.is_running("api"));
    rig.probe("db", Ok(())).await;
    rig.until("api runs", |r| r.fake.is_running("api")).await;
}

#[tokio::test(start_paused = true)]
async fn completed_condition_waits_for_the_task_to_complete() {
    let rig = rig(r#"
[services.migrate]
build = "migrate"
[services.api]
run = "api"
depends_on = { migrate = "completed" }
"#);
    rig.until("migrate runs", |r| r.fake.is_running("migrate"))
        .await;
    assert_eq!(rig.state("migrate"), State::Building);
    assert_eq!(rig.state("api"), State::Pending);
    rig.exit("migrate", CLEAN).await;
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    assert_eq!(rig.state("migrate"), State::Completed);
    assert!(rig.view("migrate").ready);
}

#[tokio::test(start_paused = true)]
async fn pending_says_what_it_waits_for() {
    let rig = rig(r#"
[services.db]
run = "db"
[services.db.health]
cmd = "probe"
[services.api]
run = "api"
depends_on = ["db"]
"#);
    rig.until("db runs", |r| r.fake.is_running("db")).await;
    assert_eq!(rig.state("api"), State::Pending);
    assert_eq!(
        rig.detail("api"),
        "pending: waiting for `db` to be healthy (it is starting)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_fails_blocks_its_dependents_with_the_reason() {
    let rig = rig(r#"
[services.migrate]
build = "migrate"
[services.api]
run = "api"
depends_on = { migrate = "completed" }
[services.web]
run = "web"
depends_on = ["api"]
"#);
    rig.until("migrate runs", |r| r.fake.is_running("migrate"))
        .await;
    rig.exit("migrate", Exit::Code(3)).await;
    rig.until("api blocked", |r| r.state("api") == State::Blocked)
        .await;
    assert_eq!(rig.state("migrate"), State::Failed);
    assert_eq!(
        rig.detail("api"),
        "blocked: dependency `migrate` is failed (code 3)"
    );
    rig.until("web blocked", |r| r.state("web") == State::Blocked)
        .await;
    assert!(rig.detail("web").contains("dependency `api` is blocked"));
    assert!(rig.logged("api", "blocked: dependency `migrate` is failed (code 3)"));
}

#[tokio::test(start_paused = true)]
async fn restart_of_a_stopped_service_starts_its_stopped_dependencies() {
    let rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    for name in ["web", "api", "db"] {
        rig.send(|service| Command::Stop { service }, name).await;
    }
    rig.until("all stopped", |r| {
        ["db", "api", "web"]
            .iter()
            .all(|n| r.state(n) == State::Stopped)
    })
    .await;
    rig.send(|service| Command::Restart { service }, "web")
        .await;
    rig.until("web runs again", |r| r.fake.count("web") == 2)
        .await;
    assert_eq!(rig.fake.spawned(), ["db", "api", "web", "db", "api", "web"]);
}

#[tokio::test(start_paused = true)]
async fn stop_does_not_restart_and_shows_stopped() {
    let rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    rig.send(|service| Command::Stop { service }, "web").await;
    rig.until_state("web", State::Stopped).await;
    assert_eq!(rig.fake.signals("web"), [Signal::SIGTERM]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.fake.count("web"), 1);
    assert!(!rig.view("web").wanted);
}

#[tokio::test(start_paused = true)]
async fn start_while_stopping_starts_again_once_it_has_stopped() {
    let rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    rig.fake.stubborn("web");
    rig.send(|service| Command::Stop { service }, "web").await;
    assert_eq!(rig.state("web"), State::Stopping);
    rig.send(|service| Command::Start { service }, "web").await;
    assert_eq!(rig.fake.count("web"), 1, "not while the old one runs");
    rig.exit("web", Exit::Signal(15)).await;
    rig.until("web runs again", |r| r.fake.count("web") == 2)
        .await;
    assert_eq!(rig.state("web"), State::Running);
}

#[tokio::test(start_paused = true)]
async fn kill_sends_kill_to_the_session_and_does_not_restart() {
    let rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    rig.send(|service| Command::Kill { service }, "web").await;
    rig.until_state("web", State::Stopped).await;
    assert_eq!(rig.fake.signals("web"), [Signal::SIGKILL]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.fake.count("web"), 1);
    assert!(rig.logged("web", "killed (SIGKILL to the process group)"));
}

#[tokio::test(start_paused = true)]
async fn a_process_ignoring_its_stop_signal_gets_kill_after_the_grace() {
    let rig = rig(r#"
[services.api]
run = "api"
stop_signal = "INT"
grace = "3s"
"#);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.fake.stubborn("api");
    rig.send(|service| Command::Stop { service }, "api").await;
    let stopped = tokio::time::Instant::now();
    assert_eq!(rig.fake.signals("api"), [Signal::SIGINT]);
    tokio::time::advance(Duration::from_millis(2900)).await;
    rig.settle().await;
    assert_eq!(rig.state("api"), State::Stopping, "still within the grace");
    rig.until("killed", |r| r.fake.signals("api").len() == 2)
        .await;
    assert_eq!(rig.fake.signals("api"), [Signal::SIGINT, Signal::SIGKILL]);
    assert_eq!(stopped.elapsed().as_secs(), 3);
    rig.until_state("api", State::Stopped).await;
    assert!(rig.logged("api", "still running 3s after the stop signal: sent KILL"));
}

#[tokio::test(start_paused = true)]
async fn a_busy_port_blocks_the_start_until_it_is_free() {
    let rig = rig(r#"
[services.api]
run = "api"
port = 7331
"#);
    rig.fake.hold_port(7331, Some("pid 42 (nc -l 7331)"));
    rig.until("blocked", |r| r.state("api") == State::Blocked)
        .await;
    assert_eq!(
        rig.detail("api"),
        "blocked: port 7331 is in use by pid 42 (nc -l 7331)"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.fake.count("api"), 0);
    rig.fake.hold_port(7331, None);
    let freed = tokio::time::Instant::now();
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    assert!(
        freed.elapsed() <= Duration::from_secs(1),
        "looked again within a second"
    );
    let said = rig.log("api");
    let notes = said.iter().filter(|l| l.contains("not starting")).count();
    assert_eq!(notes, 1, "said once, not every second: {said:?}");
}

#[tokio::test(start_paused = true)]
async fn a_port_still_held_by_its_own_previous_process_is_waited_for_not_blocked() {
    let rig = rig(r#"
[services.api]
run = "api"
port = 7331
grace = "1s"
"#);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    // Its old process's helper is still on its way out when the new one would start.
    rig.fake
        .hold_port_as(7331, Some("pid 42 (api-helper)"), Some("api"));
    rig.handle.send(Command::Restart {
        service: ServiceId(0),
    });
    rig.until("waiting", |r| r.state("api") == State::Pending)
        .await;
    assert_eq!(
        rig.detail("api"),
        "pending: waiting for port 7331 to be released by pid 42 (api-helper)"
    );
    assert!(!rig.log("api").iter().any(|l| l.contains("not starting")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.fake.hold_port(7331, None);
    let freed = tokio::time::Instant::now();
    rig.until("api runs again", |r| {
        r.fake.count("api") == 2 && r.fake.is_running("api")
    })
    .await;
    assert!(freed.elapsed() <= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_its_port_ends_with_the_wait_not_carried_into_the_next_start() {
    let rig = rig(r#"
[services.api]
run = "api"
port = 7331
grace = "1s"
"#);
    rig.fake
        .hold_port_as(7331, Some("pid 42 (api-helper)"), Some("api"));
    let waiting = "pending: waiting for port 7331 to be released by pid 42 (api-helper)";
    rig.until("waiting", |r| r.detail("api") == waiting).await;
    rig.send(|service| Command::Stop { service }, "api").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Started again long after: a new wait, as short as the first, not one 10 s old.
    rig.send(|service| Command::Start { service }, "api").await;
    rig.until("waiting again", |r| r.detail("api") == waiting)
        .await;
    assert!(!rig.log("api").iter().any(|l| l.contains("not starting")));
}

#[tokio::test(start_paused = true)]
async fn a_port_its_own_leftover_never_releases_blocks_after_the_grace() {
    let rig = rig(r#"
[services.api]
run = "api"
port = 7331
grace = "1s"
"#);
    rig.fake
        .hold_port_as(7331, Some("pid 42 (api-helper)"), Some("api"));
    rig.until("blocked", |r| r.state("api") == State::Blocked)
        .await;
    assert_eq!(
        rig.detail("api"),
        "blocked: port 7331 is in use by pid 42 (api-helper)"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_all_goes_dependencies_first_and_does_not_rerun_tasks() {
    let rig = rig(r#"
[services.migrate]
build = "migrate"
[services.db]
run = "db"
[services.db.health]
cmd = "probe"
[services.api]
run = "api"
depends_on = { db = "healthy", migrate = "completed" }
"#);
    rig.until("migrate runs", |r| r.fake.is_running("migrate"))
        .await;
    rig.exit("migrate", CLEAN).await;
    rig.until("db runs", |r| r.fake.is_running("db")).await;
    rig.probe("db", Ok(())).await;
    rig.until("api runs", |r| r.fake.is_running("api")).await;

    rig.apply(Command::RestartAll).await;
    rig.until("db restarted", |r| r.fake.count("db") == 2).await;
    assert_eq!(rig.fake.stopped_services(), ["db"], "api waits for db");
    assert_eq!(rig.fake.count("api"), 1);
    // api restarts once db is healthy again, not before.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.fake.stopped_services(), ["db"]);
    rig.probe("db", Ok(())).await;
    rig.until("api restarted", |r| r.fake.count("api") == 2)
        .await;
    assert_eq!(rig.fake.stopped_services(), ["db", "api"]);
    assert_eq!(rig.fake.count("migrate"), 1, "the task is not run again");
}

#[tokio::test(start_paused = true)]
async fn only_the_asked_services_and_their_dependencies_start() {
    let rig = rig_with(
        &format!("{CHAIN}\n[services.extra]\nrun = \"extra\"\n"),
        &["api"],
        false,
    );
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.fake.spawned(), ["db", "api"]);
    assert_eq!(rig.state("web"), State::Stopped);
    assert!(!rig.view("extra").wanted);
}

#[tokio::test(start_paused = true)]
async fn an_engine_that_exits_when_settled_ends_and_names_the_failures() {
    let mut rig = rig_with(
        r#"
[services.ok]
build = "ok"
[services.bad]
build = "bad"
"#,
        &[],
        true,
    );
    rig.until("both build", |r| {
        r.fake.is_running("bad") && r.fake.is_running("ok")
    })
    .await;
    rig.exit("ok", CLEAN).await;
    rig.exit("bad", Exit::Code(2)).await;
    let outcome = rig.ended().await;
    let failures: Vec<String> = outcome
        .failures
        .iter()
        .map(|(n, s)| format!("{n}: {s}"))
        .collect();
    assert_eq!(failures, ["bad: failed (code 2)"]);
}

#[tokio::test(start_paused = true)]
async fn input_goes_to_the_terminal_of_the_running_process() {
    let rig = rig(CHAIN);
    rig.until("db runs", |r| r.fake.is_running("db")).await;
    rig.apply(Command::Input {
        service: rig.id("db"),
        bytes: b"help\r".to_vec(),
    })
    .await;
    assert_eq!(rig.fake.input(), [("db".to_string(), b"help\r".to_vec())]);
}

#[tokio::test(start_paused = true)]
async fn force_shutdown_kills_everything_at_once_and_ends_the_engine() {
    let mut rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    for cmd in ["db", "api", "web"] {
        rig.fake.stubborn(cmd);
    }
    rig.apply(Command::ForceShutdown).await;
    rig.ended().await;
    for cmd in ["db", "api", "web"] {
        assert_eq!(rig.fake.signals(cmd), [Signal::SIGKILL], "{cmd}");
    }
}

#[tokio::test(start_paused = true)]
async fn stop_during_the_backoff_cancels_the_restart() {
    let rig = rig(CHAIN);
    rig.until("all running", |r| r.fake.count("web") == 1).await;
    rig.exit("web", CRASH).await;
    assert_eq!(rig.state("web"), State::Restarting);
    rig.send(|service| Command::Stop { service }, "web").await;
    assert_eq!(rig.state("web"), State::Stopped);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.fake.count("web"), 1);
}
