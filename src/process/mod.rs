//! Running one command in its own pseudo-terminal as the leader of its own session and process
//! group; reading its output; waiting for it; signalling its whole group.

pub mod containers;
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
pub use ports::{PortHolder, connections_to, listening_in_session, port_holder, reachable_at};
pub use record::GroupRecord;
pub use spawner::{
    DrainReport, EscapedReport, PortReport, ProbeReport, Pty, SpawnRequest, Spawner, Started,
    Terminal,
};
#[cfg(target_os = "linux")]
pub use stat::{Stat, stat, thread_stat};
pub use usage::{Feed as UsageFeed, Load, Usage};

use crate::config::CommandLine;
use crate::ignored::Ignore;
use crate::sync::Locked;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use portable_pty::{CommandBuilder, MasterPty, PtyPair, PtySize, SlavePty, native_pty_system};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
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
        ref after,
    } = *req;
    let pair = open_terminal()?;
    let script;
    let argv: Vec<&str> = match cmd {
        CommandLine::Shell(s) => {
            script = shell::script(s, stop_signal);
            vec!["sh", "-c", &script]
        }
        CommandLine::Exec(argv) => argv.iter().map(String::as_str).collect(),
    };
    let builder = command(&argv, cwd, env);
    let pid = start(pair.slave, builder, service, &argv, cwd)?;
    let tty = pair.master.tty_name();
    let reader = pair
        .master
        .try_clone_reader()
        .map_err(|e| SpawnError::Output(e.into()))?;
    // Said here, before `spawn` returns: ahead of the first output, and of any probe result.
    output.started(pid);
    let (drained_tx, drained_rx) = mpsc::channel::<()>();
    read_output(pid, reader, output, drained_tx)?;
    let end = Ending {
        stop_signal,
        grace,
        tty,
        drained: drained_rx,
        after: after.clone(),
    };
    wait_then_report(pid, end, on_exit)?;
    Ok(Spawned {
        pid,
        master: pair.master,
    })
}

/// A new pseudo-terminal for a process to lead.
fn open_terminal() -> Result<PtyPair, SpawnError> {
    native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| SpawnError::Terminal(e.into()))
}

/// The command `argv` runs, in `cwd` with `env`.
fn command(argv: &[&str], cwd: &Path, env: &[(String, String)]) -> CommandBuilder {
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
    builder
}

/// Start `builder` on the terminal's `slave` side, as `service`'s: its pid, added to
/// devstack's own under the lock that keeps the keeper from taking it for an escaped process.
fn start(
    slave: Box<dyn SlavePty + Send>,
    builder: CommandBuilder,
    service: &str,
    argv: &[&str],
    cwd: &Path,
) -> Result<i32, SpawnError> {
    let mut own = orphans::own();
    let child = slave
        .spawn_command(builder)
        .map_err(|e| SpawnError::Start {
            command: argv.join(" "),
            cwd: cwd.display().to_string(),
            source: e.into(),
        })?;
    // Our copy of the slave side must close, or reading the master never sees the end.
    drop(slave);
    let pid = child.process_id().ok_or(SpawnError::NoPid)? as i32;
    own.add(pid, Some(service), true);
    drop(own);
    // A stop of an earlier process that had this pid says nothing about this one.
    STOPPED.locked().remove(&pid);
    drop(child); // waited for below, and reaped by the owner with `reap`
    Ok(pid)
}

/// The reader thread: the terminal's output into `output` until every process holding the
/// terminal has closed it; then `drained` is told.
fn read_output(
    pid: i32,
    mut reader: Box<dyn Read + Send>,
    mut output: impl OutputSink,
    drained: mpsc::Sender<()>,
) -> std::io::Result<()> {
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
            drained
                .send(())
                .or_say("the exit was reported without waiting for the last lines");
        })
        .map(drop)
}

/// What the waiter needs once the leader has exited: how the rest of its session is ended,
/// its terminal, and word from the reader that the last output was read.
struct Ending {
    stop_signal: Signal,
    grace: Duration,
    tty: Option<PathBuf>,
    drained: mpsc::Receiver<()>,
    after: Option<Vec<String>>,
}

/// The waiter thread: once `pid` has exited, the rest of its session is ended and its last
/// output read, then `on_exit` is told how it ended.
fn wait_then_report(
    pid: i32,
    end: Ending,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> std::io::Result<()> {
    let Ending {
        stop_signal,
        grace,
        tty,
        drained,
        after,
    } = end;
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
            if drained.recv_timeout(DRAIN_WAIT).is_err() {
                if let Some(tty) = &tty {
                    group::kill_terminal_holders(tty);
                }
                drained
                    .recv_timeout(DRAIN_WAIT)
                    .or_say("the exit is reported without the lines still to come");
            }
            if let Some(argv) = after {
                containers::run_after(&argv);
            }
            on_exit(exit);
        })
        .map(drop)
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
