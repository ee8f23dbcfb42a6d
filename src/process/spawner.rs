//! The seam under everything the engine does to processes: starting a command in a terminal,
//! signalling and killing it, collecting it, the port check before a start, the health probe
//! loop and the keeper of escaped processes. `Pty` does it for real; the engine's tests put a
//! recording fake in its place.

use super::{
    Exit, OutputSink, SpawnError,
    orphans::{Escaped, Kept},
};
use crate::config::CommandLine;
use crate::health;
use crate::ignored::Ignore;
use nix::sys::signal::Signal;
use portable_pty::MasterPty;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::TrySendError;
use tokio::task::AbortHandle;

/// What to start, and for which service.
pub struct SpawnRequest<'a> {
    pub service: &'a str,
    pub cmd: &'a CommandLine,
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    /// How the service is stopped: what remains of its session when its leader exits gets the
    /// same (see `process::spawn`).
    pub stop_signal: Signal,
    pub grace: std::time::Duration,
    /// Run once the process has exited and its session has ended, before the exit is reported:
    /// what removes an `image` service's container (whose engine process may have been killed).
    pub after: Option<Vec<String>>,
}

/// A started process's terminal: typed input and resizes go through it. Dropping it hangs the
/// terminal up.
pub trait Terminal: Send {
    /// Queue `bytes` for the service; refused (saying why) when its terminal is gone or too
    /// much sent earlier still waits for it to read.
    fn write(&mut self, bytes: Vec<u8>) -> Result<(), String>;
    fn resize(&self, rows: u16, cols: u16);
}

/// A started process. Its pid is also its process group and session id.
pub struct Started {
    pub pid: i32,
    pub terminal: Box<dyn Terminal>,
}

/// Reports each probe result.
pub type ProbeReport = Box<dyn Fn(Result<(), String>) + Send>;
/// Called once nothing is connected to a draining process's port.
pub type DrainReport = Box<dyn FnOnce() + Send>;
/// Reports the escaped processes alive now, whenever they change.
pub type EscapedReport = Box<dyn Fn(Escaped) + Send>;
/// Reports who holds a port (None: nobody).
pub type PortReport = Box<dyn FnOnce(Option<super::PortHolder>) + Send>;

pub trait Spawner: Send + Sync + 'static {
    /// Start `req.cmd` in a terminal of its own. `output` gets its output; `on_exit` is called
    /// once, after it has exited and its output has been read.
    fn spawn(
        &self,
        req: SpawnRequest<'_>,
        output: Box<dyn OutputSink>,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> Result<Started, SpawnError>;
    /// Stop the process group `pgid`: send it `sig` (its stop signal). Whatever of its session
    /// outlives its leader has what remains of the grace from now. False when the group is gone.
    fn signal(&self, pgid: i32, sig: Signal) -> bool;
    /// SIGKILL every process of the session `sid`: its group now, the rest (found in `/proc`)
    /// off the caller's thread.
    fn kill_session(&self, sid: i32);
    /// Collect an exited process (after its `on_exit`), releasing its pid; off the caller's
    /// thread.
    fn reap(&self, pid: i32);
    /// Find who listens on `port` off the caller's thread, and report it.
    fn check_port(&self, port: u16, report: PortReport);
    /// Probe `target` of `service` until the handle is aborted, reporting each result.
    fn probe(&self, service: &str, target: health::Target, report: ProbeReport) -> AbortHandle;
    /// Report once nothing is connected to `port` any more (a blue-green rollout's old process
    /// has drained), unless the handle is aborted first.
    fn watch_drain(&self, port: u16, report: DrainReport) -> AbortHandle;
    /// Keep the processes that escape the sessions of `services` (see `orphans`) until the
    /// returned value is dropped; meanwhile sample their CPU and memory for `usage`.
    fn keep_escaped(
        &self,
        services: Vec<Kept>,
        report: EscapedReport,
        usage: super::UsageFeed,
    ) -> Box<dyn Send>;
}

/// How often a draining process's connections are counted.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The real thing: pseudo-terminals, process groups, /proc.
pub struct Pty;

impl Spawner for Pty {
    fn spawn(
        &self,
        req: SpawnRequest<'_>,
        output: Box<dyn OutputSink>,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> Result<Started, SpawnError> {
        let spawned = super::spawn(&req, output, on_exit)?;
        Ok(Started {
            pid: spawned.pid,
            terminal: Box::new(PtyTerminal {
                pid: spawned.pid,
                master: spawned.master,
                input: None,
                pending: Arc::default(),
            }),
        })
    }

    fn signal(&self, pgid: i32, sig: Signal) -> bool {
        super::stopping(pgid);
        super::signal_group(pgid, sig)
    }

    fn kill_session(&self, sid: i32) {
        super::signal_group(sid, Signal::SIGKILL);
        off_thread(move || super::kill_session(sid));
    }

    fn reap(&self, pid: i32) {
        // The list of our own children is locked while the keeper of escaped processes scans.
        off_thread(move || super::reap(pid));
    }

    fn check_port(&self, port: u16, report: PortReport) {
        off_thread(move || report(super::port_holder(port)));
    }

    fn probe(&self, _service: &str, target: health::Target, report: ProbeReport) -> AbortHandle {
        health::spawn_loop(target, report)
    }

    fn watch_drain(&self, port: u16, report: DrainReport) -> AbortHandle {
        tokio::spawn(async move {
            loop {
                // (First after a pause: the proxy turns to the new process meanwhile.)
                tokio::time::sleep(DRAIN_POLL).await;
                let open = tokio::task::spawn_blocking(move || super::connections_to(port));
                if let Ok(Some(0)) = open.await {
                    return report();
                }
            }
        })
        .abort_handle()
    }

    fn keep_escaped(
        &self,
        services: Vec<Kept>,
        report: EscapedReport,
        usage: super::UsageFeed,
    ) -> Box<dyn Send> {
        Box::new(super::orphans::keep(services, report, usage))
    }
}

/// Run `work` on tokio's blocking pool (on a thread of its own outside a runtime).
fn off_thread(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(work)),
        Err(_) => std::thread::Builder::new()
            .spawn(work)
            .or_say("without a thread for it, the work is not done"),
    }
}

/// Input typed into a terminal and not yet taken by the service, at most: bytes, and writes (so
/// that many tiny writes are bounded too). A service that never reads its terminal would
/// otherwise make devstack hold everything sent to it; past these, `write` refuses.
pub const MAX_PENDING_INPUT: usize = 1024 * 1024;
const MAX_PENDING_WRITES: usize = 1024;

struct PtyTerminal {
    pid: i32,
    /// Kept open so the service keeps its terminal.
    master: Box<dyn MasterPty + Send>,
    /// Feeds typed input to a writer thread (a full terminal must not block the engine).
    input: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Bytes sent to the writer thread and not yet written.
    pending: Arc<AtomicUsize>,
}

impl Terminal for PtyTerminal {
    fn write(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let tx = match &self.input {
            Some(tx) => tx,
            None => {
                let writer = self
                    .master
                    .take_writer()
                    .map_err(|e| format!("its terminal takes no input: {e}"))?;
                let (tx, rx) = std::sync::mpsc::sync_channel(MAX_PENDING_WRITES);
                let pending = self.pending.clone();
                std::thread::Builder::new()
                    .name(format!("pty-write-{}", self.pid))
                    .spawn(move || write_input(writer, rx, pending))
                    .map_err(|e| format!("no thread to write its input: {e}"))?;
                self.input.insert(tx)
            }
        };
        let waiting = self.pending.load(Ordering::Relaxed);
        let refused = || {
            format!(
                "{waiting} bytes sent earlier still wait for the service to read its terminal \
                 (at most {} KiB may wait)",
                MAX_PENDING_INPUT / 1024
            )
        };
        if waiting + bytes.len() > MAX_PENDING_INPUT {
            return Err(refused());
        }
        let len = bytes.len();
        self.pending.fetch_add(len, Ordering::Relaxed);
        tx.try_send(bytes).map_err(|e| {
            self.pending.fetch_sub(len, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => refused(),
                TrySendError::Disconnected(_) => "its terminal is closed".to_string(),
            }
        })
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = portable_pty::PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        };
        self.master
            .resize(size)
            .or_say("a closed terminal has no size to change");
    }
}

/// The writer thread of a terminal's input: writes each piece in turn (blocking while the
/// terminal is full), counting it off `pending` once written.
fn write_input(
    mut writer: Box<dyn std::io::Write + Send>,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    pending: Arc<AtomicUsize>,
) {
    while let Ok(bytes) = rx.recv() {
        let written = writer.write_all(&bytes).and_then(|()| writer.flush());
        pending.fetch_sub(bytes.len(), Ordering::Relaxed);
        if written.is_err() {
            break;
        }
    }
}
