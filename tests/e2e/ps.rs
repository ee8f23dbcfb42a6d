//! `devstack ps` says what the dashboard says: the same columns in the same order, and a failed
//! rebuild on the service's own row.

use crate::common::Stack;
use nix::sys::signal::Signal;

#[test]
fn ps_shows_a_failed_rebuild_on_the_running_service_s_row() {
    let mut stack = Stack::new(
        r#"
        [services.app]
        build = "test ! -f broken || { echo error: broken; exit 1; }"
        run = "echo app=$$; sleep 300"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_socket(20);
    let pid = stack.wait_number("app=", 20);

    stack.touch("broken", true);
    let rebuild = stack.command(&["rebuild", "app"]).output().unwrap();
    assert_eq!(rebuild.status.code(), Some(1));
    assert!(crate::common::alive(pid), "the old process keeps running");

    let ps = stack.command(&["ps"]).output().unwrap();
    let out = String::from_utf8_lossy(&ps.stdout);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "STATE", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS"
        ]
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("app "))
        .expect("app row");
    assert!(row.contains("running · build failed"), "{out}");
    assert!(row.contains(&pid.to_string()), "{out}");

    let json = stack.command(&["ps", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["services"][0]["state"], "running");
    assert_eq!(json["services"][0]["build_failed"], true);
    assert_eq!(json["services"][0]["detail"], "running · build failed");
    // Every field it prints is in the README's table of stable fields.
    let readme = include_str!("../../README.md");
    for field in json["services"][0].as_object().unwrap().keys() {
        assert!(
            readme.contains(&format!("| `{field}` |")),
            "`{field}` of ps --json is not in the README's table"
        );
    }

    // A good build clears it.
    stack.touch("broken", false);
    let rebuild = stack.command(&["rebuild", "app"]).output().unwrap();
    assert_eq!(rebuild.status.code(), Some(0));
    let ps = stack.command(&["ps"]).output().unwrap();
    let out = String::from_utf8_lossy(&ps.stdout);
    assert!(!out.contains("build failed"), "{out}");

    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}

#[test]
fn a_long_state_is_cut_in_the_table_and_said_whole_below_it() {
    let mut stack = Stack::new(
        r#"
        [services.a-dependency-with-a-rather-long-name]
        build = "exit 1"
        [services.web]
        run = "sleep 300"
        depends_on = ["a-dependency-with-a-rather-long-name"]
        [services.keep]
        run = "echo keep=$$; sleep 300"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_socket(20);
    stack.wait_for("blocked: dependency", 20);
    let ps = stack.command(&["ps"]).output().unwrap();
    let out = String::from_utf8_lossy(&ps.stdout);
    let whole = "blocked: dependency `a-dependency-with-a-rather-long-name` is failed (code 1)";
    let row = out
        .lines()
        .find(|l| l.starts_with("web "))
        .expect("web row");
    assert!(row.contains('…') && !row.contains(whole), "{out}");
    assert!(out.lines().any(|l| l == format!("web: {whole}")), "{out}");
    // No line is much wider than the table's columns need.
    let widest = out
        .lines()
        .take(4)
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(widest < 125, "{out}");
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}
