//! Where a service's processes are in their lives, as types that hold each process only while
//! it lives: what serves (`Serving`: none, its port being checked, up, stopping with what
//! follows) and what is coming beside it (`Coming`: a build, or a build being stopped). A
//! service can have both at once: a rebuild builds while the old process serves (and, next, a
//! new run process will start while the old one serves).

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
}

impl Serving {
    /// The process, up or stopping.
    pub(super) fn proc(&self) -> Option<&Proc> {
        match self {
            Serving::Up(proc) | Serving::Stopping { proc, .. } => Some(proc),
            Serving::None | Serving::Checking(_) => None,
        }
    }

    pub(super) fn proc_mut(&mut self) -> Option<&mut Proc> {
        match self {
            Serving::Up(proc) | Serving::Stopping { proc, .. } => Some(proc),
            Serving::None | Serving::Checking(_) => None,
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
            Serving::None | Serving::Checking(_) => unreachable!("matched above"),
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
}

impl Coming {
    pub(super) fn proc(&self) -> Option<&Proc> {
        match self {
            Coming::Build { proc, .. } | Coming::StoppingBuild { proc, .. } => Some(proc),
            Coming::None => None,
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
            Coming::StoppingBuild { kill_at, .. } => Some(kill_at),
            _ => None,
        }
    }

    /// When KILL is due, if it is.
    pub(super) fn kill_due(&self) -> Option<Instant> {
        match self {
            Coming::StoppingBuild { kill_at, .. } => *kill_at,
            _ => None,
        }
    }

    /// The build `id` exited: taken out, with whether it was stopped and whether one more was
    /// asked for.
    pub(super) fn take(&mut self, id: u64) -> Option<(Proc, bool, bool)> {
        if self.proc().is_none_or(|p| p.id != id) {
            return None;
        }
        match std::mem::replace(self, Coming::None) {
            Coming::Build { proc, queued } => Some((proc, false, queued)),
            Coming::StoppingBuild { proc, .. } => Some((proc, true, false)),
            Coming::None => unreachable!("matched above"),
        }
    }
}
