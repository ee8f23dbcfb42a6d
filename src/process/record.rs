//! The record of live process groups under `.devstack/` (`pgroups`, with the processes that
//! escaped them), written by a thread of its own, so that a run that was killed with SIGKILL is
//! cleaned up by the next one (`reap_leftovers`), with what it started but had not recorded yet.

use super::group::start_time;
use super::orphans::Orphan;
use crate::ignored::Ignore;
use crate::sync::{Locked, Unpoisoned};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Each line: `pgid starttime service` for a service's session, `+pid starttime service` for a
/// process that escaped it. Written by a thread of its own whenever it changes (the latest state
/// wins), so that the engine never waits on the disk or `/proc`; atomically, and private.
#[derive(Clone)]
pub struct GroupRecord {
    path: PathBuf,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The writer waits here for changes, and `flush` for them to be written.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// pgid → (start time, once the writer has read it; service).
    groups: BTreeMap<i32, (Option<u64>, String)>,
    escaped: Vec<Orphan>,
    /// Changes made, and written, so far.
    version: u64,
    saved: u64,
    /// The writer thread runs (true), or could not be started (false: nothing is written).
    writer: Option<bool>,
}

impl GroupRecord {
    pub fn new(path: PathBuf) -> Self {
        GroupRecord {
            path,
            shared: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.locked()
    }

    pub fn add(&self, pgid: i32, service: &str) {
        let mut state = self.lock();
        state.groups.insert(pgid, (None, service.to_string()));
        self.changed(state);
    }

    pub fn remove(&self, pgid: i32) {
        let mut state = self.lock();
        if state.groups.remove(&pgid).is_some() {
            self.changed(state);
        }
    }

    /// The escaped processes alive now (see `orphans`).
    pub fn set_escaped(&self, escaped: Vec<Orphan>) {
        let mut state = self.lock();
        if escaped != state.escaped {
            state.escaped = escaped;
            self.changed(state);
        }
    }

    /// Wait (at most `limit`) until the record on disk is the latest.
    pub fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        while state.writer == Some(true) && state.saved < state.version {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = (self.shared.changed)
                .wait_timeout(state, left)
                .unpoisoned()
                .0;
        }
    }

    fn changed(&self, mut state: MutexGuard<'_, State>) {
        state.version += 1;
        if state.writer.is_none() {
            let (path, shared) = (self.path.clone(), Arc::downgrade(&self.shared));
            let started = std::thread::Builder::new()
                .name("pgroups".into())
                .spawn(move || write_loop(&path, &shared));
            state.writer = Some(started.is_ok());
        }
        self.shared.changed.notify_all();
    }
    /// Kill the groups a previous run left behind, and say which. A recorded leader whose pid now
    /// belongs to another process (a different start time) is left alone. Then every process
    /// still carrying this stack's mark (`config::STACK_VAR` = `stack`) in its environment: what
    /// a run killed before it recorded it (a daemon that left its session during start-up).
    /// The caller holds the stack's run lock, so none of them belongs to a live run.
    pub fn reap_leftovers(&self, stack: &str) -> Vec<String> {
        let mut said = self.reap_recorded();
        said.extend(reap_marked(stack));
        said
    }

    fn reap_recorded(&self) -> Vec<String> {
        let Ok(text) = fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        let mut said = Vec::new();
        for line in text.lines() {
            let (escaped, line) = match line.strip_prefix('+') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let mut parts = line.splitn(3, ' ');
            let (Some(Ok(pgid)), Some(Ok(start)), Some(name)) = (
                parts.next().map(str::parse::<i32>),
                parts.next().map(str::parse::<u64>),
                parts.next(),
            ) else {
                continue;
            };
            if let Some(now) = start_time(pgid)
                && now != start
            {
                continue; // the pid was reused by an unrelated process
            }
            if escaped {
                if let Some(session) = super::group::session_of(pgid) {
                    super::orphans::kill_escaped(pgid, session, nix::sys::signal::Signal::SIGKILL);
                    said.push(format!(
                        "killed leftover process {pgid} of `{name}` (it had left its session) from a previous run"
                    ));
                }
            } else if session_alive(pgid) {
                super::kill_session(pgid);
                said.push(format!(
                    "reaped leftover process group {pgid} of `{name}` from a previous run"
                ));
            }
        }
        fs::remove_file(&self.path).or_say("a record of nothing left running is harmless");
        said
    }
}

/// Kill the live processes whose environment says they belong to `stack`, with their sessions
/// when they lead one; looked for again until none is left (one may fork while it is killed).
#[cfg(target_os = "linux")]
fn reap_marked(stack: &str) -> Vec<String> {
    use std::ffi::OsStr;
    let me = std::process::id() as i32;
    let mut said = Vec::new();
    let mut killed = std::collections::HashSet::new();
    for _ in 0..5 {
        let Ok(all) = procfs::process::all_processes() else {
            break;
        };
        let mut found = 0;
        for proc in all.flatten() {
            if proc.pid == me {
                continue;
            }
            let Ok(env) = proc.environ() else { continue };
            if env.get(OsStr::new(crate::config::STACK_VAR)) != Some(&stack.into()) {
                continue;
            }
            let Some(session) = super::group::session_of(proc.pid) else {
                continue; // a zombie: already dead
            };
            super::orphans::kill_escaped(proc.pid, session, nix::sys::signal::Signal::SIGKILL);
            if !killed.insert(proc.pid) {
                continue; // killed in an earlier look, not gone yet
            }
            let service = super::group::service_of(&env).unwrap_or_else(|| "?".into());
            said.push(format!(
                "killed leftover process {} of `{service}` from a previous run (not in its record)",
                proc.pid
            ));
            found += 1;
        }
        if found == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    said
}

#[cfg(not(target_os = "linux"))]
fn reap_marked(_stack: &str) -> Vec<String> {
    Vec::new()
}

impl Drop for GroupRecord {
    fn drop(&mut self) {
        // The writer ends once it wakes and finds the record gone.
        self.shared.changed.notify_all();
    }
}

/// The writer: the latest state, each time it changes, until the record is dropped.
fn write_loop(path: &Path, shared: &Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut state = shared.state.locked();
        if state.saved == state.version {
            // Woken by a change or by the record's drop; looks again now and then anyway, to
            // end once the record is gone.
            state = shared
                .changed
                .wait_timeout(state, Duration::from_secs(60))
                .unpoisoned()
                .0;
            if state.saved == state.version {
                continue;
            }
        }
        let version = state.version;
        let new: Vec<i32> = state
            .groups
            .iter()
            .filter(|(_, (start, _))| start.is_none())
            .map(|(&pgid, _)| pgid)
            .collect();
        drop(state);
        // Start times from /proc, outside the lock.
        let starts: Vec<(i32, u64)> = new
            .into_iter()
            .map(|pgid| (pgid, start_time(pgid).unwrap_or(0)))
            .collect();
        let mut state = shared.state.locked();
        for (pgid, start) in starts {
            if let Some(group) = state.groups.get_mut(&pgid) {
                group.0.get_or_insert(start);
            }
        }
        let groups = state
            .groups
            .iter()
            .map(|(pgid, (start, name))| format!("{pgid} {} {name}\n", start.unwrap_or(0)));
        let escaped = state
            .escaped
            .iter()
            .map(|o| format!("+{} {} {}\n", o.pid, o.start, o.service));
        let text: String = groups.chain(escaped).collect();
        drop(state);
        save(path, &text);
        let mut state = shared.state.locked();
        state.saved = state.saved.max(version);
        shared.changed.notify_all();
    }
}

/// Replace the file at `path` with `text`, atomically, readable by the owner only.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::remove_file(&tmp).or_say("there may be no file left from an earlier save");
    let written = crate::statedir::private_file()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    if written.is_ok() {
        fs::rename(&tmp, path).or_say("the record on disk stays the one saved before");
    }
}

#[cfg(target_os = "linux")]
fn session_alive(sid: i32) -> bool {
    super::stat::all().any(|(_, s)| s.session == sid && s.state != 'Z')
}

#[cfg(not(target_os = "linux"))]
fn session_alive(sid: i32) -> bool {
    super::signal_group(sid, nix::sys::signal::Signal::SIGCONT)
}
