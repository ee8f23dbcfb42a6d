//! Commands that run the stack in this process: `up` (headless), `ci`, `run`.

use super::note;
use devstack::config::Config;
use devstack::control;
use devstack::engine::ready::not_ready;
use devstack::engine::{self, Command, Engine, Handle, Options, Outcome, ServiceView};
use devstack::engine::{FailureKind, ServiceId, Services, TicketOutcome};
use devstack::format::secs;
use devstack::headless::Printer;
use devstack::ignored::Ignore;
use devstack::logs::{LineTap, LogHub};
use devstack::routes::Routes;
use devstack::statedir::{RunLock, StateDir};
use devstack::traffic::fault::Fault;
use devstack::ui::End;
use devstack::watch::Change;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stack about to run in this process: config, logs, and the folder lock.
struct Session {
    cfg: Arc<Config>,
    logs: Arc<LogHub>,
    only: Vec<ServiceId>,
    state: StateDir,
    /// Sample CPU and memory (the dashboard shows them).
    sample_usage: bool,
    /// Rebuild services when their watched files change (`up`, the dashboard; not `ci`, `run`).
    watch: bool,
    /// Stop at once without a control socket: nothing could reach the stack (`up -d`).
    need_socket: bool,
    /// The traffic proxy, when a service is proxied.
    routes: Option<Routes>,
    /// The faults of the scenarios asked for (`--faults NAME`), set once the stack is ready.
    faults: Vec<Fault>,
    _lock: RunLock,
}

impl Session {
    fn open(cfg: Config, services: &[String], tap: Arc<dyn LineTap>) -> Result<Session, ExitCode> {
        let only = resolve_names(&cfg, services).map_err(|e| {
            super::to_stderr(&format!("error: {e}"));
            ExitCode::from(2)
        })?;
        let state = StateDir::new(&cfg.root);
        let lock = state.lock().map_err(|e| {
            super::to_stderr(&format!("error: {e}"));
            ExitCode::FAILURE
        })?;
        // The proxy holds two files per connection: the soft limit goes up to the hard one
        // (what devstack starts gets the given one back).
        let files = devstack::process::nofile::raise();
        // Every public port is listened on before anything starts: a taken one stops it all.
        let routes = Routes::open(&cfg, files).map_err(|errors| {
            for e in errors {
                super::to_stderr(&format!("error: {e}"));
            }
            super::to_stderr(&format!(
                "  = help: stop that process, or give the service another `port` in {} (`proxy = false` if the service must bind the port itself)",
                cfg.file.display()
            ));
            ExitCode::FAILURE
        })?;
        let logs = Arc::new(LogHub::new(
            &state.logs(),
            &cfg.names(),
            Some(tap),
            cfg.scrollback,
        ));
        Ok(Session {
            cfg: Arc::new(cfg),
            logs,
            only,
            state,
            sample_usage: false,
            watch: false,
            need_socket: false,
            routes,
            faults: Vec::new(),
            _lock: lock,
        })
    }

    /// Set the faults of the scenarios asked for, now (`run`: before its command starts).
    fn set_faults(&self) {
        if let Some(routes) = &self.routes {
            super::fault::set_on(&routes.stats(), &self.faults, &self.cfg, &self.logs);
        }
    }

    /// Set the faults of the scenarios asked for once the stack is ready (`up`, the dashboard);
    /// a stack that never is gets none (what stopped it is said already).
    fn set_faults_when_ready(&self, handle: &Handle) {
        let (Some(routes), false) = (&self.routes, self.faults.is_empty()) else {
            return;
        };
        let Some(ticket) = handle.ready(Vec::new()) else {
            return;
        };
        let (stats, faults) = (routes.stats(), self.faults.clone());
        let (cfg, logs) = (self.cfg.clone(), self.logs.clone());
        tokio::spawn(async move {
            if let Some(TicketOutcome::Done(_)) = ticket.wait().await {
                super::fault::set_on(&stats, &faults, &cfg, &logs);
            }
        });
    }

    /// Run the engine on a fresh runtime; `drive` gets its handle while it runs.
    fn run<T>(
        mut self,
        exit_when_settled: bool,
        drive: impl AsyncFnOnce(Handle, &Session) -> T,
    ) -> (T, Outcome) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        // Descendants that escape their service's session come back to us, and die with it.
        devstack::process::orphans::become_subreaper();
        runtime.block_on(async {
            // Listened for before anything is said: a signal sent on the first line of output
            // must not be lost (nor kill devstack before its processes are in hand).
            let signals = listen_for_signals();
            let (engine, handle) = Engine::new(
                self.cfg.clone(),
                self.logs.clone(),
                Options {
                    only: self.only.clone(),
                    exit_when_settled,
                    sample_usage: self.sample_usage,
                    spawner: Arc::new(devstack::process::Pty),
                },
            );
            for said in engine.reap_leftovers() {
                note(&said);
            }
            if let Some(routes) = &mut self.routes {
                routes.follow(handle.views(), self.logs.clone());
            }
            if let Some(signals) = signals {
                tokio::spawn(shutdown_on_signals(handle.clone(), signals));
            }
            // The control socket lives as long as the engine; dropping it removes the file.
            let server = match control::server::bind(&self.state.socket()) {
                Ok(socket) => {
                    let ctx = Arc::new(control::server::Context {
                        handle: handle.clone(),
                        logs: self.logs.clone(),
                        names: self.cfg.names(),
                        proxied: self.cfg.services.map(|s| s.proxied()),
                        traffic: self.routes.as_ref().map(Routes::stats),
                        scenarios: self.cfg.faults.clone(),
                        cannot_use: (self.cfg.services)
                            .map(|s| [s.cannot_use(false), s.cannot_use(true)]),
                    });
                    Some(tokio::spawn(control::server::serve(socket, ctx)))
                }
                Err(e) => {
                    note(&format!(
                        "no control socket at {}: {e}",
                        self.state.socket().display()
                    ));
                    if self.need_socket {
                        note("stopping: nothing could reach this stack");
                        handle.send(Command::Shutdown);
                    }
                    None
                }
            };
            let _watcher = if self.watch {
                self.start_watching(&handle)
            } else {
                None
            };
            let _config_watch = if self.watch {
                self.watch_config()
            } else {
                None
            };
            let engine = tokio::spawn(engine.run());
            let result = drive(handle, &self).await;
            let outcome = engine.await.expect("the engine task ends cleanly");
            // Each container went with its engine process; one an engine lost is taken now.
            if let Some(engine) = self.cfg.container_engine.clone() {
                let id = self.cfg.stack_id.clone();
                let removed = tokio::task::spawn_blocking(move || {
                    devstack::process::containers::remove_leftovers(&engine, &id)
                });
                for said in removed.await.unwrap_or_default() {
                    note(&said);
                }
            }
            if let Some(server) = server {
                server.abort();
                server
                    .await
                    .or_say("the socket server panicked; the stack has stopped anyway");
            }
            (result, outcome)
        })
    }
}

impl Session {
    /// Say in the services' logs what an edit of `devstack.toml` means for the running stack.
    fn watch_config(&self) -> Option<devstack::watch::config_edits::ConfigWatch> {
        let logs = self.logs.clone();
        let names = self.cfg.names();
        let all: Vec<ServiceId> = names.ids().collect();
        let said =
            devstack::watch::config_edits::start(&self.cfg.file, names, move |services, text| {
                for &i in if services.is_empty() { &all } else { &services } {
                    logs.system(i, &text);
                }
            });
        match said {
            Ok(w) => Some(w),
            Err(e) => {
                note(&format!("not watching {}: {e}", self.cfg.file.display()));
                None
            }
        }
    }

    /// Watch the services' files; changes go to the engine, notes to the services' logs.
    fn start_watching(&self, handle: &Handle) -> Option<devstack::watch::WatchHandle> {
        let (handle, logs) = (handle.clone(), self.logs.clone());
        let watched: Vec<ServiceId> = self
            .cfg
            .services
            .iter()
            .filter(|(_, s)| !s.watch.is_empty())
            .map(|(i, _)| i)
            .collect();
        let result = devstack::watch::start(&self.cfg, move |change| match change {
            Change::Files { service, paths, at } => {
                handle.send(Command::FilesChanged { service, paths, at })
            }
            Change::Note { services, text } => {
                for &i in if services.is_empty() {
                    &watched
                } else {
                    &services
                } {
                    logs.system(i, &text);
                }
            }
        });
        match result {
            Ok(w) => w,
            Err(e) => {
                note(&format!("not watching files: {e:#}"));
                None
            }
        }
    }
}

fn resolve_names(cfg: &Config, names: &[String]) -> Result<Vec<ServiceId>, String> {
    names
        .iter()
        .map(|n| {
            cfg.id_of(n).ok_or_else(|| {
                let all = cfg.names();
                format!(
                    "unknown service `{n}`; services are: {}",
                    all.as_slice().join(", ")
                )
            })
        })
        .collect()
}

fn printer(cfg: &Config, color: bool) -> Printer {
    Printer::new(&cfg.names(), color)
}

/// `stay`: keep running when every service has ended (a detached stack waits for `down`).
pub fn up(
    cfg: Config,
    services: &[String],
    color: bool,
    stay: bool,
    faults: &[String],
) -> ExitCode {
    let printer = printer(&cfg, color);
    let faults = match super::fault::scenarios(&cfg, faults) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut session = match Session::open(cfg, services, Arc::new(printer)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    session.watch = true;
    session.need_socket = stay;
    session.faults = faults;
    let ((), outcome) = session.run(!stay, async |handle, session| {
        session.set_faults_when_ready(&handle)
    });
    if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for (name, status) in &outcome.failures {
            note(&format!("{name} {status}"));
        }
        ExitCode::FAILURE
    }
}

/// The dashboard: the same engine, drawn in the terminal. A terminal that doesn't answer gets
/// the headless output instead (`color`: for that).
pub fn tui(cfg: Config, services: &[String], color: bool, faults: &[String]) -> ExitCode {
    if let Err(e) = devstack::ui::probe() {
        note(&format!(
            "this terminal can't show the dashboard ({e}); running headless"
        ));
        return up(cfg, services, color, false, faults);
    }
    let faults = match super::fault::scenarios(&cfg, faults) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let wake = Arc::new(devstack::ui::Wake::default());
    let stack = cfg.name.clone();
    let mut session = match Session::open(cfg, services, wake.clone()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    session.sample_usage = true;
    session.watch = true;
    session.faults = faults;
    let (ended, _) = session.run(false, async |handle, session| {
        session.set_faults_when_ready(&handle);
        let app = devstack::ui::app::App::new(stack, session.cfg.names(), session.logs.clone());
        // On a task of its own, so that even a panic in the dashboard ends here, and the
        // stack still stops gracefully below.
        let stack = devstack::ui::source::Stack::Local {
            handle: handle.clone(),
            logs: session.logs.clone(),
            traffic: session.routes.as_ref().map(Routes::stats),
            proxied: session.cfg.services.map(|s| s.proxied()),
        };
        let ended = tokio::spawn(devstack::ui::run(stack, app, wake)).await;
        // However the dashboard ended, the stack stops with it (waiting out each grace).
        handle.send(Command::Shutdown);
        ended
    });
    match ended {
        Ok(Ok(End::Quit | End::Detached)) => ExitCode::SUCCESS,
        Ok(Ok(End::TerminalLost(e))) => {
            // Said to a terminal that may be gone: `note` never fails for that.
            note(&format!("the terminal went away ({e}); stopped the stack"));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            note(&format!("the dashboard failed: {e}"));
            ExitCode::FAILURE
        }
        Err(e) => {
            note(&format!("the dashboard crashed: {e}; stopped the stack"));
            ExitCode::FAILURE
        }
    }
}

/// Wait until the stack is ready; on failure or timeout, say which service and why, with its
/// last log lines.
async fn wait_ready(handle: &Handle, session: &Session, timeout: Duration) -> Result<Duration, ()> {
    let started = Instant::now();
    // The engine judges (`ready::verdict`); a stop (Ctrl-C, SIGTERM, `devstack down`) unwants
    // every service, which fails the wait.
    let Some(ticket) = handle.ready(Vec::new()) else {
        return Err(());
    };
    match tokio::time::timeout(timeout, ticket.wait()).await {
        Ok(Some(TicketOutcome::Done(_))) => Ok(started.elapsed()),
        Ok(Some(TicketOutcome::Failed(f))) if f.kind == FailureKind::Unwanted => {
            note(&format!(
                "`{}` was stopped before the stack was ready ({})",
                f.name, f.why
            ));
            Err(())
        }
        Ok(Some(TicketOutcome::Failed(f))) => {
            note(&format!("`{}` failed: {}", f.name, f.why));
            show_tail(session, &f.name);
            Err(())
        }
        Ok(None) => Err(()),
        Err(_) => {
            note(&format!("not ready after {}:", secs(timeout)));
            let waiting = not_ready(handle.views().borrow().as_slice());
            for (name, what) in &waiting {
                note(&format!("  `{name}` is {what}"));
            }
            for (name, _) in &waiting {
                show_tail(session, name);
            }
            Err(())
        }
    }
}

/// The last lines a service logged, on stderr.
fn show_tail(session: &Session, service: &str) {
    let Some(i) = session.cfg.id_of(service) else {
        return;
    };
    super::show_lines(service, &session.logs.tail_text(i, engine::LINES_SHOWN));
}

/// How `ci` and `run` print.
pub struct Output {
    pub color: bool,
    /// Only devstack's own lines and failures (`-q`).
    pub quiet: bool,
}

pub fn ci(cfg: Config, services: &[String], timeout: Duration, output: Output) -> ExitCode {
    let printer = printer(&cfg, output.color).quiet(output.quiet);
    let session = match Session::open(cfg, services, Arc::new(printer)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (ready, _) = session.run(false, async |handle, session| {
        let ready = wait_ready(&handle, session, timeout).await;
        handle.send(Command::Shutdown);
        ready
    });
    match ready {
        Ok(took) => {
            note(&format!("ci: every service is ready (took {})", secs(took)));
            ExitCode::SUCCESS
        }
        Err(()) => {
            note("ci: failed");
            ExitCode::FAILURE
        }
    }
}

/// What `run` runs beside the stack.
pub struct Job<'a> {
    /// CMD and its arguments.
    pub command: &'a [String],
    /// The fault scenarios set once the stack is ready, before CMD starts (`--faults NAME`).
    pub faults: &'a [String],
}

pub fn run(
    cfg: Config,
    services: &[String],
    timeout: Duration,
    job: Job,
    output: Output,
) -> ExitCode {
    let urls = cfg.url_env();
    let printer = printer(&cfg, output.color).to_stderr().quiet(output.quiet);
    let faults = match super::fault::scenarios(&cfg, job.faults) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut session = match Session::open(cfg, services, Arc::new(printer)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    session.faults = faults;
    let (code, _) = session.run(false, async |handle, session| {
        let code = match wait_ready(&handle, session, timeout).await {
            Err(()) => ExitCode::FAILURE,
            Ok(_) => {
                session.set_faults();
                run_command(&handle, job.command, &urls).await
            }
        };
        handle.send(Command::Shutdown);
        code
    });
    code
}

/// Run CMD beside the stack; a stop of the stack (Ctrl-C, SIGTERM, `devstack down`) stops it
/// too, as a shell stops its job: SIGTERM, then SIGKILL after 5s.
async fn run_command(handle: &Handle, command: &[String], env: &[(String, String)]) -> ExitCode {
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .envs(env.iter().map(|(k, v)| (k, v)));
    // SAFETY: `restore` makes one system call.
    unsafe { cmd.pre_exec(devstack::process::nofile::restore) };
    let spawned = {
        // Registered, so the keeper of escaped processes never collects it in our place.
        let mut own = devstack::process::orphans::own();
        let child = cmd.spawn();
        if let Some(pid) = child.as_ref().ok().and_then(|c| c.id()) {
            own.add(pid as i32, None, false);
        }
        child
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            note(&format!("cannot run `{}`: {e}", command[0]));
            return ExitCode::from(127);
        }
    };
    let pid = child.id();
    let wanted = wanted_now(handle);
    let status = tokio::select! {
        status = child.wait() => status,
        () = stopped(handle, &wanted) => {
            note(&format!("stopping `{}` with the stack", command[0]));
            if let Some(pid) = pid {
                devstack::process::signal(pid as i32, nix::sys::signal::Signal::SIGTERM);
            }
            match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    child.kill().await.or_say("the command may have exited already");
                    child.wait().await
                }
            }
        }
    };
    if let Some(pid) = pid {
        devstack::process::orphans::own().remove(pid as i32);
    }
    match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            note(&format!("lost `{}`: {e}", command[0]));
            ExitCode::FAILURE
        }
    }
}

/// Which services are wanted now.
fn wanted_now(handle: &Handle) -> Services<bool> {
    handle.views().borrow().map(|v| v.wanted)
}

/// The first service of `wanted` that is wanted no more: a stop of the stack unwants every
/// service.
fn unwanted<'a>(
    wanted: &Services<bool>,
    now: &'a Services<ServiceView>,
) -> Option<&'a ServiceView> {
    now.iter()
        .find_map(|(i, v)| (wanted.get(i) == Some(&true) && !v.wanted).then_some(v))
}

/// Resolves once the stack is being stopped (or has ended).
async fn stopped(handle: &Handle, wanted: &Services<bool>) {
    let mut views = handle.views();
    loop {
        if unwanted(wanted, &views.borrow_and_update()).is_some() {
            return;
        }
        if views.changed().await.is_err() {
            return;
        }
    }
}

/// A child's status as ours: its code, or 128 + the signal that killed it (as shells do).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128 + sig as u8),
        _ => ExitCode::FAILURE,
    }
}

type Signals = (
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
);

/// SIGINT, SIGTERM and SIGHUP, caught from now on (in a runtime).
fn listen_for_signals() -> Option<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Some((
        signal(SignalKind::interrupt()).ok()?,
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::hangup()).ok()?,
    ))
}

/// The first Ctrl-C, SIGTERM or SIGHUP stops the stack gracefully; a Ctrl-C or SIGTERM after
/// that kills it. A repeated SIGHUP does not: closing a terminal may send more than one.
async fn shutdown_on_signals(handle: engine::Handle, signals: Signals) {
    let (mut int, mut term, mut hup) = signals;
    let mut stopping = false;
    loop {
        let hangup = tokio::select! {
            _ = int.recv() => false,
            _ = term.recv() => false,
            _ = hup.recv() => true,
        };
        if !stopping {
            note("stopping the stack (Ctrl-C again to kill everything at once)");
            handle.send(Command::Shutdown);
            stopping = true;
        } else if !hangup {
            note("killing every service");
            handle.send(Command::ForceShutdown);
        }
    }
}
