//! What the engine publishes: nothing while nothing changes (uptimes move by themselves), a
//! countdown every second, and a change event of the right kind for each.

use super::*;

const TWO: &str = "[services.db]\nrun = \"db\"\n[services.api]\nrun = \"api\"\n";

#[tokio::test(start_paused = true)]
async fn a_quiet_stack_publishes_nothing_while_its_uptimes_move() {
    let rig = rig(TWO);
    rig.until("both running", |r| {
        r.state("db") == State::Running && r.state("api") == State::Running
    })
    .await;
    let mut events = rig.handle.events();
    let mut views = rig.handle.views();
    let before = views.borrow_and_update().clone();
    let up_before = rig.view("api").uptime_secs().unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    rig.settle().await;
    assert_eq!(*views.borrow(), before);
    assert!(!views.has_changed().unwrap());
    let event = events.try_recv();
    assert!(event.is_err(), "{event:?}");
    // Yet the views say how long each has run.
    let up = rig.view("api").uptime_secs().unwrap() - up_before;
    assert!((120..=121).contains(&up), "{up}");
}

#[tokio::test(start_paused = true)]
async fn a_countdown_is_published_every_second_as_an_update() {
    let rig = rig(TWO);
    rig.until("api runs", |r| r.fake.is_running("api")).await;
    rig.exit("api", CRASH).await;
    rig.until("api crashed once", |r| {
        r.fake.count("api") == 2 && r.fake.is_running("api")
    })
    .await;
    let mut events = rig.handle.events();
    rig.exit("api", CRASH).await;
    assert_eq!(rig.detail("api"), "restarting in 2s (code 1)");
    let first = events.recv().await.unwrap();
    assert!(
        first.state && first.view.name == "api",
        "the crash is a change of state"
    );
    tokio::time::sleep(Duration::from_millis(1001)).await;
    rig.settle().await;
    assert_eq!(rig.detail("api"), "restarting in 1s (code 1)");
    let api: Vec<Change> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|c| c.view.name == "api")
        .collect();
    assert_eq!(api.len(), 1, "{api:#?}");
    assert!(!api[0].state, "a countdown is an update");
    assert_eq!(api[0].view.detail, "restarting in 1s (code 1)");
}
