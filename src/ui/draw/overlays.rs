//! The overlays drawn over the dashboard, each a popup in the middle: the keys (`?`), the
//! questions before quitting or detaching, and what is still stopping.

use crate::ui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

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

pub(super) fn draw_help(frame: &mut Frame) {
    let keys = crate::ui::keymap::KEYS;
    let line = |(k, what): (&str, &str)| {
        Line::from(vec![
            Span::styled(format!(" {k:<16}"), Style::new().fg(Color::Cyan).bold()),
            Span::raw(what.to_string()),
        ])
    };
    let mut lines: Vec<Line> = keys.iter().filter_map(|b| b.help).map(line).collect();
    let inside: Vec<String> = keys
        .iter()
        .filter_map(|b| b.inspect_footer)
        .map(|(k, what)| format!("{k} {what}"))
        .collect();
    lines.push(line(("in a request", &inside.join(" · "))));
    popup(frame, " keys ", lines, 84);
}

pub(super) fn draw_confirm(frame: &mut Frame, app: &App) {
    let running = app.views.values().filter(|v| v.pid.is_some()).count();
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

pub(super) fn draw_confirm_detach(frame: &mut Frame) {
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

pub(super) fn draw_shutdown(frame: &mut Frame, app: &App) {
    let mut lines: Vec<Line> = app
        .views
        .values()
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

/// The inspector over a request: nearly the whole screen, its lines coloured by what they show.
pub(super) fn draw_inspector(frame: &mut Frame, inspector: &crate::ui::inspect::Inspector) {
    use crate::traffic::capture::text::Part;
    let area = frame.area();
    let rect = Rect::new(
        area.x + 2,
        area.y + 1,
        area.width.saturating_sub(4).max(10),
        area.height.saturating_sub(3).max(3),
    );
    let rows = rect.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = inspector
        .lines
        .iter()
        .skip(inspector.scroll)
        .take(rows)
        .map(|(part, text)| match part {
            Part::Title => Line::styled(text.clone(), Style::new().bold()),
            Part::Start => Line::styled(text.clone(), Style::new().fg(Color::Cyan).bold()),
            Part::Field => match text.split_once(": ") {
                Some((name, value)) => Line::from(vec![
                    Span::styled(format!("{name}: "), Style::new().fg(Color::Blue)),
                    Span::raw(value.to_string()),
                ]),
                None => Line::raw(text.clone()),
            },
            Part::Body => Line::styled(text.clone(), Style::new().fg(Color::Green)),
            Part::Json => Line::from(json_spans(text)),
            Part::Was => Line::styled(text.clone(), Style::new().fg(Color::Red)),
            Part::Now => Line::styled(text.clone(), Style::new().fg(Color::LightGreen)),
            Part::Note => Line::styled(text.clone(), Style::new().fg(Color::DarkGray)),
            Part::Blank => Line::raw(""),
        })
        .collect();
    frame.render_widget(Clear, rect);
    let more = inspector
        .lines
        .len()
        .saturating_sub(inspector.scroll + rows);
    let title = format!(" request #{} ", inspector.id);
    let mut block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, Style::new().bold()));
    if more > 0 {
        block = block.title_bottom(Line::from(format!(" {more} more lines ")).right_aligned());
    }
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

/// A line of pretty-printed JSON coloured by token: keys blue, strings green, numbers cyan,
/// `true`/`false`/`null` magenta, punctuation as it is.
fn json_spans(line: &str) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let (len, color) = match c {
            '"' => {
                let len = string_len(rest);
                let key = rest[len..].trim_start().starts_with(':');
                (len, Some(if key { Color::Blue } else { Color::Green }))
            }
            '-' | '0'..='9' => {
                let len = rest
                    .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                    .unwrap_or(rest.len());
                (len, Some(Color::Cyan))
            }
            't' | 'f' | 'n' => {
                let len = rest
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(rest.len());
                (len, Some(Color::Magenta))
            }
            _ => (c.len_utf8(), None),
        };
        let (token, after) = rest.split_at(len);
        spans.push(match color {
            Some(color) => Span::styled(token.to_string(), Style::new().fg(color)),
            None => Span::raw(token.to_string()),
        });
        rest = after;
    }
    spans
}

/// The length of the JSON string `text` starts with, its quotes included (all of `text` when
/// it does not end).
fn string_len(text: &str) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return i + 1,
            _ => escaped = false,
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_coloured_by_token() {
        let spans = json_spans(r#"  "na\"me": "ada \"x\"", "n": -1.5e3, "ok": true, "z": null"#);
        let colored = |color| {
            spans
                .iter()
                .filter(|s| s.style.fg == Some(color))
                .map(|s| s.content.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            colored(Color::Blue),
            [r#""na\"me""#, r#""n""#, r#""ok""#, r#""z""#]
        );
        assert_eq!(colored(Color::Green), [r#""ada \"x\"""#]);
        assert_eq!(colored(Color::Cyan), ["-1.5e3"]);
        assert_eq!(colored(Color::Magenta), ["true", "null"]);
        let whole: String = spans.iter().map(|s| s.content.to_string()).collect();
        assert_eq!(
            whole,
            r#"  "na\"me": "ada \"x\"", "n": -1.5e3, "ok": true, "z": null"#
        );
    }
}
