//! Rebuilds: by hand, on change, and the guard that turns rebuild-on-change off for a build that
//! writes into its own watched files (a loop that would otherwise never end).

use super::phase::Coming;
use super::{Command, Engine, ServiceId, Status};
use std::time::Duration;
use tokio::time::Instant;

/// Rebuilds in a row asked for by changes made while the service was building, after which
/// rebuilding on change turns off for it.
pub(super) const SELF_TRIGGER_LIMIT: u32 = 3;

/// When the builds of one service ran, and how many in a row saw changes of their own.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// When the last build ran (start, end): changes seen then may be the build's own writes.
    last_build: Option<(Instant, Option<Instant>)>,
    /// Builds in a row during which (or right after which) watched files changed.
    self_triggered: u32,
    /// Builds started so far.
    builds: u64,
    /// The build last counted in `self_triggered` (each build counts once).
    counted_build: Option<u64>,
}

impl Guard {
    pub(super) fn build_started(&mut self, now: Instant) {
        self.builds += 1;
        self.last_build = Some((now, None));
    }

    pub(super) fn build_ended(&mut self, now: Instant) {
        if let Some((start, None)) = self.last_build {
            self.last_build = Some((start, Some(now)));
        }
    }

    /// The start of the build running now.
    pub(super) fn building_since(&self) -> Option<Instant> {
        match self.last_build {
            Some((start, None)) => Some(start),
            _ => None,
        }
    }

    pub(super) fn reset(&mut self) {
        self.self_triggered = 0;
    }

    /// Files changed at `at`: true when this makes `SELF_TRIGGER_LIMIT` builds in a row that
    /// saw changes while they ran (or within `slack` after), each build counted once.
    pub(super) fn changed(&mut self, at: Instant, slack: Duration) -> bool {
        let during_build = match self.last_build {
            Some((start, None)) => at >= start,
            Some((start, Some(end))) => at >= start && at <= end + slack,
            None => false,
        };
        match during_build.then_some(self.builds) {
            // Several saves during one slow build are one build's worth, not a loop.
            Some(build) if self.counted_build != Some(build) => {
                self.self_triggered += 1;
                self.counted_build = Some(build);
            }
            Some(_) => {}
            None => self.self_triggered = 0,
        }
        if self.self_triggered >= SELF_TRIGGER_LIMIT {
            self.self_triggered = 0;
            return true;
        }
        false
    }
}

impl Engine {
    pub(super) fn files_changed(&mut self, i: ServiceId, paths: Vec<String>, at: Instant) {
        let what = match paths.as_slice() {
            [one] => format!("{one} changed"),
            [a, b] => format!("{a} and {b} changed"),
            [a, b, rest @ ..] => format!("{a}, {b} and {} more changed", rest.len()),
            [] => return,
        };
        let svc = &self.svcs[i];
        if !svc.want_up || self.shutting_down {
            return;
        }
        if !svc.auto {
            self.say(
                i,
                format!("{what} (rebuild on change is off: rebuild by hand)"),
            );
            return;
        }
        // Seen while it built (or within a debounce of the end): maybe the build's own writes.
        let slack = self.cfg.debounce + Duration::from_millis(100);
        if self.svcs[i].guard.changed(at, slack) {
            self.svcs[i].auto = false;
            let name = &self.cfg.services[i].name;
            self.say(i, format!(
                "{what} during each of the last {SELF_TRIGGER_LIMIT} builds: the build seems to write into its own watched files. Rebuild on change is now off; add those files to `ignore`, then turn it on again (m, or `devstack watch {name} auto`)"
            ));
            return;
        }
        self.say(i, format!("rebuilding: {what}"));
        self.rebuild(i);
    }

    /// Build again: beside a running process (which keeps running until the build succeeds), or
    /// as the first step of a start; one more after the running build.
    pub(super) fn rebuild(&mut self, i: ServiceId) {
        if self.svcs[i].remote {
            // Served by its remote end: what runs here is nothing to rebuild.
            return self.command(Command::Restart { service: i });
        }
        if self.cfg.services[i].build.is_none() {
            // Nothing to build: a rebuild is a restart.
            return self.command(Command::Restart { service: i });
        }
        self.svcs[i].want_up = true;
        match &mut self.svcs[i].coming {
            Coming::Build { queued, .. } => {
                *queued = true;
                return self.say(i, "a build is running; one more will follow it");
            }
            // Being stopped (with the service): built again once it has.
            Coming::StoppingBuild { .. } => {
                self.svcs[i].built = false;
                return self.say(i, "a build is running; one more will follow it");
            }
            // A new process of the code before this change: it goes, then the build runs.
            Coming::Run { .. } => {
                self.stop_coming_run(i, true);
                return self.say(i, "the build starts once the new process has stopped");
            }
            Coming::StoppingRun { build, .. } => {
                *build = true;
                return;
            }
            Coming::None => {}
        }
        if self.svcs[i].serving.proc().is_some() || self.gate(i).is_ok() {
            // A running service builds beside its old process, whatever its dependencies do.
            self.spawn_build(i);
        } else {
            self.svcs[i].built = false;
            self.set(i, Status::Pending(None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_during_three_builds_in_a_row_trip_the_guard_once_each_build() {
        let mut g = Guard::default();
        let slack = Duration::from_millis(200);
        let t0 = Instant::now();
        for n in 0..3u64 {
            let start = t0 + Duration::from_secs(10 * n);
            g.build_started(start);
            // Two changes during one build count once.
            let first = g.changed(start + Duration::from_millis(10), slack);
            let second = g.changed(start + Duration::from_millis(20), slack);
            assert_eq!(first, n == 2, "build {n}");
            assert!(!second);
            g.build_ended(start + Duration::from_secs(1));
        }
    }

    #[test]
    fn a_change_well_after_a_build_resets_the_count() {
        let mut g = Guard::default();
        let slack = Duration::from_millis(200);
        let t0 = Instant::now();
        g.build_started(t0);
        assert!(!g.changed(t0 + Duration::from_millis(5), slack));
        g.build_ended(t0 + Duration::from_secs(1));
        assert!(!g.changed(t0 + Duration::from_secs(5), slack));
        assert_eq!(g.self_triggered, 0);
    }
}
