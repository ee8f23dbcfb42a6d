//! The dashboard: terminal setup and the event loop. State lives in `app`, keys in `keymap`,
//! drawing in `draw`; this module only moves events between the terminal, the engine and them.

pub mod action;
pub mod app;
mod clipboard;
pub mod draw;
mod draw_traffic;
pub mod inspect;
pub mod keymap;
pub mod source;
pub mod traffic;

use crate::ignored::Ignore;
use crate::logs::{LineTap, LogLine};
use action::Action;
use app::{App, Effect};
use crossterm::event::{Event, EventStream, KeyEventKind, MouseButton, MouseEventKind};
use crossterm::{execute, terminal};
use futures_util::StreamExt;
use ratatui::layout::{Position, Rect};
use source::Stack;
use std::io;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// At most this many frames a second, however fast lines arrive.
const FRAME: Duration = Duration::from_millis(16);

/// Told about every logged line; wakes the dashboard to redraw.
#[derive(Default)]
pub struct Wake(Notify);

impl Wake {
    /// Something to show changed.
    pub fn now(&self) {
        self.0.notify_one();
    }
}

impl LineTap for Wake {
    fn lines(&self, _: &[LogLine]) {
        self.0.notify_one();
    }
}

/// How long the terminal may take to answer the cursor-position query before it is taken for
/// one that never will (a dumb terminal, a broken one).
const PROBE: Duration = Duration::from_secs(3);

/// Is this a terminal the dashboard can drive? It must answer the cursor-position query
/// (`ESC [ 6 n`): one that doesn't is dumb or broken, and would leave the dashboard (and any
/// crossterm call that asks it) waiting. The wait is bounded whatever happens inside crossterm.
pub fn probe() -> io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(crossterm::cursor::position())
            .or_say("the answer came after the probe gave up on it");
    });
    match rx.recv_timeout(PROBE) {
        Ok(answer) => answer.map(drop),
        Err(_) => {
            // crossterm turned raw mode on to read the answer and is still waiting for it.
            terminal::disable_raw_mode().or_say("a terminal that does not answer may not take it");
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer to the cursor-position query",
            ))
        }
    }
}

/// How the dashboard ended.
#[derive(Debug)]
pub enum End {
    /// The stack has ended (after a quit, or a signal).
    Quit,
    /// The user left an attached dashboard; the stack runs on.
    Detached,
    /// The terminal went away (closed window, dropped SSH connection): reads or writes failed.
    TerminalLost(io::Error),
}

/// Puts the terminal back however the dashboard ends, a panic included. Every write here may
/// meet a terminal that is gone: errors are only said in devstack's log, nothing prints.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    const GONE: &str = "the terminal may be gone";
    terminal::disable_raw_mode().or_say(GONE);
    execute!(
        io::stdout(),
        crossterm::event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    )
    .or_say(GONE);
}

type Backend = ratatui::backend::CrosstermBackend<io::Stdout>;

/// ratatui's `Terminal`, minus its `Drop`: that one reports a cursor it cannot show again with
/// `eprintln!`, which panics when stderr is the terminal that went away. Here the cursor is
/// shown if it can be; if not, the `Terminal` is leaked (`restore` tries once more, and the
/// process is about to end).
struct Screen(Option<ratatui::Terminal<Backend>>);

impl Screen {
    fn get(&mut self) -> &mut ratatui::Terminal<Backend> {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Some(mut term) = self.0.take()
            && term.show_cursor().is_err()
        {
            std::mem::forget(term);
        }
    }
}

/// Run the dashboard until the stack has ended (after a quit, or a signal), the user detached
/// (attached), or the terminal has gone away. An error: the terminal could not be set up.
pub async fn run(mut stack: Stack, mut app: App, wake: std::sync::Arc<Wake>) -> io::Result<End> {
    app.traffic = stack.traffic(wake.clone());
    let _restore = enter()?;
    let (mut screen, area) = open_screen()?;
    Ok(event_loop(screen.get(), &mut stack, &mut app, &wake, area).await)
}

/// The terminal taken over: raw mode, the alternate screen, the mouse; given back by the
/// `Restore` (and by a panic, whose hook restores it first).
fn enter() -> io::Result<Restore> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    terminal::enable_raw_mode()?;
    let restore = Restore;
    // A full clear without ratatui's `Terminal::clear`, which asks the terminal where its
    // cursor is.
    execute!(
        io::stdout(),
        terminal::EnterAlternateScreen,
        crossterm::event::EnableMouseCapture,
        terminal::Clear(terminal::ClearType::All)
    )?;
    Ok(restore)
}

/// The `Screen` frames are drawn on, with its area. A fixed viewport, resized on the
/// terminal's resize events: ratatui would otherwise ask the terminal for its size (opening
/// `/dev/tty`) on every frame.
fn open_screen() -> io::Result<(Screen, Rect)> {
    let (cols, rows) = terminal::size()?;
    let area = Rect::new(0, 0, cols, rows);
    let options = ratatui::TerminalOptions {
        viewport: ratatui::Viewport::Fixed(area),
    };
    let screen = Screen(Some(ratatui::Terminal::with_options(
        Backend::new(io::stdout()),
        options,
    )?));
    Ok((screen, area))
}

/// The event loop: a frame when something to show changed (at most one per `FRAME`), then a
/// wait for the next event, key, change of views, note, line or uptime.
async fn event_loop(
    term: &mut ratatui::Terminal<Backend>,
    stack: &mut Stack,
    app: &mut App,
    wake: &Wake,
    area: Rect,
) -> End {
    let mut events = Events::start();
    let mut views = stack.views();
    let (replies, mut replayed) = tokio::sync::mpsc::unbounded_channel();
    let mut frames = Frames::new(area, replies);
    loop {
        if let Err(e) = frames.draw_if_due(term, app, &mut views) {
            return End::TerminalLost(e);
        }
        let until_frame = FRAME.saturating_sub(frames.last_draw.elapsed());
        tokio::select! {
            // Keys first: under a flood of lines the user must still be answered at once.
            biased;
            event = events.0.recv() => {
                if let Err(end) = frames.on_event(event, term, app, stack) {
                    return end;
                }
            }
            changed = views.changed() => {
                if changed.is_err() {
                    return End::Quit; // the stack has ended
                }
                frames.dirty = true;
            }
            Some((id, got)) = replayed.recv() => {
                app.replayed(id, got);
                frames.dirty = true;
            }
            note = stack.note() => {
                app.message = Some(note);
                frames.dirty = true;
            }
            _ = wake.0.notified() => frames.dirty = true,
            _ = tokio::time::sleep(until_frame), if frames.dirty => continue,
            // Only an uptime changed: the next frame may be the list alone.
            _ = crate::engine::sleep_until(frames.uptimes), if !frames.dirty => {
                frames.dirty = true;
                continue;
            }
        }
        frames.whole = frames.dirty;
    }
}

/// What the event loop knows between frames.
struct Frames {
    /// The viewport.
    area: Rect,
    painter: Painter,
    /// Something to show changed (`dirty`), and it may be more than an uptime (`whole`).
    dirty: bool,
    whole: bool,
    last_draw: Instant,
    /// When a shown uptime next reads differently (once a minute past each one's first).
    uptimes: Option<tokio::time::Instant>,
    /// Where a replay's answer goes when it comes (to `App::replayed`).
    replies: Replies,
}

/// Replays' answers, by the request replayed.
type Replies =
    tokio::sync::mpsc::UnboundedSender<(u64, Result<crate::traffic::replay::Replayed, String>)>;

impl Frames {
    fn new(area: Rect, replies: Replies) -> Frames {
        Frames {
            replies,
            area,
            painter: Painter::default(),
            dirty: true,
            whole: true,
            last_draw: Instant::now() - FRAME,
            uptimes: None,
        }
    }

    /// Draw a frame with the latest views if something changed and the last frame is at least
    /// `FRAME` old. An error: the terminal is gone.
    fn draw_if_due(
        &mut self,
        term: &mut ratatui::Terminal<Backend>,
        app: &mut App,
        views: &mut tokio::sync::watch::Receiver<
            crate::engine::Services<crate::engine::ServiceView>,
        >,
    ) -> io::Result<()> {
        if !(self.dirty && self.last_draw.elapsed() >= FRAME) {
            return Ok(());
        }
        // Views that changed since the select (not seen there) may change more than the list.
        self.whole |= views.has_changed().unwrap_or(true);
        app.views = views.borrow_and_update().clone();
        app.arrange(self.area);
        self.painter.paint(term, app, self.whole)?;
        self.uptimes = next_uptime_change(app.views.as_slice());
        (self.dirty, self.whole) = (false, false);
        self.last_draw = Instant::now();
        Ok(())
    }

    /// A terminal event (None: the terminal's events ended): a resize resizes the viewport,
    /// anything else is carried out as the action it maps to; either way, a frame is due.
    /// An error: how the dashboard ends (the terminal lost, or a detach).
    fn on_event(
        &mut self,
        event: Option<io::Result<Event>>,
        term: &mut ratatui::Terminal<Backend>,
        app: &mut App,
        stack: &Stack,
    ) -> Result<(), End> {
        match event {
            Some(Ok(Event::Resize(cols, rows))) => {
                self.area = Rect::new(0, 0, cols, rows);
                term.resize(self.area).map_err(End::TerminalLost)?;
            }
            Some(Ok(event)) => {
                if let Some(action) = action_for(app, event) {
                    for effect in app.update(action) {
                        match effect {
                            Effect::Inspect(id) => app.inspected(id, stack.inspect(id)),
                            Effect::AddFault(words) => app.message = Some(stack.add_fault(&words)),
                            Effect::Replay(id) => {
                                let (replay, replies) = (stack.replay(id), self.replies.clone());
                                tokio::spawn(async move { replies.send((id, replay.await)) });
                            }
                            effect => {
                                if apply(stack, effect).is_break() {
                                    return Err(End::Detached);
                                }
                            }
                        }
                    }
                }
            }
            Some(Err(e)) => return Err(End::TerminalLost(e)),
            None => return Err(End::TerminalLost(io::ErrorKind::UnexpectedEof.into())),
        }
        self.dirty = true;
        Ok(())
    }
}

/// Puts frames on the terminal: the whole screen, or only the service list over the last
/// frame when nothing but an uptime changed (in a quiet stack's first minute, uptimes change
/// every second; the rest of the screen does not).
#[derive(Default)]
struct Painter {
    /// The last frame, kept while frames are for uptimes alone.
    last: Option<ratatui::buffer::Buffer>,
}

impl Painter {
    /// `whole`: something other than an uptime may have changed.
    fn paint<B: ratatui::backend::Backend>(
        &mut self,
        term: &mut ratatui::Terminal<B>,
        app: &App,
        whole: bool,
    ) -> Result<(), B::Error> {
        let list_only = !whole && app.mode == app::Mode::Normal;
        match &mut self.last {
            Some(last) if list_only && last.area == term.current_buffer_mut().area => {
                draw::redraw_services(last, app);
                term.current_buffer_mut()
                    .content
                    .clone_from_slice(&last.content);
                term.apply_buffer()?;
            }
            _ => {
                let frame = term.draw(|frame| draw::draw(frame, app))?;
                self.last = list_only.then(|| frame.buffer.clone());
            }
        }
        Ok(())
    }
}

/// The terminal's events, read by a task of their own. crossterm's `EventStream` looks at the
/// terminal each time it is polled, and the loop above wakes for much else (lines, engine
/// changes, uptimes); here it is polled only when the terminal has something.
struct Events(
    tokio::sync::mpsc::UnboundedReceiver<io::Result<Event>>,
    tokio::task::JoinHandle<()>,
);

impl Events {
    fn start() -> Events {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = EventStream::new();
            while let Some(event) = stream.next().await {
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Events(rx, task)
    }
}

impl Drop for Events {
    /// The stream goes with the task, and with it crossterm's reader thread: the terminal is
    /// free for whatever reads it next.
    fn drop(&mut self) {
        self.1.abort();
    }
}

/// When to redraw for the uptimes `views` show: at the next change, together with the
/// changes of the second after it (services started together tick at slightly different
/// instants: one frame for all of them, each at most a second late).
fn next_uptime_change(views: &[crate::engine::ServiceView]) -> Option<tokio::time::Instant> {
    let changes: Vec<tokio::time::Instant> = views
        .iter()
        .filter_map(|v| {
            let since = v.since?;
            let secs = since.elapsed().as_secs();
            let next = secs + crate::format::uptime_changes_in(secs);
            Some(since + Duration::from_secs(next))
        })
        .collect();
    let first = *changes.iter().min()?;
    changes
        .into_iter()
        .filter(|&at| at < first + Duration::from_secs(1))
        .max()
}

fn inside(area: Rect, column: u16, row: u16) -> bool {
    area.contains(Position::new(column, row))
}

fn action_for(app: &App, event: Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => {
            keymap::map(&app.mode, app.focus, key)
        }
        // In a popup, or while typing into a service, the mouse changes nothing.
        Event::Mouse(_) if app.mode != app::Mode::Normal => None,
        Event::Mouse(mouse) => {
            let (c, r) = (mouse.column, mouse.row);
            match mouse.kind {
                MouseEventKind::Down(MouseButton::Left) if inside(app.list_area, c, r) => {
                    Some(Action::SelectRow(r))
                }
                MouseEventKind::Down(MouseButton::Left)
                    if inside(app.log_area, c, r) && app.focus != app::Focus::Logs =>
                {
                    Some(Action::ToggleFocus)
                }
                MouseEventKind::ScrollUp if inside(app.log_area, c, r) => Some(Action::ScrollUp(3)),
                MouseEventKind::ScrollDown if inside(app.log_area, c, r) => {
                    Some(Action::ScrollDown(3))
                }
                MouseEventKind::ScrollUp if inside(app.list_area, c, r) => Some(Action::SelectPrev),
                MouseEventKind::ScrollDown if inside(app.list_area, c, r) => {
                    Some(Action::SelectNext)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Carry out an effect; Break when the dashboard is to end (detached).
fn apply(stack: &Stack, effect: Effect) -> std::ops::ControlFlow<()> {
    match effect {
        Effect::Engine(cmd) => stack.send(cmd),
        Effect::Copy(text) => clipboard::copy(&text),
        Effect::OpenScreen(i, rows, cols) => stack.open_screen(i, rows, cols),
        Effect::CloseScreen(i) => stack.close_screen(i),
        Effect::Detach => return std::ops::ControlFlow::Break(()),
        Effect::Inspect(_) | Effect::Replay(_) | Effect::AddFault(_) => {
            unreachable!("the inspector's fetch, replay and faults are the loop's")
        }
    }
    std::ops::ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ServiceView;
    use tokio::time::Instant;

    fn started(secs_ago: f64) -> ServiceView {
        let mut v = ServiceView::from(
            serde_json::from_value::<crate::control::wire::Service>(serde_json::json!({
                "name": "s", "state": "running", "health": null, "health_error": null,
                "ready": true, "wanted": true, "auto_rebuild": null, "spawns": 1,
                "building": false, "build_failed": false, "cpu_percent": null, "mem_bytes": null,
                "crash_loop": false, "detail": "", "pid": 1, "port": null, "restarts": 0,
                "uptime_secs": null, "log_lost": null,
            }))
            .unwrap(),
        );
        v.since = Some(Instant::now() - Duration::from_secs_f64(secs_ago));
        v
    }

    /// Services started together tick at slightly different instants: one frame shows all
    /// their new uptimes; past the first minute, the next frame is the next minute's.
    #[tokio::test(start_paused = true)]
    async fn uptimes_are_redrawn_together_and_only_when_their_text_changes() {
        let now = Instant::now();
        let at = |views: &[ServiceView]| next_uptime_change(views).unwrap() - now;
        // 5.0 s and 5.3 s up: both read 6s by 0.7 s from now, one frame.
        assert_eq!(
            at(&[started(5.0), started(5.3)]),
            Duration::from_millis(1000)
        );
        assert_eq!(
            at(&[started(5.3), started(5.0)]),
            Duration::from_millis(1000)
        );
        // 5.0 s and 5.9 s up: 5.9 → 6s in 0.1 s, 5.0 → 6s in 1 s: within a second, together.
        assert_eq!(
            at(&[started(5.9), started(5.0)]),
            Duration::from_millis(1000)
        );
        // 65 s up reads 1m until 120 s: nothing to draw for 55 s.
        assert_eq!(at(&[started(65.0)]), Duration::from_secs(55));
        // Nothing running, nothing to wait for.
        let mut stopped = started(1.0);
        stopped.since = None;
        assert_eq!(next_uptime_change(&[stopped]), None);
    }

    /// A frame for uptimes alone draws the service list over the last frame: the screen is
    /// what a whole frame would show (a shorter uptime leaves nothing of the longer one), and
    /// nothing else is drawn again until something else changes.
    #[tokio::test(start_paused = true)]
    async fn a_frame_for_uptimes_alone_redraws_the_list_only() {
        use ratatui::{Terminal, backend::TestBackend};
        let dir = tempfile::tempdir().unwrap();
        let names: crate::engine::Services<String> =
            vec!["api".to_string(), "web".to_string()].into();
        let hub = std::sync::Arc::new(crate::logs::LogHub::new(dir.path(), &names, None, 100));
        let mut app = App::new("stack".into(), names, hub.clone());
        let view = |name: &str, secs: f64| ServiceView {
            name: name.into(),
            ..started(secs)
        };
        app.views = vec![view("api", 59.5), view("web", 5.0)].into();
        let area = Rect::new(0, 0, 120, 30);
        app.arrange(area);
        let mut term = Terminal::new(TestBackend::new(120, 30)).unwrap();
        let mut painter = Painter::default();
        // The first frame for uptimes is whole, and kept.
        painter.paint(&mut term, &app, false).unwrap();
        let whole = |app: &App| {
            let mut fresh = Terminal::new(TestBackend::new(120, 30)).unwrap();
            fresh.draw(|f| draw::draw(f, app)).unwrap();
            fresh.backend().buffer().clone()
        };
        let screen = |term: &Terminal<TestBackend>| format!("{:?}", term.backend().buffer());
        assert!(screen(&term).contains("59s"), "{}", screen(&term));

        // A line is logged but not yet shown (its wake-up would make the next frame whole).
        hub.system(crate::engine::ServiceId(0), "a line for the log pane");
        tokio::time::advance(Duration::from_secs(1)).await;
        painter.paint(&mut term, &app, false).unwrap();
        let now = screen(&term);
        assert!(now.contains("1m ") && now.contains("6s"), "{now}");
        assert!(!now.contains("59s") && !now.contains("a line for"), "{now}");
        let mut expected = whole(&app);
        // A whole frame would differ by the log pane's new line.
        let line = (0..30)
            .find(|&y| (0..120).any(|x| expected[(x, y)] != term.backend().buffer()[(x, y)]));
        let y = line.expect("the log line is the difference");
        assert!(
            (0..120)
                .map(|x| expected[(x, y)].symbol())
                .collect::<String>()
                .contains("a line for the log pane")
        );
        // A whole frame shows it.
        painter.paint(&mut term, &app, true).unwrap();
        expected = whole(&app);
        assert_eq!(term.backend().buffer(), &expected);
        // And uptimes alone are drawn as a whole frame would draw them.
        tokio::time::advance(Duration::from_secs(1)).await;
        painter.paint(&mut term, &app, false).unwrap();
        painter.paint(&mut term, &app, false).unwrap();
        assert_eq!(term.backend().buffer(), &whole(&app));
    }
}
