//! devstack's own diagnostics: `-v` (debug), `-vv` (trace) or `DEVSTACK_LOG=<filter>` (an
//! `EnvFilter`, like `devstack=debug,devstack::traffic=trace`) turn on `tracing` events written
//! to `.devstack/devstack.log` (0600) of the stack. Never to the terminal: the dashboard owns it,
//! and stdout can be a protocol channel. Without either, nothing is set up and no file made.

use devstack::config;
use devstack::ignored::Ignore;
use devstack::statedir::{self, StateDir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// The variable that sets the filter (and turns the log on without `-v`).
pub const VAR: &str = "DEVSTACK_LOG";

static VERBOSE: OnceLock<u8> = OnceLock::new();

/// Keeps the writer thread; dropping it writes what is queued.
pub struct Guard(#[allow(dead_code)] Option<WorkerGuard>);

/// Set up the log of the stack whose config is `file` (or the one found from here), when asked.
pub fn init(verbose: u8, file: Option<&Path>) -> Guard {
    VERBOSE.get_or_init(|| verbose);
    let asked = std::env::var(VAR).ok().filter(|f| !f.trim().is_empty());
    let wanted = match (asked.as_deref(), verbose) {
        (Some(filter), _) => filter,
        (None, 0) => return Guard(None),
        (None, 1) => "devstack=debug",
        (None, _) => "devstack=trace,debug",
    };
    let (filter, bad) = match EnvFilter::try_new(wanted) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("devstack=debug"), Some(e)),
    };
    let here = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let config = match file {
        Some(f) => Some(std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf())),
        None => config::find(&here),
    };
    let root = config
        .as_deref()
        .and_then(Path::parent)
        .map_or(here.clone(), Path::to_path_buf);
    let state = StateDir::new(&root);
    if state.create().is_err() {
        return Guard(None);
    }
    let path = state.debug_log();
    let Ok(log) = statedir::private_file()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return Guard(None);
    };
    // A file made by someone else's umask or hand: private too.
    let private = std::fs::Permissions::from_mode(statedir::PRIVATE_FILE);
    log.set_permissions(private)
        .or_say("the log keeps the mode it was made with");
    // Lossy: a stuck disk drops diagnostics rather than blocking the engine.
    let (writer, guard) = tracing_appender::non_blocking(log);
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    if installed.is_err() {
        return Guard(None);
    }
    tracing::info!(
        pid = std::process::id(),
        version = env!("CARGO_PKG_VERSION"),
        args = ?std::env::args().skip(1).collect::<Vec<_>>(),
        "devstack started"
    );
    if let Some(e) = bad {
        tracing::warn!(filter = wanted, error = %e, "bad {VAR} filter; using devstack=debug");
    }
    Guard(Some(guard))
}

/// The flags that give a process started from this one (`up -d`) the same log; `DEVSTACK_LOG`
/// goes on through the environment.
pub fn args() -> Vec<&'static str> {
    vec!["-v"; usize::from(VERBOSE.get().copied().unwrap_or(0))]
}
