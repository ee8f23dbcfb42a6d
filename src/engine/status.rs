//! What a service is doing, as the engine sees it and every interface shows it.

use crate::format::secs;
use crate::process::Exit;
use serde::{Deserialize, Serialize};
use std::fmt;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Wanted, waiting to start; what it waits for, when that is worth saying (a dependency, its
    /// port being checked).
    Pending(Option<String>),
    /// Wanted, but a dependency failed; the reason names it.
    Blocked(String),
    /// Wanted, but its port is held (the reason names by whom); tried again at `retry`. When
    /// the holder is the service's own previous process on its way out (`ours`), this is a short
    /// wait, shown as pending; anyone else's holds block it. `held_since`: when the first of the
    /// checks in a row found it held (the status stays so through the checks that follow, and
    /// any other status ends the wait).
    PortBusy {
        why: String,
        retry: Instant,
        ours: bool,
        held_since: Instant,
    },
    Building,
    Running,
    Stopping,
    /// Crashed (or exited, with `restart = "always"`) and will start again at this instant.
    Restarting {
        at: Instant,
        exit: Exit,
    },
    /// Ended and will not be restarted.
    Exited(Exit),
    /// Ended with a failure and will not be restarted.
    Crashed(Exit),
    BuildFailed(Exit),
    /// A one-shot task that succeeded.
    Completed,
    /// A one-shot task that failed.
    Failed(Exit),
    /// Not running, by choice: stopped, or `autostart = false`.
    Stopped,
}

impl Status {
    /// The state it shows as, for tables and JSON (the README's `ps --json` `state` values).
    pub fn state(&self) -> State {
        match self {
            Status::Pending(_) => State::Pending,
            Status::PortBusy { ours: true, .. } => State::Pending,
            Status::Blocked(_) | Status::PortBusy { .. } => State::Blocked,
            Status::Building => State::Building,
            Status::Running => State::Running,
            Status::Stopping => State::Stopping,
            Status::Restarting { .. } => State::Restarting,
            Status::Exited(_) => State::Exited,
            Status::Crashed(_) => State::Crashed,
            Status::BuildFailed(_) => State::BuildFailed,
            Status::Completed => State::Completed,
            Status::Failed(_) => State::Failed,
            Status::Stopped => State::Stopped,
        }
    }

    /// Ended in a way that needs the user's attention.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Status::Blocked(_)
                | Status::PortBusy { ours: false, .. }
                | Status::Crashed(_)
                | Status::BuildFailed(_)
                | Status::Failed(_)
        )
    }

    /// Nothing more will happen to this service unless someone asks.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Status::Blocked(_)
                | Status::Exited(_)
                | Status::Crashed(_)
                | Status::BuildFailed(_)
                | Status::Completed
                | Status::Failed(_)
                | Status::Stopped
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::PortBusy {
                why, ours: true, ..
            } => write!(f, "pending: {why}"),
            Status::Blocked(why) | Status::PortBusy { why, .. } => write!(f, "blocked: {why}"),
            Status::Restarting { at, exit } => {
                let left = at.saturating_duration_since(Instant::now());
                write!(f, "restarting in {} ({exit})", secs(left))
            }
            Status::Exited(e) | Status::Crashed(e) | Status::BuildFailed(e) | Status::Failed(e) => {
                write!(f, "{} ({e})", self.state())
            }
            other => write!(f, "{}", other.state()),
        }
    }
}

/// A service's state as every interface shows it (the README's `ps --json` table lists them): the
/// `state` of `ps --json`, the socket's views and the dashboard. Serialised as its name
/// (`build-failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Wanted, waiting for its dependencies (or for its own old process to free its port).
    Pending,
    /// Wanted, but a dependency failed or another process holds its port.
    Blocked,
    Building,
    /// Running, with a probe that has not succeeded yet.
    Starting,
    Running,
    Stopping,
    Restarting,
    Exited,
    Crashed,
    BuildFailed,
    Completed,
    Failed,
    Stopped,
}

impl State {
    pub const ALL: [State; 13] = [
        State::Pending,
        State::Blocked,
        State::Building,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Restarting,
        State::Exited,
        State::Crashed,
        State::BuildFailed,
        State::Completed,
        State::Failed,
        State::Stopped,
    ];

    /// The name it is written as, in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Blocked => "blocked",
            State::Building => "building",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Crashed => "crashed",
            State::BuildFailed => "build-failed",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }

    /// A process of the service runs (with or without a healthy probe).
    pub fn is_up(self) -> bool {
        matches!(self, State::Running | State::Starting)
    }

    /// Ended in a way that needs the user's attention, or can't start.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            State::Crashed | State::BuildFailed | State::Failed | State::Blocked
        )
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(name: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("no state is called `{name}`"))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a service's probe says. Serialised as `unknown`, `healthy`, `unhealthy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
}

impl HealthState {
    pub fn name(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One service as the interfaces see it (on the control socket and in `ps --json` as
/// `control::wire::Service`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub name: String,
    pub state: State,
    /// None for a service without a probe (or not running).
    pub health: Option<HealthState>,
    pub health_error: Option<String>,
    /// Running and healthy (or without a probe), or a completed task.
    pub ready: bool,
    /// Meant to be up (asked for, or a dependency of something asked for).
    pub wanted: bool,
    /// Rebuilds when its watched files change (None: it watches nothing).
    pub auto_rebuild: Option<bool>,
    /// Run processes started so far (a restart shows as a new one).
    pub spawns: u64,
    /// A build is running.
    pub building: bool,
    /// The last build failed; the previous process keeps running.
    pub build_failed: bool,
    /// CPU use of the service's whole process group, in % of one core (when sampled).
    pub cpu_percent: Option<f32>,
    /// Resident memory of the service's whole process group (when sampled).
    pub mem_bytes: Option<u64>,
    /// Restarting again and again after short runs.
    pub crash_loop: bool,
    /// Nothing more will happen to it unless someone asks (clients judge readiness with it).
    pub settled: bool,
    pub detail: String,
    pub pid: Option<i32>,
    pub port: Option<u16>,
    /// The port its serving process listens on, when proxied (what the route forwards to).
    pub private_port: Option<u16>,
    /// A blue-green rollout's new process, starting beside `pid` until it is ready.
    pub next_pid: Option<i32>,
    /// The process a blue-green switch replaced, draining (then stopping).
    pub draining_pid: Option<i32>,
    /// Why the last rollout's new process never served (`pid` kept serving).
    pub rollout_failed: Option<String>,
    /// The image it runs from (`image` services).
    pub image: Option<String>,
    /// The `url` of the remote end serving it now (no process here), if one does.
    pub remote: Option<String>,
    /// The named volumes of the stack its container uses (kept until `down --volumes`).
    pub volumes: Vec<String>,
    pub restarts: u32,
    /// When its running process started (on the wire, `uptime_secs`): a view never goes stale,
    /// so uptimes need no messages.
    pub since: Option<Instant>,
    /// Lines of this run that did not reach the log file (a full disk), if any.
    pub log_lost: Option<crate::logs::LogLoss>,
}

impl ServiceView {
    /// Whole seconds its running process has run (None: not running).
    pub fn uptime_secs(&self) -> Option<u64> {
        self.since.map(|t| t.elapsed().as_secs())
    }

    /// Same state, health, pid, restarts and build status (uptime and countdowns aside).
    pub fn same_state(&self, other: &ServiceView) -> bool {
        let key = |v: &ServiceView| {
            (
                v.state,
                v.pid,
                v.health,
                v.restarts,
                v.building,
                v.build_failed,
                (v.next_pid, v.draining_pid, v.rollout_failed.is_some()),
            )
        };
        key(self) == key(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The names of the README's `ps --json` table, each way: they are the outside contract.
    #[test]
    fn states_and_health_are_written_by_their_names() {
        let names: Vec<String> = State::ALL
            .iter()
            .map(|s| {
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "pending",
                "blocked",
                "building",
                "starting",
                "running",
                "stopping",
                "restarting",
                "exited",
                "crashed",
                "build-failed",
                "completed",
                "failed",
                "stopped"
            ]
        );
        for s in State::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.name()));
            assert_eq!(s.name().parse::<State>(), Ok(s));
            assert_eq!(serde_json::from_value::<State>(json!(s.name())).unwrap(), s);
        }
        for (h, name) in [
            (HealthState::Unknown, "unknown"),
            (HealthState::Healthy, "healthy"),
            (HealthState::Unhealthy, "unhealthy"),
        ] {
            assert_eq!(serde_json::to_value(h).unwrap(), json!(name));
            assert_eq!(h.name(), name);
        }
    }
}
