//! Drawing: a pure function of the app state (and the log buffers) to a frame. Only the visible
//! log lines are turned into text. Here: where the panes go, the frame, its header and footer;
//! the service list (`services.rs`), the log pane (`logs.rs`) and the popups drawn over them
//! (`overlays.rs`) are parts of their own; the traffic pane is `ui::draw_traffic`.

mod logs;
mod overlays;
mod services;

pub(super) use logs::content;
pub use services::redraw_services;

use super::app::{App, Focus, Mode};
use crate::engine::{HealthState, ServiceId, ServiceView, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders};
use unicode_width::UnicodeWidthStr;

const PALETTE: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Green,
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
];

/// A service's colour: the palette goes round down the list (file order).
fn color(id: ServiceId) -> Color {
    PALETTE[id.index() % PALETTE.len()]
}

/// Where each pane goes in `area`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Panes {
    pub header: Rect,
    pub list: Rect,
    pub logs: Rect,
    pub footer: Rect,
}

pub fn panes(app: &App, area: Rect) -> Panes {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let list_height = (app.names.len() as u16 + 3)
        .min(body.height * 45 / 100)
        .max(4);
    let (list, logs) = if app.zoom {
        match app.focus {
            Focus::Services => (body, Rect::default()),
            Focus::Logs => (Rect::default(), body),
        }
    } else {
        let [l, g] =
            Layout::vertical([Constraint::Length(list_height), Constraint::Min(1)]).areas(body);
        (l, g)
    };
    Panes {
        header,
        list,
        logs,
        footer,
    }
}

/// The first row the service list shows in `list`: the selection stays in view, and the list is
/// never scrolled further than its size needs (after the terminal grows, rows that now fit above
/// are shown again).
pub fn list_offset(app: &App, list: Rect) -> usize {
    let rows = (list.height.saturating_sub(3) as usize).max(1); // borders and the header line
    let mut offset = app.list_offset;
    let selected = app.selected_row();
    if selected < offset {
        offset = selected;
    } else if selected >= offset + rows {
        offset = selected + 1 - rows;
    }
    offset.min(app.views.len().saturating_sub(rows))
}

/// One frame of the dashboard. It only reads the app (`App::arrange` placed the panes before),
/// and holds a log buffer's lock only to pick the lines it shows.
pub fn draw(frame: &mut Frame, app: &App) {
    let p = panes(app, frame.area());
    draw_header(frame, app, p.header);
    if p.list.height > 0 {
        services::draw_services(frame.buffer_mut(), app, p.list);
    }
    if p.logs.height > 0 && app.show_traffic && app.mode != Mode::Input {
        let block = pane_block(super::draw_traffic::title(app), app.focus == Focus::Logs)
            .title_bottom(
                Line::from(match app.log.search.as_ref().or(app.log.filter.as_ref()) {
                    Some(s) => format!(" search: {s} · t logs · a all / selected "),
                    None => " / search · t logs · a all / selected ".into(),
                })
                .right_aligned(),
            );
        super::draw_traffic::draw_traffic(frame, app, p.logs, block);
    } else if p.logs.height > 0 {
        logs::draw_logs(frame, app, p.logs);
    }
    draw_footer(frame, app, p.footer);
    match &app.mode {
        Mode::Help => overlays::draw_help(frame),
        Mode::ConfirmQuit => overlays::draw_confirm(frame, app),
        Mode::ConfirmDetach => overlays::draw_confirm_detach(frame),
        Mode::ShuttingDown => overlays::draw_shutdown(frame, app),
        Mode::Inspect(inspector) => overlays::draw_inspector(frame, inspector),
        _ => {}
    }
}

/// What needs the user's attention, most serious first.
fn problems(views: &[ServiceView]) -> Vec<String> {
    views
        .iter()
        .filter_map(|v| {
            if v.crash_loop {
                Some(format!("{} is crash-looping", v.name))
            } else if v.build_failed {
                Some(format!("{}: build failed, old process kept", v.name))
            } else if v.state.is_failure() {
                Some(format!("{}: {}", v.name, v.detail))
            } else if v.health == Some(HealthState::Unhealthy) {
                Some(format!("{} is unhealthy", v.name))
            } else {
                None
            }
        })
        .collect()
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let wanted = app.views.values().filter(|v| v.wanted).count();
    let ready = app.views.values().filter(|v| v.wanted && v.ready).count();
    // Services that ran and were stopped (`s`, `devstack stop`) are not counted as wanted, but
    // what depends on them may not work: "all ready" would hide them.
    let stopped: Vec<&str> = app
        .views
        .values()
        .filter(|v| !v.wanted && v.state == State::Stopped && v.spawns > 0)
        .map(|v| v.name.as_str())
        .collect();
    let stopped = match stopped.as_slice() {
        [] => String::new(),
        [one] => format!("· {one} stopped "),
        many => format!("· {} stopped ", many.len()),
    };
    let mut spans = vec![
        Span::styled(" devstack ", Style::new().bold().reversed()),
        Span::raw(format!(" {} ", app.stack)),
        Span::styled(
            format!("│ {ready}/{wanted} ready {stopped}"),
            Style::new().fg(if ready == wanted && stopped.is_empty() {
                Color::Green
            } else {
                Color::Yellow
            }),
        ),
    ];
    let problems = problems(app.views.as_slice());
    if let Some(first) = problems.first() {
        let more = if problems.len() > 1 {
            format!(" (+{} more)", problems.len() - 1)
        } else {
            String::new()
        };
        spans.push(Span::styled(
            format!("│ ⚠ {first}{more}"),
            Style::new().fg(Color::Red).bold(),
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(style)
        .title(Span::styled(title, Style::new().bold()))
}

fn keys(pairs: &[(&str, &str)]) -> Vec<Span<'static>> {
    pairs
        .iter()
        .flat_map(|(k, what)| {
            [
                Span::styled(format!(" {k}"), Style::new().fg(Color::Cyan).bold()),
                Span::raw(format!(" {what} ")),
            ]
        })
        .collect()
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = match (&app.mode, app.focus) {
        (Mode::Search(text), _) => vec![
            Span::styled(format!(" search: {text}▏"), Style::new().bold()),
            Span::raw("  Enter find · Esc cancel"),
        ],
        (Mode::Filter(text), _) => vec![
            Span::styled(format!(" filter: {text}▏"), Style::new().bold()),
            Span::raw("  Enter apply · empty clears · Esc cancel"),
        ],
        (Mode::Fault(text), _) => vec![
            Span::styled(format!(" fault: {text}▏"), Style::new().bold()),
            Span::raw(
                "  latency=200ms · error=503 · reset · timeout · first=3 rate=0.3 for=30s · Enter set · Esc cancel",
            ),
        ],
        (Mode::ShuttingDown, _) => vec![Span::styled(
            " stopping the stack… Ctrl-C again kills everything",
            Style::new().fg(Color::Yellow).bold(),
        )],
        (Mode::ConfirmQuit, _) => keys(&[("y", "quit"), ("n", "stay")]),
        (Mode::ConfirmDetach, _) => {
            keys(&[("d", "detach"), ("s", "stop the stack"), ("n", "stay")])
        }
        (Mode::Help, _) => keys(&[("any key", "close")]),
        (Mode::Inspect(_), _) => keys(
            &super::keymap::KEYS
                .iter()
                .filter_map(|b| b.inspect_footer)
                .collect::<Vec<_>>(),
        ),
        (Mode::Input, _) => vec![Span::styled(
            format!(
                " typing into {} · every key goes to it · Ctrl-a leaves",
                app.names.get(app.selected).map_or("", String::as_str)
            ),
            Style::new().fg(Color::Green).bold(),
        )],
        (Mode::Normal, focus) => {
            let mut shown: Vec<_> = super::keymap::KEYS
                .iter()
                .filter_map(|b| b.footer_in(focus))
                .collect();
            // Too narrow for all: the keys before the last two (`?` help, `q` quit, which must
            // stay findable) go, from the end, until the rest fits.
            let width = |pairs: &[(&str, &str)]| -> usize {
                pairs.iter().map(|(k, w)| k.width() + w.width() + 3).sum()
            };
            while width(&shown) > usize::from(area.width) && shown.len() > 2 {
                shown.remove(shown.len() - 3);
            }
            keys(&shown)
        }
    };
    if let Some(msg) = &app.message {
        spans = vec![Span::styled(
            format!(" {msg}"),
            Style::new().fg(Color::Yellow),
        )];
    }
    frame.render_widget(Line::from(spans), area);
}
