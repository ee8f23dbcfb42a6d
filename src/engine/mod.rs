//! The engine: owns every service's state, starts them in dependency order, applies the restart
//! policy, stops them in reverse order. Interfaces send `Command`s and read `ServiceView`s.
//!
//! - `commands`: what each `Command` does (start, stop, restart, kill, rebuild, shutdown …);
//! - `lifecycle`: starting processes, their exits, the restart policy and the timers;
//! - `deps`: the dependency rules, pure functions of the config and the services' state;
//! - `probes`: health probe results, and CPU/memory samples;
//! - `rebuild`: the guard against a build that writes into its own watched files;
//! - `rollout`: blue-green: the new run process beside the old, the switch, the drain;
//! - `views`: what the interfaces see.
//!
//! Every process is started, signalled and probed through a `process::Spawner`, so that the
//! engine runs in tests on a fake one and on tokio's paused clock (`tokio::time::Instant`).

mod commands;
mod deps;
mod lifecycle;
mod phase;
mod probes;
pub mod ready;
mod rebuild;
mod remote;
mod rollout;
mod status;
#[cfg(test)]
mod tests;
mod tickets;
mod views;

pub use status::{HealthState, ServiceView, State, Status};
pub use tickets::{Failure, FailureKind, LINES_SHOWN, Outcome as TicketOutcome};

use crate::config::Config;
pub use crate::config::{ServiceId, Services};
use crate::ignored::Ignore;
use crate::logs::LogHub;
use crate::process::{self, Exit, GroupRecord, Spawner, Terminal};
use crate::statedir::StateDir;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// This many restarts in a row, each after a short run, is a crash loop.
pub const CRASH_LOOP: u32 = 3;
/// How often countdowns ("restarting in 3s", "building for 12s") are refreshed, while there
/// are some. Uptimes need nothing: a view carries its start (`ServiceView::since`).
const COUNTDOWN_EVERY: Duration = Duration::from_secs(1);
/// How long the engine's end waits for the disk to take the last lines and the record.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start {
        service: ServiceId,
    },
    Stop {
        service: ServiceId,
    },
    Restart {
        service: ServiceId,
    },
    /// Restart every wanted service in dependency order (dependencies first, each dependent once
    /// its conditions hold again); one-shot tasks are not run again.
    RestartAll,
    Rebuild {
        service: ServiceId,
    },
    Kill {
        service: ServiceId,
    },
    /// Stop everything in reverse dependency order, then end the engine.
    Shutdown,
    /// SIGKILL everything now, then end the engine.
    ForceShutdown,
    /// Bytes typed into the service's terminal.
    Input {
        service: ServiceId,
        bytes: Vec<u8>,
    },
    /// Resize the service's terminal.
    Resize {
        service: ServiceId,
        rows: u16,
        cols: u16,
    },
    /// Watched files of the service changed (paths as shown to the user), first seen `at`.
    FilesChanged {
        service: ServiceId,
        paths: Vec<String>,
        at: std::time::Instant,
    },
    /// Rebuild on file changes (true) or only when asked (false).
    SetAuto {
        service: ServiceId,
        auto: bool,
    },
    /// Serve a service with both a `run` and a `url` by its remote end (true) or its local
    /// process (false) from now on (`devstack use`).
    Use {
        service: ServiceId,
        remote: bool,
    },
}

enum Msg {
    /// A command, and who waits to hear of it.
    Cmd(Command, Reply),
    /// Who waits for the services (every wanted one when empty) to be ready, or to fail.
    AwaitReady(Vec<ServiceId>, oneshot::Sender<TicketOutcome>),
    /// Bytes for a service's terminal, and who waits to hear whether they were taken.
    Input(ServiceId, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Exited {
        service: ServiceId,
        id: u64,
        exit: Exit,
    },
    Probe {
        service: ServiceId,
        id: u64,
        result: Result<(), String>,
    },
    /// The processes that escaped their service's session, alive now.
    Escaped(process::orphans::Escaped),
    /// Who holds the port of a service about to start (check `id`).
    PortChecked {
        service: ServiceId,
        id: u64,
        holder: Option<process::PortHolder>,
    },
    /// CPU time and memory of each running service's session (session id = its pid).
    Usage(HashMap<i32, process::Load>),
    /// Nothing is connected any more to the old run process `id` a blue-green switch left
    /// draining.
    Drained { service: ServiceId, id: u64 },
    /// Whether the run process `id` listens on its port (asked before a rollout without a
    /// probe).
    Listening {
        service: ServiceId,
        id: u64,
        listening: bool,
    },
}

/// Who waits to hear of a command.
enum Reply {
    Nobody,
    /// That it was applied (the views show its first effect).
    Applied(oneshot::Sender<()>),
    /// That it took effect, or cannot (its ticket).
    Done(oneshot::Sender<TicketOutcome>),
}

/// A command's completion, resolved by the engine: `wait` gives how it ended, None once the
/// engine is gone.
pub struct Ticket(oneshot::Receiver<TicketOutcome>);

impl Ticket {
    pub async fn wait(self) -> Option<TicketOutcome> {
        self.0.await.ok()
    }
}

/// What the caller may do with a running engine.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    views: watch::Receiver<Services<ServiceView>>,
    events: broadcast::Sender<Change>,
}

/// A service's view changed: its state, health, pid, restarts or build status (`state`), or
/// only what moves with them (CPU, memory, a countdown, a probe's error).
#[derive(Debug, Clone)]
pub struct Change {
    pub state: bool,
    pub view: ServiceView,
}

impl Handle {
    pub fn send(&self, cmd: Command) {
        // Nobody waits: an engine that is gone has nothing to be told.
        self.tx
            .send(Msg::Cmd(cmd, Reply::Nobody))
            .or_say("an engine that is gone has nothing to be told");
    }

    /// Send a command and wait until the engine has applied it and published the result (the
    /// views then show its first effect). False when the engine is gone.
    pub async fn apply(&self, cmd: Command) -> bool {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Cmd(cmd, Reply::Applied(tx))).is_ok() && rx.await.is_ok()
    }

    /// Send a command with a ticket the engine resolves once it took effect (`start`,
    /// `restart`, `rebuild`: the service ready, by a new process for the last two; `stop`,
    /// `kill`: its process gone; restart all: every service renewed and the stack ready) or
    /// cannot. None when the engine is gone.
    pub fn ticket(&self, cmd: Command) -> Option<Ticket> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Cmd(cmd, Reply::Done(tx))).ok()?;
        Some(Ticket(rx))
    }

    /// A ticket resolved once the services `only` (every wanted one when empty) are ready, or
    /// one fails or is stopped (`ready::verdict`, as `ci` judges). None when the engine is gone.
    pub fn ready(&self, only: Vec<ServiceId>) -> Option<Ticket> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::AwaitReady(only, tx)).ok()?;
        Some(Ticket(rx))
    }

    /// Type `bytes` into service `i`'s terminal: refused, saying why, when it is not running or
    /// too much sent earlier still waits for it to read (the sender should slow down).
    pub async fn input(&self, service: ServiceId, bytes: Vec<u8>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Input(service, bytes, tx)).is_err() {
            return Err("the stack is shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the stack is shutting down".into()))
    }

    pub fn views(&self) -> watch::Receiver<Services<ServiceView>> {
        self.views.clone()
    }

    /// Each change of a service's view, as it happens.
    pub fn events(&self) -> broadcast::Receiver<Change> {
        self.events.subscribe()
    }
}

pub struct Options {
    /// Services asked for; empty means every `autostart` service. Dependencies come along.
    pub only: Vec<ServiceId>,
    /// End the engine once nothing runs and nothing will (headless `up`, `ci`).
    pub exit_when_settled: bool,
    /// Sample CPU and memory of every service about once a second (the dashboard shows them).
    pub sample_usage: bool,
    /// Starts, signals and probes the processes (`process::Pty`, or a fake in tests).
    pub spawner: Arc<dyn Spawner>,
}

/// How the engine ended.
pub struct Outcome {
    /// Services that ended in failure, with their final status.
    pub failures: Vec<(String, Status)>,
}

struct Proc {
    id: u64,
    pid: i32,
    /// Which of the service's ways to start it used (its port, `PORT`, command, probe).
    slot: crate::config::Slot,
    started: Instant,
    /// Kept open so the service keeps its terminal; input and resizes go through it.
    terminal: Box<dyn Terminal>,
    /// The health probe task of a run process.
    probe: Option<AbortHandle>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(probe) = &self.probe {
            probe.abort();
        }
    }
}

/// What to do once a run process we stopped has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Rest,
    Run,
    /// Start again after the restart backoff, as after a crash (an unhealthy service).
    Backoff,
}

struct Svc {
    status: Status,
    want_up: bool,
    /// Its run process, while there is one (or its port is checked before it starts).
    serving: phase::Serving,
    /// A build, or a blue-green rollout's new run process, beside what serves.
    coming: phase::Coming,
    /// The run process a blue-green switch replaced, draining then stopping.
    retiring: phase::Retiring,
    /// The slot the next run process starts in, unless it starts beside one (the other).
    slot: crate::config::Slot,
    /// Why the last rollout's new process never served (the old one kept serving); cleared
    /// by the next start.
    rollout_failed: Option<String>,
    /// A rollout waits for the process the last switch replaced to leave its port.
    roll_next: bool,
    /// Whether the serving process is known to listen (a rollout without a probe asks).
    listens: rollout::Listens,
    /// Two run processes live (a rollout): their lines are marked with their pids.
    overlap: Arc<std::sync::atomic::AtomicBool>,
    /// The last build succeeded, so the run command can start without another one.
    built: bool,
    restarts: u32,
    backoff: u32,
    health: Health,
    /// Run processes started so far.
    spawns: u64,
    /// Rebuild when watched files change (a service with `watch` starts with it on).
    auto: bool,
    /// When builds ran, and whether changes keep coming in during them.
    guard: rebuild::Guard,
    /// Exits with 127 from `sh -c` in a row (see `lifecycle::NOT_FOUND_LIMIT`).
    not_found: u32,
    /// Restart it once its dependencies are up again (`R`, restart all, in dependency order).
    restart_wave: bool,
    /// Served by its remote end (`url`) rather than a process here: always without a `run`,
    /// after `devstack use NAME remote` with one.
    remote: bool,
}

impl Svc {
    fn new(want_up: bool) -> Svc {
        Svc {
            status: if want_up {
                Status::Pending(None)
            } else {
                Status::Stopped
            },
            want_up,
            serving: phase::Serving::None,
            coming: phase::Coming::None,
            retiring: phase::Retiring::None,
            slot: crate::config::Slot::A,
            rollout_failed: None,
            overlap: Arc::default(),
            roll_next: false,
            listens: rollout::Listens::Unknown,
            built: false,
            restarts: 0,
            backoff: 0,
            health: Health::default(),
            spawns: 0,
            auto: true,
            guard: rebuild::Guard::default(),
            remote: false,
            not_found: 0,
            restart_wave: false,
        }
    }

    /// No process of it lives.
    fn idle(&self) -> bool {
        self.serving.proc().is_none() && self.coming.is_none() && self.retiring.proc().is_none()
    }
}

/// Health of the current run process, as its probe last said.
#[derive(Debug, Clone, Default)]
struct Health {
    state: HealthState,
    /// Consecutive failed probes.
    fails: u32,
    ever_healthy: bool,
    last_error: Option<String>,
}

pub struct Engine {
    cfg: Arc<Config>,
    logs: Arc<LogHub>,
    spawner: Arc<dyn Spawner>,
    svcs: Services<Svc>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    views: watch::Sender<Services<ServiceView>>,
    events: broadcast::Sender<Change>,
    record: GroupRecord,
    next_id: u64,
    shutting_down: bool,
    exit_when_settled: bool,
    /// Someone stopped or killed a service by command: they are working with the stack, so it
    /// stays up even when nothing runs.
    user_stopped: bool,
    /// Commands applied since the last publish, whose senders wait to hear so.
    acks: Vec<oneshot::Sender<()>>,
    /// Commands and waits whose senders wait to hear how they end.
    tickets: Vec<tickets::Ticket>,
    sample_usage: bool,
    /// The keeper's latest CPU % and memory of each session (by its leader's pid).
    loads: HashMap<i32, process::Load>,
}

impl Engine {
    pub fn new(cfg: Arc<Config>, logs: Arc<LogHub>, opts: Options) -> (Engine, Handle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut svcs = deps::wanted_set(&cfg, &opts.only).map(|&wanted| Svc::new(wanted));
        for (svc, spec) in svcs.values_mut().zip(cfg.services.values()) {
            svc.remote = spec.remote_only();
        }
        let record = GroupRecord::new(StateDir::new(&cfg.root).groups());
        let (views, views_rx) = watch::channel(Services::default());
        let events = broadcast::channel(1024).0;
        let engine = Engine {
            cfg,
            logs,
            spawner: opts.spawner,
            svcs,
            tx: tx.clone(),
            rx,
            views,
            events: events.clone(),
            record,
            next_id: 0,
            shutting_down: false,
            exit_when_settled: opts.exit_when_settled,
            user_stopped: false,
            acks: Vec::new(),
            tickets: Vec::new(),
            sample_usage: opts.sample_usage,
            loads: HashMap::new(),
        };
        engine.publish();
        (
            engine,
            Handle {
                tx,
                views: views_rx,
                events,
            },
        )
    }

    /// Escaped processes seen: recorded, and those being stopped said in their service's log.
    fn escaped(&mut self, escaped: process::orphans::Escaped) {
        for o in &escaped.stopping {
            if let Some(i) = self.cfg.services.find(|s| s.name == o.service) {
                self.say(
                    i,
                    format!(
                        "stopping process {} (it left the service's session; the run it came from has ended)",
                        o.pid
                    ),
                );
            }
        }
        self.record.set_escaped(escaped.alive);
    }

    /// Kill what a previous run that died without cleaning up left behind.
    pub fn reap_leftovers(&self) -> Vec<String> {
        let mut said = self.record.reap_leftovers(&self.cfg.stack_id);
        if let Some(engine) = &self.cfg.container_engine {
            said.extend(crate::process::containers::remove_leftovers(
                engine,
                &self.cfg.stack_id,
            ));
        }
        said
    }

    /// The keeper of escaped processes (and sampler of CPU and memory), reporting here.
    fn keeper(&self) -> Box<dyn Send> {
        let tx = self.tx.clone();
        let kept = self
            .cfg
            .services
            .values()
            .map(|s| process::orphans::Kept {
                name: s.name.clone(),
                containers: s.container.as_ref().map_or_else(Vec::new, |c| {
                    vec![
                        c.name_in(crate::config::Slot::A),
                        c.name_in(crate::config::Slot::B),
                    ]
                }),
                task: s.is_task(),
                stop_signal: s.stop_signal,
                grace: s.grace,
            })
            .collect();
        // CPU and memory, when wanted: by the dashboard, or by a client that subscribes
        // (an attached dashboard shows them); the keeper samples them, and says news only.
        let (events, wanted) = (self.events.clone(), self.sample_usage);
        let usage = process::UsageFeed {
            wanted: Box::new(move || wanted || events.receiver_count() > 0),
            report: Box::new({
                let tx = tx.clone();
                move |loads| drop(tx.send(Msg::Usage(loads)))
            }),
        };
        self.spawner.keep_escaped(
            kept,
            Box::new(move |escaped| {
                tx.send(Msg::Escaped(escaped))
                    .or_say("the engine has ended; the keeper reports to nobody");
            }),
            usage,
        )
    }

    pub async fn run(mut self) -> Outcome {
        // Kills escaped processes whose service is gone; the last of them once the engine ends.
        let keeper = self.keeper();
        let mut countdown = tokio::time::interval(COUNTDOWN_EVERY);
        countdown.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.reconcile();
            self.publish();
            for ack in self.acks.drain(..) {
                // A sender that stopped waiting needs no answer.
                ack.send(()).or_say("the sender stopped waiting");
            }
            self.resolve_tickets();
            let busy = self.svcs.values().any(|s| !s.idle());
            let settled = self.exit_when_settled && !self.user_stopped && self.all_settled();
            if !busy && (self.shutting_down || settled) {
                break;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Cmd(cmd, reply)) => self.received(cmd, reply),
                    Some(Msg::AwaitReady(only, reply)) => {
                        let goal = self.stack_goal(only);
                        self.add_ticket(goal, std::time::SystemTime::now(), reply);
                    }
                    Some(Msg::Input(i, bytes, reply)) => {
                        tracing::trace!(service = self.name(i), bytes = bytes.len(), "input");
                        reply.send(self.type_into(i, bytes)).or_say("the sender stopped waiting");
                    }
                    Some(Msg::Exited { service, id, exit }) => self.exited(service, id, exit),
                    Some(Msg::Probe { service, id, result }) => self.probed(service, id, result),
                    Some(Msg::Escaped(escaped)) => self.escaped(escaped),
                    Some(Msg::PortChecked { service, id, holder }) => {
                        self.port_checked(service, id, holder)
                    }
                    Some(Msg::Usage(loads)) => self.loads = loads,
                    Some(Msg::Drained { service, id }) => self.drained(service, id),
                    Some(Msg::Listening { service, id, listening }) => {
                        self.listening(service, id, listening)
                    }
                    None => break,
                },
                _ = sleep_until(deadline) => self.timers(),
                // Each pass of the loop publishes what changed: a countdown, once a second.
                _ = countdown.tick(), if self.counting_down() => {}
                // A log file failed, or works again: `ps` says so.
                _ = self.logs.loss_changed() => {}
            }
        }
        self.finish(keeper).await
    }

    /// The last escaped processes go (with their stop signal and grace); the record is emptied
    /// and the last lines written: all off this thread, the disk waited for a while at most.
    async fn finish(self, keeper: Box<dyn Send>) -> Outcome {
        let (record, logs) = (self.record.clone(), self.logs.clone());
        tokio::task::spawn_blocking(move || {
            drop(keeper);
            record.set_escaped(Vec::new());
            record.flush(FLUSH_WAIT);
            logs.flush(FLUSH_WAIT);
        })
        .await
        .or_say("the last flush panicked; the engine ends anyway");
        Outcome {
            failures: self
                .svcs
                .iter()
                .filter(|(_, s)| s.status.is_failure())
                .map(|(i, s)| (self.name(i).to_string(), s.status.clone()))
                .collect(),
        }
    }

    /// Apply a command, and note who waits to hear of it.
    fn received(&mut self, cmd: Command, reply: Reply) {
        match &cmd {
            // What is typed into a service stays out of the log.
            Command::Input { service, bytes } => {
                tracing::trace!(
                    service = self.name(*service),
                    bytes = bytes.len(),
                    "command: input"
                )
            }
            cmd => tracing::debug!(?cmd, "command"),
        }
        let asked = std::time::SystemTime::now();
        let goal = match reply {
            Reply::Done(_) => self.goal(&cmd),
            _ => None,
        };
        self.command(cmd);
        match (reply, goal) {
            (Reply::Nobody, _) => {}
            (Reply::Applied(ack), _) => self.acks.push(ack),
            (Reply::Done(reply), Some(goal)) => self.add_ticket(goal, asked, reply),
            // A command with no effect to wait for is done once applied.
            (Reply::Done(reply), None) => {
                reply
                    .send(TicketOutcome::Done(Vec::new()))
                    .or_say("the sender stopped waiting");
            }
        }
    }

    fn all_settled(&self) -> bool {
        self.svcs.values().all(|s| s.status.is_settled())
    }

    fn name(&self, i: ServiceId) -> &str {
        &self.cfg.services[i].name
    }

    fn say(&self, i: ServiceId, text: impl AsRef<str>) {
        tracing::debug!(service = self.name(i), "{}", text.as_ref());
        self.logs.system(i, text);
    }

    fn set(&mut self, i: ServiceId, status: Status) {
        self.svcs[i].status = status;
    }
}

/// Until `deadline`; forever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
