//! The log pane: the selected service's lines (or all services', merged), picked under the
//! buffer's lock and made into text after it is released; a line's colours, or its search
//! matches highlighted; and, while the user types into a service, its own terminal.

use super::{color, pane_block};
use crate::logs::{LogLine, Stream, strip_sgr};
use crate::ui::app::{App, Focus, Mode, Shown, matches};
use ansi_to_tui::IntoText;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use std::sync::Arc;
use unicode_width::UnicodeWidthStr;

/// Spans of a line's content: its colours, or, when it matches the search, plain text with the
/// matches highlighted (those of the current match, where `n`/`N` went, in a colour of their
/// own, so that it can be told from the others).
pub(in crate::ui) fn content(
    text: &str,
    search: Option<&str>,
    current: bool,
) -> Vec<Span<'static>> {
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
        let stamp = crate::format::stamp(line.time);
        spans.push(Span::styled(
            format!("{} ", &stamp[11..23]),
            Style::new().fg(Color::DarkGray),
        ));
    }
    if app.all {
        let name = &app.names[line.service];
        let width = app.names.values().map(|n| n.width()).max().unwrap_or(0);
        spans.push(Span::styled(
            format!("{name:<width$} │ "),
            Style::new().fg(color(line.service)),
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

pub(super) fn draw_logs(frame: &mut Frame, app: &App, area: Rect) {
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
