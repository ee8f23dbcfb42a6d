//! Inside a request, in the dashboard: the traffic pane's cursor over its tail (`j`/`k` there
//! pick a request, `G` lets go and follows the newest) and the inspector Enter opens over it:
//! the exchange as `traffic show` prints it (`capture::text`), scrolled with the log's keys,
//! `c` copying it as a curl command line, Esc closing it.

use super::app::{App, Effect, Mode};
use crate::traffic::Record;
use crate::traffic::capture::text::{self, Part};
use crate::traffic::capture::{Inspected, curl};
use std::sync::Arc;

/// The inspector over one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspector {
    pub id: u64,
    /// The exchange (None until it came, or when it is not kept: `lines` says why).
    pub exchange: Option<Box<Inspected>>,
    pub lines: Vec<(Part, String)>,
    /// The first line shown.
    pub scroll: usize,
}

impl Inspector {
    fn loading(id: u64) -> Inspector {
        Inspector {
            id,
            exchange: None,
            lines: vec![(Part::Note, format!("fetching request #{id}…"))],
            scroll: 0,
        }
    }
}

/// The requests the traffic pane's tail shows, oldest first: those of the selected service
/// (after `a` there), matching the search or filter.
pub fn shown_tail(app: &App) -> Vec<Arc<Record>> {
    match &app.traffic {
        Some(feed) => feed.read(|seen| shown_in(app, seen)),
        None => Vec::new(),
    }
}

/// [`shown_tail`] of the traffic as last seen.
pub fn shown_in(app: &App, seen: &super::traffic::Seen) -> Vec<Arc<Record>> {
    let only = app
        .traffic_selected
        .then(|| app.names[app.selected].clone());
    let involves = |r: &Record| {
        only.as_ref()
            .is_none_or(|name| r.callee == *name || r.caller.to_string() == *name)
    };
    let needle = app.log.search.as_deref().or(app.log.filter.as_deref());
    let lower = needle.map(str::to_lowercase);
    seen.tail
        .iter()
        .filter(|r| involves(r))
        .filter(|r| {
            lower.as_deref().is_none_or(|n| {
                super::app::matches(&crate::config::diag::printable(&r.to_string()), n)
            })
        })
        .cloned()
        .collect()
}

impl App {
    /// Move the tail's cursor `by` requests (negative: older); from none, it starts at the
    /// newest.
    pub(super) fn move_tail_cursor(&mut self, by: isize) {
        let shown = shown_tail(self);
        let Some(last) = shown.len().checked_sub(1) else {
            return;
        };
        let at = self
            .tail_cursor
            .and_then(|id| shown.iter().position(|r| r.id == id))
            .map_or(last as isize, |at| at as isize + by);
        self.tail_cursor = Some(shown[at.clamp(0, last as isize) as usize].id);
    }

    /// Enter in the traffic pane: the inspector over the selected request (the newest when
    /// none is).
    pub(super) fn open_inspector(&mut self) -> Vec<Effect> {
        let id = self
            .tail_cursor
            .or_else(|| shown_tail(self).last().map(|r| r.id));
        match id {
            Some(id) => {
                self.mode = Mode::Inspect(Box::new(Inspector::loading(id)));
                vec![Effect::Inspect(id)]
            }
            None => {
                self.message = Some("no request to look inside yet".into());
                Vec::new()
            }
        }
    }

    /// What came for the inspector: the exchange, or why there is none.
    pub fn inspected(&mut self, id: u64, got: Result<Inspected, String>) {
        let Mode::Inspect(inspector) = &mut self.mode else {
            return;
        };
        if inspector.id != id {
            return;
        }
        match got {
            Ok(exchange) => {
                inspector.lines = text::lines(&exchange);
                inspector.exchange = Some(Box::new(exchange));
            }
            Err(why) => inspector.lines = vec![(Part::Note, why)],
        }
    }

    /// Scroll the inspector by `by` lines (negative: up), within its lines.
    pub(super) fn scroll_inspector(&mut self, by: isize) {
        let page = self.page();
        if let Mode::Inspect(inspector) = &mut self.mode {
            let most = inspector.lines.len().saturating_sub(page);
            let at = (inspector.scroll as isize).saturating_add(by);
            inspector.scroll = at.clamp(0, most as isize) as usize;
        }
    }

    /// `c` in the inspector: the request as a curl command line, on the clipboard.
    pub(super) fn copy_curl(&mut self) -> Vec<Effect> {
        let Mode::Inspect(inspector) = &self.mode else {
            return Vec::new();
        };
        let Some(exchange) = &inspector.exchange else {
            return Vec::new();
        };
        let port = self
            .names
            .find(|n| *n == exchange.callee)
            .and_then(|id| self.views.get(id))
            .and_then(|v| v.port);
        let base = port.map_or_else(
            || format!("http://{}", exchange.callee),
            |p| format!("http://127.0.0.1:{p}"),
        );
        self.message = Some("copied as a curl command line".into());
        vec![Effect::Copy(curl::command(exchange, &base))]
    }
}
