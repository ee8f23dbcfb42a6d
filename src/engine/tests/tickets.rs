//! Completion tickets: each resolves when its command took effect, or fails saying why, judged
//! by the engine itself (which process a service has, whether its build failed).

use super::*;
use crate::engine::{Failure, FailureKind};

const PROBED: &str = r#"
[services.api]
build = "make api"
run = "api"
[services.api.health]
cmd = "probe"
[services.web]
run = "web"
"#;

/// `api` built, running and healthy; `web` running.
async fn up() -> Rig {
    let rig = rig(PROBED);
    rig.until("building", |r| r.fake.is_running("make api"))
        .await;
    rig.exit("make api", CLEAN).await;
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.probe("api", Ok(())).await;
    rig.until_state("web", State::Running).await;
    rig
}

async fn outcome(ticket: JoinHandle<Option<TicketOutcome>>) -> TicketOutcome {
    ticket.await.expect("the ticket's task").expect("resolved")
}

fn failure(outcome: TicketOutcome) -> Failure {
    match outcome {
        TicketOutcome::Failed(f) => f,
        done => panic!("not a failure: {done:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_is_done_once_its_new_process_is_healthy() {
    let rig = up().await;
    let old = rig.view("api").pid;
    let ticket = rig.ticket(Command::Restart {
        service: rig.id("api"),
    });
    // The fake's process exits at its stop signal.
    rig.until("api probed again", |r| {
        r.fake.count("api") == 2 && r.fake.probe_runs("api")
    })
    .await;
    assert!(!ticket.is_finished(), "running, not yet healthy");
    rig.probe("api", Ok(())).await;
    let TicketOutcome::Done(views) = outcome(ticket).await else {
        panic!("not done")
    };
    assert_eq!(views.len(), 1);
    assert!(views[0].ready);
    assert_ne!(views[0].pid, old, "the new process");
}

#[tokio::test(start_paused = true)]
async fn a_failed_rebuild_fails_with_that_build_s_lines() {
    let rig = up().await;
    let ticket = rig.ticket(Command::Rebuild {
        service: rig.id("api"),
    });
    rig.until("rebuilding", |r| r.fake.count("make api") == 2)
        .await;
    rig.fake
        .say("make api", "error[E0425]: cannot find value `x`");
    rig.exit("make api", Exit::Code(101)).await;
    let failed = failure(outcome(ticket).await);
    assert_eq!(failed.name, "api");
    assert_eq!(
        failed.why,
        "build failed; the previous process keeps running"
    );
    assert!(matches!(failed.kind, FailureKind::Update { .. }));
    // The first build's lines were logged before the command: only this one's are shown.
    let lines = failed.lines(&rig.logs, 30);
    assert_eq!(lines, ["error[E0425]: cannot find value `x`"]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_is_done_once_the_process_has_exited() {
    let rig = up().await;
    rig.fake.stubborn("web");
    let ticket = rig.ticket(Command::Stop {
        service: rig.id("web"),
    });
    rig.settle().await;
    assert!(!ticket.is_finished(), "web ignores its stop signal");
    rig.exit("web", Exit::Signal(9)).await;
    let TicketOutcome::Done(views) = outcome(ticket).await else {
        panic!("not done")
    };
    assert_eq!(views[0].state, State::Stopped);
    assert_eq!(views[0].pid, None);
}

#[tokio::test(start_paused = true)]
async fn restart_all_is_done_once_every_service_is_renewed_and_ready() {
    let rig = up().await;
    let ticket = rig.ticket(Command::RestartAll);
    rig.until("both again", |r| {
        r.fake.count("web") == 2 && r.fake.count("api") == 2 && r.fake.probe_runs("api")
    })
    .await;
    assert!(!ticket.is_finished(), "api is not healthy yet");
    rig.probe("api", Ok(())).await;
    let TicketOutcome::Done(views) = outcome(ticket).await else {
        panic!("not done")
    };
    assert_eq!(views.len(), 2);
    assert!(views.iter().all(|v| v.ready));
}

#[tokio::test(start_paused = true)]
async fn waiting_for_the_stack_is_done_when_ready_and_fails_on_a_crash_or_a_stop() {
    let rig = rig(r#"
[services.api]
run = "api"
restart = "no"
[services.web]
run = "web"
"#);
    let all = rig.ready(&[]);
    rig.until("both run", |r| {
        r.fake.count("api") == 1 && r.fake.count("web") == 1
    })
    .await;
    let TicketOutcome::Done(views) = outcome(all).await else {
        panic!("not done")
    };
    assert_eq!(views.len(), 2);

    // Only `web`: a crash of `api` is not its business.
    let web = rig.ready(&["web"]);
    assert!(matches!(outcome(web).await, TicketOutcome::Done(_)));

    rig.fake.say("api", "panic: no config");
    rig.exit("api", CRASH).await;
    let failed = failure(outcome(rig.ready(&[])).await);
    assert_eq!(
        (failed.name.as_str(), failed.kind),
        ("api", FailureKind::Failed)
    );
    assert!(
        failed
            .lines(&rig.logs, 30)
            .iter()
            .any(|l| l == "panic: no config")
    );

    // Asked for, but not meant to be up.
    rig.send(|service| Command::Stop { service }, "web").await;
    let failed = failure(outcome(rig.ready(&["web"])).await);
    assert_eq!(
        (failed.name.as_str(), failed.kind),
        ("web", FailureKind::Unwanted)
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_service_fails_when_it_is_stopped_meanwhile() {
    let rig = up().await;
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    let waiting = rig.ready(&["api"]);
    rig.until("api again", |r| r.fake.count("api") == 2).await;
    assert!(!waiting.is_finished(), "not healthy yet");
    rig.send(|service| Command::Stop { service }, "api").await;
    let failed = failure(outcome(waiting).await);
    assert_eq!(
        (failed.name.as_str(), failed.kind),
        ("api", FailureKind::Unwanted)
    );
}

#[tokio::test(start_paused = true)]
async fn a_ticket_nobody_waits_for_is_dropped_and_the_engine_s_end_answers_the_rest() {
    let mut rig = up().await;
    let dropped = rig.ticket(Command::Restart {
        service: rig.id("api"),
    });
    dropped.abort();
    let pending = rig.ticket(Command::Restart {
        service: rig.id("web"),
    });
    rig.apply(Command::ForceShutdown).await;
    rig.ended().await;
    assert_eq!(pending.await.expect("the ticket's task"), None);
}
