//! Drawing: a pure function of the app state (and the log buffers) to a frame. Only the visible
//! log lines are turned into text.

use super::app::{App, Focus, Mode, Shown, matches};
use crate::engine::{HealthState, ServiceView, State, uptime};
use crate::logs::{LogLine, Stream, strip_sgr};
use ansi_to_tui::IntoText;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Borders, Cell, Clear, Paragraph, Row, StatefulWidget, Table, Widget, Wrap,
};
use std::sync::Arc;
use unicode_width::UnicodeWidthStr;

const PALETTE: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Green,
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
];

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
    if app.selected < offset {
        offset = app.selected;
    } else if app.selected >= offset + rows {
        offset = app.selected + 1 - rows;
    }
    offset.min(app.views.len().saturating_sub(rows))
}

/// One frame of the dashboard. It only reads the app (`App::arrange` placed the panes before),
/// and holds a log buffer's lock only to pick the lines it shows.
pub fn draw(frame: &mut Frame, app: &App) {
    let p = panes(app, frame.area());
    draw_header(frame, app, p.header);
    if p.list.height > 0 {
        draw_services(frame.buffer_mut(), app, p.list);
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
        draw_logs(frame, app, p.logs);
    }
    draw_footer(frame, app, p.footer);
    match &app.mode {
        Mode::Help => draw_help(frame),
        Mode::ConfirmQuit => draw_confirm(frame, app),
        Mode::ConfirmDetach => draw_confirm_detach(frame),
        Mode::ShuttingDown => draw_shutdown(frame, app),
        _ => {}
    }
}

fn glyph(v: &ServiceView) -> (&'static str, Color) {
    match v.state {
        State::Running if v.health == Some(HealthState::Unhealthy) || v.build_failed => {
            ("●", Color::Red)
        }
        State::Running if v.ready => ("●", Color::Green),
        State::Running => ("●", Color::Yellow),
        State::Completed => ("✔", Color::Green),
        s if s.is_failure() => ("✖", Color::Red),
        State::Exited | State::Stopped => ("○", Color::DarkGray),
        _ => ("◌", Color::Yellow),
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
    let wanted = app.views.iter().filter(|v| v.wanted).count();
    let ready = app.views.iter().filter(|v| v.wanted && v.ready).count();
    // Services that ran and were stopped (`s`, `devstack stop`) are not counted as wanted, but
    // what depends on them may not work: "all ready" would hide them.
    let stopped: Vec<&str> = app
        .views
        .iter()
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
    let problems = problems(&app.views);
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

fn memory(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.0}M", b as f64 / (1u64 << 20) as f64),
    }
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

/// The service list alone, drawn again into `last`, the frame last drawn of `app` (in the same
/// area): what a whole frame would show when nothing but the list's text can have changed (an
/// uptime that now reads differently).
pub fn redraw_services(last: &mut Buffer, app: &App) {
    let list = panes(app, last.area).list;
    if list.height > 0 {
        Clear.render(list, last);
        draw_services(last, app, list);
    }
}

fn draw_services(buf: &mut Buffer, app: &App, area: Rect) {
    let name_width = app
        .names
        .iter()
        .map(|n| n.width())
        .max()
        .unwrap_or(4)
        .clamp(4, 24) as u16;
    let shown_detail = |v: &ServiceView| {
        if v.auto_rebuild == Some(false) {
            format!("{} ⏸", v.detail)
        } else {
            v.detail.clone()
        }
    };
    let state_need = app
        .views
        .iter()
        .map(|v| shown_detail(v).width())
        .max()
        .unwrap_or(5)
        .clamp(8, 60) as u16;
    // Requests per second the service answered (10 s) and the share that failed (1 min).
    let rates = traffic_rates(app);
    // The columns of `ps`, in its order, then CPU and memory, then traffic: each optional group
    // shown when it fits beside a state column of at least `STATE_MIN` (a long state is cut with
    // `…` rather than pushing columns out), most useful first.
    const STATE_MIN: u16 = 16;
    let inner = area.width.saturating_sub(2);
    // glyph, name, health, port, restarts, each with its space; and the state's own space.
    let mut used = (1 + 1) + (name_width + 1) + (9 + 1) + (5 + 1) + 3 + 1;
    let mut fits = |cols: u16| {
        let fit = used + cols + STATE_MIN.min(state_need) <= inner;
        if fit {
            used += cols;
        }
        fit
    };
    let ids = fits(7 + 1 + 7 + 1); // PID, UPTIME
    let usage = fits(6 + 1 + 6 + 1); // CPU, MEM
    let rates = rates.filter(|_| fits(6 + 1 + 5 + 1)); // RPS, ERR
    let state_width = state_need.min(inner.saturating_sub(used)).max(1);
    let mut header = vec!["", "NAME", "STATE", "HEALTH"];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(name_width),
        Constraint::Length(state_width),
        Constraint::Length(9),
    ];
    if ids {
        header.push("PID");
        widths.push(Constraint::Length(7));
    }
    header.push("PORT");
    widths.push(Constraint::Length(5));
    if ids {
        header.push("UPTIME");
        widths.push(Constraint::Length(7));
    }
    header.push("↻");
    widths.push(Constraint::Length(3));
    if usage {
        header.extend(["CPU", "MEM"]);
        widths.extend([Constraint::Length(6), Constraint::Length(6)]);
    }
    if rates.is_some() {
        header.extend(["RPS", "ERR"]);
        widths.extend([Constraint::Length(6), Constraint::Length(5)]);
    }
    let rows = app.views.iter().enumerate().map(|(i, v)| {
        let (g, color) = glyph(v);
        let mut cells = vec![
            Cell::from(g).fg(color),
            Cell::from(v.name.clone()).fg(PALETTE[i % PALETTE.len()]),
            Cell::from(crate::ellipsize(&shown_detail(v), state_width.into()).into_owned())
                .fg(color),
            Cell::from(v.health.map_or("-", HealthState::name)),
        ];
        if ids {
            cells.push(Cell::from(v.pid.map_or("-".into(), |p| p.to_string())));
        }
        cells.push(Cell::from(v.port.map_or("-".into(), |p| p.to_string())));
        if ids {
            cells.push(Cell::from(v.uptime_secs().map_or("-".into(), uptime)));
        }
        cells.push(Cell::from(v.restarts.to_string()));
        if usage {
            cells.push(Cell::from(
                v.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%")),
            ));
            cells.push(Cell::from(memory(v.mem_bytes)));
        }
        if let Some(rates) = &rates {
            match rates.iter().find(|(name, ..)| *name == v.name) {
                Some((_, rps, err)) => {
                    cells.push(Cell::from(format!("{rps:.1}")));
                    cells.push(
                        Cell::from(format!("{:.0}%", err * 100.0)).fg(if *err > 0.0 {
                            Color::Red
                        } else {
                            Color::Reset
                        }),
                    );
                }
                None => cells.extend([Cell::from("-"), Cell::from("-")]),
            }
        }
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold().fg(Color::Gray)))
        .column_spacing(1)
        .block(pane_block(
            " services ".into(),
            app.focus == Focus::Services,
        ))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ratatui::widgets::TableState::default()
        .with_offset(app.list_offset)
        .with_selected(Some(app.selected));
    StatefulWidget::render(table, area, buf, &mut state);
}

/// Each called service's (name, requests/s over 10 s, error share over 1 min); None when no
/// service is proxied.
fn traffic_rates(app: &App) -> Option<Vec<(String, f64, f64)>> {
    let feed = app.traffic.as_ref()?;
    Some(feed.read(|seen| {
        seen.snapshot
            .services
            .iter()
            .map(|s| (s.service.clone(), s.rate_10s, s.error_rate_1m))
            .collect()
    }))
}

/// Spans of a line's content: its colours, or, when it matches the search, plain text with the
/// matches highlighted (those of the current match, where `n`/`N` went, in a colour of their
/// own, so that it can be told from the others).
pub(super) fn content(text: &str, search: Option<&str>, current: bool) -> Vec<Span<'static>> {
    if let Some(needle) = search.filter(|n| !n.is_empty())
        && matches(text, &needle.to_lowercase())
    {
        let plain = strip_sgr(text).into_owned();
        let lower = plain.to_lowercase();
        let needle = needle.to_lowercase();
        let mut spans = Vec::new();
        let mut at = 0;
        // Lower-casing can change byte lengths outside ASCII; highlight only where it didn't.
        if lower.len() == plain.len() {
            while let Some(i) = lower[at..].find(&needle) {
                let start = at + i;
                spans.push(Span::raw(plain[at..start].to_string()));
                spans.push(Span::styled(
                    plain[start..start + needle.len()].to_string(),
                    if current {
                        Style::new().black().on_light_red().bold()
                    } else {
                        Style::new().black().on_yellow()
                    },
                ));
                at = start + needle.len();
            }
        }
        spans.push(Span::raw(plain[at..].to_string()));
        return spans;
    }
    if !text.contains('\x1b') {
        return vec![Span::raw(text.to_string())];
    }
    match text.as_bytes().into_text() {
        Ok(parsed) => parsed.lines.into_iter().flat_map(|l| l.spans).collect(),
        Err(_) => vec![Span::raw(strip_sgr(text).into_owned())],
    }
}

fn render_line(app: &App, line: &LogLine, current: bool) -> Line<'static> {
    let mut spans = Vec::new();
    if app.log.timestamps {
        let stamp = humantime::format_rfc3339_millis(line.time).to_string();
        spans.push(Span::styled(
            format!("{} ", &stamp[11..23]),
            Style::new().fg(Color::DarkGray),
        ));
    }
    if app.all {
        let name = &app.names[line.service];
        let width = app.names.iter().map(|n| n.width()).max().unwrap_or(0);
        spans.push(Span::styled(
            format!("{name:<width$} │ "),
            Style::new().fg(PALETTE[line.service % PALETTE.len()]),
        ));
    }
    match line.stream {
        Stream::System => {
            spans.push(Span::styled("▸ ", Style::new().fg(Color::Magenta).bold()));
            spans.extend(
                content(&line.text, app.log.search.as_deref(), current)
                    .into_iter()
                    .map(|s| s.fg(Color::Magenta).italic()),
            );
            return Line::from(spans);
        }
        Stream::Build => spans.push(Span::styled("build │ ", Style::new().fg(Color::Blue))),
        Stream::Out => {}
    }
    spans.extend(content(&line.text, app.log.search.as_deref(), current));
    Line::from(spans)
}

/// The service's own terminal, while the user types into it. Where no terminal is emulated
/// (an attached dashboard sees the service's lines, not its raw output), its lines.
fn draw_screen(frame: &mut Frame, app: &App, area: Rect) {
    let name = app.names.get(app.selected).map_or("", String::as_str);
    let block = pane_block(
        format!(" {name}: typing into its terminal · Ctrl-a leaves "),
        true,
    )
    .border_style(Style::new().fg(Color::Green));
    let shown = app.logs.screen(app.selected, |screen| {
        frame.render_widget(
            tui_term::widget::PseudoTerminal::new(screen).block(block.clone()),
            area,
        );
    });
    if shown.is_none() {
        let block = pane_block(
            format!(
                " {name}: typing into its terminal (its output as lines: attached) · Ctrl-a leaves "
            ),
            true,
        )
        .border_style(Style::new().fg(Color::Green));
        draw_lines(frame, app, area, block);
    }
}

fn draw_logs(frame: &mut Frame, app: &App, area: Rect) {
    if app.mode == Mode::Input {
        return draw_screen(frame, app, area);
    }
    let title = if app.all {
        " logs: all services ".to_string()
    } else {
        format!(
            " logs: {} ",
            app.names.get(app.selected).map_or("", String::as_str)
        )
    };
    let mut flags = Vec::new();
    flags.push(if app.log.follow {
        "follow".to_string()
    } else {
        format!("paused ↑{}", app.log.offset)
    });
    if app.log.wrap {
        flags.push("wrap".into());
    }
    if let Some(f) = &app.log.filter {
        flags.push(format!("filter: {f}"));
    }
    if let Some(s) = &app.log.search {
        flags.push(format!("search: {s}"));
    }
    let block = pane_block(title, app.focus == Focus::Logs)
        .title_bottom(Line::from(format!(" {} ", flags.join(" · "))).right_aligned());
    draw_lines(frame, app, area, block);
}

/// The log lines the pane shows, in `block`.
fn draw_lines(frame: &mut Frame, app: &App, area: Rect, block: ratatui::widgets::Block) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let width = inner.width.max(1) as usize;
    // The lines that can show (at most one a row), picked under the buffer's lock; turned into
    // text after it is released, so a service's output never waits on a frame.
    let picked: Vec<(usize, Arc<LogLine>)> = app.logs.read(app.source(), |ring| {
        let shown = Shown::new(ring, app.log.filter.as_deref());
        let end = shown.len().saturating_sub(app.log.offset);
        (end.saturating_sub(height)..end)
            .map(|i| (i, shown.get(i).clone()))
            .collect()
    });
    let mut lines = Vec::new();
    let mut rows = 0;
    for (i, line) in picked.iter().rev() {
        if rows >= height {
            break;
        }
        let line = render_line(app, line, app.log.current_match == Some(*i));
        rows += if app.log.wrap {
            // The rows ratatui's own word wrapping will take, so the newest line stays in view.
            Paragraph::new(line.clone())
                .wrap(Wrap { trim: false })
                .line_count(width as u16)
                .max(1)
        } else {
            1
        };
        lines.push(line);
    }
    lines.reverse();
    let skip = rows.saturating_sub(height);
    let mut paragraph = Paragraph::new(lines).scroll((skip as u16, 0));
    if app.log.wrap {
        paragraph = paragraph.wrap(Wrap { trim: false });
    }
    frame.render_widget(paragraph, inner);
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
        (Mode::ShuttingDown, _) => vec![Span::styled(
            " stopping the stack… Ctrl-C again kills everything",
            Style::new().fg(Color::Yellow).bold(),
        )],
        (Mode::ConfirmQuit, _) => keys(&[("y", "quit"), ("n", "stay")]),
        (Mode::ConfirmDetach, _) => {
            keys(&[("d", "detach"), ("s", "stop the stack"), ("n", "stay")])
        }
        (Mode::Help, _) => keys(&[("any key", "close")]),
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

fn popup(frame: &mut Frame, title: &str, lines: Vec<Line<'static>>, width: u16) -> Rect {
    let area = frame.area();
    let w = width.min(area.width.saturating_sub(2)).max(10);
    let h = (lines.len() as u16 + 2)
        .min(area.height.saturating_sub(2))
        .max(3);
    let rect = Rect::new(
        area.x + (area.width.saturating_sub(w)) / 2,
        area.y + (area.height.saturating_sub(h)) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title.to_string(), Style::new().bold()));
    frame.render_widget(Paragraph::new(lines).block(block), rect);
    rect
}

fn draw_help(frame: &mut Frame) {
    let lines = super::keymap::KEYS
        .iter()
        .filter_map(|b| b.help)
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<16}"), Style::new().fg(Color::Cyan).bold()),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    popup(frame, " keys ", lines, 84);
}

fn draw_confirm(frame: &mut Frame, app: &App) {
    let running = app.views.iter().filter(|v| v.pid.is_some()).count();
    let lines = vec![
        Line::from(format!(
            " Stop {running} running service{} and quit?",
            if running == 1 { "" } else { "s" }
        )),
        Line::from(vec![
            Span::styled(" y", Style::new().fg(Color::Cyan).bold()),
            Span::raw(" yes   "),
            Span::styled("n", Style::new().fg(Color::Cyan).bold()),
            Span::raw(" no"),
        ]),
    ];
    popup(frame, " quit ", lines, 44);
}

fn draw_confirm_detach(frame: &mut Frame) {
    let key = |k| Span::styled(k, Style::new().fg(Color::Cyan).bold());
    let lines = vec![
        Line::from(" Leave the dashboard?"),
        Line::from(vec![
            key(" d"),
            Span::raw(" detach: the stack keeps running (Enter)"),
        ]),
        Line::from(vec![key(" s"), Span::raw(" stop the stack")]),
        Line::from(vec![key(" n"), Span::raw(" stay")]),
    ];
    popup(frame, " quit ", lines, 48);
}

fn draw_shutdown(frame: &mut Frame, app: &App) {
    let mut lines: Vec<Line> = app
        .views
        .iter()
        .filter(|v| v.pid.is_some())
        .map(|v| {
            Line::from(format!(
                " {:<16} {} (pid {})",
                v.name,
                v.detail,
                v.pid.unwrap_or_default()
            ))
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::from(" everything has stopped"));
    }
    popup(frame, " stopping ", lines, 60);
}
