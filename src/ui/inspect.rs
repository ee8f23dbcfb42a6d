//! Inside a request, in the dashboard: the traffic pane's cursor over its tail (`j`/`k` there
//! pick a request, `G` lets go and follows the newest) and the inspector Enter opens over it:
//! the exchange as `traffic show` prints it (`capture::text`), scrolled with the log's keys,
//! `c` copying it as a curl command line, `r` sending it again (its answer shown above it,
//! compared with the original's, as `traffic replay` prints it), Esc closing it.

use super::app::{App, Effect, Mode};
use crate::traffic::capture::text::{self, Part};
use crate::traffic::capture::{Inspected, curl};
use crate::traffic::replay::{Replayed, compare};
use crate::traffic::{Kind, Record};
use std::sync::Arc;

/// The inspector over one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspector {
    pub id: u64,
    /// The exchange (None until it came, or when it is not kept: `lines` says why).
    pub exchange: Option<Box<Inspected>>,
    pub lines: Vec<(Part, String)>,
    /// The first line shown.
    pub scroll: usize,
    /// A replay of it is on its way (`r`).
    pub replaying: bool,
}

impl Inspector {
    fn loading(id: u64) -> Inspector {
        Inspector {
            id,
            exchange: None,
            lines: vec![(Part::Note, format!("fetching request #{id}…"))],
            scroll: 0,
            replaying: false,
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
    let on_edge = |r: &Record| {
        app.picked_edge
            .as_ref()
            .is_none_or(|(caller, callee)| r.callee == *callee && r.caller.to_string() == *caller)
    };
    let needle = app.log.search.as_deref().or(app.log.filter.as_deref());
    let lower = needle.map(str::to_lowercase);
    seen.tail
        .iter()
        .filter(|r| involves(r) && on_edge(r))
        .filter(|r| lower.as_deref().is_none_or(|n| wanted(r, n)))
        .cloned()
        .collect()
}

/// Does a request match what the tail is filtered by (`/` or `&`, lower-case)? Each word must
/// match: `5xx` (or `2xx` …) a status class, `errors` what `traffic --errors` shows, `a->b`
/// an edge (`->b` anyone calling b, `a->` what a calls); any other word, the request's line as
/// the tail shows it (method, path, status, command, query).
pub fn wanted(record: &Record, needle: &str) -> bool {
    let line = crate::config::diag::printable(&record.to_string()).to_lowercase();
    needle.split_whitespace().all(|word| {
        let class = word.strip_suffix("xx").and_then(|n| n.parse::<u16>().ok());
        if let Some(class @ 1..=5) = class {
            return matches!(&record.kind, Kind::Http { status, .. } if status / 100 == class);
        }
        if word == "errors" {
            return record.is_error();
        }
        if let Some((caller, callee)) = word.split_once("->") {
            return (caller.is_empty() || record.caller.to_string().eq_ignore_ascii_case(caller))
                && (callee.is_empty() || record.callee.eq_ignore_ascii_case(callee));
        }
        line.contains(word)
    })
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

    /// `e`/`E` in the traffic pane: pick the edge `by` rows down the table (from none: the first
    /// or the last); the tail then shows only its requests.
    pub(super) fn pick_edge(&mut self, by: isize) {
        let Some(feed) = &self.traffic else {
            return;
        };
        let edges: Vec<(String, String)> = feed.read(|seen| {
            seen.snapshot
                .edges
                .iter()
                .map(|e| (e.caller.to_string(), e.callee.clone()))
                .collect()
        });
        let Some(last) = edges.len().checked_sub(1) else {
            self.message = Some("no edge to pick yet".into());
            return;
        };
        let at = match self
            .picked_edge
            .as_ref()
            .and_then(|p| edges.iter().position(|e| e == p))
        {
            Some(at) => (at as isize + by).clamp(0, last as isize) as usize,
            None if by < 0 => last,
            None => 0,
        };
        self.picked_edge = Some(edges[at].clone());
        self.tail_cursor = None;
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

    /// `r` in the inspector: send the request again (once at a time).
    pub(super) fn replay(&mut self) -> Vec<Effect> {
        let Mode::Inspect(inspector) = &mut self.mode else {
            return Vec::new();
        };
        if inspector.exchange.is_none() || inspector.replaying {
            return Vec::new();
        }
        inspector.replaying = true;
        self.message = Some(format!("replaying #{}…", inspector.id));
        vec![Effect::Replay(inspector.id)]
    }

    /// The answer to a replay: shown above the request, beside the original's (its status,
    /// fields and body compared, or a decoded command's outcome and answer).
    pub fn replayed(&mut self, id: u64, got: Result<Replayed, String>) {
        let Mode::Inspect(inspector) = &mut self.mode else {
            return;
        };
        let Some(original) = inspector.exchange.as_deref().filter(|_| inspector.id == id) else {
            return;
        };
        inspector.replaying = false;
        let compared = match got {
            Ok(replayed) => compare::compared(original, &replayed),
            Err(why) => vec![format!("replay of #{id}: {why}")],
        };
        let mut lines = vec![(Part::Title, format!("replayed #{id}"))];
        lines.extend(compared.into_iter().enumerate().map(|(i, line)| {
            let part = match line.get(..2) {
                _ if i == 0 => Part::Start,
                Some("- ") => Part::Was,
                Some("+ ") => Part::Now,
                _ => Part::Body,
            };
            (part, line)
        }));
        lines.push((Part::Blank, String::new()));
        lines.extend(text::lines(original));
        inspector.lines = lines;
        inspector.scroll = 0;
        self.message = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Caller;
    use crate::traffic::stats::Decoded;

    fn record(caller: Caller, callee: &str, kind: Kind) -> Record {
        Record {
            id: 1,
            time_ms: 0,
            caller,
            callee: callee.into(),
            kind,
            latency_us: 1000,
            bytes_in: 0,
            bytes_out: 0,
            error: None,
            injected: None,
        }
    }

    #[test]
    fn the_tail_is_filtered_by_class_errors_edge_and_words_all_at_once() {
        let web = || Caller::Service("web".into());
        let ok = record(web(), "api", Kind::http("GET", "/users/1", 200));
        let missing = record(Caller::External, "api", Kind::http("GET", "/nope", 404));
        let failed = record(web(), "users", Kind::http("POST", "/users", 503));
        let redis = Kind::Redis(Decoded {
            command: "GET user:42".into(),
            group: "GET".into(),
            outcome: "error".into(),
            failure: Some("ERR wrong type".into()),
        });
        let db = record(Caller::Service("api".into()), "cache", redis);
        let all = [&ok, &missing, &failed, &db];
        let shown = |needle: &str| -> Vec<u64> {
            all.iter()
                .enumerate()
                .filter(|(_, r)| wanted(r, needle))
                .map(|(i, _)| i as u64)
                .collect()
        };
        assert_eq!(shown("5xx"), [2]);
        assert_eq!(shown("4xx"), [1]);
        assert_eq!(shown("2xx"), [0]);
        assert_eq!(shown("errors"), [2, 3]);
        assert_eq!(shown("web->"), [0, 2]);
        assert_eq!(shown("->api"), [0, 1]);
        assert_eq!(shown("external->api"), [1]);
        assert_eq!(shown("post"), [2]);
        assert_eq!(shown("web-> 2xx /users"), [0]);
        assert_eq!(shown("get user:42"), [3]);
        assert_eq!(
            shown("6xx"),
            Vec::<u64>::new(),
            "not a class: a word, matching none"
        );
    }
}
