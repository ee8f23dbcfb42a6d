//! Drawing one dashboard frame of a 30-service stack holding 100,000 buffered log lines.
//! `cargo bench --bench render`

use criterion::{Criterion, criterion_group, criterion_main};
use devstack::engine::{HealthState, ServiceView, Services, State};
use devstack::logs::{LogHub, LogLine, Stream};
use devstack::ui::action::Action;
use devstack::ui::app::App;
use devstack::ui::draw::draw;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use std::sync::Arc;
use std::time::SystemTime;

fn stack(dir: &std::path::Path) -> App {
    let names: Services<String> = (0..30).map(|i| format!("service-{i:02}")).collect();
    let hub = Arc::new(LogHub::new(dir, &names, None, 10_000));
    for round in 0..100 {
        for s in names.ids() {
            let lines = (0..34)
                .map(|i| LogLine {
                    service: s,
                    stream: Stream::Out,
                    time: SystemTime::now(),
                    text: format!("\x1b[32mINFO\x1b[0m request {round}-{i} handled in 3ms path=/api/v1/items/{i} status=200"),
                })
                .collect();
            hub.push(s, lines);
        }
    }
    let mut app = App::new("bench".into(), names.clone(), hub);
    app.views = names
        .values()
        .map(|n| ServiceView {
            name: n.clone(),
            state: State::Running,
            detail: "running".into(),
            health: Some(HealthState::Healthy),
            health_error: None,
            ready: true,
            wanted: true,
            auto_rebuild: None,
            spawns: 1,
            building: false,
            build_failed: false,
            cpu_percent: Some(1.5),
            mem_bytes: Some(20 << 20),
            crash_loop: false,
            settled: false,
            pid: Some(1234),
            port: Some(8080),
            private_port: None,
            next_pid: None,
            draining_pid: None,
            rollout_failed: None,
            image: None,
            remote: None,
            volumes: Vec::new(),
            restarts: 0,
            since: Some(tokio::time::Instant::now() - std::time::Duration::from_secs(300)),
            log_lost: None,
        })
        .collect();
    app
}

fn frames(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut app = stack(dir.path());
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    c.bench_function(
        "frame: one service's log (30 services, 100k lines buffered)",
        |b| {
            b.iter(|| {
                app.arrange(Rect::new(0, 0, 200, 60));
                terminal.draw(|f| draw(f, &app)).unwrap();
            })
        },
    );
    app.update(Action::ToggleAll);
    c.bench_function("frame: merged log of all services", |b| {
        b.iter(|| {
            app.arrange(Rect::new(0, 0, 200, 60));
            terminal.draw(|f| draw(f, &app)).unwrap();
        })
    });
    app.update(Action::ToggleWrap);
    c.bench_function("frame: merged log, wrapped", |b| {
        b.iter(|| {
            app.arrange(Rect::new(0, 0, 200, 60));
            terminal.draw(|f| draw(f, &app)).unwrap();
        })
    });
    app.update(Action::FilterStart);
    for ch in "items/7".chars() {
        app.update(Action::InputChar(ch));
    }
    app.update(Action::InputSubmit);
    c.bench_function(
        "frame: merged log filtered (scans every buffered line)",
        |b| {
            b.iter(|| {
                app.arrange(Rect::new(0, 0, 200, 60));
                terminal.draw(|f| draw(f, &app)).unwrap();
            })
        },
    );
}

criterion_group!(benches, frames);
criterion_main!(benches);
