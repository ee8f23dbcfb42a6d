//! The engine: owns every service's state, starts them in dependency order, applies the restart
//! policy, stops them in reverse order. Interfaces send `Command`s and read `ServiceView`s.

pub mod ready;
mod status;

pub use status::{HealthState, ServiceView, Status, secs};

use crate::config::{Condition, Config, Probe, Restart};
use crate::health;
use crate::logs::{LogHub, OutputFeed, Stream};
use crate::process::{self, Exit, GroupRecord};
use crate::statedir::StateDir;
use portable_pty::MasterPty;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// Backoff doubles from here …
const BACKOFF_START: Duration = Duration::from_secs(1);
/// … up to here,
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// and starts over once a process has run this long.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// This many restarts in a row, each after a short run, is a crash loop.
pub const CRASH_LOOP: u32 = 3;
/// Rebuilds in a row asked for by changes made while the service was building, after which
/// rebuilding on change turns off for it (its build writes into its own watched files).
const SELF_TRIGGER_LIMIT: u32 = 3;
/// How often CPU and memory are sampled, when they are.
const USAGE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start(usize),
    Stop(usize),
    Restart(usize),
    Rebuild(usize),
    Kill(usize),
    /// Stop everything in reverse dependency order, then end the engine.
    Shutdown,
    /// SIGKILL everything now, then end the engine.
    ForceShutdown,
    /// Bytes typed into the service's terminal.
    Input(usize, Vec<u8>),
    /// Resize the service's terminal (rows, columns).
    Resize(usize, u16, u16),
    /// Watched files of the service changed (paths as shown to the user), first seen then.
    FilesChanged(usize, Vec<String>, Instant),
    /// Rebuild on file changes (true) or only when asked (false).
    SetAuto(usize, bool),
}

enum Msg {
    /// A command, and who waits to hear that it was applied.
    Cmd(Command, Option<oneshot::Sender<()>>),
    Exited {
        service: usize,
        id: u64,
        exit: Exit,
    },
    Probe {
        service: usize,
        id: u64,
        result: Result<(), String>,
    },
}

/// What the caller may do with a running engine.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    views: watch::Receiver<Vec<ServiceView>>,
    events: broadcast::Sender<ServiceView>,
}

impl Handle {
    pub fn send(&self, cmd: Command) {
        let _ = self.tx.send(Msg::Cmd(cmd, None));
    }

    /// Send a command and wait until the engine has applied it and published the result (the
    /// views then show its first effect). False when the engine is gone.
    pub async fn apply(&self, cmd: Command) -> bool {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Cmd(cmd, Some(tx))).is_ok() && rx.await.is_ok()
    }

    pub fn views(&self) -> watch::Receiver<Vec<ServiceView>> {
        self.views.clone()
    }

    /// Each change of a service's state, health, pid or restarts, as it happens.
    pub fn events(&self) -> broadcast::Receiver<ServiceView> {
        self.events.subscribe()
    }
}

pub struct Options {
    /// Services asked for; empty means every `autostart` service. Dependencies come along.
    pub only: Vec<usize>,
    /// End the engine once nothing runs and nothing will (headless `up`, `ci`).
    pub exit_when_settled: bool,
    /// Sample CPU and memory of every service about once a second (the dashboard shows them).
    pub sample_usage: bool,
}

/// How the engine ended.
pub struct Outcome {
    /// Services that ended in failure, with their final status.
    pub failures: Vec<(String, Status)>,
}

struct Proc {
    id: u64,
    pid: i32,
    started: Instant,
    stopping: bool,
    kill_at: Option<Instant>,
    /// Kept open so the service keeps its terminal; input and resizes go through it.
    master: Box<dyn MasterPty + Send>,
    /// Feeds typed input to a writer thread (a full terminal must not block the engine).
    input: Option<std::sync::mpsc::Sender<Vec<u8>>>,
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
    build: Option<Proc>,
    run: Option<Proc>,
    then: Then,
    /// The last build succeeded, so the run command can start without another one.
    built: bool,
    /// A rebuild was asked for while a build ran: exactly one more follows it.
    rebuild_queued: bool,
    restarts: u32,
    backoff: u32,
    health: Health,
    /// Run processes started so far.
    spawns: u64,
    /// The last usage sample of the run process: CPU % since the one before, and memory.
    usage: Option<(f32, u64)>,
    /// Rebuild when watched files change (a service with `watch` starts with it on).
    auto: bool,
    /// When the last build ran (start, end): changes seen then may be the build's own writes.
    last_build: Option<(Instant, Option<Instant>)>,
    /// Builds in a row during which (or right after which) watched files changed: a build that
    /// writes into its own watched files. At `SELF_TRIGGER_LIMIT` auto-rebuild turns off.
    self_triggered: u32,
    /// The start of the build last counted in `self_triggered` (each build counts once).
    counted_build: Option<Instant>,
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
    svcs: Vec<Svc>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    views: watch::Sender<Vec<ServiceView>>,
    events: broadcast::Sender<ServiceView>,
    record: GroupRecord,
    next_id: u64,
    shutting_down: bool,
    exit_when_settled: bool,
    /// Someone stopped or killed a service by command: they are working with the stack, so it
    /// stays up even when nothing runs.
    user_stopped: bool,
    /// Commands applied since the last publish, whose senders wait to hear so.
    acks: Vec<oneshot::Sender<()>>,
    sample_usage: bool,
    /// The previous usage sample: when, and CPU time per session.
    last_sample: Option<(Instant, HashMap<i32, Duration>)>,
}

impl Engine {
    pub fn new(cfg: Arc<Config>, logs: Arc<LogHub>, opts: Options) -> (Engine, Handle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let wanted = wanted_set(&cfg, &opts.only);
        let svcs = wanted
            .iter()
            .map(|&want_up| Svc {
                status: if want_up {
                    Status::Pending
                } else {
                    Status::Stopped
                },
                want_up,
                build: None,
                run: None,
                then: Then::Rest,
                built: false,
                rebuild_queued: false,
                restarts: 0,
                backoff: 0,
                health: Health::default(),
                spawns: 0,
                usage: None,
                auto: true,
                last_build: None,
                self_triggered: 0,
                counted_build: None,
            })
            .collect();
        let record = GroupRecord::new(StateDir::new(&cfg.root).groups());
        let (views, views_rx) = watch::channel(Vec::new());
        let events = broadcast::channel(1024).0;
        let engine = Engine {
            cfg,
            logs,
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
            sample_usage: opts.sample_usage,
            last_sample: None,
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

    /// Kill what a previous run that died without cleaning up left behind.
    pub fn reap_leftovers(&self) -> Vec<String> {
        self.record.reap_leftovers()
    }

    pub async fn run(mut self) -> Outcome {
        let mut usage_tick = tokio::time::interval(USAGE_EVERY);
        usage_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.reconcile();
            self.publish();
            for ack in self.acks.drain(..) {
                let _ = ack.send(());
            }
            let busy = self
                .svcs
                .iter()
                .any(|s| s.build.is_some() || s.run.is_some());
            let settled = self.exit_when_settled && !self.user_stopped && self.all_settled();
            if !busy && (self.shutting_down || settled) {
                break;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Cmd(cmd, ack)) => {
                        self.command(cmd);
                        self.acks.extend(ack);
                    }
                    Some(Msg::Exited { service, id, exit }) => self.exited(service, id, exit),
                    Some(Msg::Probe { service, id, result }) => self.probed(service, id, result),
                    None => break,
                },
                _ = sleep_until(deadline) => self.timers(),
                // Once a second: fresh uptimes and countdowns, and CPU and memory if wanted.
                _ = usage_tick.tick() => if self.sample_usage { self.sample() },
            }
        }
        Outcome {
            failures: self
                .svcs
                .iter()
                .zip(&self.cfg.services)
                .filter(|(s, _)| s.status.is_failure())
                .map(|(s, c)| (c.name.clone(), s.status.clone()))
                .collect(),
        }
    }

    fn all_settled(&self) -> bool {
        self.svcs.iter().all(|s| s.status.is_settled())
    }

    fn name(&self, i: usize) -> &str {
        &self.cfg.services[i].name
    }

    fn say(&self, i: usize, text: impl AsRef<str>) {
        self.logs.system(i, text);
    }

    fn set(&mut self, i: usize, status: Status) {
        self.svcs[i].status = status;
    }

    // ---- commands -------------------------------------------------------------------------

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start(i) => self.start(i),
            Command::Stop(i) => {
                self.user_stopped = true;
                self.svcs[i].want_up = false;
                self.stop(i, Then::Rest);
                if self.svcs[i].run.is_none() && self.svcs[i].build.is_none() {
                    self.set(i, Status::Stopped);
                }
            }
            Command::Restart(i) => {
                let task = self.cfg.services[i].is_task();
                let svc = &mut self.svcs[i];
                svc.want_up = true;
                svc.backoff = 0;
                if task {
                    svc.built = false;
                }
                if svc.run.is_some() {
                    self.say(i, "restarting");
                    self.stop(i, Then::Run);
                } else if svc.build.is_none() {
                    self.set(i, Status::Pending);
                }
            }
            Command::Rebuild(i) => self.rebuild(i),
            Command::Kill(i) => {
                self.user_stopped = true;
                self.kill(i);
                self.say(i, "killed (SIGKILL to the process group)");
                if self.svcs[i].run.is_none() && self.svcs[i].build.is_none() {
                    self.set(i, Status::Stopped);
                }
            }
            Command::Shutdown => {
                if !self.shutting_down {
                    self.shutting_down = true;
                    for i in 0..self.svcs.len() {
                        self.svcs[i].want_up = false;
                        if let Some(b) = &self.svcs[i].build
                            && !b.stopping
                        {
                            self.stop_proc(i, false);
                        }
                        if self.svcs[i].run.is_none() && !self.svcs[i].status.is_settled() {
                            self.set(i, Status::Stopped);
                        }
                    }
                }
            }
            Command::Input(i, bytes) => self.type_into(i, bytes),
            Command::FilesChanged(i, paths, at) => self.files_changed(i, paths, at),
            Command::SetAuto(i, auto) => {
                let svc = &mut self.svcs[i];
                svc.auto = auto;
                svc.self_triggered = 0;
                self.say(
                    i,
                    if auto {
                        "rebuild on change: on"
                    } else {
                        "rebuild on change: off (rebuild by hand)"
                    },
                );
            }
            Command::Resize(i, rows, cols) => {
                if let Some(proc) = &self.svcs[i].run {
                    let size = portable_pty::PtySize {
                        rows,
                        cols,
                        pixel_width: 0,
                        pixel_height: 0,
                    };
                    let _ = proc.master.resize(size);
                }
            }
            Command::ForceShutdown => {
                self.shutting_down = true;
                for i in 0..self.svcs.len() {
                    self.kill(i);
                }
            }
        }
    }

    fn type_into(&mut self, i: usize, bytes: Vec<u8>) {
        let Some(proc) = &mut self.svcs[i].run else {
            return;
        };
        if proc.input.is_none() {
            let Ok(mut writer) = proc.master.take_writer() else {
                return;
            };
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let spawned = std::thread::Builder::new()
                .name(format!("pty-write-{}", proc.pid))
                .spawn(move || {
                    use std::io::Write;
                    while let Ok(bytes) = rx.recv() {
                        if writer
                            .write_all(&bytes)
                            .and_then(|()| writer.flush())
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            if spawned.is_err() {
                return;
            }
            proc.input = Some(tx);
        }
        if let Some(tx) = &proc.input {
            let _ = tx.send(bytes);
        }
    }

    fn files_changed(&mut self, i: usize, paths: Vec<String>, at: Instant) {
        let what = match paths.as_slice() {
            [one] => format!("{one} changed"),
            [a, b] => format!("{a} and {b} changed"),
            [a, b, rest @ ..] => format!("{a}, {b} and {} more changed", rest.len()),
            [] => return,
        };
        let svc = &self.svcs[i];
        if !svc.want_up || self.shutting_down {
            return;
        }
        if !svc.auto {
            self.say(
                i,
                format!("{what} (rebuild on change is off: rebuild by hand)"),
            );
            return;
        }
        // Seen while it built (or within a debounce of the end): maybe the build's own writes.
        let slack = self.cfg.debounce + Duration::from_millis(100);
        let during_build = match svc.last_build {
            Some((start, None)) => (at >= start).then_some(start),
            Some((start, Some(end))) => (at >= start && at <= end + slack).then_some(start),
            None => None,
        };
        let svc = &mut self.svcs[i];
        match during_build {
            // Several saves during one slow build are one build's worth, not a loop.
            Some(start) if svc.counted_build != Some(start) => {
                svc.self_triggered += 1;
                svc.counted_build = Some(start);
            }
            Some(_) => {}
            None => svc.self_triggered = 0,
        }
        if svc.self_triggered >= SELF_TRIGGER_LIMIT {
            svc.auto = false;
            svc.self_triggered = 0;
            let name = &self.cfg.services[i].name;
            self.say(i, format!(
                "{what} during each of the last {SELF_TRIGGER_LIMIT} builds: the build seems to write into its own watched files. Rebuild on change is now off; add those files to `ignore`, then turn it on again (m, or `devstack watch {name} auto`)"
            ));
            return;
        }
        self.say(i, format!("rebuilding: {what}"));
        self.rebuild(i);
    }

    /// Want `i` and everything it depends on up.
    fn start(&mut self, i: usize) {
        for dep in self.cfg.services[i].deps.clone() {
            self.start(dep.service);
        }
        let svc = &mut self.svcs[i];
        svc.want_up = true;
        svc.backoff = 0;
        if svc.run.as_ref().is_some_and(|p| p.stopping) {
            // Asked to start while it stops: start again once it has.
            svc.then = Then::Run;
        } else if svc.run.is_none()
            && svc.build.is_none()
            && !matches!(svc.status, Status::Completed)
        {
            svc.status = Status::Pending;
        }
    }

    fn rebuild(&mut self, i: usize) {
        if self.cfg.services[i].build.is_none() {
            // Nothing to build: a rebuild is a restart.
            return self.command(Command::Restart(i));
        }
        self.svcs[i].want_up = true;
        if self.svcs[i].build.is_some() {
            self.svcs[i].rebuild_queued = true;
            self.say(i, "a build is running; one more will follow it");
        } else if self.svcs[i].run.is_some() || self.deps_state(i).is_ok() {
            // A running service builds beside its old process, whatever its dependencies do.
            self.spawn_build(i);
        } else {
            self.svcs[i].built = false;
            self.set(i, Status::Pending);
        }
    }

    /// SIGKILL the service's processes, as a stop (their exits are not crashes).
    fn kill(&mut self, i: usize) {
        let svc = &mut self.svcs[i];
        svc.want_up = false;
        svc.rebuild_queued = false;
        for proc in svc.build.iter_mut().chain(svc.run.iter_mut()) {
            proc.stopping = true;
            proc.kill_at = None;
            process::kill_session(proc.pid);
        }
    }

    /// Stop the service's processes with its stop signal; `then` says what follows the run
    /// process's exit.
    fn stop(&mut self, i: usize, then: Then) {
        self.svcs[i].rebuild_queued = false;
        if self.svcs[i].build.is_some() {
            self.stop_proc(i, false);
        }
        if self.svcs[i].run.is_some() {
            self.svcs[i].then = then;
            self.stop_proc(i, true);
        } else if matches!(
            self.svcs[i].status,
            Status::Restarting { .. } | Status::Pending | Status::Blocked(_)
        ) {
            self.svcs[i].status = Status::Stopped;
        }
    }

    fn stop_proc(&mut self, i: usize, run: bool) {
        let spec = &self.cfg.services[i];
        let (signal, grace) = (spec.stop_signal, spec.grace);
        let svc = &mut self.svcs[i];
        let proc = if run {
            svc.run.as_mut()
        } else {
            svc.build.as_mut()
        };
        let Some(proc) = proc else { return };
        if proc.stopping {
            return;
        }
        proc.stopping = true;
        proc.kill_at = Some(Instant::now() + grace);
        let pid = proc.pid;
        if run {
            svc.status = Status::Stopping;
        }
        process::signal_group(pid, signal);
        let what = if run {
            "stopping"
        } else {
            "stopping the build"
        };
        self.say(
            i,
            format!(
                "{what}: sent {} to process group {pid}",
                signal.as_str().trim_start_matches("SIG")
            ),
        );
    }

    // ---- starting ----------------------------------------------------------------------------

    /// Start whatever is wanted and whose dependencies allow it; block what cannot start; during
    /// shutdown, stop whatever nothing running depends on any more.
    fn reconcile(&mut self) {
        if self.shutting_down {
            for i in self.cfg.order.clone().into_iter().rev() {
                let has_live_dependent = self.cfg.services.iter().enumerate().any(|(k, s)| {
                    s.deps.iter().any(|d| d.service == i)
                        && (self.svcs[k].run.is_some() || self.svcs[k].build.is_some())
                });
                if self.svcs[i].run.as_ref().is_some_and(|p| !p.stopping) && !has_live_dependent {
                    self.stop(i, Then::Rest);
                }
            }
            return;
        }
        for i in self.cfg.order.clone() {
            let svc = &self.svcs[i];
            if !svc.want_up || svc.run.is_some() || svc.build.is_some() {
                continue;
            }
            if !matches!(svc.status, Status::Pending | Status::Blocked(_)) {
                continue;
            }
            match self.deps_state(i) {
                Ok(()) => {
                    let spec = &self.cfg.services[i];
                    if spec.build.is_some() && (!self.svcs[i].built || spec.is_task()) {
                        self.spawn_build(i);
                    } else {
                        self.spawn_run(i);
                    }
                }
                Err(Some(reason)) => {
                    if self.svcs[i].status != Status::Blocked(reason.clone()) {
                        self.say(i, format!("blocked: {reason}"));
                        self.set(i, Status::Blocked(reason));
                    }
                }
                Err(None) => self.set(i, Status::Pending),
            }
        }
    }

    /// Ok when every dependency meets its condition; Err(Some(why)) when one never will.
    fn deps_state(&self, i: usize) -> Result<(), Option<String>> {
        let mut waiting = false;
        for dep in &self.cfg.services[i].deps {
            let j = dep.service;
            let status = &self.svcs[j].status;
            let name = self.name(j);
            let met = match dep.condition {
                Condition::Completed => *status == Status::Completed,
                Condition::Started => matches!(status, Status::Running | Status::Completed),
                Condition::Healthy => {
                    *status == Status::Running && self.svcs[j].health.state == HealthState::Healthy
                }
            };
            if met {
                continue;
            }
            let failed = match status {
                Status::Blocked(_)
                | Status::BuildFailed(_)
                | Status::Failed(_)
                | Status::Crashed(_) => true,
                // An exited service won't come back (with `restart = "always"` it would be
                // restarting instead).
                Status::Exited(_) => true,
                Status::Stopped => !self.svcs[j].want_up,
                _ => false,
            };
            if failed {
                return Err(Some(format!("dependency `{name}` is {status}")));
            }
            waiting = true;
        }
        if waiting { Err(None) } else { Ok(()) }
    }

    fn spawn_build(&mut self, i: usize) {
        let spec = &self.cfg.services[i];
        let cmd = spec.build.clone().expect("has a build");
        self.say(i, format!("build started: {cmd}"));
        self.svcs[i].last_build = Some((Instant::now(), None));
        if self.svcs[i].run.is_none() {
            self.set(i, Status::Building);
        }
        self.spawn(i, false, &cmd);
    }

    fn spawn_run(&mut self, i: usize) {
        let cmd = self.cfg.services[i].run.clone().expect("has a run command");
        self.spawn(i, true, &cmd);
    }

    fn spawn(&mut self, i: usize, run: bool, cmd: &crate::config::CommandLine) {
        self.next_id += 1;
        let id = self.next_id;
        let spec = &self.cfg.services[i];
        let stream = if run { Stream::Out } else { Stream::Build };
        let mut feed = OutputFeed::new(self.logs.clone(), i, stream);
        if run {
            feed = feed.with_announce(cmd.to_string());
        }
        if let (true, Some(Probe::Log(re))) = (run, spec.health.as_ref().map(|h| &h.probe)) {
            let tx = self.tx.clone();
            let found = move || {
                let _ = tx.send(Msg::Probe {
                    service: i,
                    id,
                    result: Ok(()),
                });
            };
            feed = feed.with_matcher((re.clone(), Box::new(found)));
        }
        let tx = self.tx.clone();
        let result = process::spawn(cmd, &spec.cwd, &spec.env, feed, move |exit| {
            let _ = tx.send(Msg::Exited {
                service: i,
                id,
                exit,
            });
        });
        match result {
            Ok(spawned) => {
                let name = spec.name.clone();
                self.record.add(spawned.pid, &name);
                let proc = Proc {
                    id,
                    pid: spawned.pid,
                    started: Instant::now(),
                    stopping: false,
                    kill_at: None,
                    master: spawned.master,
                    input: None,
                    probe: None,
                };
                if run {
                    self.svcs[i].run = Some(proc);
                    self.svcs[i].spawns += 1;
                    self.svcs[i].health = Health::default();
                    self.start_probe(i, id);
                    self.set(i, Status::Running);
                } else {
                    self.svcs[i].build = Some(proc);
                }
            }
            Err(e) => {
                self.say(i, format!("{e:#}"));
                let exit = Exit::Code(127);
                self.set(
                    i,
                    if !run {
                        Status::BuildFailed(exit)
                    } else {
                        Status::Crashed(exit)
                    },
                );
            }
        }
    }

    // ---- exits and timers ----------------------------------------------------------------------

    fn exited(&mut self, i: usize, id: u64, exit: Exit) {
        let svc = &mut self.svcs[i];
        let was_build = svc.build.as_ref().is_some_and(|p| p.id == id);
        let proc = if was_build {
            svc.build.take()
        } else if svc.run.as_ref().is_some_and(|p| p.id == id) {
            svc.run.take()
        } else {
            return;
        };
        let proc = proc.expect("matched above");
        // Its session was cleared when it exited; nothing signals this pid any more.
        process::reap(proc.pid);
        self.record.remove(proc.pid);
        let ran = proc.started.elapsed();
        if was_build {
            self.build_exited(i, proc, exit, ran);
        } else {
            self.run_exited(i, proc, exit, ran);
        }
    }

    fn build_exited(&mut self, i: usize, proc: Proc, exit: Exit, took: Duration) {
        let task = self.cfg.services[i].is_task();
        if let Some((start, None)) = self.svcs[i].last_build {
            self.svcs[i].last_build = Some((start, Some(Instant::now())));
        }
        if proc.stopping {
            self.say(i, format!("build stopped ({exit})"));
            if self.svcs[i].run.is_none() {
                self.set(
                    i,
                    if self.svcs[i].want_up {
                        Status::Pending
                    } else {
                        Status::Stopped
                    },
                );
            }
            return;
        }
        if self.svcs[i].rebuild_queued && !self.shutting_down {
            self.svcs[i].rebuild_queued = false;
            self.say(
                i,
                format!("build finished ({exit}); building again for the changes made during it"),
            );
            return self.spawn_build(i);
        }
        if !exit.success() {
            self.svcs[i].built = false;
            if task {
                self.say(i, format!("task failed ({exit}) after {}", secs(took)));
                self.set(i, Status::Failed(exit));
            } else if self.svcs[i].run.is_some() {
                self.say(
                    i,
                    format!("build failed ({exit}); the previous process keeps running"),
                );
            } else {
                self.say(i, format!("build failed ({exit})"));
                self.set(i, Status::BuildFailed(exit));
            }
            return;
        }
        self.svcs[i].built = true;
        if task {
            self.say(i, format!("task completed in {}", secs(took)));
            self.set(i, Status::Completed);
        } else if self.shutting_down || !self.svcs[i].want_up {
            self.set(i, Status::Stopped);
        } else if self.svcs[i].run.is_some() {
            self.say(i, format!("build finished in {}; restarting", secs(took)));
            self.stop(i, Then::Run);
            self.restart_dependents_of(i);
        } else {
            self.say(i, format!("build finished in {}", secs(took)));
            self.spawn_run(i);
        }
    }

    /// Dependents that asked for it (`restart = true`) restart when `i` was rebuilt.
    fn restart_dependents_of(&mut self, i: usize) {
        let name = self.name(i).to_string();
        for k in 0..self.svcs.len() {
            let asks = self.cfg.services[k]
                .deps
                .iter()
                .any(|d| d.service == i && d.restart);
            if asks && self.svcs[k].run.as_ref().is_some_and(|p| !p.stopping) {
                self.say(k, format!("restarting: dependency `{name}` was rebuilt"));
                self.stop(k, Then::Run);
            }
        }
    }

    fn run_exited(&mut self, i: usize, proc: Proc, exit: Exit, ran: Duration) {
        let spec = &self.cfg.services[i];
        if proc.stopping {
            self.say(i, format!("stopped ({exit})"));
            let then = std::mem::replace(&mut self.svcs[i].then, Then::Rest);
            if self.svcs[i].want_up && !self.shutting_down {
                match then {
                    Then::Run => return self.spawn_run(i),
                    Then::Backoff => return self.schedule_restart(i, exit, ran),
                    Then::Rest => {}
                }
            }
            let status = if self.svcs[i].want_up {
                Status::Exited(exit)
            } else {
                Status::Stopped
            };
            return self.set(i, status);
        }
        let again = !self.shutting_down
            && self.svcs[i].want_up
            && match spec.restart {
                Restart::No => false,
                Restart::OnFailure => !exit.success(),
                Restart::Always => true,
            };
        if !again {
            self.say(i, format!("exited with {exit}"));
            let status = if exit.success() {
                Status::Exited(exit)
            } else {
                Status::Crashed(exit)
            };
            return self.set(i, status);
        }
        self.schedule_restart(i, exit, ran);
    }

    /// Start again after the backoff, which grows with each restart that follows a short run.
    fn schedule_restart(&mut self, i: usize, exit: Exit, ran: Duration) {
        let svc = &mut self.svcs[i];
        if ran >= STABLE_AFTER {
            svc.backoff = 0;
        }
        let delay = backoff(svc.backoff);
        svc.backoff += 1;
        svc.restarts += 1;
        let n = svc.restarts;
        svc.status = Status::Restarting {
            at: Instant::now() + delay,
            exit,
        };
        self.say(
            i,
            format!(
                "exited with {exit}; restarting in {} (restart #{n})",
                secs(delay)
            ),
        );
    }

    // ---- health ------------------------------------------------------------------------------

    /// Start the probe loop of run process `id`, for the probes that poll.
    fn start_probe(&mut self, i: usize, id: u64) {
        let spec = &self.cfg.services[i];
        let Some(h) = &spec.health else { return };
        if matches!(h.probe, Probe::Log(_)) {
            return; // matched by the output feed
        }
        let target = health::Target {
            probe: h.probe.clone(),
            port: spec.port,
            cwd: spec.cwd.clone(),
            env: spec.env.clone(),
            interval: h.interval,
            timeout: h.timeout,
        };
        let tx = self.tx.clone();
        let handle = health::spawn_loop(target, move |result| {
            let _ = tx.send(Msg::Probe {
                service: i,
                id,
                result,
            });
        });
        if let Some(proc) = &mut self.svcs[i].run {
            proc.probe = Some(handle);
        }
    }

    fn probed(&mut self, i: usize, id: u64, result: Result<(), String>) {
        let Some(proc) = self.svcs[i]
            .run
            .as_ref()
            .filter(|p| p.id == id && !p.stopping)
        else {
            return; // an older process, or one on its way out
        };
        let ran = proc.started.elapsed();
        let spec = self.cfg.services[i]
            .health
            .as_ref()
            .expect("probed services have a probe");
        let (retries, start_period) = (spec.retries, spec.start_period);
        let health = &mut self.svcs[i].health;
        match result {
            Ok(()) => {
                health.fails = 0;
                health.last_error = None;
                health.ever_healthy = true;
                if health.state != HealthState::Healthy {
                    health.state = HealthState::Healthy;
                    self.say(i, format!("health: healthy after {}", secs(ran)));
                }
            }
            Err(e) => {
                health.last_error = Some(e.clone());
                if !health.ever_healthy && ran < start_period {
                    return; // failures while it starts don't count
                }
                health.fails += 1;
                if health.fails < retries || health.state == HealthState::Unhealthy {
                    return;
                }
                let was_healthy = health.state == HealthState::Healthy;
                health.state = HealthState::Unhealthy;
                let n = health.fails;
                self.say(i, format!("health: unhealthy after {n} failed checks: {e}"));
                let restart = self.cfg.services[i].restart != Restart::No;
                if was_healthy && restart {
                    self.say(
                        i,
                        "restarting: it was healthy and stopped answering its probe",
                    );
                    self.stop(i, Then::Backoff);
                }
            }
        }
    }

    /// CPU % (since the last sample) and memory of every running service's session.
    fn sample(&mut self) {
        let pids: Vec<i32> = self
            .svcs
            .iter()
            .filter_map(|s| s.run.as_ref().map(|p| p.pid))
            .collect();
        let now = Instant::now();
        let usage = process::sample_usage(&pids);
        let previous = self.last_sample.take();
        for svc in &mut self.svcs {
            svc.usage = svc.run.as_ref().and_then(|p| {
                let u = usage.get(&p.pid)?;
                let cpu = previous.as_ref().and_then(|(then, cpu)| {
                    let before = cpu.get(&p.pid)?;
                    let spent = u.cpu.saturating_sub(*before).as_secs_f32();
                    Some(100.0 * spent / now.duration_since(*then).as_secs_f32().max(0.001))
                });
                Some((cpu.unwrap_or(0.0), u.rss_bytes))
            });
        }
        self.last_sample = Some((
            now,
            usage.into_iter().map(|(sid, u)| (sid, u.cpu)).collect(),
        ));
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.svcs
            .iter()
            .flat_map(|s| {
                let backoff = match s.status {
                    Status::Restarting { at, .. } => Some(at),
                    _ => None,
                };
                let kills = s.build.iter().chain(s.run.iter()).filter_map(|p| p.kill_at);
                backoff.into_iter().chain(kills)
            })
            .min()
    }

    fn timers(&mut self) {
        let now = Instant::now();
        for i in 0..self.svcs.len() {
            if let Status::Restarting { at, .. } = self.svcs[i].status
                && at <= now
            {
                self.set(i, Status::Pending);
            }
            let grace = self.cfg.services[i].grace;
            let mut late = Vec::new();
            let svc = &mut self.svcs[i];
            for proc in svc.build.iter_mut().chain(svc.run.iter_mut()) {
                if proc.kill_at.is_some_and(|t| t <= now) {
                    proc.kill_at = None;
                    late.push(proc.pid);
                }
            }
            for pid in late {
                self.say(
                    i,
                    format!(
                        "still running {} after the stop signal: sent KILL",
                        secs(grace)
                    ),
                );
                process::kill_session(pid);
            }
        }
    }

    fn publish(&self) {
        let views = self
            .svcs
            .iter()
            .zip(&self.cfg.services)
            .enumerate()
            .map(|(i, (s, spec))| {
                let live = s.run.as_ref().or(s.build.as_ref());
                let probed = spec.health.is_some() && s.run.is_some();
                ServiceView {
                    name: spec.name.clone(),
                    state: s.status.name(),
                    health: probed.then(|| s.health.state.name()),
                    health_error: s.health.last_error.clone().filter(|_| probed),
                    ready: match s.status {
                        Status::Completed => true,
                        Status::Running => !probed || s.health.state == HealthState::Healthy,
                        _ => false,
                    },
                    wanted: s.want_up,
                    auto_rebuild: (!spec.watch.is_empty()).then_some(s.auto),
                    spawns: s.spawns,
                    cpu_percent: s.usage.filter(|_| s.run.is_some()).map(|u| u.0),
                    mem_bytes: s.usage.filter(|_| s.run.is_some()).map(|u| u.1),
                    building: s.build.is_some(),
                    build_failed: spec.build.is_some()
                        && !s.built
                        && s.run.is_some()
                        && s.build.is_none(),
                    settled: s.status.is_settled(),
                    crash_loop: s.backoff >= CRASH_LOOP
                        && matches!(s.status, Status::Restarting { .. }),
                    detail: s.status.to_string(),
                    pid: live.map(|p| p.pid),
                    port: spec.port,
                    restarts: s.restarts,
                    since: s.run.as_ref().map(|p| p.started),
                    uptime_secs: s.run.as_ref().map(|p| p.started.elapsed().as_secs()),
                    log_lost: self.logs.loss(i),
                }
            })
            .collect::<Vec<ServiceView>>();
        let old = self.views.send_replace(views);
        if self.events.receiver_count() > 0 {
            let now = self.views.borrow();
            for (i, view) in now.iter().enumerate() {
                if old.get(i).is_none_or(|o| !o.same_state(view)) {
                    let _ = self.events.send(view.clone());
                }
            }
        }
    }
}

/// 1s, 2s, 4s … capped at 30s.
fn backoff(step: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1u32 << step.min(16))
        .min(BACKOFF_MAX)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Which services start: the ones asked for (or every autostart one) and all they depend on.
fn wanted_set(cfg: &Config, only: &[usize]) -> Vec<bool> {
    let mut wanted = vec![false; cfg.services.len()];
    let mut stack: Vec<usize> = if only.is_empty() {
        (0..cfg.services.len())
            .filter(|&i| cfg.services[i].autostart)
            .collect()
    } else {
        only.to_vec()
    };
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut wanted[i], true) {
            stack.extend(cfg.services[i].deps.iter().map(|d| d.service));
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (0..8).map(|s| backoff(s).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }
}
