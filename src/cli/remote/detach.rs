//! `up -d`: `devstack up --headless` started in the background, in a session of its own, its
//! output appended to `.devstack/`'s detached log; done once its socket answers (with `--wait`,
//! once every service is ready), or said with the log's new lines when it exits first.

use super::locate::connect;
use super::ready::wait_ready;
use crate::cli::note;
use devstack::config::Config;
use devstack::ignored::Ignore;
use devstack::statedir::{self, StateDir};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

/// Start `devstack up --headless` in the background, in a session of its own, and return once
/// its control socket answers; with `wait` (a timeout), once every service is ready. `faults`:
/// the scenarios it sets once ready (`--faults NAME`), checked here first.
pub fn detach(
    cfg: &Config,
    services: &[String],
    faults: &[String],
    wait: Option<Duration>,
) -> ExitCode {
    if let Err(e) = cfg.faults.all(faults) {
        crate::cli::to_stderr(&format!("error: {e}"));
        return ExitCode::from(2);
    }
    let state = StateDir::new(&cfg.root);
    if connect(&state).is_some() {
        if !faults.is_empty() {
            note("the stack here already runs: set the scenarios with `devstack fault apply NAME`");
        }
        return already_running(&state, services, wait);
    }
    if let Err(e) = state.create() {
        note(&e);
        return ExitCode::FAILURE;
    }
    let log_path = state.detached_log();
    let open = || {
        statedir::private_file()
            .create(true)
            .append(true)
            .open(&log_path)
    };
    let (Ok(out), Ok(err)) = (open(), open()) else {
        note(&format!("cannot write {}", log_path.display()));
        return ExitCode::FAILURE;
    };
    let start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let child = match background(cfg, services, faults, out, err).spawn() {
        Ok(c) => c,
        Err(e) => {
            note(&format!("cannot start devstack in the background: {e}"));
            return ExitCode::FAILURE;
        }
    };
    until_it_answers(&state, child, &log_path, start, wait)
}

/// `up -d` where a stack already runs: with `wait`, wait for it; otherwise a refusal.
fn already_running(state: &StateDir, services: &[String], wait: Option<Duration>) -> ExitCode {
    let pid = state
        .running_pid()
        .map_or(String::new(), |pid| format!(" (pid {pid})"));
    // `--wait` is what a script runs before its tests, once or twice: like compose's, it
    // waits for the stack that runs rather than failing.
    if let Some(timeout) = wait {
        note(&format!(
            "a stack is already running here{pid}; waiting for it to be ready"
        ));
        return wait_ready(state, timeout, services);
    }
    note(&format!(
        "a stack is already running here{pid}; `devstack ps` shows it, `devstack down` stops it"
    ));
    ExitCode::FAILURE
}

/// The command of the background stack: `devstack up --headless --stay` on the same config,
/// its output into the detached log, leading a session of its own.
fn background(
    cfg: &Config,
    services: &[String],
    faults: &[String],
    out: File,
    err: File,
) -> Command {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("devstack"));
    let mut cmd = Command::new(exe);
    cmd.arg("-f")
        .arg(&cfg.file)
        .args(crate::cli::debuglog::args())
        .args(["up", "--headless", "--stay"])
        .args(faults.iter().flat_map(|f| ["--faults", f]))
        .args(services)
        .current_dir(&cfg.root)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Wait until the background stack answers on its socket (then, with `wait`, until it is
/// ready), exits (said with what it wrote to its log since `start`), or 60 s pass.
fn until_it_answers(
    state: &StateDir,
    mut child: Child,
    log_path: &Path,
    start: u64,
    wait: Option<Duration>,
) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if connect(state).is_some() {
            note(&format!(
                "stack started in the background (pid {}); output in {}; `devstack ps`, `devstack logs -f`, `devstack down`",
                child.id(),
                log_path.display()
            ));
            return match wait {
                Some(timeout) => wait_ready(state, timeout, &[]),
                None => ExitCode::SUCCESS,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            if let Ok(mut f) = File::open(log_path) {
                f.seek(SeekFrom::Start(start))
                    .or_say("the log is then said from its start, earlier runs' lines too");
                f.read_to_string(&mut text)
                    .or_say("what was read of the log is said, if anything");
            }
            note(&format!(
                "the background stack exited ({status}):\n{}",
                text.trim_end()
            ));
            return ExitCode::FAILURE;
        }
        if Instant::now() > deadline {
            note(&format!(
                "the background stack (pid {}) did not answer within 60s; see {}",
                child.id(),
                log_path.display()
            ));
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
