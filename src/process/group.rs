//! Signals to a service's process group, and the end of its session: once its leader has
//! exited, the rest is given the rest of the stop's grace, then killed (`end_session`); the
//! last-resort kill of a whole session (`kill_session`) and of what still holds its terminal.

use crate::ignored::Ignore;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Send `sig` to the process group `pgid`. Returns false when the group is gone.
pub fn signal_group(pgid: i32, sig: Signal) -> bool {
    killpg(Pid::from_raw(pgid), sig).is_ok()
}

/// Send `sig` to the process `pid`, which may have exited meanwhile.
pub fn signal(pid: i32, sig: Signal) {
    nix::sys::signal::kill(Pid::from_raw(pid), sig).or_say("the process may have exited meanwhile");
}

/// SIGKILL every process of the session `sid` (its leader's group and any group a grandchild made
/// with job control). Only processes that stayed in the session can be found; one that called
/// `setsid` itself has left on purpose.
#[cfg(target_os = "linux")]
pub fn kill_session(sid: i32) {
    signal_group(sid, Signal::SIGKILL);
    for (_, stat) in super::stat::all() {
        if stat.session == sid && stat.state != 'Z' {
            signal(stat.pid, Signal::SIGKILL);
        }
    }
}

/// The leader of session `sid` has exited (a zombie, so `sid` is not reused). What remains of
/// the session ends as a stop would end it: `stopped` says when the leader's group was sent
/// `signal` (the rest of that group has had it since, and has until then + `grace`); None: the
/// leader ended by itself, so all of the rest gets `signal` now and the whole grace. Then
/// whatever is left is killed (`kill_session`). Returns at once when nothing remains.
#[cfg(target_os = "linux")]
pub fn end_session(sid: i32, signal: Signal, grace: Duration, stopped: Option<Instant>) {
    let rest = session_rest(sid);
    if !rest.is_empty() {
        for &(pid, group, _) in &rest {
            // A stop reached the leader's group only: a job-control group of the session still
            // needs it.
            if stopped.is_none() || group != sid {
                self::signal(pid, signal);
            }
        }
        let deadline = stopped.unwrap_or_else(Instant::now) + grace;
        let running = |&(pid, _, start): &(i32, i32, u64)| {
            super::stat::stat(pid).is_some_and(|s| s.state != 'Z' && s.starttime == start)
        };
        while Instant::now() < deadline && rest.iter().any(running) {
            std::thread::sleep(LINGER_POLL);
        }
    }
    kill_session(sid);
}

#[cfg(not(target_os = "linux"))]
pub fn end_session(sid: i32, _signal: Signal, _grace: Duration, _stopped: Option<Instant>) {
    kill_session(sid);
}

/// How often `end_session` looks whether the rest of a session has ended.
#[cfg(target_os = "linux")]
const LINGER_POLL: Duration = Duration::from_millis(20);

/// The live processes of session `sid` but its leader: pid, process group, start time.
#[cfg(target_os = "linux")]
fn session_rest(sid: i32) -> Vec<(i32, i32, u64)> {
    super::stat::all()
        .map(|(_, stat)| stat)
        .filter(|stat| stat.session == sid && stat.pid != sid && stat.state != 'Z')
        .map(|stat| (stat.pid, stat.pgrp, stat.starttime))
        .collect()
}

/// SIGKILL every process that has the terminal `tty` open: a service's descendants that left
/// its session (`setsid`) but kept its terminal, and so would keep it open forever.
#[cfg(target_os = "linux")]
pub fn kill_terminal_holders(tty: &std::path::Path) {
    let Ok(all) = procfs::process::all_processes() else {
        return;
    };
    for proc in all.flatten() {
        let holds = proc.fd().is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| matches!(&fd.target, procfs::process::FDTarget::Path(p) if p == tty))
        });
        if holds {
            signal(proc.pid, Signal::SIGKILL);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn kill_terminal_holders(_tty: &std::path::Path) {}

#[cfg(not(target_os = "linux"))]
pub fn kill_session(sid: i32) {
    signal_group(sid, Signal::SIGKILL);
}

/// When `pid` started, in clock ticks since boot (tells a reused pid apart).
#[cfg(target_os = "linux")]
pub fn start_time(pid: i32) -> Option<u64> {
    super::stat::stat(pid).map(|s| s.starttime)
}

#[cfg(not(target_os = "linux"))]
pub fn start_time(_pid: i32) -> Option<u64> {
    None
}

/// The session of a live (not zombie) process.
#[cfg(target_os = "linux")]
pub fn session_of(pid: i32) -> Option<i32> {
    super::stat::stat(pid)
        .filter(|s| s.state != 'Z')
        .map(|s| s.session)
}

/// The service a process belongs to, from its environment (`config::SERVICE_VAR`).
#[cfg(target_os = "linux")]
pub fn service_of(
    env: &std::collections::HashMap<std::ffi::OsString, std::ffi::OsString>,
) -> Option<String> {
    env.get(std::ffi::OsStr::new(crate::config::SERVICE_VAR))
        .map(|s| s.to_string_lossy().into_owned())
}

#[cfg(not(target_os = "linux"))]
pub fn session_of(pid: i32) -> Option<i32> {
    nix::unistd::getsid(Some(Pid::from_raw(pid)))
        .ok()
        .map(|p| p.as_raw())
}
