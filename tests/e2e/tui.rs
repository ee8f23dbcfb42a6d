//! The real dashboard in a real terminal: tmux runs `devstack` on the demo stack, and the test
//! types keys and reads the screen.

use crate::common::Stack;
use crate::common::tmux::{Tmux, pid_of};

#[test]
fn the_dashboard_runs_the_demo_stack_restarts_searches_and_quits_cleanly() {
    let copy = crate::common::Demo::new();
    let demo = &copy.stack;
    let tmux = Tmux::start(demo.path(), &format!("{} ; sleep 30", crate::common::BIN));
    let screen = tmux.wait(180, "every service ready", |s| s.contains("5/5 ready"));
    for service in ["users", "orders", "gateway", "worker"] {
        assert!(
            pid_of(&screen, service).is_some(),
            "{service} not running:\n{screen}"
        );
    }
    let old = pid_of(&screen, "users").unwrap();

    // migrate is selected first; users is the next row.
    tmux.keys(&["j", "r"]);
    let screen = tmux.wait(30, "users restarted with a new pid", |s| {
        pid_of(s, "users").is_some_and(|p| p != old) && s.contains("5/5 ready")
    });
    assert!(screen.contains("logs: users"), "{screen}");

    // Search for devstack's own words (the demo's may have been edited).
    tmux.keys(&["/", "s", "p", "a", "w", "n", "e", "d", "Enter"]);
    let screen = tmux.wait(10, "the search applied", |s| s.contains("search: spawned"));
    assert!(screen.contains("spawned pid"), "{screen}");
    assert!(!screen.contains("no older match"), "{screen}");

    tmux.keys(&["q"]);
    tmux.wait(10, "the quit question", |s| s.contains("and quit?"));
    tmux.keys(&["y"]);
    // devstack exits and the pane falls back to `sleep`; the screen is the shell's again.
    tmux.wait(30, "devstack to exit", |s| {
        !s.contains("devstack") || !s.contains("ready")
    });
    assert!(demo.leftovers().is_empty(), "{:?}", demo.leftovers());
    assert!(tmux.alive());
}

#[test]
fn typing_into_a_service_reaches_its_terminal_and_ctrl_a_leaves() {
    let stack = Stack::new(
        r#"
        [services.repl]
        run = "echo ready; while read line; do echo got:$line; done"
        "#,
    );
    let tmux = Tmux::start(stack.path(), &format!("{} ; sleep 30", crate::common::BIN));
    tmux.wait(20, "the service to start", |s| {
        s.contains("1/1 ready") && s.contains("ready")
    });
    tmux.keys(&["i"]);
    tmux.wait(10, "typing mode", |s| {
        s.contains("typing into its terminal")
    });
    tmux.keys(&["h", "i", "Enter"]);
    tmux.wait(10, "the service's answer", |s| s.contains("got:hi"));
    tmux.keys(&["q"]);
    // `q` went to the service, not to the dashboard.
    let screen = tmux.screen();
    assert!(!screen.contains("and quit?"), "{screen}");
    tmux.keys(&["C-a"]);
    tmux.wait(10, "back to the log", |s| {
        s.contains("logs: repl") && s.contains("got:hi")
    });
    tmux.keys(&["q", "y"]);
    tmux.wait(20, "devstack to exit", |s| !s.contains("logs: repl"));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

/// The dashboard follows the terminal's size: smaller, then larger again, every pane is drawn
/// to the new edges and the footer sits on the last row.
#[test]
fn the_dashboard_follows_a_resized_terminal() {
    let stack = Stack::new(
        r#"
        [services.repl]
        run = "echo ready; sleep 300"
        "#,
    );
    let tmux = Tmux::start(stack.path(), &format!("{} ; sleep 30", crate::common::BIN));
    tmux.wait(20, "the service to start", |s| s.contains("1/1 ready"));
    // Row 2 is the service list's top border: its right corner is the last column.
    let fits = |s: &str, cols: usize, rows: usize| {
        let lines: Vec<&str> = s.lines().collect();
        lines.len() == rows
            && lines[1].chars().count() == cols
            && lines[1].ends_with('┓')
            && lines[rows - 1].contains("? help")
    };
    for (cols, rows) in [(100, 30), (150, 42)] {
        tmux.cmd(&[
            "resize-window",
            "-t",
            "t",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ])
        .status()
        .unwrap();
        tmux.wait(10, &format!("the dashboard drawn at {cols}x{rows}"), |s| {
            fits(s, cols, rows)
        });
    }
    tmux.keys(&["q", "y"]);
    tmux.wait(20, "devstack to exit", |s| !s.contains("1/1 ready"));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}
