//! Where a service's processes are in their lives, as types that hold each process only while
//! it lives: what serves (`Serving`: none, its port being checked, up, stopping with what
//! follows), what is coming beside it (`Coming`: a build, a build being stopped, or, in a
//! blue-green rollout, the new run process until it is ready) and what it replaced
//! (`Retiring`: the old run process draining, then stopping). A service can have all three at
//! once: the new process of a second rollout starting while the first one's old process
//! drains.

use super::{Proc, Then};
use tokio::time::Instant;

/// A service's run process.
pub(super) enum Serving {
    /// None runs (the status says why: pending, stopped, crashed, restarting …).
    None,
    /// About to start: its port is being checked first (the check's id).
    Checking(u64),
    Up(Proc),
    /// Sent its stop signal: `then` follows its exit; KILL at `kill_at` (None once sent).
    Stopping {
        proc: Proc,
        then: Then,
        kill_at: Option<Instant>,
    },
    /// Served by its remote end (`url`), not by a process here: probed as a process would be.
    Remote(RemoteEnd),
}

/// A service served by its remote end: its probe's id and handle, and since when.
pub(super) struct RemoteEnd {
    pub id: u64,
    pub since: Instant,
    pub probe: Option<tokio::task::AbortHandle>,
}

impl Drop for RemoteEnd {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
    }
}

impl Serving {
    /// The process, up or stopping.
    pub(super) fn proc(&self) -> Option<&Proc> {
        match self {
            Serving::Up(proc) | Serving::Stopping { proc, .. } => Some(proc),
            Serving::None | Serving::Checking(_) | Serving::Remote(_) => None,
        }
    }

    /// Its remote end, while it serves.
    pub(super) fn remote(&self) -> Option<&RemoteEnd> {
        match self {
            Serving::Remote(end) => Some(end),
            _ => None,
        }
    }

    pub(super) fn proc_mut(&mut self) -> Option<&mut Proc> {
        match self {
            Serving::Up(proc) | Serving::Stopping { proc, .. } => Some(proc),
            Serving::None | Serving::Checking(_) | Serving::Remote(_) => None,
        }
    }

    /// The process, when it is up (not stopping).
    pub(super) fn up(&self) -> Option<&Proc> {
        match self {
            Serving::Up(proc) => Some(proc),
            _ => None,
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        matches!(self, Serving::Stopping { .. })
    }

    /// The port check under way, if one is.
    pub(super) fn checking(&self) -> Option<u64> {
        match self {
            Serving::Checking(id) => Some(*id),
            _ => None,
        }
    }

    /// When KILL is due, while it stops.
    pub(super) fn kill_at(&mut self) -> Option<&mut Option<Instant>> {
        match self {
            Serving::Stopping { kill_at, .. } => Some(kill_at),
            _ => None,
        }
    }

    /// When KILL is due, if it is.
    pub(super) fn kill_due(&self) -> Option<Instant> {
        match self {
            Serving::Stopping { kill_at, .. } => *kill_at,
            _ => None,
        }
    }

    /// The process `id` exited: taken out, with whether it was stopped and what follows.
    pub(super) fn take(&mut self, id: u64) -> Option<(Proc, Option<Then>)> {
        if self.proc().is_none_or(|p| p.id != id) {
            return None;
        }
        match std::mem::replace(self, Serving::None) {
            Serving::Up(proc) => Some((proc, None)),
            Serving::Stopping { proc, then, .. } => Some((proc, Some(then))),
            Serving::None | Serving::Checking(_) | Serving::Remote(_) => {
                unreachable!("matched above")
            }
        }
    }
}

/// What is coming beside what serves.
pub(super) enum Coming {
    None,
    /// A build; `queued`: a rebuild was asked for while it ran, so exactly one more follows.
    Build {
        proc: Proc,
        queued: bool,
    },
    /// A build sent its stop signal; KILL at `kill_at` (None once sent).
    StoppingBuild {
        proc: Proc,
        kill_at: Option<Instant>,
    },
    /// A new run process started beside the serving one (blue-green): it serves once ready,
    /// unless `until` comes first.
    Run {
        proc: Proc,
        until: Instant,
    },
    /// A new run process given up on (not ready in time, or replaced) sent its stop signal;
    /// `build`: a build starts once it has gone.
    StoppingRun {
        proc: Proc,
        kill_at: Option<Instant>,
        build: bool,
    },
}

/// How a coming process ended.
pub(super) enum CameTo {
    /// A build; whether it was stopped, and whether one more was asked for.
    Build { stopped: bool, queued: bool },
    /// A new run process before it served; whether it was stopped, and whether a build
    /// follows.
    Run { stopped: bool, build: bool },
}

impl Coming {
    pub(super) fn proc(&self) -> Option<&Proc> {
        match self {
            Coming::Build { proc, .. }
            | Coming::StoppingBuild { proc, .. }
            | Coming::Run { proc, .. }
            | Coming::StoppingRun { proc, .. } => Some(proc),
            Coming::None => None,
        }
    }

    /// A build, running or stopping.
    pub(super) fn build(&self) -> Option<&Proc> {
        match self {
            Coming::Build { proc, .. } | Coming::StoppingBuild { proc, .. } => Some(proc),
            _ => None,
        }
    }

    /// A new run process, starting (not stopping).
    pub(super) fn run(&self) -> Option<&Proc> {
        match self {
            Coming::Run { proc, .. } => Some(proc),
            _ => None,
        }
    }

    pub(super) fn run_mut(&mut self) -> Option<&mut Proc> {
        match self {
            Coming::Run { proc, .. } => Some(proc),
            _ => None,
        }
    }

    pub(super) fn is_some(&self) -> bool {
        !matches!(self, Coming::None)
    }

    pub(super) fn is_none(&self) -> bool {
        matches!(self, Coming::None)
    }

    /// When KILL is due, while it stops.
    pub(super) fn kill_at(&mut self) -> Option<&mut Option<Instant>> {
        match self {
            Coming::StoppingBuild { kill_at, .. } | Coming::StoppingRun { kill_at, .. } => {
                Some(kill_at)
            }
            _ => None,
        }
    }

    /// When something is due: KILL, or a new run process's time to be ready.
    pub(super) fn kill_due(&self) -> Option<Instant> {
        match self {
            Coming::StoppingBuild { kill_at, .. } | Coming::StoppingRun { kill_at, .. } => *kill_at,
            Coming::Run { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// The process `id` exited: taken out, with how it ended.
    pub(super) fn take(&mut self, id: u64) -> Option<(Proc, CameTo)> {
        if self.proc().is_none_or(|p| p.id != id) {
            return None;
        }
        let build = |stopped, queued| CameTo::Build { stopped, queued };
        match std::mem::replace(self, Coming::None) {
            Coming::Build { proc, queued } => Some((proc, build(false, queued))),
            Coming::StoppingBuild { proc, .. } => Some((proc, build(true, false))),
            Coming::Run { proc, .. } => Some((
                proc,
                CameTo::Run {
                    stopped: false,
                    build: false,
                },
            )),
            Coming::StoppingRun { proc, build, .. } => Some((
                proc,
                CameTo::Run {
                    stopped: true,
                    build,
                },
            )),
            Coming::None => unreachable!("matched above"),
        }
    }
}

/// The run process a blue-green switch replaced.
pub(super) enum Retiring {
    None,
    /// Finishing what it serves: stopped once nothing is connected to it (the spawner's
    /// `watch_drain` says so) or at `until`; `since`: the switch.
    Draining {
        proc: Proc,
        since: Instant,
        until: Instant,
    },
    /// Sent its stop signal; KILL at `kill_at` (None once sent).
    Stopping {
        proc: Proc,
        kill_at: Option<Instant>,
    },
}

impl Retiring {
    pub(super) fn proc(&self) -> Option<&Proc> {
        match self {
            Retiring::Draining { proc, .. } | Retiring::Stopping { proc, .. } => Some(proc),
            Retiring::None => None,
        }
    }

    /// When KILL is due, while it stops.
    pub(super) fn kill_at(&mut self) -> Option<&mut Option<Instant>> {
        match self {
            Retiring::Stopping { kill_at, .. } => Some(kill_at),
            _ => None,
        }
    }

    /// When something is due: the end of its drain, or KILL.
    pub(super) fn due(&self) -> Option<Instant> {
        match self {
            Retiring::Draining { until, .. } => Some(*until),
            Retiring::Stopping { kill_at, .. } => *kill_at,
            Retiring::None => None,
        }
    }

    /// The process `id` exited: taken out.
    pub(super) fn take(&mut self, id: u64) -> Option<Proc> {
        if self.proc().is_none_or(|p| p.id != id) {
            return None;
        }
        match std::mem::replace(self, Retiring::None) {
            Retiring::Draining { proc, .. } | Retiring::Stopping { proc, .. } => Some(proc),
            Retiring::None => unreachable!("matched above"),
        }
    }
}
