//! Drawing the traffic pane (`t`, in place of the log pane): the edge table sorted by rate, a
//! request-rate sparkline per service, and the live tail of requests coloured by status (every
//! service's, or with `a` only the selected one's). Like `draw`, it only reads.

use super::app::App;
use super::draw::content;
use super::traffic::Seen;
use crate::config::diag::printable;
use crate::format::{bytes, latency};
use crate::traffic::fault;
use crate::traffic::stats::GroupSnapshot;
use crate::traffic::{EdgeSnapshot, Kind, Record};
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
        let groups = picked_groups(app, seen).map_or(0, |g| g.len().min(GROUPS) as u16 + 2);
        let edges = seen.snapshot.edges.len() as u16 + groups;
        let top = (edges.max(1) + 1).min(inner.height / 2).max(2);
        let [upper, tail] =
            Layout::vertical([Constraint::Length(top), Constraint::Min(1)]).areas(inner);
        if upper.width >= 110 {
            let [table, rates] =
                Layout::horizontal([Constraint::Min(70), Constraint::Length(40)]).areas(upper);
            draw_edges(frame, app, seen, table);
            draw_rates(frame, seen, rates);
        } else {
            draw_edges(frame, app, seen, upper);
        }
        if tail.width >= 120 {
            let [tail, map] =
                Layout::horizontal([Constraint::Min(70), Constraint::Length(44)]).areas(tail);
            draw_tail(frame, app, seen, tail);
            draw_topology(frame, seen, map);
        } else {
            draw_tail(frame, app, seen, tail);
        }
    });
}

/// The pane's title and what it shows.
pub fn title(app: &App) -> String {
    if let Some((caller, callee)) = &app.picked_edge {
        return format!(" traffic: {caller} → {callee} ");
    }
    match (app.traffic_selected, app.names.get(app.selected)) {
        (true, Some(name)) => format!(" traffic: {name} "),
        _ => " traffic: all services ".into(),
    }
}

/// A picked edge's commands or queries by group shown, at most.
const GROUPS: usize = 8;

/// The picked edge's groups (Redis commands, Postgres queries), when it has any.
fn picked_groups<'a>(app: &App, seen: &'a Seen) -> Option<&'a [GroupSnapshot]> {
    let (caller, callee) = app.picked_edge.as_ref()?;
    let edge = seen
        .snapshot
        .edges
        .iter()
        .find(|e| e.callee == *callee && e.caller.to_string() == *caller)?;
    (!edge.groups.is_empty()).then_some(&edge.groups[..])
}

fn draw_edges(frame: &mut Frame, app: &App, seen: &Seen, area: Rect) {
    let groups = picked_groups(app, seen);
    let area = match groups {
        Some(groups) => {
            let below = groups.len().min(GROUPS) as u16 + 2;
            let [table, under] =
                Layout::vertical([Constraint::Min(2), Constraint::Length(below)]).areas(area);
            draw_groups(frame, groups, under);
            table
        }
        None => area,
    };
    let header = Row::new([
        "CALLER", "CALLEE", "RPS", "REQS", "ERR%", "P50", "P95", "P99", "OUT", "FAULT",
    ])
    .style(Style::new().bold().fg(Color::Gray));
    let ms = |v: Option<f64>| v.map_or("-".into(), |ms| latency((ms * 1000.0) as u64));
    let picked = |e: &EdgeSnapshot| {
        app.picked_edge
            .as_ref()
            .is_some_and(|(caller, callee)| e.callee == *callee && e.caller.to_string() == *caller)
    };
    let rows = seen.snapshot.edges.iter().map(|e| {
        let err = e.error_rate_1m * 100.0;
        let style = match picked(e) {
            true => Style::new().reversed(),
            false => Style::new(),
        };
        Row::new([
            Cell::from(e.caller.to_string()),
            Cell::from(e.callee.clone()),
            Cell::from(format!("{:.1}", e.rate_10s)),
            Cell::from(e.requests.to_string()),
            Cell::from(format!("{err:.0}%")).fg(if err > 0.0 { Color::Red } else { Color::Reset }),
            Cell::from(ms(e.p50_ms)),
            Cell::from(ms(e.p95_ms)),
            Cell::from(ms(e.p99_ms)),
            Cell::from(bytes(e.bytes_out)),
            Cell::from(fault_cell(&seen.snapshot.faults, e)).fg(Color::Magenta),
        ])
        .style(style)
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
        Constraint::Min(6),
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

/// The faults set on an edge that still touch it (not spent): the first's effect, and how many
/// more (`⚡ latency 200ms +1`); empty when none is.
fn fault_cell(faults: &[fault::Set], e: &EdgeSnapshot) -> String {
    let mut on = faults
        .iter()
        .filter(|f| !f.spent && on_edge(&f.fault.scope, e));
    let Some(first) = on.next() else {
        return String::new();
    };
    match on.count() {
        0 => format!("⚡ {}", first.fault.effect),
        more => format!("⚡ {} +{more}", first.fault.effect),
    }
}

/// Whether a fault's scope covers the edge.
fn on_edge(scope: &fault::Scope, e: &EdgeSnapshot) -> bool {
    scope.callee == e.callee && (scope.caller.as_deref()).is_none_or(|c| c == e.caller.to_string())
}

/// The picked edge's commands or queries by group, busiest first, under the table.
fn draw_groups(frame: &mut Frame, groups: &[GroupSnapshot], area: Rect) {
    let ms = |v: f64| latency((v * 1000.0) as u64);
    let header = Row::new(["REQS", "ERRORS", "P50", "P99", "COMMAND / QUERY"])
        .style(Style::new().bold().fg(Color::Gray));
    let rows = groups.iter().take(GROUPS).map(|g| {
        Row::new([
            Cell::from(g.requests.to_string()),
            Cell::from(g.errors.to_string()).fg(if g.errors > 0 {
                Color::Red
            } else {
                Color::Reset
            }),
            Cell::from(ms(g.p50_ms)),
            Cell::from(ms(g.p99_ms)),
            Cell::from(printable(&g.group).into_owned()),
        ])
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Min(20),
    ];
    let [_, table] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        table,
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
        let bars = spark_bars(&svc.history, spark.width as usize);
        frame.render_widget(
            Sparkline::default()
                .data(&bars)
                .max(SPARK_TOP)
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

/// The tallest bar of a one-row sparkline, in eighths of a row.
const SPARK_TOP: u64 = 8;

/// The last minute (`history`, a count per second, oldest first) in at most `width` bars, each
/// the mean rate of its share of the minute, so that the line covers the whole minute whatever
/// its width. Heights are eighths of the busiest bar, and any bar with traffic is at least one
/// eighth: a steady trickle after a burst still shows.
fn spark_bars(history: &[u32], width: usize) -> Vec<u64> {
    let bars = width.min(history.len());
    if bars == 0 {
        return Vec::new();
    }
    let means: Vec<f64> = (0..bars)
        .map(|b| {
            let seconds = &history[b * history.len() / bars..(b + 1) * history.len() / bars];
            seconds.iter().map(|&n| f64::from(n)).sum::<f64>() / seconds.len().max(1) as f64
        })
        .collect();
    let top = means.iter().copied().fold(0.0, f64::max);
    means
        .iter()
        .map(|&m| {
            if m <= 0.0 {
                0
            } else {
                ((m / top * SPARK_TOP as f64).round() as u64).clamp(1, SPARK_TOP)
            }
        })
        .collect()
}

/// Who calls whom, as trees from the callers nobody calls (a service called from several places
/// shows under each, its own calls under the first only, `↑` elsewhere): each edge lit while it
/// carries traffic, red while it fails.
fn draw_topology(frame: &mut Frame, seen: &Seen, area: Rect) {
    let block = Block::new()
        .borders(Borders::LEFT)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(Span::styled(
            " who calls whom ",
            Style::new().fg(Color::Gray),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let faults = &seen.snapshot.faults;
    let lines: Vec<Line> = topology(&seen.snapshot.edges, inner.height as usize)
        .into_iter()
        .map(|row| {
            let color = match row.edge {
                None => Color::Reset,
                Some(e) if e.error_rate_1m > 0.0 => Color::Red,
                Some(e) if e.rate_10s > 0.0 => Color::Green,
                Some(_) => Color::DarkGray,
            };
            let mut spans = vec![
                Span::styled(row.prefix, Style::new().fg(Color::DarkGray)),
                Span::styled(row.name, Style::new().fg(color)),
            ];
            if let Some(e) = row.edge {
                spans.push(Span::styled(
                    format!(" {:.1}/s", e.rate_10s),
                    Style::new().fg(Color::DarkGray),
                ));
                if faults
                    .iter()
                    .any(|f| !f.spent && on_edge(&f.fault.scope, e))
                {
                    spans.push(Span::styled(" ⚡", Style::new().fg(Color::Magenta)));
                }
            }
            if row.above {
                spans.push(Span::styled(" ↑", Style::new().fg(Color::DarkGray)));
            }
            Line::from(spans)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One line of the topology: the tree's drawing, the service, and the edge that leads to it
/// (None for a root).
#[derive(Debug)]
struct TreeRow<'a> {
    prefix: String,
    name: String,
    edge: Option<&'a EdgeSnapshot>,
    /// Its own calls are drawn in an earlier row.
    above: bool,
}

/// At most `max` rows: a densely connected stack has very many paths, and only what fits is
/// drawn.
fn topology(edges: &[EdgeSnapshot], max: usize) -> Vec<TreeRow<'_>> {
    let callee = |e: &EdgeSnapshot| e.callee.clone();
    let mut callers: Vec<String> = edges.iter().map(|e| e.caller.to_string()).collect();
    callers.sort();
    callers.dedup();
    let called: std::collections::HashSet<String> = edges.iter().map(callee).collect();
    // Roots: callers nobody calls; if every caller is called (a cycle), all callers.
    let mut roots: Vec<&String> = callers.iter().filter(|c| !called.contains(*c)).collect();
    if roots.is_empty() {
        roots = callers.iter().collect();
    }
    let mut rows = Vec::new();
    // Services whose calls are drawn: each edge once, with its own rate. A service reached
    // again (from another root, or a cycle) is named with `above` and not followed, so that
    // no rate shows twice as if each caller caused all of it.
    let mut expanded = std::collections::HashSet::new();
    for root in roots {
        if rows.len() >= max {
            break;
        }
        if !expanded.insert(root.clone()) {
            continue;
        }
        rows.push(TreeRow {
            prefix: String::new(),
            name: root.clone(),
            edge: None,
            above: false,
        });
        grow(edges, root, "", &mut expanded, &mut rows, max);
    }
    rows
}

fn grow<'a>(
    edges: &'a [EdgeSnapshot],
    from: &str,
    indent: &str,
    expanded: &mut std::collections::HashSet<String>,
    rows: &mut Vec<TreeRow<'a>>,
    max: usize,
) {
    let mut out: Vec<&EdgeSnapshot> = edges
        .iter()
        .filter(|e| e.caller.to_string() == from)
        .collect();
    out.sort_by(|a, b| a.callee.cmp(&b.callee));
    for (i, e) in out.iter().enumerate() {
        if rows.len() >= max {
            return;
        }
        let last = i + 1 == out.len();
        let first = expanded.insert(e.callee.clone());
        let calls = edges.iter().any(|o| o.caller.to_string() == e.callee);
        rows.push(TreeRow {
            prefix: format!("{indent}{}", if last { "└▶ " } else { "├▶ " }),
            name: e.callee.clone(),
            edge: Some(e),
            above: !first && calls,
        });
        if first {
            let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
            grow(edges, &e.callee, &deeper, expanded, rows, max);
        }
    }
}

fn status_color(record: &Record) -> Color {
    // A fault's doing, not the service's.
    if record.injected.is_some() {
        return Color::Magenta;
    }
    if record.is_error() {
        return Color::Red;
    }
    match &record.kind {
        Kind::Http { status, .. } if *status >= 400 => Color::Yellow,
        Kind::Http { status, .. } if *status >= 300 => Color::Cyan,
        Kind::Http { .. } => Color::Green,
        Kind::Tcp | Kind::Redis(_) | Kind::Postgres(_) => Color::Blue,
    }
}

/// The newest requests at the bottom, as many as fit; with a request picked (`j`/`k`), the
/// ones around it, it highlighted.
fn draw_tail(frame: &mut Frame, app: &App, seen: &Seen, area: Rect) {
    // `/` (or `&`) narrows the tail to the requests that match, highlighted.
    let needle = app.log.search.as_deref().or(app.log.filter.as_deref());
    let shown = crate::ui::inspect::shown_in(app, seen);
    let rows = area.height as usize;
    let picked = app
        .tail_cursor
        .and_then(|id| shown.iter().position(|r| r.id == id));
    // The window ends at the newest, or keeps the picked one in view.
    let end = match picked {
        Some(at) if at + rows / 2 < shown.len() => (at + rows / 2 + 1).max(rows.min(shown.len())),
        _ => shown.len(),
    };
    let start = end.saturating_sub(rows);
    let lines: Vec<Line> = shown[start..end]
        .iter()
        .map(|r| {
            // A request's path is the caller's text: its controls and bidi overrides are shown
            // escaped, never sent to the terminal.
            let text = printable(&r.to_string()).into_owned();
            let mut spans = vec![Span::styled(
                format!("{} #{} ", r.time_of_day(), r.id),
                Style::new().fg(Color::DarkGray),
            )];
            let color = status_color(r);
            spans.extend(content(&text, needle, false).into_iter().map(
                |span| match span.style.bg {
                    Some(_) => span,
                    None => span.fg(color),
                },
            ));
            let line = Line::from(spans);
            match app.tail_cursor == Some(r.id) {
                true => line.style(Style::new().reversed()),
                false => line,
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(caller: &str, callee: &str) -> EdgeSnapshot {
        let wire: crate::control::wire::Edge = serde_json::from_value(serde_json::json!({
            "caller": caller, "callee": callee, "protocol": "http", "requests": 1, "errors": 0,
            "rate_10s": 1.0, "rate_1m": 1.0, "error_rate_1m": 0.0, "p50_ms": null,
            "p95_ms": null, "p99_ms": null, "bytes_in": 0, "bytes_out": 0,
            "status": {"s1xx": 0, "s2xx": 1, "s3xx": 0, "s4xx": 0, "s5xx": 0, "other": 0},
        }))
        .unwrap();
        let traffic = crate::control::wire::Traffic {
            edges: vec![wire],
            ..Default::default()
        };
        crate::traffic::Snapshot::from(traffic).edges.remove(0)
    }

    fn drawn(edges: &[EdgeSnapshot]) -> Vec<String> {
        topology(edges, 100)
            .into_iter()
            .map(|r| format!("{}{}{}", r.prefix, r.name, if r.above { " ↑" } else { "" }))
            .collect()
    }

    #[test]
    fn the_sparkline_covers_the_minute_and_shows_a_trickle_after_a_burst() {
        // A burst of 1000/s in the first seconds, then 1 request every other second.
        let mut history = vec![0u32; 60];
        history[..3].fill(1000);
        for s in (10..60).step_by(2) {
            history[s] = 1;
        }
        let bars = spark_bars(&history, 22);
        assert_eq!(bars.len(), 22);
        assert_eq!(
            bars[0], SPARK_TOP,
            "the burst, a minute ago, is in the first bar"
        );
        assert!(
            bars[4..].iter().all(|&b| b == 1),
            "the trickle shows: {bars:?}"
        );
        // Wide enough: a bar a second; narrower than a minute: never more bars than seconds.
        assert_eq!(spark_bars(&history, 80).len(), 60);
        assert!(spark_bars(&[0; 60], 10).iter().all(|&b| b == 0));
        assert!(spark_bars(&history, 0).is_empty());
    }

    #[test]
    fn the_topology_is_a_tree_from_the_callers_nobody_calls() {
        let edges = [
            edge("worker", "gateway"),
            edge("gateway", "orders"),
            edge("orders", "users"),
            edge("gateway", "users"),
        ];
        assert_eq!(
            drawn(&edges),
            [
                "worker",
                "└▶ gateway",
                "   ├▶ orders",
                "   │  └▶ users",
                "   └▶ users",
            ]
        );
    }

    #[test]
    fn a_service_called_from_two_roots_has_its_calls_drawn_once() {
        let edges = [
            edge("external", "gateway"),
            edge("worker", "gateway"),
            edge("gateway", "users"),
        ];
        let rows = topology(&edges, 100);
        assert_eq!(
            drawn(&edges),
            [
                "external",
                "└▶ gateway",
                "   └▶ users",
                "worker",
                "└▶ gateway ↑",
            ]
        );
        // Each edge, with its rate, once.
        let mut shown: Vec<_> = rows
            .iter()
            .filter_map(|r| r.edge)
            .map(|e| (e.caller.to_string(), e.callee.clone()))
            .collect();
        let all = shown.len();
        shown.sort();
        shown.dedup();
        assert_eq!(shown.len(), all);
    }

    #[test]
    fn a_densely_connected_stack_draws_only_what_fits() {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let edges: Vec<EdgeSnapshot> = names
            .iter()
            .flat_map(|a| {
                names
                    .iter()
                    .filter(move |b| a != *b)
                    .map(move |b| edge(a, b))
            })
            .chain(std::iter::once(edge("external", "s0")))
            .collect();
        // 12! paths from `external` alone: this returns at once, or never.
        assert_eq!(topology(&edges, 40).len(), 40);
    }

    #[test]
    fn a_cycle_is_drawn_once_and_not_followed() {
        let edges = [edge("a", "b"), edge("b", "a")];
        assert_eq!(drawn(&edges), ["a", "└▶ b", "   └▶ a ↑"]);
    }
}
