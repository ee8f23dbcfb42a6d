//! Builds and rebuilds: queueing, a failed rebuild, dependents that restart, the self-trigger
//! guard, tasks, and a shutdown during a build.

use super::*;

const BUILT: &str = r#"
[services.api]
build = "make api"
run = "api"
watch = ["src/**"]
[services.web]
run = "web"
depends_on = { api = { condition = "started", restart = true } }
[services.worker]
run = "worker"
depends_on = { api = "started" }
"#;

/// Everything of `BUILT` running after the first build.
async fn up() -> Rig {
    let rig = rig(BUILT);
    rig.until("building", |r| r.fake.is_running("make api"))
        .await;
    rig.exit("make api", CLEAN).await;
    rig.until("all run", |r| {
        ["api", "web", "worker"]
            .iter()
            .all(|c| r.fake.is_running(c))
    })
    .await;
    rig
}

fn changed(rig: &Rig, path: &str) -> Command {
    Command::FilesChanged {
        service: rig.id("api"),
        paths: vec![path.to_string()],
        at: tokio::time::Instant::now().into_std(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_builds_before_it_runs() {
    let rig = rig(BUILT);
    rig.until("building", |r| r.fake.is_running("make api"))
        .await;
    assert_eq!(rig.state("api"), State::Building);
    assert!(!rig.fake.is_running("api"));
    assert_eq!(rig.state("web"), State::Pending);
    rig.exit("make api", CLEAN).await;
    rig.until("api runs", |r| r.fake.is_running("api")).await;
}

#[tokio::test(start_paused = true)]
async fn changes_during_a_build_queue_exactly_one_more() {
    let rig = up().await;
    rig.send(|service| Command::Rebuild { service }, "api")
        .await;
    assert!(rig.fake.is_running("make api"));
    for file in ["src/a.rs", "src/b.rs", "src/c.rs"] {
        rig.apply(changed(&rig, file)).await;
    }
    rig.exit("make api", CLEAN).await;
    rig.until("second build", |r| r.fake.count("make api") == 3)
        .await;
    assert!(rig.logged("api", "building again for the changes made during it"));
    rig.exit("make api", CLEAN).await;
    rig.until("api restarted", |r| r.fake.count("api") == 2)
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.fake.count("make api"), 3, "exactly one more");
}

#[tokio::test(start_paused = true)]
async fn a_failed_rebuild_keeps_the_old_process_running() {
    let rig = up().await;
    let pid = rig.view("api").pid;
    rig.send(|service| Command::Rebuild { service }, "api")
        .await;
    assert_eq!(
        rig.state("api"),
        State::Running,
        "the old process runs during the build"
    );
    rig.exit("make api", Exit::Code(2)).await;
    let view = rig.view("api");
    assert_eq!(view.state, State::Running);
    assert!(view.build_failed);
    assert_eq!(view.detail, "running · build failed");
    assert_eq!(view.pid, pid);
    assert!(rig.fake.signals("api").is_empty());
    assert!(rig.logged(
        "api",
        "build failed (code 2); the previous process keeps running"
    ));
}

#[tokio::test(start_paused = true)]
async fn a_rebuild_restarts_the_run_process_and_the_dependents_that_ask_for_it() {
    let rig = up().await;
    rig.send(|service| Command::Rebuild { service }, "api")
        .await;
    rig.exit("make api", CLEAN).await;
    rig.until("api and web restarted", |r| {
        r.fake.count("api") == 2 && r.fake.count("web") == 2
    })
    .await;
    assert_eq!(rig.fake.count("worker"), 1, "worker did not ask to restart");
    assert!(rig.logged("web", "restarting: dependency `api` was rebuilt"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_build_is_build_failed_and_blocks_dependents() {
    let rig = rig(BUILT);
    rig.until("building", |r| r.fake.is_running("make api"))
        .await;
    rig.exit("make api", Exit::Code(1)).await;
    rig.until("web blocked", |r| r.state("web") == State::Blocked)
        .await;
    assert_eq!(rig.state("api"), State::BuildFailed);
    assert_eq!(
        rig.detail("web"),
        "blocked: dependency `api` is build-failed (code 1)"
    );
    // Fixing the build unblocks them.
    rig.send(|service| Command::Rebuild { service }, "api")
        .await;
    rig.exit("make api", CLEAN).await;
    rig.until("web runs", |r| r.fake.is_running("web")).await;
}

#[tokio::test(start_paused = true)]
async fn changes_during_three_builds_in_a_row_turn_rebuild_on_change_off() {
    let rig = up().await;
    // Well after the first build: a change of the user's.
    tokio::time::sleep(Duration::from_secs(5)).await;
    rig.apply(changed(&rig, "src/main.rs")).await;
    for _ in 0..3 {
        rig.until("a build", |r| r.fake.is_running("make api"))
            .await;
        // The build writes into its own watched files: each one asks for the next.
        rig.apply(changed(&rig, "src/gen.rs")).await;
        rig.exit("make api", CLEAN).await;
    }
    assert!(
        !rig.fake.is_running("make api"),
        "the loop is broken: {:#?}",
        rig.log("api")
    );
    assert_eq!(rig.view("api").auto_rebuild, Some(false));
    assert!(rig.logged("api", "the build seems to write into its own watched files"));
    let builds = rig.fake.count("make api");
    rig.apply(changed(&rig, "src/gen.rs")).await;
    assert_eq!(
        rig.fake.count("make api"),
        builds,
        "no build on change any more"
    );
    assert!(rig.logged(
        "api",
        "src/gen.rs changed (rebuild on change is off: rebuild by hand)"
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failed_task_is_failed_and_not_run_again() {
    let rig = rig("[services.seed]\nbuild = \"seed\"\n");
    rig.until("seeding", |r| r.fake.is_running("seed")).await;
    rig.exit("seed", Exit::Code(1)).await;
    assert_eq!(rig.state("seed"), State::Failed);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.fake.count("seed"), 1);
    // Restarting a task runs it again.
    rig.send(|service| Command::Restart { service }, "seed")
        .await;
    rig.until("seeding again", |r| r.fake.count("seed") == 2)
        .await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_building_stops_the_build_and_runs_nothing() {
    let mut rig = rig(BUILT);
    rig.until("building", |r| r.fake.is_running("make api"))
        .await;
    rig.apply(Command::Shutdown).await;
    let outcome = rig.ended().await;
    assert_eq!(rig.fake.stopped_services(), ["api"]);
    assert_eq!(rig.fake.spawned(), ["make api"]);
    assert!(outcome.failures.is_empty());
    assert_eq!(rig.state("api"), State::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_rebuild_of_a_service_without_a_build_is_a_restart() {
    let rig = up().await;
    rig.send(|service| Command::Rebuild { service }, "worker")
        .await;
    rig.until("worker restarted", |r| r.fake.count("worker") == 2)
        .await;
}
