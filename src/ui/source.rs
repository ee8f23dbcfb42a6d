//! The one way the dashboard sees a stack, whichever way it runs: in this process (the engine's
//! handle and its `LogHub`), or elsewhere, through the control socket (an attached dashboard).
//! Either way the dashboard gets the services' views (a `watch`), log buffers it reads
//! ([`Logs`]), and a way to send commands; `App`, `draw` and the event loop never ask which.
//!
//! An attached dashboard keeps three connections: `subscribe` (the views and the traffic, live), `logs` with
//! `follow` (the history, then every line, with colours, into a local [`Mirror`] of rings), and
//! one for commands, which become the socket's requests ([`request`]).

use super::{Wake, traffic};
use crate::control::client::{self, Client};
use crate::control::{Answer, Message, Request, Response};
use crate::engine::{Command, Handle, ServiceId, ServiceView, Services};
use crate::ignored::Ignore;
use crate::logs::{BUFFER_BYTES, LineTap, LogHub, LogLine, MERGED_BYTES, Ring, Source};
use crate::sync::Locked;
use crate::traffic::Stats;
use crate::traffic::replay::Replayed;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// The stack the dashboard shows.
pub enum Stack {
    /// Running in this process.
    Local {
        handle: Handle,
        logs: Arc<LogHub>,
        /// What the traffic proxy records (None: no service is proxied).
        traffic: Option<Arc<Stats>>,
        /// Which services the proxy is in front of (a fault can be set on those only).
        proxied: Services<bool>,
    },
    /// Running elsewhere; reached through its control socket.
    Remote(Remote),
}

impl Stack {
    /// Every service's view, as it changes.
    pub fn views(&self) -> watch::Receiver<Services<ServiceView>> {
        match self {
            Stack::Local { handle, .. } => handle.views(),
            Stack::Remote(r) => r.views.clone(),
        }
    }

    /// The log buffers the dashboard reads.
    pub fn logs(&self) -> Logs {
        match self {
            Stack::Local { logs, .. } => Logs::Hub(logs.clone()),
            Stack::Remote(r) => Logs::Mirror(r.logs.clone()),
        }
    }

    /// The traffic pane's feed, waking `wake` when it changes (None: nothing is proxied here).
    pub fn traffic(&self, wake: Arc<Wake>) -> Option<super::traffic::Feed> {
        match self {
            Stack::Local { traffic, .. } => traffic
                .clone()
                .map(|stats| super::traffic::Feed::local(stats, wake)),
            Stack::Remote(r) => Some(r.traffic.clone()),
        }
    }

    /// A kept request, for the inspector: from the proxy here, or asked of the stack (a local
    /// socket's round trip, on the dashboard's thread: a stack that does not answer within
    /// a second is said so).
    pub fn inspect(&self, id: u64) -> Result<crate::traffic::capture::Inspected, String> {
        match self {
            Stack::Local { traffic, .. } => traffic
                .as_ref()
                .and_then(|stats| stats.inspect(id))
                .ok_or_else(|| {
                    format!("request #{id} is not kept (TCP, `capture = false`, or newer ones took its place)")
                }),
            Stack::Remote(r) => {
                let mut c = open(&r.socket).map_err(|e| e.to_string())?;
                c.set_timeout(Some(std::time::Duration::from_secs(1)))
                    .map_err(|e| e.to_string())?;
                c.exchange(id).map_err(|e| e.to_string())
            }
        }
    }

    /// Send a kept request again (the inspector's `r`): through the proxy here, or asked of the
    /// stack on a thread of its own (a replay may wait long for its answer). Runs on its own:
    /// the dashboard goes on while it waits.
    pub fn replay(
        &self,
        id: u64,
    ) -> impl std::future::Future<Output = Result<Replayed, String>> + Send + 'static {
        let local = match self {
            Stack::Local {
                traffic, handle, ..
            } => Some((traffic.clone(), handle.views().borrow().clone())),
            Stack::Remote(_) => None,
        };
        let socket = match self {
            Stack::Remote(r) => Some(r.socket.clone()),
            Stack::Local { .. } => None,
        };
        async move {
            if let Some((traffic, views)) = local {
                let stats = traffic.ok_or("no service is proxied here: nothing to replay")?;
                let port_of =
                    |name: &str| views.values().find(|v| v.name == name).and_then(|v| v.port);
                return crate::traffic::replay::replay(&stats, id, port_of, None).await;
            }
            let socket = socket.expect("a stack is here or elsewhere");
            let asked = tokio::task::spawn_blocking(move || -> Result<Replayed, String> {
                let mut c = open(&socket).map_err(|e| e.to_string())?;
                c.replay(id, None).map_err(|e| e.to_string())
            });
            asked.await.map_err(|e| e.to_string())?
        }
    }

    /// Set the fault `words` say (`F`): on the proxy here, or asked of the stack. What came of
    /// it, in words.
    pub fn add_fault(&self, words: &str) -> String {
        let set = match self {
            Stack::Local {
                traffic,
                handle,
                proxied,
                ..
            } => {
                let Some(stats) = traffic else {
                    return "no service is proxied here: a fault rides on the proxy".into();
                };
                let views = handle.views().borrow().clone();
                let service = |name: &str| {
                    let id = views.ids().find(|&id| views[id].name == name);
                    id.map(|id| proxied[id])
                        .ok_or_else(|| format!("unknown service `{name}`"))
                };
                stats.faults().set(words, service).map(Into::into)
            }
            Stack::Remote(r) => open(&r.socket)
                .and_then(|mut c| c.fault_add(words))
                .map_err(|e| e.to_string()),
        };
        match set {
            Ok(set) => format!("fault {}: {}", set.id, set.text),
            Err(e) => e,
        }
    }

    /// Leaving the dashboard can leave the stack running (`q` asks: detach or stop it).
    pub fn attached(&self) -> bool {
        matches!(self, Stack::Remote(_))
    }

    pub fn send(&self, cmd: Command) {
        match self {
            Stack::Local { handle, .. } => handle.send(cmd),
            Stack::Remote(r) => {
                if let Some(request) = request(&r.names, cmd) {
                    r.commands
                        .send(request)
                        .or_say("the command thread ended with the connection");
                }
            }
        }
    }

    /// Typing into a service: size its terminal to the pane, and emulate that terminal where
    /// its raw output is at hand (in this process). An attached dashboard gets the service's
    /// lines only (sanitised), so it shows those while typing.
    pub fn open_screen(&self, service: ServiceId, rows: u16, cols: u16) {
        if let Stack::Local { logs, .. } = self {
            logs.open_screen(service, rows, cols);
        }
        self.send(Command::Resize {
            service,
            rows,
            cols,
        });
    }

    pub fn close_screen(&self, service: ServiceId) {
        if let Stack::Local { logs, .. } = self {
            logs.close_screen(service);
        }
    }

    /// The next note for the footer (a command the stack refused, lines that went by); never,
    /// in this process.
    pub async fn note(&mut self) -> String {
        match self {
            Stack::Local { .. } => std::future::pending().await,
            Stack::Remote(r) => match r.notes.recv().await {
                Some(note) => note,
                None => std::future::pending().await,
            },
        }
    }
}

/// A dashboard command as a socket request (actions don't wait: the views show their effect).
/// None for what has no request: a forced stop (an attached dashboard detaches instead), file
/// changes (the stack watches its own files).
pub fn request(names: &Services<String>, cmd: Command) -> Option<Request> {
    let name = |id: ServiceId| names.get(id).cloned();
    let wait = false;
    Some(match cmd {
        Command::Start { service } => Request::Start {
            service: name(service)?,
            wait,
        },
        Command::Stop { service } => Request::Stop {
            service: name(service)?,
            wait,
        },
        Command::Restart { service } => Request::Restart {
            service: name(service)?,
            wait,
        },
        Command::Rebuild { service } => Request::Rebuild {
            service: name(service)?,
            wait,
        },
        Command::Kill { service } => Request::Kill {
            service: name(service)?,
            wait,
        },
        Command::RestartAll => Request::RestartAll { wait },
        Command::Use { service, remote } => Request::Use {
            service: name(service)?,
            to: if remote {
                crate::control::End::Remote
            } else {
                crate::control::End::Local
            },
            wait,
        },
        Command::Shutdown => Request::Down,
        Command::Input { service, bytes } => Request::Input {
            service: name(service)?,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        },
        Command::Resize {
            service,
            rows,
            cols,
        } => Request::Resize {
            service: name(service)?,
            rows,
            cols,
        },
        Command::SetAuto { service, auto } => Request::Watch {
            service: name(service)?,
            auto,
        },
        Command::ForceShutdown | Command::FilesChanged { .. } => return None,
    })
}

/// The log buffers the dashboard reads: the stack's own `LogHub`, or the mirror an attached
/// dashboard fills from the socket.
#[derive(Clone)]
pub enum Logs {
    Hub(Arc<LogHub>),
    Mirror(Arc<Mirror>),
}

impl From<Arc<LogHub>> for Logs {
    fn from(hub: Arc<LogHub>) -> Self {
        Logs::Hub(hub)
    }
}

impl Logs {
    /// Read a buffer in place.
    pub fn read<T>(&self, source: Source, f: impl FnOnce(&Ring) -> T) -> T {
        match self {
            Logs::Hub(hub) => hub.read(source, f),
            Logs::Mirror(m) => m.read(source, f),
        }
    }

    /// A service's emulated terminal, while one is open (only in the stack's own process).
    pub fn screen<T>(&self, service: ServiceId, f: impl FnOnce(&vt100::Screen) -> T) -> Option<T> {
        match self {
            Logs::Hub(hub) => hub.screen(service, f),
            Logs::Mirror(_) => None,
        }
    }
}

/// An attached dashboard's copy of the stack's recent lines: the same rings as the `LogHub`'s
/// (per service, and merged), filled from a `logs` follow.
pub struct Mirror {
    services: Services<Mutex<Ring>>,
    merged: Mutex<Ring>,
    tap: Arc<dyn LineTap>,
}

impl Mirror {
    /// `scrollback` lines per service (five times that merged), as the stack keeps.
    pub fn new(services: usize, scrollback: usize, tap: Arc<dyn LineTap>) -> Self {
        Mirror {
            services: Services::from_fn(services, |_| {
                Mutex::new(Ring::new(scrollback, BUFFER_BYTES))
            }),
            merged: Mutex::new(Ring::new(scrollback * 5, MERGED_BYTES)),
            tap,
        }
    }

    /// Add lines (in order); tells the tap.
    pub fn push(&self, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        self.tap.lines(&lines);
        let mut merged = self.merged.locked();
        for line in lines {
            let line = Arc::new(line);
            if let Some(ring) = self.services.get(line.service) {
                ring.locked().push(line.clone());
            }
            merged.push(line);
        }
    }

    pub fn read<T>(&self, source: Source, f: impl FnOnce(&Ring) -> T) -> T {
        match source {
            Source::Service(i) => f(&self.services[i].locked()),
            Source::All => f(&self.merged.locked()),
        }
    }
}

/// A stack running elsewhere, seen through its control socket.
pub struct Remote {
    pub names: Services<String>,
    /// Where to ask for what the streams don't carry (the inspector's request).
    socket: std::path::PathBuf,
    views: watch::Receiver<Services<ServiceView>>,
    logs: Arc<Mirror>,
    /// The traffic pane's, kept by the `subscribe` stream.
    traffic: traffic::Feed,
    commands: std::sync::mpsc::Sender<Request>,
    notes: mpsc::UnboundedReceiver<String>,
}

/// Lines read from a follow before they go into the mirror together (fewer lock rounds and
/// wake-ups under a flood); a quiet stream goes in line by line.
const BATCH: usize = 256;

/// A connection that said `hello`.
fn open(socket: &Path) -> Result<Client, client::Error> {
    let mut c = Client::connect(socket)?;
    c.hello()?;
    Ok(c)
}

impl Remote {
    /// Attach to the stack answering on `socket`: its views and `scrollback` lines per service
    /// of history are here when this returns; what follows arrives on threads of its own (a
    /// flood of lines is parsed beside the drawing, not in its way). `wake` hears of new lines.
    pub fn connect(
        socket: &Path,
        scrollback: usize,
        wake: Arc<Wake>,
    ) -> Result<Remote, client::Error> {
        let socket = socket.to_path_buf();
        let mut events = open(&socket)?;
        let subscribe = Request::Subscribe {
            all: true,
            traffic: Some(traffic::TAIL),
        };
        let views = match events.call(&subscribe)? {
            Answer::Services { services } => services
                .into_iter()
                .map(ServiceView::from)
                .collect::<Services<_>>(),
            _ => {
                return Err(client::Error::Garbled(
                    "not an answer to `subscribe`".into(),
                ));
            }
        };
        let names = views.map(|v| v.name.clone());
        let (notes_tx, notes) = mpsc::unbounded_channel();

        let logs = Arc::new(Mirror::new(names.len(), scrollback, wake.clone()));
        let mut follow = open(&socket)?;
        let history = follow.tail(&Request::Logs {
            services: Vec::new(),
            lines: scrollback * 5,
            follow: true,
            color: true,
        })?;
        logs.push(
            history
                .into_iter()
                .filter_map(|l| l.into_log_line(&names))
                .collect(),
        );

        let mut commands = open(&socket)?;
        let (views_tx, views_rx) = watch::channel(views);
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<Request>();

        let socket2 = socket.clone();
        let (feed, wake2) = (traffic::Feed::default(), wake.clone());
        let traffic = feed.clone();
        std::thread::spawn(move || {
            let to = Following {
                views: &views_tx,
                traffic: &feed,
                wake: &wake2,
            };
            follow_views(events, &to, &socket2)
        });
        let (mirror, names2, notes2) = (logs.clone(), names.clone(), notes_tx.clone());
        std::thread::spawn(move || follow_lines(follow, &mirror, &names2, &notes2));
        std::thread::spawn(move || {
            while let Ok(request) = cmd_rx.recv() {
                match commands.call(&request) {
                    Err(client::Error::Lost(_)) => return,
                    Err(e) => drop(notes_tx.send(e.to_string())),
                    Ok(_) => {}
                }
            }
        });
        Ok(Remote {
            names,
            socket: socket.clone(),
            views: views_rx,
            logs,
            traffic,
            commands: cmd_tx,
            notes,
        })
    }
}

/// What a `subscribe` stream keeps current.
struct Following<'a> {
    views: &'a watch::Sender<Services<ServiceView>>,
    traffic: &'a traffic::Feed,
    /// Woken when the traffic changed (the views' channel wakes the dashboard by itself).
    wake: &'a Wake,
}

/// Keep the views and the traffic current from a `subscribe` stream with `all` and `traffic`
/// (every change, CPU and memory included; uptimes move by themselves); when it ends (the stack
/// stopped), the views' senders go, which ends the dashboard.
fn follow_views(mut events: Client, to: &Following, socket: &Path) {
    loop {
        match events.next_message() {
            Ok(Some(Message::Event { service, .. })) => to.views.send_modify(|views| {
                if let Some(v) = views.values_mut().find(|v| v.name == service.name) {
                    *v = service.into();
                }
            }),
            // Events went by: the next `ps` shows where things are; take it whole.
            Ok(Some(Message::Missed { .. })) => {
                if let Ok(now) = open(socket).and_then(|mut c| c.ps()) {
                    to.views.send_replace(now.into());
                }
            }
            Ok(Some(Message::Call { call })) => {
                to.traffic.heard_call(call.into());
                to.wake.now();
            }
            Ok(Some(Message::Table { table })) => {
                if to.traffic.heard_table(table.into()) {
                    to.wake.now();
                }
            }
            Ok(Some(Message::Line { .. })) => {}
            Ok(Some(Message::End(_))) | Ok(None) | Err(_) => return,
        }
    }
}

/// Put the lines of a `logs` follow into the mirror.
fn follow_lines(
    mut follow: Client,
    mirror: &Mirror,
    names: &Services<String>,
    notes: &mpsc::UnboundedSender<String>,
) {
    let mut batch = Vec::new();
    loop {
        let message = follow.next_message();
        match message {
            Ok(Some(Message::Line { line })) => batch.extend(line.into_log_line(names)),
            Ok(Some(Message::Missed { missed })) => {
                notes
                    .send(format!(
                        "{} went by too fast to show here; the log files have them",
                        crate::format::plural(missed as usize, "line")
                    ))
                    .or_say("the dashboard has left");
            }
            Ok(Some(Message::End(Response::Error { error, .. }))) => {
                notes
                    .send(format!("the log stream ended: {error}"))
                    .or_say("the dashboard has left");
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
        if batch.len() >= BATCH || !follow.has_buffered() {
            mirror.push(std::mem::take(&mut batch));
        }
    }
    mirror.push(batch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_commands_become_requests_that_answer_at_once() {
        let names: Services<String> = vec!["db".to_string(), "api".to_string()].into();
        assert_eq!(
            request(
                &names,
                Command::Restart {
                    service: ServiceId(1)
                }
            ),
            Some(Request::Restart {
                service: "api".into(),
                wait: false
            })
        );
        assert_eq!(
            request(
                &names,
                Command::Input {
                    service: ServiceId(0),
                    bytes: b"\x1b[A".to_vec()
                }
            ),
            Some(Request::Input {
                service: "db".into(),
                text: "\u{1b}[A".into()
            })
        );
        assert_eq!(request(&names, Command::Shutdown), Some(Request::Down));
        assert_eq!(
            request(
                &names,
                Command::SetAuto {
                    service: ServiceId(1),
                    auto: false
                }
            ),
            Some(Request::Watch {
                service: "api".into(),
                auto: false
            })
        );
        // Nothing for what the socket doesn't do, or a service it doesn't have.
        assert_eq!(request(&names, Command::ForceShutdown), None);
        assert_eq!(
            request(
                &names,
                Command::Kill {
                    service: ServiceId(7)
                }
            ),
            None
        );
    }

    #[test]
    fn the_mirror_keeps_each_services_lines_and_all_merged() {
        let mirror = Mirror::new(2, 3, Arc::new(Wake::default()));
        let line = |service, text: &str| LogLine {
            service: ServiceId(service),
            stream: crate::logs::Stream::Out,
            time: std::time::SystemTime::UNIX_EPOCH,
            text: text.into(),
        };
        mirror.push((0..5).map(|i| line(i % 2, &i.to_string())).collect());
        let texts = |source| {
            mirror.read(source, |r| {
                r.lines().iter().map(|l| l.text.clone()).collect::<Vec<_>>()
            })
        };
        assert_eq!(texts(Source::Service(ServiceId(0))), ["0", "2", "4"]);
        assert_eq!(texts(Source::Service(ServiceId(1))), ["1", "3"]);
        assert_eq!(texts(Source::All), ["0", "1", "2", "3", "4"]);
        assert_eq!(mirror.read(Source::All, Ring::total), 5);
    }
}
