//! Blue-green rollouts: the new process starts beside the old one, serves once ready, and the
//! old one drains then stops; a new process that fails leaves the old one serving;
//! `rollout = "restart"` stops first.

use super::*;
use nix::sys::signal::Signal;

/// A proxied service whose two slots run as `api 41000` and `api 41001`.
const API: &str = "[services.api]\nrun = \"api ${PORT}\"\nport = 8080\n\
                   [services.api.health]\nhttp = \"/\"\n";
const OLD: &str = "api 41000";
const NEW: &str = "api 41001";

/// The rig with `api` up and healthy in its first slot.
async fn serving(toml: &str) -> Rig {
    let rig = rig_proxied(toml);
    rig.until("api runs", |r| r.fake.is_running(OLD)).await;
    rig.probe("api", Ok(())).await;
    rig.until("api is ready", |r| r.view("api").ready).await;
    rig
}

/// Restart `api` from its first slot: its new process starts beside, passes its probe, and
/// serves, the first one draining.
async fn rolled_out(rig: &Rig) {
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("the new one starts", |r| r.fake.is_running(NEW))
        .await;
    rig.probe("api", Ok(())).await;
    rig.until("switched", |r| r.view("api").draining_pid.is_some())
        .await;
}

fn pid_of(rig: &Rig, cmd: &str) -> i32 {
    let spawned = rig.fake.events().into_iter().rev().find_map(|e| match e {
        fake::Event::Spawn { cmd: c, pid, .. } if c == cmd => Some(pid),
        _ => None,
    });
    spawned.unwrap_or_else(|| panic!("{cmd} never spawned"))
}

#[tokio::test(start_paused = true)]
async fn a_restart_starts_the_new_process_beside_and_switches_once_it_is_ready() {
    let rig = serving(API).await;
    let old = pid_of(&rig, OLD);
    let ticket = rig.ticket(Command::Restart {
        service: rig.id("api"),
    });
    rig.until("the new one starts", |r| r.fake.is_running(NEW))
        .await;
    let new = pid_of(&rig, NEW);
    // Both live; the old one serves, untouched, until the new one is ready.
    let v = rig.view("api");
    assert_eq!(
        (v.pid, v.next_pid, v.private_port),
        (Some(old), Some(new), Some(41000))
    );
    assert!(v.ready && rig.fake.signals(OLD).is_empty());
    assert!(
        v.detail.contains(&format!("pid {new} starting beside")),
        "{}",
        v.detail
    );
    rig.probe("api", Ok(())).await;
    rig.until("switched", |r| r.view("api").pid == Some(new))
        .await;
    let v = rig.view("api");
    assert_eq!(
        (v.draining_pid, v.private_port, v.next_pid),
        (Some(old), Some(41001), None)
    );
    assert!(v.ready, "served by a process that passed its probe");
    assert!(rig.fake.signals(OLD).is_empty(), "it drains first");
    assert!(matches!(ticket.await, Ok(Some(TicketOutcome::Done(_)))));
    // Nothing is connected to it any more: it stops.
    assert!(rig.fake.drained(41000));
    rig.until("the old one is stopped", |r| {
        r.fake.signals(OLD) == [Signal::SIGTERM]
    })
    .await;
    // (The fake's processes end on their stop signal.)
    rig.until("it has gone", |r| r.view("api").draining_pid.is_none())
        .await;
    assert!(rig.logged("api", &format!("switched to pid {new}")));
    assert!(rig.logged("api", "drained in"));
    assert!(rig.logged("api", &format!("old pid {old} stopped")));
    // The next one goes back to the first slot.
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("a third process", |r| r.fake.count(OLD) == 2)
        .await;
}

#[tokio::test(start_paused = true)]
async fn an_old_process_still_connected_stops_after_its_drain_time() {
    let rig = serving(API).await;
    rolled_out(&rig).await;
    let switched = tokio::time::Instant::now();
    rig.until("the old one is stopped", |r| {
        !r.fake.signals(OLD).is_empty()
    })
    .await;
    assert!(
        switched.elapsed() >= Duration::from_secs(30),
        "the default drain: 30s"
    );
    assert!(rig.logged("api", "still connected after its drain time (30s)"));
}

#[tokio::test(start_paused = true)]
async fn a_new_process_that_exits_before_it_is_ready_leaves_the_old_one_serving() {
    let rig = serving(API).await;
    let old = pid_of(&rig, OLD);
    let ticket = rig.ticket(Command::Restart {
        service: rig.id("api"),
    });
    rig.until("the new one starts", |r| r.fake.is_running(NEW))
        .await;
    rig.exit(NEW, CRASH).await;
    rig.until("said", |r| r.view("api").rollout_failed.is_some())
        .await;
    let v = rig.view("api");
    assert_eq!(
        (v.pid, v.next_pid, v.state),
        (Some(old), None, State::Running)
    );
    assert!(v.ready && rig.fake.signals(OLD).is_empty());
    assert!(
        v.detail
            .contains("the new process exited (code 1) before it was ready"),
        "{}",
        v.detail
    );
    assert!(rig.logged("api", "keeps serving"));
    assert!(matches!(ticket.await, Ok(Some(TicketOutcome::Failed(_)))));
}

#[tokio::test(start_paused = true)]
async fn a_new_process_not_ready_in_time_is_stopped() {
    let rig = serving(API).await;
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("the new one starts", |r| r.fake.is_running(NEW))
        .await;
    rig.probe("api", Err("refused")).await;
    rig.until("given up on", |r| r.fake.signals(NEW) == [Signal::SIGTERM])
        .await;
    let v = rig.view("api");
    assert_eq!(v.rollout_failed.as_deref(), Some("was not ready after 30s"));
    assert!(rig.fake.signals(OLD).is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_a_probe_the_new_process_serves_once_it_listens() {
    let rig = rig_proxied("[services.api]\nrun = \"api ${PORT}\"\nport = 8080\n");
    rig.until("api runs", |r| r.fake.is_running(OLD)).await;
    assert!(!rig.fake.probes_started("api"));
    // It listens on its port (asked before the rollout).
    rig.fake.hold_port_as(41000, Some("api"), Some("api"));
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("the new one starts", |r| r.fake.is_running(NEW))
        .await;
    // Probed only to see it listen, and no more once it serves.
    rig.probe("api", Ok(())).await;
    rig.until("switched", |r| r.view("api").pid == Some(pid_of(r, NEW)))
        .await;
    assert!(!rig.fake.probe_runs("api"));
    assert_eq!(rig.view("api").health, None);
}

#[tokio::test(start_paused = true)]
async fn a_rebuild_builds_while_the_old_one_serves_then_rolls_out() {
    let toml = API.replace("run = ", "build = \"make\"\nrun = ");
    let rig = rig_proxied(&toml);
    rig.until("built", |r| r.fake.count("make") == 1).await;
    rig.exit("make", CLEAN).await;
    rig.until("api runs", |r| r.fake.is_running(OLD)).await;
    rig.probe("api", Ok(())).await;
    rig.send(|service| Command::Rebuild { service }, "api")
        .await;
    rig.until("building", |r| r.fake.count("make") == 2).await;
    assert!(rig.view("api").ready, "the old one serves while it builds");
    rig.exit("make", CLEAN).await;
    rig.until("the new one starts beside", |r| r.fake.is_running(NEW))
        .await;
    assert!(rig.fake.signals(OLD).is_empty());
    // A change while it starts: it goes, and the build runs again.
    rig.send(|service| Command::Rebuild { service }, "api")
        .await;
    rig.until("it stops", |r| r.fake.signals(NEW) == [Signal::SIGTERM])
        .await;
    rig.until("building again", |r| r.fake.count("make") == 3)
        .await;
}

#[tokio::test(start_paused = true)]
async fn rollout_restart_stops_the_old_process_first() {
    let rig = serving(&API.replace("port = 8080\n", "port = 8080\nrollout = \"restart\"\n")).await;
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("stopped", |r| r.fake.signals(OLD) == [Signal::SIGTERM])
        .await;
    assert_eq!(rig.fake.count(NEW), 0, "nothing starts beside it");
    rig.until("started again", |r| r.fake.count(OLD) == 2).await;
}

#[tokio::test(start_paused = true)]
async fn stopping_the_service_stops_the_new_and_the_draining_process_too() {
    let rig = serving(API).await;
    rolled_out(&rig).await;
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("a third starts", |r| {
        r.fake.count(OLD) == 2 && r.fake.is_running(OLD)
    })
    .await;
    rig.send(|service| Command::Stop { service }, "api").await;
    rig.until("all three stopped", |r| {
        !r.fake.signals(OLD).is_empty() && !r.fake.signals(NEW).is_empty()
    })
    .await;
    rig.until_state("api", State::Stopped).await;
    assert!(
        rig.handle
            .views()
            .borrow()
            .values()
            .all(|v| v.next_pid.is_none())
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollout_waits_for_the_old_process_still_on_its_port() {
    let rig = serving(API).await;
    let first = pid_of(&rig, OLD);
    rolled_out(&rig).await;
    assert_eq!(rig.view("api").draining_pid, Some(first));
    // The next new process takes the first one's port: it starts once that one has drained
    // and gone.
    rig.fake.stubborn(OLD);
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.settle().await;
    assert!(rig.fake.signals(OLD).is_empty(), "it drains first");
    assert!(rig.fake.drained(41000));
    rig.until("the old one is told to go", |r| {
        !r.fake.signals(OLD).is_empty()
    })
    .await;
    assert_eq!(rig.fake.count(OLD), 1, "nothing starts on its port yet");
    rig.exit(OLD, Exit::Signal(15)).await;
    rig.until("the third starts", |r| r.fake.count(OLD) == 2)
        .await;
    let said = format!("the new process starts once pid {first}, on its port, has drained");
    assert!(rig.logged("api", &said));
}

#[tokio::test(start_paused = true)]
async fn a_service_without_a_probe_that_does_not_listen_is_restarted_instead() {
    let rig = rig_proxied("[services.worker]\nrun = \"api ${PORT}\"\nport = 8080\n");
    rig.until("it runs", |r| r.fake.is_running(OLD)).await;
    rig.send(|service| Command::Restart { service }, "worker")
        .await;
    rig.until("stopped", |r| r.fake.signals(OLD) == [Signal::SIGTERM])
        .await;
    rig.until("started again", |r| r.fake.count(OLD) == 2).await;
    assert_eq!(rig.fake.count(NEW), 0, "nothing started beside it");
    assert!(rig.logged("worker", "it does not listen on its PORT 41000"));
}
