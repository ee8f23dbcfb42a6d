//! Drawing the traffic pane (`t`, in place of the log pane): the edge table sorted by rate, a
//! request-rate sparkline per service, and the live tail of requests coloured by status (every
//! service's, or with `a` only the selected one's). Like `draw`, it only reads.

use super::app::App;
use super::traffic::Seen;
use crate::traffic::stats::{human_bytes, human_latency};
use crate::traffic::{Kind, Record};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};

pub fn draw_traffic(frame: &mut Frame, app: &App, area: Rect, block: Block<'static>) {
    let Some(feed) = &app.traffic else {
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    feed.read(|seen| {
        let edges = seen.snapshot.edges.len() as u16;
        let top = (edges.max(1) + 1).min(inner.height / 2).max(2);
        let [upper, tail] =
            Layout::vertical([Constraint::Length(top), Constraint::Min(1)]).areas(inner);
        if upper.width >= 110 {
            let [table, rates] =
                Layout::horizontal([Constraint::Min(70), Constraint::Length(40)]).areas(upper);
            draw_edges(frame, seen, table);
            draw_rates(frame, seen, rates);
        } else {
            draw_edges(frame, seen, upper);
        }
        draw_tail(frame, app, seen, tail);
    });
}

/// The pane's title and what it shows.
pub fn title(app: &App) -> String {
    match (app.traffic_selected, app.names.get(app.selected)) {
        (true, Some(name)) => format!(" traffic: {name} "),
        _ => " traffic: all services ".into(),
    }
}

fn draw_edges(frame: &mut Frame, seen: &Seen, area: Rect) {
    let header = Row::new([
        "CALLER", "CALLEE", "RPS", "REQS", "ERR%", "P50", "P95", "P99", "OUT",
    ])
    .style(Style::new().bold().fg(Color::Gray));
    let ms = |v: Option<f64>| v.map_or("-".into(), |ms| human_latency((ms * 1000.0) as u64));
    let rows = seen.snapshot.edges.iter().map(|e| {
        let err = e.error_rate_1m * 100.0;
        Row::new([
            Cell::from(e.caller.to_string()),
            Cell::from(e.callee.clone()),
            Cell::from(format!("{:.1}", e.rate_10s)),
            Cell::from(e.requests.to_string()),
            Cell::from(format!("{err:.0}%")).fg(if err > 0.0 { Color::Red } else { Color::Reset }),
            Cell::from(ms(e.p50_ms)),
            Cell::from(ms(e.p95_ms)),
            Cell::from(ms(e.p99_ms)),
            Cell::from(human_bytes(e.bytes_out)),
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    if seen.snapshot.edges.is_empty() {
        frame.render_widget(
            Paragraph::new("no requests yet: services reach each other through their `port`s")
                .fg(Color::DarkGray),
            area,
        );
        return;
    }
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
}

/// Each called service's requests per second over the last minute, as a sparkline.
fn draw_rates(frame: &mut Frame, seen: &Seen, area: Rect) {
    let block = Block::new()
        .borders(Borders::LEFT)
        .border_style(Style::new().fg(Color::DarkGray));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    for (row, svc) in seen
        .snapshot
        .services
        .iter()
        .take(inner.height as usize)
        .enumerate()
    {
        let line = Rect {
            y: inner.y + row as u16,
            height: 1,
            ..inner
        };
        let [name, spark, rate] = Layout::horizontal([
            Constraint::Length(10),
            Constraint::Min(10),
            Constraint::Length(7),
        ])
        .areas(line);
        frame.render_widget(Paragraph::new(svc.service.clone()), name);
        let history: Vec<u64> = svc.history.iter().map(|&n| u64::from(n)).collect();
        let shown = &history[history.len().saturating_sub(spark.width as usize)..];
        frame.render_widget(
            Sparkline::default()
                .data(shown)
                .style(Style::new().fg(if svc.error_rate_1m > 0.0 {
                    Color::Red
                } else {
                    Color::Green
                })),
            spark,
        );
        frame.render_widget(
            Paragraph::new(format!("{:>5.1}/s", svc.rate_10s)).fg(Color::Gray),
            rate,
        );
    }
}

fn status_color(record: &Record) -> Color {
    if record.is_error() {
        return Color::Red;
    }
    match &record.kind {
        Kind::Http { status, .. } if *status >= 400 => Color::Yellow,
        Kind::Http { status, .. } if *status >= 300 => Color::Cyan,
        Kind::Http { .. } => Color::Green,
        Kind::Tcp => Color::Blue,
    }
}

/// The newest requests at the bottom, as many as fit.
fn draw_tail(frame: &mut Frame, app: &App, seen: &Seen, area: Rect) {
    let only = app
        .traffic_selected
        .then(|| app.names.get(app.selected))
        .flatten();
    let involves =
        |r: &Record| only.is_none_or(|name| r.callee == *name || r.caller.to_string() == *name);
    let mut lines: Vec<Line> = seen
        .tail
        .iter()
        .rev()
        .filter(|r| involves(r))
        .take(area.height as usize)
        .map(|r| {
            Line::from(vec![
                Span::styled(
                    format!("{} ", r.time_of_day()),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(r.to_string(), Style::new().fg(status_color(r))),
            ])
        })
        .collect();
    lines.reverse();
    frame.render_widget(Paragraph::new(lines), area);
}
