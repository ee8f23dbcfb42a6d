//! The restart policy: backoff and its reset, crash loops, programs that can't start, `command
//! not found`, and the `restart` setting.

use super::*;

const API: &str = "[services.api]\nrun = \"api\"\n";

/// Crash `cmd` right after each start, `n` times.
async fn crash_each_start(rig: &Rig, cmd: &str, n: usize) {
    for k in 1..=n {
        rig.until(&format!("start #{k}"), |r| {
            r.fake.count(cmd) == k && r.fake.is_running(cmd)
        })
        .await;
        rig.exit(cmd, CRASH).await;
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_from_one_second_up_to_thirty() {
    let rig = rig(API);
    crash_each_start(&rig, "api", 8).await;
    rig.until("9th start", |r| r.fake.count("api") == 9).await;
    let secs: Vec<u128> = gaps(&rig, "api")
        .iter()
        .map(|ms| (ms + 50) / 1000)
        .collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(rig.view("api").restarts, 8);
}

#[tokio::test(start_paused = true)]
async fn restarting_says_when_and_why() {
    let rig = rig(API);
    crash_each_start(&rig, "api", 2).await;
    assert_eq!(rig.state("api"), State::Restarting);
    assert_eq!(rig.detail("api"), "restarting in 2s (code 1)");
    assert!(rig.logged("api", "exited with code 1; restarting in 2s (restart #2)"));
}

#[tokio::test(start_paused = true)]
async fn backoff_starts_over_after_ten_seconds_of_stable_running() {
    let rig = rig(API);
    crash_each_start(&rig, "api", 3).await;
    rig.until("4th start", |r| r.fake.count("api") == 4).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    rig.exit("api", CRASH).await;
    rig.until("5th start", |r| r.fake.count("api") == 5).await;
    // A crash after a short run again: the backoff grows from 1s again.
    rig.exit("api", CRASH).await;
    rig.until("6th start", |r| r.fake.count("api") == 6).await;
    let secs: Vec<u128> = gaps(&rig, "api").iter().map(|ms| ms / 1000).collect();
    assert_eq!(secs, [1, 2, 4, 11, 2]);
}

#[tokio::test(start_paused = true)]
async fn three_short_runs_in_a_row_are_a_crash_loop() {
    let rig = rig(API);
    crash_each_start(&rig, "api", 2).await;
    assert!(!rig.view("api").crash_loop);
    crash_each_start_from(&rig, 3).await;
    let view = rig.view("api");
    assert!(view.crash_loop, "{view:?}");
    assert_eq!(
        super::super::ready::verdict(rig.handle.views().borrow().as_slice()),
        super::super::ready::Verdict::Failed {
            service: "api".into(),
            why: "is crash-looping (3 restarts): restarting in 4s (code 1)".into()
        }
    );
}

async fn crash_each_start_from(rig: &Rig, k: usize) {
    rig.until("next start", |r| r.fake.count("api") == k).await;
    rig.exit("api", CRASH).await;
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_crash_loops_says_so_to_its_waiting_dependents() {
    let rig = rig(r#"
[services.db]
run = "db"
[services.api]
run = "api"
depends_on = { db = "healthy" }
[services.db.health]
cmd = "probe"
"#);
    crash_each_start(&rig, "db", 3).await;
    assert_eq!(
        rig.detail("api"),
        "pending: waiting for `db` to be healthy (it is crash-looping, restarting in 4s (code 1))"
    );
}

#[tokio::test(start_paused = true)]
async fn on_failure_does_not_restart_a_clean_exit() {
    let rig = rig(API);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.exit("api", CLEAN).await;
    assert_eq!(rig.state("api"), State::Exited);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.fake.count("api"), 1);
}

#[tokio::test(start_paused = true)]
async fn always_restarts_a_clean_exit() {
    let rig = rig("[services.api]\nrun = \"api\"\nrestart = \"always\"\n");
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.exit("api", CLEAN).await;
    assert_eq!(rig.state("api"), State::Restarting);
    rig.until("api again", |r| r.fake.count("api") == 2).await;
}

#[tokio::test(start_paused = true)]
async fn restart_no_leaves_a_crash_crashed() {
    let rig = rig("[services.api]\nrun = \"api\"\nrestart = \"no\"\n");
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.exit("api", Exit::Signal(11)).await;
    assert_eq!(rig.state("api"), State::Crashed);
    assert_eq!(rig.detail("api"), "crashed (signal SEGV)");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.fake.count("api"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_program_that_cannot_start_crashes_and_is_retried_with_backoff() {
    let rig = rig("[services.api]\nrun = [\"./bin/api\"]\n");
    rig.fake.cannot_start("./bin/api", true);
    rig.until("restarting", |r| r.view("api").restarts == 3)
        .await;
    assert_eq!(rig.fake.count("./bin/api"), 0);
    assert!(rig.logged("api", "cannot start `./bin/api`"));
    assert!(rig.logged("api", "could not start; restarting in 1s (restart #1)"));
    assert!(rig.logged("api", "could not start; restarting in 4s (restart #3)"));
    rig.fake.cannot_start("./bin/api", false);
    rig.until("api runs", |r| r.fake.is_running("./bin/api"))
        .await;
    assert_eq!(rig.state("api"), State::Running);
}

#[tokio::test(start_paused = true)]
async fn exit_127_from_sh_three_times_in_a_row_stops_retrying() {
    let rig = rig("[services.api]\nrun = \"apii --port 1\"\n");
    crash_127(&rig, "apii --port 1", 3).await;
    assert_eq!(rig.state("api"), State::Crashed);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(rig.fake.count("apii --port 1"), 3);
    assert!(rig.logged(
        "api",
        "command not found: `apii --port 1` exited with code 127 3 times in a row; not restarting it"
    ));
}

#[tokio::test(start_paused = true)]
async fn exit_127_from_an_exec_command_keeps_retrying() {
    let rig = rig("[services.api]\nrun = [\"api\"]\n");
    crash_127(&rig, "api", 4).await;
    assert_eq!(rig.state("api"), State::Restarting);
}

async fn crash_127(rig: &Rig, cmd: &str, n: usize) {
    for k in 1..=n {
        rig.until("a start", |r| {
            r.fake.count(cmd) == k && r.fake.is_running(cmd)
        })
        .await;
        rig.exit(cmd, Exit::Code(127)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_process_is_not_a_crash() {
    let rig = rig(API);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.send(|service| Command::Restart { service }, "api")
        .await;
    rig.until("api again", |r| r.fake.count("api") == 2).await;
    let view = rig.view("api");
    assert_eq!(
        (view.state, view.restarts, view.spawns),
        (State::Running, 0, 2)
    );
    let gaps = gaps(&rig, "api");
    assert_eq!(gaps, [0], "a restart by hand waits for no backoff");
}
