//! What a service is doing, as the engine sees it and every interface shows it.

use crate::process::Exit;
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Wanted, waiting for its dependencies.
    Pending,
    /// Wanted, but a dependency failed; the reason names it.
    Blocked(String),
    /// Wanted, but its port is held (the reason names by whom); tried again at `retry`. When
    /// the holder is the service's own previous process on its way out (`ours`), this is a short
    /// wait, shown as pending; anyone else's holds block it.
    PortBusy {
        why: String,
        retry: Instant,
        ours: bool,
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
    /// The short state name of DESIGN §3, for tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::PortBusy { ours: true, .. } => "pending",
            Status::Blocked(_) | Status::PortBusy { .. } => "blocked",
            Status::Building => "building",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Restarting { .. } => "restarting",
            Status::Exited(_) => "exited",
            Status::Crashed(_) => "crashed",
            Status::BuildFailed(_) => "build-failed",
            Status::Completed => "completed",
            Status::Failed(_) => "failed",
            Status::Stopped => "stopped",
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
                write!(f, "{} ({e})", self.name())
            }
            other => f.write_str(other.name()),
        }
    }
}

/// `1.5s`, `30s`, `250ms`
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 || d >= Duration::from_secs(10) {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// How long a process has run, as every table shows it (`ps`, the dashboard): `42s`, `3m05s`,
/// `2h07m`, `3d04h`; at most 7 characters below 1000 days.
pub fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// One service as the interfaces see it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub state: &'static str,
    /// None for a service without a probe (or not running).
    pub health: Option<&'static str>,
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
    /// Nothing more will happen to it unless someone asks.
    #[serde(skip)]
    pub settled: bool,
    pub detail: String,
    pub pid: Option<i32>,
    pub port: Option<u16>,
    pub restarts: u32,
    #[serde(skip)]
    pub since: Option<Instant>,
    pub uptime_secs: Option<u64>,
    /// Lines of this run that did not reach the log file (a full disk), if any.
    pub log_lost: Option<crate::logs::LogLoss>,
}

impl ServiceView {
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
            )
        };
        key(self) == key(other)
    }
}

#[cfg(test)]
mod tests {
    use super::uptime;

    #[test]
    fn uptime_is_short_and_zero_padded() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(60), "1m00s");
        assert_eq!(uptime(75), "1m15s");
        assert_eq!(uptime(3599), "59m59s");
        assert_eq!(uptime(3600), "1h00m");
        assert_eq!(uptime(3600 + 7 * 60 + 59), "1h07m");
        assert_eq!(uptime(86_399), "23h59m");
        assert_eq!(uptime(86_400), "1d00h");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 5), "3d04h");
        assert!(uptime(999 * 86_400 + 23 * 3600).len() <= 7);
    }
}
