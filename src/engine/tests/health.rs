//! Health: `starting` until the first healthy check, the start period, retries, liveness
//! restarts, the log probe, stale results.

use super::*;

const PROBED: &str = r#"
[services.api]
run = "api"
[services.api.health]
cmd = "probe"
retries = 2
start_period = "10s"
"#;

#[tokio::test(start_paused = true)]
async fn starting_until_the_first_healthy_check_and_never_unhealthy_within_the_start_period() {
    let rig = rig(PROBED);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    assert!(rig.fake.probes_started("api"));
    for _ in 0..9 {
        rig.probe("api", Err("connection refused")).await;
        let view = rig.view("api");
        assert_eq!(view.state, State::Starting);
        assert_eq!(view.health, Some(HealthState::Unknown));
        assert_eq!(view.health_error.as_deref(), Some("connection refused"));
        assert_eq!(
            view.detail,
            "starting (waiting for its first healthy check)"
        );
        assert!(!view.ready);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    rig.probe("api", Ok(())).await;
    let view = rig.view("api");
    assert_eq!(
        (view.state, view.health, view.ready),
        (State::Running, Some(HealthState::Healthy), true)
    );
    assert!(rig.logged("api", "health: healthy after 9s"));
}

#[tokio::test(start_paused = true)]
async fn failures_after_the_start_period_make_it_unhealthy_after_the_retries() {
    let rig = rig(PROBED);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    rig.probe("api", Err("HTTP 503")).await;
    assert_eq!(
        rig.view("api").health,
        Some(HealthState::Unknown),
        "one failure of two"
    );
    rig.probe("api", Err("HTTP 503")).await;
    let view = rig.view("api");
    assert_eq!(
        (view.state, view.health),
        (State::Running, Some(HealthState::Unhealthy))
    );
    assert!(rig.logged("api", "health: unhealthy after 2 failed checks: HTTP 503"));
    // Never healthy: not a liveness restart.
    assert!(rig.fake.signals("api").is_empty());
}

#[tokio::test(start_paused = true)]
async fn healthy_then_unhealthy_restarts_with_backoff() {
    let rig = rig(PROBED);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.probe("api", Ok(())).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    rig.probe("api", Err("timeout")).await;
    assert!(rig.fake.signals("api").is_empty(), "one failure of two");
    rig.probe("api", Err("timeout")).await;
    assert_eq!(rig.fake.signals("api"), [nix::sys::signal::Signal::SIGTERM]);
    assert!(rig.logged(
        "api",
        "restarting: it was healthy and stopped answering its probe"
    ));
    assert_eq!(rig.state("api"), State::Restarting);
    assert_eq!(rig.view("api").restarts, 1);
    rig.until("api again", |r| r.fake.count("api") == 2).await;
    let gap = gaps(&rig, "api")[0];
    // 3s of healthy running, then a 1s backoff.
    assert!(
        (4000..4100).contains(&gap),
        "restarted after a 1s backoff: {gap}ms"
    );
    assert_eq!(
        rig.view("api").health,
        Some(HealthState::Unknown),
        "a new process starts unknown"
    );
}

#[tokio::test(start_paused = true)]
async fn unhealthy_with_restart_no_keeps_running() {
    let rig = rig(&PROBED.replace("run = \"api\"", "run = \"api\"\nrestart = \"no\""));
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.probe("api", Ok(())).await;
    rig.probe("api", Err("down")).await;
    rig.probe("api", Err("down")).await;
    assert_eq!(rig.view("api").health, Some(HealthState::Unhealthy));
    assert!(rig.fake.signals("api").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_log_probe_is_healthy_once_the_line_appears() {
    let rig = rig(r#"
[services.api]
run = "api"
[services.api.health]
log = "listening on \\d+"
"#);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    assert!(!rig.fake.probes_started("api"), "nothing polls a log probe");
    rig.fake.say("api", "starting up");
    rig.settle().await;
    assert_eq!(rig.state("api"), State::Starting);
    rig.fake.say("api", "listening on 8080");
    rig.settle().await;
    assert_eq!(rig.view("api").health, Some(HealthState::Healthy));
    assert!(rig.logged("api", "listening on 8080"));
}

#[tokio::test(start_paused = true)]
async fn a_result_for_an_older_process_is_ignored() {
    let rig = rig(PROBED);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    // Keep the first probe's reporter: it outlives its process.
    rig.fake.stubborn("api");
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    assert_eq!(rig.state("api"), State::Stopping);
    rig.probe("api", Ok(())).await;
    assert_ne!(
        rig.view("api").health,
        Some(HealthState::Healthy),
        "a stopping process is not probed"
    );
    rig.exit("api", Exit::Signal(15)).await;
    rig.until("api again", |r| r.fake.count("api") == 2).await;
    assert_eq!(rig.view("api").health, Some(HealthState::Unknown));
}
