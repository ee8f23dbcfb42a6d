//! Running one command in its own pseudo-terminal as the leader of its own session and process
//! group; reading its output; waiting for it; signalling its whole group.

mod group;
pub mod nofile;
pub mod orphans;
mod ports;
mod record;
mod shell;
mod spawner;
#[cfg(target_os = "linux")]
mod stat;
#[cfg(target_os = "linux")]
mod tree;
mod usage;

pub use group::{kill_session, signal, signal_group};
pub use ports::{PortHolder, listening_in_session, port_holder, reachable_at};
pub use record::GroupRecord;
pub use spawner::{
    EscapedReport, PortReport, ProbeReport, Pty, SpawnRequest, Spawner, Started, Terminal,
};
#[cfg(target_os = "linux")]
pub use stat::{Stat, stat, thread_stat};
pub use usage::{Feed as UsageFeed, Load, Usage};

use crate::config::CommandLine;
use crate::ignored::Ignore;
use crate::sync::Locked;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// Where a process's terminal output goes, chunk by chunk, on the reader thread.
pub trait OutputSink: Send + 'static {
    /// The process runs as `pid`; called before its first output.
    fn started(&mut self, _pid: i32) {}
    fn chunk(&mut self, data: &[u8]);
    /// The terminal closed: no more output.
    fn end(&mut self);
}

impl<T: OutputSink + ?Sized> OutputSink for Box<T> {
    fn started(&mut self, pid: i32) {
        (**self).started(pid);
    }
    fn chunk(&mut self, data: &[u8]) {
        (**self).chunk(data);
    }
    fn end(&mut self) {
        (**self).end();
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// It could not be started at all (a missing program, a bad folder).
    NotStarted,
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "code {c}"),
            Exit::NotStarted => f.write_str("could not start"),
            Exit::Signal(s) => match nix::sys::signal::Signal::try_from(*s) {
                Ok(sig) => write!(f, "signal {}", sig.as_str().trim_start_matches("SIG")),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot open a pseudo-terminal: {0}")]
    Terminal(BoxError),
    #[error("cannot start `{command}` in {cwd}: {source}")]
    Start {
        command: String,
        cwd: String,
        source: BoxError,
    },
    #[error("the child has no pid")]
    NoPid,
    #[error("cannot read the pseudo-terminal: {0}")]
    Output(BoxError),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// An error of a crate that gives `anyhow` errors (portable-pty).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A started process. Its pid is also its process group and session id.
pub struct Spawned {
    pub pid: i32,
    /// Kept open so that the service keeps its terminal; dropping it hangs the terminal up.
    pub master: Box<dyn MasterPty + Send>,
}

/// How long output still draining from a finished process's terminal may delay its exit report.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// When each session's leader group was last sent its stop signal (`Pty::signal`), by pid: the
/// rest of the session's grace runs from then. Taken by the session's waiter.
static STOPPED: Mutex<BTreeMap<i32, Instant>> = Mutex::new(BTreeMap::new());

/// The session `pid` leads is being stopped from now on (a later stop keeps the first time).
fn stopping(pid: i32) {
    let mut stopped = STOPPED.locked();
    stopped.entry(pid).or_insert_with(Instant::now);
}

/// Start `req.cmd` in a new PTY. `output` gets every chunk the terminal produces, on a thread of
/// its own; `on_exit` is called once the process has exited and its output has been read.
///
/// When the leader exits, what remains of its session is not killed at once: a shell that ran
/// the service's program (`sh -c "cd x && server"`) dies at the stop signal while the program is
/// still cleaning up. During a stop it has the rest of the grace; after the leader ended by
/// itself it gets the stop signal now and the whole grace. Then SIGKILL.
pub fn spawn(
    req: &SpawnRequest<'_>,
    mut output: impl OutputSink,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> Result<Spawned, SpawnError> {
    let SpawnRequest {
        service,
        cmd,
        cwd,
        env,
        stop_signal,
        grace,
    } = *req;
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| SpawnError::Terminal(e.into()))?;
    let script;
    let argv: Vec<&str> = match cmd {
        CommandLine::Shell(s) => {
            script = shell::script(s, stop_signal);
            vec!["sh", "-c", &script]
        }
        CommandLine::Exec(argv) => argv.iter().map(String::as_str).collect(),
    };
    // A relative program path names a file under the service's folder, not on PATH.
    let program = if argv[0].contains('/') {
        cwd.join(argv[0]).into_os_string()
    } else {
        argv[0].into()
    };
    // Started with the soft limit of open files devstack was given, not its raised one.
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| std::ffi::OsStr::new(v));
    let (program, trampoline) = nofile::wrap(program, path);
    let mut builder = CommandBuilder::new(program);
    builder.args(&trampoline);
    builder.args(&argv[1..]);
    builder.cwd(cwd);
    if std::env::var_os("TERM").is_none() {
        builder.env("TERM", "xterm-256color");
    }
    for (k, v) in env {
        builder.env(k, v);
    }
    let mut own = orphans::own();
    let child = pair
        .slave
        .spawn_command(builder)
        .map_err(|e| SpawnError::Start {
            command: argv.join(" "),
            cwd: cwd.display().to_string(),
            source: e.into(),
        })?;
    // Our copy of the slave side must close, or reading the master never sees the end.
    drop(pair.slave);
    let pid = child.process_id().ok_or(SpawnError::NoPid)? as i32;
    own.add(pid, Some(service), true);
    drop(own);
    // A stop of an earlier process that had this pid says nothing about this one.
    STOPPED.locked().remove(&pid);
    drop(child); // waited for below, and reaped by the owner with `reap`
    let tty = pair.master.tty_name();

    let mut reader = pair
        .master
        .try_clone_reader()
        .map_err(|e| SpawnError::Output(e.into()))?;
    // Said here, before `spawn` returns: ahead of the first output, and of any probe result.
    output.started(pid);
    let (drained_tx, drained_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("pty-read-{pid}"))
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => output.chunk(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: every process holding the terminal has closed it.
                    Err(_) => break,
                }
            }
            output.end();
            drop(output);
            drained_tx
                .send(())
                .or_say("the exit was reported without waiting for the last lines");
        })?;
    std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(move || {
            let exit = wait_for(pid);
            // The leader is a zombie now, so its pid (= group = session id) can't be reused yet:
            // whatever it left in its session goes with it, after its grace.
            let stopped = STOPPED.locked().remove(&pid);
            group::end_session(pid, stop_signal, grace, stopped);
            // Let the last lines arrive before the exit is reported. A process that left the
            // session (setsid) but still holds the terminal would keep it open for good.
            if drained_rx.recv_timeout(DRAIN_WAIT).is_err() {
                if let Some(tty) = &tty {
                    group::kill_terminal_holders(tty);
                }
                drained_rx
                    .recv_timeout(DRAIN_WAIT)
                    .or_say("the exit is reported without the lines still to come");
            }
            on_exit(exit);
        })?;
    Ok(Spawned {
        pid,
        master: pair.master,
    })
}

/// Wait until `pid` has exited, leaving it unreaped (a zombie) where the platform allows, so
/// that its pid stays reserved until `reap`.
fn wait_for(pid: i32) -> Exit {
    #[cfg(target_os = "linux")]
    let wait = || {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        waitid(
            Id::Pid(Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        )
    };
    #[cfg(not(target_os = "linux"))]
    let wait = || waitpid(Pid::from_raw(pid), None);
    loop {
        match wait() {
            Ok(WaitStatus::Exited(_, code)) => return Exit::Code(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Exit::Signal(sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Exit::Code(-1),
        }
    }
}

/// Collect an exited process (after `on_exit`), releasing its pid.
pub fn reap(pid: i32) {
    collect(pid);
    orphans::own().remove(pid);
}

/// Collect `pid` if it has exited, without waiting for it.
fn collect(pid: i32) {
    waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    )
    .or_say("it is collected already, or not devstack's to collect");
}
