//! The service list: a row per service with its state, health and port, and, when they fit
//! beside the state, its pid and uptime, CPU and memory, and the requests it answers (each
//! optional group dropped, most useful last, before the state is cut).

use super::{color, pane_block, panes};
use crate::engine::{HealthState, ServiceId, ServiceView, State};
use crate::format::uptime;
use crate::ui::app::{App, Focus};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::widgets::{Cell, Clear, Row, StatefulWidget, Table, Widget};
use unicode_width::UnicodeWidthStr;

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

pub(super) fn draw_services(buf: &mut Buffer, app: &App, area: Rect) {
    let columns = Columns::fit(app, area);
    let (header, widths) = columns.header();
    let rows = app.views.iter().map(|(id, v)| columns.row(id, v));
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
        .with_selected(Some(app.selected_row()));
    StatefulWidget::render(table, area, buf, &mut state);
}

/// A service's state as the list shows it: paused rebuilds marked.
fn shown_detail(v: &ServiceView) -> String {
    if v.auto_rebuild == Some(false) {
        format!("{} ⏸", v.detail)
    } else {
        v.detail.clone()
    }
}

/// The columns the list shows, and how wide.
struct Columns {
    name_width: u16,
    state_width: u16,
    /// PID and UPTIME.
    ids: bool,
    /// CPU and MEM.
    usage: bool,
    /// RPS and ERR: each called service's rates, when some service is proxied and they fit.
    rates: Option<Vec<(String, f64, f64)>>,
}

impl Columns {
    /// The columns that fit in `area`.
    fn fit(app: &App, area: Rect) -> Columns {
        let name_width = app
            .names
            .values()
            .map(|n| n.width())
            .max()
            .unwrap_or(4)
            .clamp(4, 24) as u16;
        let state_need = app
            .views
            .values()
            .map(|v| shown_detail(v).width())
            .max()
            .unwrap_or(5)
            .clamp(8, 60) as u16;
        // Requests per second the service answered (10 s) and the share that failed (1 min).
        let rates = traffic_rates(app);
        // The columns of `ps`, in its order, then CPU and memory, then traffic: each optional
        // group shown when it fits beside a state column of at least `STATE_MIN` (a long state
        // is cut with `…` rather than pushing columns out), most useful first.
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
        Columns {
            name_width,
            state_width,
            ids,
            usage,
            rates,
        }
    }

    /// The header line, and each column's width.
    fn header(&self) -> (Vec<&'static str>, Vec<Constraint>) {
        let (ids, usage) = (self.ids, self.usage);
        let mut header = vec!["", "NAME", "STATE", "HEALTH"];
        let mut widths = vec![
            Constraint::Length(1),
            Constraint::Length(self.name_width),
            Constraint::Length(self.state_width),
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
        if self.rates.is_some() {
            header.extend(["RPS", "ERR"]);
            widths.extend([Constraint::Length(6), Constraint::Length(5)]);
        }
        (header, widths)
    }

    /// The row of service `id`.
    fn row(&self, id: ServiceId, v: &ServiceView) -> Row<'static> {
        let (ids, usage) = (self.ids, self.usage);
        let (g, state_color) = glyph(v);
        let mut cells = vec![
            Cell::from(g).fg(state_color),
            Cell::from(v.name.clone()).fg(color(id)),
            Cell::from(
                crate::format::ellipsize(&shown_detail(v), self.state_width.into()).into_owned(),
            )
            .fg(state_color),
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
            cells.push(Cell::from(crate::format::memory(v.mem_bytes)));
        }
        if let Some(rates) = &self.rates {
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
    }
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
