//! The dashboard rendered with ratatui's TestBackend: no terminal, no processes.

use devstack::engine::{HealthState, ServiceId, ServiceView, Services, State};
use devstack::logs::{LogHub, LogLine, Stream};
use devstack::ui::action::Action;
use devstack::ui::app::App;
use devstack::ui::draw::draw;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::style::Color;
use std::sync::Arc;
use std::time::SystemTime;

fn view(name: &str, state: &str, detail: &str) -> ServiceView {
    let state: State = state.parse().unwrap();
    let running = state == State::Running;
    ServiceView {
        name: name.into(),
        state,
        detail: detail.into(),
        health: running.then_some(HealthState::Healthy),
        health_error: None,
        ready: running || state == State::Completed,
        wanted: true,
        auto_rebuild: None,
        spawns: 1,
        building: false,
        build_failed: false,
        cpu_percent: running.then_some(0.4),
        mem_bytes: running.then_some(12 << 20),
        crash_loop: false,
        settled: !running,
        pid: running.then_some(4242),
        port: None,
        private_port: None,
        next_pid: None,
        draining_pid: None,
        rollout_failed: None,
        image: None,
        remote: None,
        volumes: Vec::new(),
        restarts: 0,
        since: running.then(|| tokio::time::Instant::now() - std::time::Duration::from_secs(75)),
        log_lost: None,
    }
}

/// The demo stack as it looks once up, with a few log lines per service.
fn demo(dir: &std::path::Path) -> App {
    let names: Services<String> = ["migrate", "users", "orders", "gateway", "worker"]
        .map(String::from)
        .into_iter()
        .collect();
    let hub = Arc::new(LogHub::new(dir, &names, None, 10_000));
    let line = |service, stream, text: &str| LogLine {
        service: ServiceId(service),
        stream,
        time: SystemTime::UNIX_EPOCH,
        text: text.into(),
    };
    hub.push(
        ServiceId(0),
        vec![
            line(0, Stream::System, "build started: cargo build"),
            line(0, Stream::Build, "applied migration 001_create_users"),
        ],
    );
    hub.push(
        ServiceId(1),
        vec![
            line(1, Stream::System, "spawned pid 4242: demo-svc users"),
            line(1, Stream::Out, "listening on 127.0.0.1:7101"),
        ],
    );
    hub.push(
        ServiceId(1),
        vec![
            line(1, Stream::Out, "\x1b[32mGET\x1b[0m /users -> 200"),
            line(1, Stream::Out, "GET /users -> 200"),
        ],
    );
    hub.push(
        ServiceId(2),
        vec![line(2, Stream::Out, "listening on 127.0.0.1:7102")],
    );
    hub.push(
        ServiceId(4),
        vec![line(4, Stream::Out, "polled orders: 87 bytes")],
    );
    let mut app = App::new("shop".into(), names, hub);
    let mut views = vec![
        view("migrate", "completed", "completed"),
        view("users", "running", "running"),
        view("orders", "running", "running"),
        view("gateway", "running", "running"),
        view("worker", "running", "running"),
    ];
    views[1].port = Some(7101);
    views[2].port = Some(7102);
    views[3].port = Some(7100);
    app.views = views.into();
    app.selected = ServiceId(1);
    app
}

fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    app.arrange(Rect::new(0, 0, width, height));
    terminal.draw(|f| draw(f, app)).unwrap();
    terminal
}

#[test]
fn default_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    insta::assert_snapshot!(render(&mut app, 110, 24).backend());
}

#[test]
fn a_crashed_service_shows_in_the_list_and_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.views[ServiceId(2)] = view("orders", "restarting", "restarting in 4s (code 101)");
    app.views[ServiceId(2)].restarts = 3;
    app.views[ServiceId(2)].crash_loop = true;
    app.views[ServiceId(3)] = view("gateway", "crashed", "crashed (code 1)");
    insta::assert_snapshot!(render(&mut app, 110, 24).backend());
}

#[test]
fn a_build_failure_and_a_blocked_dependent() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.views[ServiceId(1)] = view("users", "build-failed", "build-failed (code 101)");
    app.views[ServiceId(2)] = view(
        "orders",
        "blocked",
        "blocked: dependency `users` is build-failed (code 101)",
    );
    insta::assert_snapshot!(render(&mut app, 110, 24).backend());
}

#[test]
fn the_merged_log_prefixes_every_line_with_its_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.update(Action::ToggleAll);
    insta::assert_snapshot!(render(&mut app, 110, 24).backend());
}

#[test]
fn search_highlights_matches() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.update(Action::SearchStart);
    for c in "users".chars() {
        app.update(Action::InputChar(c));
    }
    app.update(Action::InputSubmit);
    let terminal = render(&mut app, 110, 24);
    insta::assert_snapshot!(terminal.backend());
    // The match itself is highlighted, the rest of its line is not.
    let buffer = terminal.backend().buffer();
    let (row, col) = (0..24)
        .find_map(|y| {
            let text: String = (0..110)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            text.find("GET /users")
                .map(|at| (y, text[..at].chars().count() as u16 + 5))
        })
        .expect("a matching line is shown");
    assert_eq!(buffer[(col, row)].bg, Color::Yellow);
    assert_ne!(buffer[(col - 1, row)].bg, Color::Yellow);
    // The current match (the newest, where the search went) has a colour of its own; `n` moves
    // it to the older one.
    let match_colours = |terminal: &Terminal<TestBackend>| -> Vec<Color> {
        let buffer = terminal.backend().buffer();
        (0..24)
            .filter_map(|y| {
                let text: String = (0..110)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect();
                let at = text.find("GET /users")?;
                Some(buffer[(text[..at].chars().count() as u16 + 5, y)].bg)
            })
            .collect()
    };
    assert_eq!(match_colours(&terminal), [Color::Yellow, Color::LightRed]);
    app.update(Action::NextMatch);
    let terminal = render(&mut app, 110, 24);
    assert_eq!(match_colours(&terminal), [Color::LightRed, Color::Yellow]);
}

#[test]
fn the_help_overlay_lists_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.update(Action::Help);
    // (Tall enough for every key; a shorter terminal shows the first ones.)
    insta::assert_snapshot!(render(&mut app, 110, 32).backend());
}

#[test]
fn a_narrow_terminal_keeps_the_essentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    insta::assert_snapshot!(render(&mut app, 60, 15).backend());
}

#[test]
fn tiny_terminals_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.update(Action::Help);
    for (w, h) in [(1, 1), (10, 3), (20, 5), (59, 14), (60, 15), (200, 2)] {
        render(&mut app, w, h);
    }
    app.update(Action::CloseOverlay);
    app.update(Action::ToggleWrap);
    for (w, h) in [(1, 1), (10, 3), (20, 5), (59, 14)] {
        render(&mut app, w, h);
    }
}

#[test]
fn scrolling_up_pauses_and_new_lines_do_not_move_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    let devstack::ui::source::Logs::Hub(hub) = app.logs.clone() else {
        unreachable!("made from a LogHub")
    };
    let lines = |from: usize| {
        (from..from + 50)
            .map(|i| LogLine {
                service: ServiceId(1),
                stream: Stream::Out,
                time: SystemTime::UNIX_EPOCH,
                text: format!("line {i}"),
            })
            .collect()
    };
    hub.push(ServiceId(1), lines(0));
    render(&mut app, 110, 24);
    app.update(Action::ToggleFocus);
    app.update(Action::ScrollUp(5));
    assert!(!app.log.follow);
    let before = render(&mut app, 110, 24).backend().to_string();
    hub.push(ServiceId(1), lines(50));
    let after = render(&mut app, 110, 24).backend().to_string();
    assert_eq!(
        before.lines().nth(10),
        after.lines().nth(10),
        "the paused view stays put"
    );
    app.update(Action::ScrollBottom);
    assert!(app.log.follow);
    assert!(
        render(&mut app, 110, 24)
            .backend()
            .to_string()
            .contains("line 99")
    );
}

#[test]
fn the_filter_shows_only_matching_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    app.update(Action::FilterStart);
    for c in "LISTEN".chars() {
        app.update(Action::InputChar(c));
    }
    app.update(Action::InputSubmit);
    let screen = render(&mut app, 110, 24).backend().to_string();
    assert!(screen.contains("listening on 127.0.0.1:7101"));
    assert!(!screen.contains("GET /users"));
}

fn lines(service: usize, texts: impl IntoIterator<Item = String>) -> Vec<LogLine> {
    texts
        .into_iter()
        .map(|text| LogLine {
            service: ServiceId(service),
            stream: Stream::Out,
            time: SystemTime::UNIX_EPOCH,
            text,
        })
        .collect()
}

#[test]
fn the_selected_service_stays_in_view_in_a_long_list() {
    let dir = tempfile::tempdir().unwrap();
    let names: Services<String> = (0..27).map(|i| format!("svc-{i:02}")).collect();
    let hub = Arc::new(LogHub::new(dir.path(), &names, None, 10_000));
    let mut app = App::new("many".into(), names.clone(), hub);
    app.views = names
        .values()
        .map(|n| view(n, "running", "running"))
        .collect();
    for _ in 0..20 {
        app.update(Action::SelectNext);
    }
    let screen = render(&mut app, 100, 24).backend().to_string();
    assert!(screen.contains("svc-20"), "{screen}");
    assert!(screen.contains("logs: svc-20"));
}

#[test]
fn a_paused_view_stays_on_lines_that_still_exist() {
    let dir = tempfile::tempdir().unwrap();
    let names: Services<String> = vec!["spew".to_string()].into();
    let hub = Arc::new(LogHub::new(dir.path(), &names, None, 100));
    let mut app = App::new("s".into(), names.clone(), hub.clone());
    app.views = vec![view("spew", "running", "running")].into();
    hub.push(
        ServiceId(0),
        lines(0, (0..150).map(|i| format!("line {i}"))),
    );
    render(&mut app, 80, 24);
    app.update(Action::ToggleFocus);
    app.update(Action::ScrollUp(10));
    hub.push(
        ServiceId(0),
        lines(0, (150..700).map(|i| format!("line {i}"))),
    );
    let screen = render(&mut app, 80, 24).backend().to_string();
    assert!(screen.contains("line 6"), "the pane went blank:\n{screen}");
}

#[test]
fn with_wrap_on_the_newest_line_stays_in_view() {
    let dir = tempfile::tempdir().unwrap();
    let names: Services<String> = vec!["words".to_string()].into();
    let hub = Arc::new(LogHub::new(dir.path(), &names, None, 10_000));
    let mut app = App::new("s".into(), names.clone(), hub.clone());
    app.views = vec![view("words", "running", "running")].into();
    let word = "w".repeat(40);
    hub.push(
        ServiceId(0),
        lines(0, (0..20).map(|i| format!("{word} {word} {word} {i}"))),
    );
    hub.push(ServiceId(0), lines(0, ["LAST-LINE".to_string()]));
    app.update(Action::ToggleWrap);
    let screen = render(&mut app, 100, 24).backend().to_string();
    assert!(screen.contains("LAST-LINE"), "{screen}");
}

#[test]
fn the_service_list_scrolls_back_when_the_terminal_grows() {
    let dir = tempfile::tempdir().unwrap();
    let names: Services<String> = (0..27).map(|i| format!("svc-{i:02}")).collect();
    let hub = Arc::new(LogHub::new(dir.path(), &names, None, 10_000));
    let mut app = App::new("many".into(), names.clone(), hub);
    app.views = names
        .values()
        .map(|n| view(n, "running", "running"))
        .collect();
    for _ in 0..26 {
        app.update(Action::SelectNext);
    }
    // Small: the list shows the last rows, down to the selection.
    let screen = render(&mut app, 100, 24).backend().to_string();
    assert!(
        screen.contains("svc-26") && !screen.contains("svc-00"),
        "{screen}"
    );
    // A little taller: still scrolled, but no blank rows under the last service.
    let screen = render(&mut app, 100, 50).backend().to_string();
    let rows = screen.lines().filter(|l| l.contains("running")).count();
    // The list takes 45% of the body (the height less header and footer), less borders and
    // its header line.
    assert_eq!(rows, (50 - 2) * 45 / 100 - 3, "{screen}");
    assert!(screen.contains("svc-26"), "{screen}");
    // Tall enough for every service: the list shows from the top again.
    let screen = render(&mut app, 100, 80).backend().to_string();
    assert_eq!(app.list_offset, 0);
    for name in names.values() {
        assert!(
            screen.contains(name.as_str()),
            "{name} not shown:\n{screen}"
        );
    }
}

#[test]
fn a_failed_rebuild_shows_on_the_service_row_in_red() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    // The engine's detail for a running service whose last build failed.
    app.views[ServiceId(2)].detail = "running · build failed".into();
    app.views[ServiceId(2)].build_failed = true;
    let terminal = render(&mut app, 110, 24);
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    let row = (0..24)
        .find(|&y| {
            let text: String = (0..110)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            text.contains("orders  running · build failed")
        })
        .expect("the orders row says build failed");
    // The glyph and the state cell are red; a healthy running row's are green.
    assert_eq!(buffer[(1, row)].fg, Color::Red);
    let state = (0..110)
        .find(|&x| buffer[(x, row)].symbol() == "r" && buffer[(x + 1, row)].symbol() == "u")
        .unwrap();
    assert_eq!(buffer[(state, row)].fg, Color::Red);
    assert_eq!(buffer[(1, row - 1)].fg, Color::Green);
}

/// insta leaves `*.snap.new` beside a failing snapshot and deletes it once the test passes: one
/// committed would be deleted by the next `cargo test`.
#[test]
fn no_pending_snapshot_is_tracked() {
    let root = env!("CARGO_MANIFEST_DIR");
    let Ok(out) = std::process::Command::new("git")
        .args(["ls-files", "--", "*.snap.new"])
        .current_dir(root)
        .output()
    else {
        eprintln!("git is not installed: skipped");
        return;
    };
    let tracked = String::from_utf8_lossy(&out.stdout);
    assert!(
        tracked.trim().is_empty(),
        "tracked pending snapshots:\n{tracked}"
    );
    let ignored = std::process::Command::new("git")
        .args(["check-ignore", "-q", "tests/e2e/snapshots/x.snap.new"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(ignored.success(), "*.snap.new is not in .gitignore");
}

#[test]
fn eighty_columns_keep_help_quit_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    let row = |y: u16| -> String {
        (0..80)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect()
    };
    assert!(
        row(23).contains("? help") && row(23).contains("q quit"),
        "{}",
        row(23)
    );
    assert!(
        row(2).contains("CPU") && row(2).contains("MEM"),
        "{}",
        row(2)
    );
    // A state longer than its column is cut with an ellipsis, never mid-phrase without one.
    app.views[ServiceId(2)] = view(
        "orders",
        "blocked",
        "blocked: dependency `users` is build-failed (code 101)",
    );
    let terminal = render(&mut app, 80, 24);
    let buffer = terminal.backend().buffer();
    let row: String = (0..80)
        .map(|x| buffer[(x, 5)].symbol().to_string())
        .collect();
    assert!(row.contains("blocked: dep"), "{row}");
    assert!(row.contains('…'), "{row}");
}

#[test]
fn the_header_names_a_service_stopped_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path());
    // `users` (which orders and gateway depend on) stopped with `s`: no longer wanted.
    app.views[ServiceId(1)] = view("users", "stopped", "stopped");
    app.views[ServiceId(1)].wanted = false;
    let terminal = render(&mut app, 110, 24);
    let buffer = terminal.backend().buffer();
    let header: String = (0..110)
        .map(|x| buffer[(x, 0)].symbol().to_string())
        .collect();
    assert!(header.contains("4/4 ready · users stopped"), "{header}");
    let at = header[..header.find("4/4").unwrap()].chars().count() as u16;
    assert_eq!(buffer[(at, 0)].fg, Color::Yellow, "not all green");
    // One never started (autostart = false) is not news.
    app.views[ServiceId(1)].spawns = 0;
    let terminal = render(&mut app, 110, 24);
    let buffer = terminal.backend().buffer();
    let header: String = (0..110)
        .map(|x| buffer[(x, 0)].symbol().to_string())
        .collect();
    assert!(!header.contains("stopped"), "{header}");
}
