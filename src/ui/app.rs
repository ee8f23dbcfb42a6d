//! The dashboard's state and how actions change it. No terminal, process or socket code: effects
//! on the engine come back as `Effect`s for the caller to carry out.

use super::action::Action;
use super::source::Logs;
use crate::engine::{Command, ServiceId, ServiceView, Services};
use crate::logs::{LogLine, Ring, Source, strip_sgr};
use ratatui::layout::Rect;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Services,
    Logs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a search (`/`).
    Search(String),
    /// Typing a filter (`&`): only matching lines are shown.
    Filter(String),
    /// Typing a fault to set (`F`), as `devstack fault add` takes its words.
    Fault(String),
    Help,
    ConfirmQuit,
    /// `q` on an attached dashboard: detach (the stack keeps running) or stop the stack.
    ConfirmDetach,
    /// Stopping the stack; the view lists what is still stopping.
    ShuttingDown,
    /// Keys go to the selected service's terminal (`i`; `Ctrl-a` leaves).
    Input,
    /// Inside a request (Enter in the traffic pane).
    Inspect(Box<super::inspect::Inspector>),
}

/// What an action asks of the world outside the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Engine(Command),
    /// Put this text on the clipboard.
    Copy(String),
    /// Typing into a service starts: its terminal, at this size (rows, columns).
    OpenScreen(ServiceId, u16, u16),
    /// Typing into a service ends.
    CloseScreen(ServiceId),
    /// Leave the dashboard; the stack keeps running (an attached dashboard).
    Detach,
    /// Fetch this request for the inspector (`App::inspected` takes it).
    Inspect(u64),
    /// Send this request again (`App::replayed` takes the answer).
    Replay(u64),
    /// Set the fault these words say (`devstack fault add`'s); what came of it is said.
    AddFault(String),
}

/// How the log pane looks at its buffer.
#[derive(Debug, Clone)]
pub struct LogState {
    pub follow: bool,
    /// Lines between the bottom of the pane and the newest line, when not following.
    pub offset: usize,
    pub wrap: bool,
    pub timestamps: bool,
    pub search: Option<String>,
    pub filter: Option<String>,
    /// The buffer's line count when last drawn: new lines while paused push the offset up so
    /// that the view stays where it is.
    pub seen_total: u64,
    /// The match `n`/`N` move from (an index among the shown lines).
    pub current_match: Option<usize>,
}

impl Default for LogState {
    fn default() -> Self {
        LogState {
            follow: true,
            offset: 0,
            wrap: false,
            timestamps: false,
            search: None,
            filter: None,
            seen_total: 0,
            current_match: None,
        }
    }
}

pub struct App {
    pub stack: String,
    pub names: Services<String>,
    pub views: Services<ServiceView>,
    pub logs: Logs,
    /// The stack runs elsewhere: leaving can leave it running (`q` asks; Ctrl-C detaches).
    pub attached: bool,
    /// The service selected: on the list's row of its place (the list shows the services in
    /// file order).
    pub selected: ServiceId,
    pub focus: Focus,
    pub mode: Mode,
    /// The merged log of all services instead of the selected one.
    pub all: bool,
    pub zoom: bool,
    pub log: LogState,
    /// A one-line note in the footer (copied, not available …).
    pub message: Option<String>,
    /// Where the panes were drawn, for mouse clicks and page sizes.
    pub list_area: Rect,
    pub log_area: Rect,
    /// The first service row the list shows (it scrolls to keep the selection visible).
    pub list_offset: usize,
    /// The stack's traffic, when a service is proxied (set by `ui::run`).
    pub traffic: Option<super::traffic::Feed>,
    /// The traffic pane replaces the log pane (`t`).
    pub show_traffic: bool,
    /// The traffic pane's tail shows only the selected service's requests (`a` there).
    pub traffic_selected: bool,
    /// The request picked in the traffic pane's tail (by id); None: following the newest.
    pub tail_cursor: Option<u64>,
    /// The edge picked in the traffic pane's table (`e`), as caller and callee: the tail shows
    /// its requests, the table its commands or queries by group.
    pub picked_edge: Option<(String, String)>,
}

/// Does `text` contain `needle`, ignoring case? (`needle` is already lower-case.)
pub fn matches(text: &str, needle: &str) -> bool {
    strip_sgr(text).to_lowercase().contains(needle)
}

/// The lines the log pane shows: the whole buffer, or the ones matching the filter.
pub struct Shown<'a> {
    ring: &'a Ring,
    filtered: Option<Vec<usize>>,
}

impl<'a> Shown<'a> {
    pub fn new(ring: &'a Ring, filter: Option<&str>) -> Self {
        let filtered = filter.map(|f| {
            let f = f.to_lowercase();
            ring.lines()
                .iter()
                .enumerate()
                .filter(|(_, l)| matches(&l.text, &f))
                .map(|(i, _)| i)
                .collect()
        });
        Shown { ring, filtered }
    }

    pub fn len(&self) -> usize {
        self.filtered
            .as_ref()
            .map_or(self.ring.lines().len(), Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> &'a Arc<LogLine> {
        let at = self.filtered.as_ref().map_or(i, |f| f[i]);
        &self.ring.lines()[at]
    }
}

impl App {
    pub fn new(stack: String, names: Services<String>, logs: impl Into<Logs>) -> Self {
        App {
            stack,
            names,
            views: Services::default(),
            logs: logs.into(),
            attached: false,
            selected: ServiceId(0),
            focus: Focus::Services,
            mode: Mode::Normal,
            all: false,
            zoom: false,
            log: LogState::default(),
            message: None,
            list_area: Rect::default(),
            log_area: Rect::default(),
            list_offset: 0,
            traffic: None,
            show_traffic: false,
            traffic_selected: false,
            tail_cursor: None,
            picked_edge: None,
        }
    }

    pub fn source(&self) -> Source {
        if self.all {
            Source::All
        } else {
            Source::Service(self.selected)
        }
    }

    pub(super) fn page(&self) -> usize {
        (self.log_area.height.saturating_sub(2) as usize).max(1)
    }

    /// Show the log from the newest line again.
    fn reset_log(&mut self) {
        self.log.follow = true;
        self.log.offset = 0;
        self.log.current_match = None;
    }

    /// The list's row of the selected service (the list shows the services in file order).
    pub fn selected_row(&self) -> usize {
        self.selected.index()
    }

    /// Select the service on the list's `row`, if there is one.
    fn select_row(&mut self, row: usize) {
        let id = ServiceId(row);
        if self.names.get(id).is_some() && id != self.selected {
            self.selected = id;
            if !self.all {
                self.reset_log();
            }
        }
    }

    fn scroll_up(&mut self, n: usize) {
        let len = self.logs.read(self.source(), |ring| {
            Shown::new(ring, self.log.filter.as_deref()).len()
        });
        let max = len.saturating_sub(self.page());
        self.log.offset = (self.log.offset + n).min(max);
        self.log.follow = false;
        self.log.seen_total = self.logs.read(self.source(), Ring::total);
    }

    fn scroll_down(&mut self, n: usize) {
        self.log.offset = self.log.offset.saturating_sub(n);
        if self.log.offset == 0 {
            self.log.follow = true;
        }
    }

    /// Move to the closest match older (`older`) or newer than the current one (the newest
    /// match when there is none yet), scrolling only when it is off the pane.
    fn jump_to_match(&mut self, older: bool) {
        let Some(needle) = self.log.search.clone().map(|s| s.to_lowercase()) else {
            self.message = Some("no search: press / to search".into());
            return;
        };
        let page = self.page();
        let current = self.log.current_match;
        let found = self.logs.read(self.source(), |ring| {
            let shown = Shown::new(ring, self.log.filter.as_deref());
            let len = shown.len();
            let hit = |i: &usize| matches(&shown.get(*i).text, &needle);
            let at = match (current.filter(|&c| c < len), older) {
                (None, _) => (0..len).rev().find(hit),
                (Some(c), true) => (0..c).rev().find(hit),
                (Some(c), false) => (c + 1..len).find(hit),
            }?;
            // Lines from the bottom to the match; scroll only if it is off the pane.
            let from_bottom = len - 1 - at;
            let offset = if from_bottom >= self.log.offset && from_bottom < self.log.offset + page {
                self.log.offset
            } else {
                from_bottom.saturating_sub(page / 2)
            };
            Some((at, offset, ring.total()))
        });
        match found {
            Some((at, offset, total)) => {
                self.log.current_match = Some(at);
                self.log.offset = offset;
                self.log.follow = offset == 0 && self.log.follow;
                self.log.seen_total = total;
            }
            None => {
                let search = self.log.search.as_deref().unwrap_or("");
                self.message = Some(format!(
                    "no {} match for \"{search}\"",
                    if older { "older" } else { "newer" }
                ));
            }
        }
    }

    /// Apply an action; what it asks of the engine or the terminal comes back as effects.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        self.message = None;
        if let Some(effects) = self.on_traffic(&action) {
            return effects;
        }
        match action {
            Action::Restart
            | Action::Rebuild
            | Action::Kill
            | Action::StartStop
            | Action::RestartAll
            | Action::EnterInput
            | Action::LeaveInput
            | Action::Type(..)
            | Action::ToggleAuto
            | Action::ToggleEnd => return self.on_service(action),
            Action::AskQuit
            | Action::Quit
            | Action::Interrupt
            | Action::Detach
            | Action::ForceQuit => return self.on_quit(action),
            Action::SearchStart
            | Action::FilterStart
            | Action::FaultStart
            | Action::InputChar(..)
            | Action::InputBackspace
            | Action::InputSubmit
            | Action::InputCancel
            | Action::NextMatch
            | Action::PrevMatch
            | Action::ClearSearch
            | Action::Copy => return self.on_edit(action),
            Action::SelectNext
            | Action::SelectPrev
            | Action::SelectFirst
            | Action::SelectLast
            | Action::SelectRow(_) => self.on_select(action),
            Action::ScrollUp(_)
            | Action::ScrollDown(_)
            | Action::PageUp
            | Action::PageDown
            | Action::ScrollTop
            | Action::ScrollBottom => self.scroll(action),
            Action::Open | Action::ToggleFocus => {
                self.focus = match self.focus {
                    Focus::Services => Focus::Logs,
                    Focus::Logs => Focus::Services,
                }
            }
            Action::ToggleAll if self.show_traffic => {
                self.traffic_selected = !self.traffic_selected;
            }
            Action::ToggleAll => {
                self.all = !self.all;
                self.reset_log();
            }
            Action::ToggleFollow => {
                if self.log.follow {
                    self.log.follow = false;
                    self.log.seen_total = self.logs.read(self.source(), Ring::total);
                } else {
                    self.reset_log();
                }
            }
            Action::ToggleWrap => self.log.wrap = !self.log.wrap,
            Action::ToggleTimestamps => self.log.timestamps = !self.log.timestamps,
            Action::Zoom => self.zoom = !self.zoom,
            Action::Help => self.mode = Mode::Help,
            Action::CloseOverlay => self.mode = Mode::Normal,
            // Only the inspector copies or replays a request, only the traffic pane picks an
            // edge.
            Action::CopyCurl | Action::Replay | Action::PickEdge(_) => {}
            Action::Traffic => match self.traffic {
                Some(_) => self.show_traffic = !self.show_traffic,
                None => {
                    self.message =
                        Some("no traffic to show: no service has a proxied `port`".into())
                }
            },
        }
        Vec::new()
    }

    /// Picking a service in the list.
    fn on_select(&mut self, action: Action) {
        let last = self.names.len().saturating_sub(1);
        match action {
            Action::SelectNext => self.select_row((self.selected_row() + 1).min(last)),
            Action::SelectPrev => self.select_row(self.selected_row().saturating_sub(1)),
            Action::SelectFirst => self.select_row(0),
            Action::SelectLast => self.select_row(last),
            Action::SelectRow(row) => {
                // Rows start under the border and the header line.
                let first = self.list_area.y + 2;
                if row >= first {
                    self.select_row((row - first) as usize + self.list_offset);
                }
                self.focus = Focus::Services;
            }
            _ => unreachable!("not a selecting action: {action:?}"),
        }
    }

    /// Scrolling the log pane.
    fn scroll(&mut self, action: Action) {
        match action {
            Action::ScrollUp(n) => self.scroll_up(n),
            Action::ScrollDown(n) => self.scroll_down(n),
            Action::PageUp => self.scroll_up(self.page() / 2),
            Action::PageDown => self.scroll_down(self.page() / 2),
            Action::ScrollTop => self.scroll_up(usize::MAX / 2),
            Action::ScrollBottom => self.reset_log(),
            _ => unreachable!("not a scrolling action: {action:?}"),
        }
    }

    /// What the inspector and the traffic pane's tail take, when they are shown (None: the
    /// action is the dashboard's as usual).
    fn on_traffic(&mut self, action: &Action) -> Option<Vec<Effect>> {
        if let Mode::Inspect(_) = self.mode {
            return Some(self.in_inspector(action.clone()));
        }
        if self.show_traffic && self.focus == Focus::Logs && self.on_tail(action) {
            return Some(match action {
                Action::Open => self.open_inspector(),
                _ => Vec::new(),
            });
        }
        None
    }

    /// The traffic pane's tail takes the moving keys (a request is picked) and Enter (it is
    /// opened); whether it took this one.
    fn on_tail(&mut self, action: &Action) -> bool {
        let page = self.page() as isize / 2;
        match action {
            Action::ScrollUp(n) => self.move_tail_cursor(-(*n as isize)),
            Action::ScrollDown(n) => self.move_tail_cursor(*n as isize),
            Action::PageUp => self.move_tail_cursor(-page),
            Action::PageDown => self.move_tail_cursor(page),
            Action::ScrollTop => self.move_tail_cursor(isize::MIN / 2),
            Action::ScrollBottom => self.tail_cursor = None,
            Action::PickEdge(by) => self.pick_edge(*by),
            Action::Open => {}
            Action::ClearSearch => {
                // Esc lets go of the picked request and edge, then clears as in the log.
                self.tail_cursor = None;
                self.picked_edge = None;
                return false;
            }
            _ => return false,
        }
        true
    }

    /// Keys while the inspector is open: scrolling it, copying it, closing it.
    fn in_inspector(&mut self, action: Action) -> Vec<Effect> {
        let page = self.page() as isize;
        match action {
            Action::ScrollUp(n) => self.scroll_inspector(-(n as isize)),
            Action::ScrollDown(n) => self.scroll_inspector(n as isize),
            Action::PageUp => self.scroll_inspector(-page / 2),
            Action::PageDown => self.scroll_inspector(page / 2),
            Action::ScrollTop => self.scroll_inspector(isize::MIN / 2),
            Action::ScrollBottom => self.scroll_inspector(isize::MAX / 2),
            Action::CopyCurl => return self.copy_curl(),
            Action::Replay => return self.replay(),
            Action::CloseOverlay => self.mode = Mode::Normal,
            Action::Interrupt | Action::ForceQuit => {
                self.mode = Mode::Normal;
                return self.update(action);
            }
            _ => {}
        }
        Vec::new()
    }

    /// An action on the selected service (or all of them).
    fn on_service(&mut self, action: Action) -> Vec<Effect> {
        let id = self.selected;
        let engine = |cmd| vec![Effect::Engine(cmd)];
        match action {
            Action::Restart => return engine(Command::Restart { service: id }),
            Action::Rebuild => return engine(Command::Rebuild { service: id }),
            Action::Kill => return engine(Command::Kill { service: id }),
            Action::StartStop => {
                let running = self
                    .views
                    .get(id)
                    .is_some_and(|v| v.pid.is_some() || v.wanted);
                return engine(if running {
                    Command::Stop { service: id }
                } else {
                    Command::Start { service: id }
                });
            }
            Action::RestartAll => return engine(Command::RestartAll),
            Action::EnterInput => {
                if self.all || self.views.get(id).is_none_or(|v| !v.state.is_up()) {
                    self.message = Some("select a running service to type into it".into());
                    return Vec::new();
                }
                let rows = self.log_area.height.saturating_sub(2).max(1);
                let cols = self.log_area.width.saturating_sub(2).max(1);
                self.mode = Mode::Input;
                self.focus = Focus::Logs;
                self.reset_log();
                return vec![Effect::OpenScreen(id, rows, cols)];
            }
            Action::LeaveInput => {
                self.mode = Mode::Normal;
                return vec![Effect::CloseScreen(id)];
            }
            Action::Type(bytes) => return engine(Command::Input { service: id, bytes }),
            Action::ToggleAuto => match self.views.get(id).and_then(|v| v.auto_rebuild) {
                Some(auto) => {
                    return engine(Command::SetAuto {
                        service: id,
                        auto: !auto,
                    });
                }
                None => self.message = Some("this service has no `watch` globs".into()),
            },
            // Whether it has the other end is the stack's to say (in the service's log).
            Action::ToggleEnd => {
                let remote = self.views.get(id).is_none_or(|v| v.remote.is_none());
                return engine(Command::Use {
                    service: id,
                    remote,
                });
            }
            _ => unreachable!("not a service action: {action:?}"),
        }
        Vec::new()
    }

    /// Leaving: asking, stopping the stack, detaching.
    fn on_quit(&mut self, action: Action) -> Vec<Effect> {
        let engine = |cmd| vec![Effect::Engine(cmd)];
        match action {
            Action::AskQuit => {
                self.mode = if self.attached {
                    Mode::ConfirmDetach
                } else {
                    Mode::ConfirmQuit
                }
            }
            Action::Quit => {
                if self.mode != Mode::ShuttingDown {
                    self.mode = Mode::ShuttingDown;
                    return engine(Command::Shutdown);
                }
            }
            Action::Interrupt if self.attached => return vec![Effect::Detach],
            Action::Interrupt => return self.update(Action::Quit),
            Action::Detach => return vec![Effect::Detach],
            // An attached dashboard can't kill the stack: it leaves it stopping.
            Action::ForceQuit if self.attached => return vec![Effect::Detach],
            Action::ForceQuit => return engine(Command::ForceShutdown),
            _ => unreachable!("not a quitting action: {action:?}"),
        }
        Vec::new()
    }

    /// Searching, filtering and copying the log pane.
    fn on_edit(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::SearchStart => self.mode = Mode::Search(String::new()),
            Action::FilterStart => {
                self.mode = Mode::Filter(self.log.filter.clone().unwrap_or_default())
            }
            Action::FaultStart => {
                let scope = match &self.picked_edge {
                    Some((caller, callee)) => format!("{caller}->{callee} "),
                    None => format!("{} ", self.names[self.selected]),
                };
                self.mode = Mode::Fault(scope);
            }
            Action::InputChar(c) => {
                if let Mode::Search(text) | Mode::Filter(text) | Mode::Fault(text) = &mut self.mode
                {
                    text.push(c);
                }
            }
            Action::InputBackspace => {
                if let Mode::Search(text) | Mode::Filter(text) | Mode::Fault(text) = &mut self.mode
                {
                    text.pop();
                }
            }
            Action::InputSubmit => match std::mem::replace(&mut self.mode, Mode::Normal) {
                Mode::Search(text) => {
                    self.log.search = (!text.is_empty()).then_some(text);
                    self.log.current_match = None;
                    if self.log.search.is_some() {
                        self.jump_to_match(true);
                    }
                }
                Mode::Filter(text) => {
                    self.log.filter = (!text.is_empty()).then_some(text);
                    self.reset_log();
                }
                Mode::Fault(text) => return vec![Effect::AddFault(text)],
                other => self.mode = other,
            },
            Action::InputCancel => self.mode = Mode::Normal,
            Action::NextMatch => self.jump_to_match(true),
            Action::PrevMatch => self.jump_to_match(false),
            Action::ClearSearch => {
                self.log.search = None;
                self.log.current_match = None;
                self.log.filter = None;
            }
            Action::Copy => {
                let text = self.visible_text();
                self.message = Some(format!(
                    "copied {}",
                    crate::format::plural(text.lines().count(), "line")
                ));
                return vec![Effect::Copy(text)];
            }
            _ => unreachable!("not a search action: {action:?}"),
        }
        Vec::new()
    }

    /// The lines the log pane shows now, as plain text.
    pub fn visible_text(&self) -> String {
        let page = self.page();
        self.logs.read(self.source(), |ring| {
            let shown = Shown::new(ring, self.log.filter.as_deref());
            let end = shown.len().saturating_sub(self.log.offset);
            let start = end.saturating_sub(page);
            (start..end)
                .map(|i| format!("{}\n", strip_sgr(&shown.get(i).text)))
                .collect()
        })
    }

    /// Before drawing: keep a paused view where it is while new lines arrive below it.
    /// Before each frame: where the panes go (for the mouse and page sizes), how far the list
    /// scrolls, and what arrived in the log; drawing then only reads the app.
    pub fn arrange(&mut self, area: Rect) {
        let panes = super::draw::panes(self, area);
        self.list_area = panes.list;
        self.log_area = panes.logs;
        if panes.list.height > 0 {
            self.list_offset = super::draw::list_offset(self, panes.list);
        }
        if panes.logs.height > 0 {
            self.observe_new_lines();
        }
    }

    pub fn observe_new_lines(&mut self) {
        let (total, len) = self
            .logs
            .read(self.source(), |ring| (ring.total(), ring.lines().len()));
        let new = total.saturating_sub(self.log.seen_total) as usize;
        if !self.log.follow && self.log.filter.is_none() && new > 0 {
            // Never past the oldest line still kept (old lines drop off the buffer's top).
            self.log.offset = (self.log.offset + new).min(len.saturating_sub(self.page()));
            // Indices moved with the buffer; the next n/N starts from the view again.
            self.log.current_match = None;
        }
        self.log.seen_total = total;
    }
}
