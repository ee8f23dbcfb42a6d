//! The record of live process groups under `.devstack/`, so that a run that was killed with
//! SIGKILL is cleaned up by the next one.

use super::group::start_time;
use super::orphans::Orphan;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

/// Each line: `pgid starttime service` for a service's session, `+pid starttime service` for a
/// process that escaped it. Written whenever one is added or removed.
pub struct GroupRecord {
    path: PathBuf,
    groups: BTreeMap<i32, (u64, String)>,
    escaped: Vec<Orphan>,
}

impl GroupRecord {
    pub fn new(path: PathBuf) -> Self {
        GroupRecord {
            path,
            groups: BTreeMap::new(),
            escaped: Vec::new(),
        }
    }

    pub fn add(&mut self, pgid: i32, service: &str) {
        let start = start_time(pgid).unwrap_or(0);
        self.groups.insert(pgid, (start, service.to_string()));
        self.save();
    }

    pub fn remove(&mut self, pgid: i32) {
        if self.groups.remove(&pgid).is_some() {
            self.save();
        }
    }

    /// The escaped processes alive now (see `orphans`).
    pub fn set_escaped(&mut self, escaped: Vec<Orphan>) {
        if escaped != self.escaped {
            self.escaped = escaped;
            self.save();
        }
    }

    fn save(&self) {
        let groups = self
            .groups
            .iter()
            .map(|(pgid, (start, name))| format!("{pgid} {start} {name}\n"));
        let escaped = self
            .escaped
            .iter()
            .map(|o| format!("+{} {} {}\n", o.pid, o.start, o.service));
        let text: String = groups.chain(escaped).collect();
        let tmp = self.path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        let written = crate::statedir::private_file()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if written.is_ok() {
            let _ = fs::rename(&tmp, &self.path);
        }
    }

    /// Kill the groups a previous run left behind, and say which. A recorded leader whose pid now
    /// belongs to another process (a different start time) is left alone.
    pub fn reap_leftovers(&self) -> Vec<String> {
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
        let _ = fs::remove_file(&self.path);
        said
    }
}

#[cfg(target_os = "linux")]
fn session_alive(sid: i32) -> bool {
    procfs::process::all_processes()
        .map(|all| {
            all.flatten()
                .any(|p| p.stat().is_ok_and(|s| s.session == sid && s.state != 'Z'))
        })
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn session_alive(sid: i32) -> bool {
    super::signal_group(sid, nix::sys::signal::Signal::SIGCONT)
}
