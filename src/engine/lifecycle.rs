//! The life of a service's processes: starting what may start (in dependency order), builds,
//! exits, the restart policy (backoff, crash loops, `command not found`), the grace before KILL,
//! and the stop order on shutdown.

use super::deps::{self, Gate};
use super::phase::{CameTo, Coming, Serving};
use super::{Engine, Health, Msg, Proc, ServiceId, Status, Then};
use crate::config::{CommandLine, Probe, Restart, Slot};
use crate::format::secs;
use crate::ignored::Ignore;
use crate::logs::{OutputFeed, Stream};
use crate::process::{Exit, PortHolder, SpawnRequest};
use std::time::Duration;
use tokio::time::Instant;

/// Backoff doubles from here …
const BACKOFF_START: Duration = Duration::from_secs(1);
/// … up to here,
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// and starts over once a process has run this long.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Exits with 127 ("command not found" from `sh -c`) in a row after which a service is not
/// restarted any more.
pub(super) const NOT_FOUND_LIMIT: u32 = 3;
/// How often a service whose port another process holds looks again.
pub(super) const PORT_RETRY: Duration = Duration::from_secs(1);
/// … and how often while its own previous process may still be releasing it,
const PORT_RETRY_SOON: Duration = Duration::from_millis(100);
/// for at most its grace and this long.
const PORT_RELEASE: Duration = Duration::from_secs(2);

/// How a run process ended, in words.
fn ended(exit: Exit) -> String {
    match exit {
        Exit::NotStarted => "could not start".into(),
        exit => format!("exited with {exit}"),
    }
}

/// 1s, 2s, 4s … capped at 30s.
pub(super) fn backoff(step: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1u32 << step.min(16))
        .min(BACKOFF_MAX)
}

/// Which process of a service exited, and what its phase said about it.
#[derive(Debug)]
enum Ended {
    Build {
        stopped: bool,
        queued: bool,
    },
    /// `then`: it was stopped, and this follows.
    Run {
        then: Option<Then>,
    },
    /// A rollout's new run process, before it served; `build`: one follows it.
    Beside {
        stopped: bool,
        build: bool,
    },
    /// The run process a rollout replaced.
    Retired,
}

/// What a process is started as.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    Build,
    /// The run process, in this slot.
    Run(Slot),
    /// A blue-green rollout's new run process, in this slot, beside the serving one.
    Beside(Slot),
}

impl Engine {
    /// Start whatever is wanted and whose dependencies allow it; block what cannot start; during
    /// shutdown, stop whatever nothing running depends on any more.
    pub(super) fn reconcile(&mut self) {
        if self.shutting_down {
            for i in self.cfg.order.clone().into_iter().rev() {
                // (A remote end was let go of at once: `shutdown`.)
                if self.svcs[i].serving.up().is_some()
                    && !deps::has_live_dependent(&self.cfg, &self.svcs, i)
                {
                    self.stop(i, Then::Rest);
                }
            }
            return;
        }
        self.restart_wave();
        let now = Instant::now();
        for i in self.cfg.order.clone() {
            let svc = &self.svcs[i];
            if !svc.want_up || !svc.idle() || svc.serving.checking().is_some() {
                continue;
            }
            match svc.status {
                Status::Pending(_) | Status::Blocked(_) => {}
                Status::PortBusy { retry, .. } if retry <= now => {}
                _ => continue,
            }
            match self.gate(i) {
                Ok(()) => {
                    let spec = &self.cfg.services[i];
                    if self.svcs[i].remote {
                        self.start_remote(i);
                    } else if spec.build.is_some() && (!self.svcs[i].built || spec.is_task()) {
                        self.spawn_build(i);
                    } else {
                        self.spawn_run(i);
                    }
                }
                Err(Gate::Never(reason)) => {
                    if self.svcs[i].status != Status::Blocked(reason.clone()) {
                        self.say(i, format!("blocked: {reason}"));
                        self.set(i, Status::Blocked(reason));
                    }
                }
                Err(Gate::Wait(why)) => {
                    self.set(i, Status::Pending(Some(why)));
                }
            }
        }
    }

    /// Restart all (`R`): each service restarts once none of its dependencies still waits to
    /// restart and every one meets its condition again, so dependencies go first.
    fn restart_wave(&mut self) {
        for i in self.cfg.order.clone() {
            if !self.svcs[i].restart_wave || !deps::wave_may_restart(&self.cfg, &self.svcs, i) {
                continue;
            }
            self.svcs[i].restart_wave = false;
            if self.svcs[i].serving.up().is_some() {
                self.say(i, "restarting (restart all)");
                self.replace(i);
            }
        }
    }

    pub(super) fn spawn_build(&mut self, i: ServiceId) {
        let cmd = self.cfg.services[i].build.clone().expect("has a build");
        self.say(i, format!("build started: {cmd}"));
        self.svcs[i].guard.build_started(Instant::now());
        if self.svcs[i].serving.proc().is_none() {
            self.set(i, Status::Building);
        }
        self.spawn(i, Start::Build, &cmd);
    }

    /// Start the run process, once its port (if it has one) is found free: the check runs off
    /// the engine's thread, and `port_checked` goes on with its answer.
    fn spawn_run(&mut self, i: ServiceId) {
        let Some(port) = self.cfg.services[i].slot(self.svcs[i].slot).port else {
            return self.start_run(i);
        };
        if self.svcs[i].serving.checking().is_some() {
            return; // asked already
        }
        self.next_id += 1;
        let id = self.next_id;
        self.svcs[i].serving = Serving::Checking(id);
        // Pending meanwhile; one found held stays so, so that it says so only once.
        if !matches!(self.svcs[i].status, Status::PortBusy { .. }) {
            self.set(
                i,
                Status::Pending(Some(format!("checking that port {port} is free"))),
            );
        }
        let tx = self.tx.clone();
        self.spawner.check_port(
            port,
            Box::new(move |holder| {
                tx.send(Msg::PortChecked {
                    service: i,
                    id,
                    holder,
                })
                .or_say("the engine has ended");
            }),
        );
    }

    /// Who holds the port of `i`, checked before its run process starts.
    pub(super) fn port_checked(&mut self, i: ServiceId, id: u64, holder: Option<PortHolder>) {
        if self.svcs[i].serving.checking() != Some(id) {
            return;
        }
        self.svcs[i].serving = Serving::None;
        if !self.svcs[i].want_up || self.shutting_down || !self.svcs[i].idle() {
            return; // stopped, or started otherwise, meanwhile
        }
        let spec = &self.cfg.services[i];
        let port = (spec.slot(self.svcs[i].slot).port).expect("checked services have a port");
        // Another process on the port would answer the probes and make this one crash-loop.
        let Some(holder) = holder else {
            return self.start_run(i);
        };
        // The service's own previous process (or one too far gone to show its sockets) may
        // still be on its way out: wait a moment for it before calling the port taken.
        let now = Instant::now();
        // Held since the first check of those in a row (the status stays port-busy through
        // the checks that follow one that found it held).
        let held_since = match self.svcs[i].status {
            Status::PortBusy { held_since, .. } => held_since,
            _ => now,
        };
        let leaving = holder.pid.is_none() || holder.service.as_deref() == Some(&spec.name);
        let ours = leaving && now < held_since + spec.grace + PORT_RELEASE;
        let why = if ours {
            format!("waiting for port {port} to be released by {holder}")
        } else {
            format!("port {port} is in use by {holder}")
        };
        let said = matches!(&self.svcs[i].status, Status::PortBusy { why: w, .. } if *w == why);
        if !said && !ours {
            self.say(
                i,
                format!("not starting: {why}; trying again every second until it is free"),
            );
        }
        let retry = now + if ours { PORT_RETRY_SOON } else { PORT_RETRY };
        let status = Status::PortBusy {
            why,
            retry,
            ours,
            held_since,
        };
        self.set(i, status);
    }

    fn start_run(&mut self, i: ServiceId) {
        let slot = self.svcs[i].slot;
        let cmd = self.cfg.services[i].slot(slot).run.cloned();
        self.spawn(i, Start::Run(slot), &cmd.expect("has a run command"));
    }

    pub(super) fn spawn(&mut self, i: ServiceId, start: Start, cmd: &CommandLine) {
        self.next_id += 1;
        let id = self.next_id;
        let spec = &self.cfg.services[i];
        let slot = match start {
            Start::Build => None,
            Start::Run(slot) | Start::Beside(slot) => Some(spec.slot(slot)),
        };
        let run = slot.is_some();
        let stream = if run { Stream::Out } else { Stream::Build };
        let mut feed = OutputFeed::new(self.logs.clone(), i, stream);
        if run {
            feed = feed.with_announce(cmd.to_string());
        }
        if spec.blue_green() && run {
            feed = feed.with_pid_marks(self.svcs[i].overlap.clone());
        }
        let health = slot.as_ref().and_then(|s| s.health);
        if let Some(Probe::Log(re)) = health.map(|h| &h.probe) {
            let tx = self.tx.clone();
            let found = move || {
                tx.send(Msg::Probe {
                    service: i,
                    id,
                    result: Ok(()),
                })
                .or_say("the engine has ended");
            };
            feed = feed.with_matcher((re.clone(), Box::new(found)));
        }
        let tx = self.tx.clone();
        let request = SpawnRequest {
            service: &spec.name,
            cmd,
            cwd: &spec.cwd,
            env: slot.as_ref().map_or(&spec.env, |s| s.env),
            stop_signal: spec.stop_signal,
            grace: spec.grace,
            after: match start {
                Start::Run(slot) | Start::Beside(slot) => {
                    spec.container.as_ref().and_then(|c| c.remove(slot))
                }
                Start::Build => None,
            },
        };
        let on_exit = Box::new(move |exit| {
            tx.send(Msg::Exited {
                service: i,
                id,
                exit,
            })
            .or_say("the engine has ended");
        });
        match self.spawner.spawn(request, Box::new(feed), on_exit) {
            Ok(started) => {
                tracing::info!(service = %spec.name, pid = started.pid, build = !run, "spawned");
                self.record.add(started.pid, &spec.name);
                let proc = Proc {
                    id,
                    pid: started.pid,
                    slot: match start {
                        Start::Run(slot) | Start::Beside(slot) => slot,
                        Start::Build => Slot::A,
                    },
                    started: Instant::now(),
                    terminal: started.terminal,
                    probe: None,
                };
                match start {
                    Start::Run(_) => {
                        let svc = &mut self.svcs[i];
                        svc.serving = Serving::Up(proc);
                        svc.spawns += 1;
                        svc.health = Health::default();
                        svc.rollout_failed = None;
                        self.start_probe(i, id);
                        self.set(i, Status::Running);
                    }
                    Start::Beside(_) => self.beside_started(i, proc),
                    Start::Build => {
                        self.svcs[i].coming = Coming::Build {
                            proc,
                            queued: false,
                        };
                    }
                }
            }
            // A program that can't be started (often one being rebuilt right now) fails like
            // one that exited at once: a failed build, or a crash the restart policy handles.
            Err(e) => {
                tracing::warn!(service = %spec.name, error = %e, "cannot spawn");
                self.say(i, e.to_string());
                let exit = Exit::NotStarted;
                match start {
                    Start::Run(_) => self.run_ended(i, None, exit, Duration::ZERO),
                    Start::Beside(_) => self.rollout_failed(i, format!("could not start: {e}")),
                    Start::Build => self.build_exited(i, false, false, exit, Duration::ZERO),
                }
            }
        }
    }

    pub(super) fn exited(&mut self, i: ServiceId, id: u64, exit: Exit) {
        let svc = &mut self.svcs[i];
        let (proc, ended) = if let Some((proc, came)) = svc.coming.take(id) {
            let ended = match came {
                CameTo::Build { stopped, queued } => Ended::Build { stopped, queued },
                CameTo::Run { stopped, build } => Ended::Beside { stopped, build },
            };
            (proc, ended)
        } else if let Some((proc, then)) = svc.serving.take(id) {
            (proc, Ended::Run { then })
        } else if let Some(proc) = svc.retiring.take(id) {
            (proc, Ended::Retired)
        } else {
            return;
        };
        tracing::info!(
            service = %self.cfg.services[i].name,
            pid = proc.pid,
            ?ended,
            %exit,
            "exited"
        );
        // Its session was cleared when it exited; nothing signals this pid any more.
        self.spawner.reap(proc.pid);
        self.record.remove(proc.pid);
        let (ran, pid) = (proc.started.elapsed(), proc.pid);
        drop(proc);
        self.overlap_ended(i);
        match ended {
            Ended::Build { stopped, queued } => self.build_exited(i, stopped, queued, exit, ran),
            Ended::Run { then } => self.run_ended(i, then, exit, ran),
            Ended::Beside { stopped, build } => self.beside_exited(i, (stopped, build), exit, ran),
            Ended::Retired => self.retired(i, pid, exit),
        }
    }

    /// A build ended (or could not start); `stopped`: we stopped it; `queued`: one more was
    /// asked for while it ran.
    fn build_exited(
        &mut self,
        i: ServiceId,
        stopped: bool,
        queued: bool,
        exit: Exit,
        took: Duration,
    ) {
        let task = self.cfg.services[i].is_task();
        self.svcs[i].guard.build_ended(Instant::now());
        if stopped {
            self.say(i, format!("build stopped ({exit})"));
            if self.svcs[i].serving.proc().is_none() {
                let status = if self.svcs[i].want_up {
                    Status::Pending(None)
                } else {
                    Status::Stopped
                };
                self.set(i, status);
            }
            return;
        }
        if queued && !self.shutting_down {
            self.say(
                i,
                format!("build finished ({exit}); building again for the changes made during it"),
            );
            return self.spawn_build(i);
        }
        if !exit.success() {
            self.svcs[i].built = false;
            if task {
                self.say(i, format!("task failed ({exit}) after {}", secs(took)));
                self.set(i, Status::Failed(exit));
            } else if self.svcs[i].serving.proc().is_some() {
                self.say(
                    i,
                    format!("build failed ({exit}); the previous process keeps running"),
                );
            } else {
                self.say(i, format!("build failed ({exit})"));
                self.set(i, Status::BuildFailed(exit));
            }
            return;
        }
        self.svcs[i].built = true;
        if task {
            self.say(i, format!("task completed in {}", secs(took)));
            self.set(i, Status::Completed);
        } else if self.shutting_down || !self.svcs[i].want_up {
            self.set(i, Status::Stopped);
        } else if self.svcs[i].serving.proc().is_some() {
            self.say(i, format!("build finished in {}; restarting", secs(took)));
            self.replace(i);
            self.restart_dependents_of(i);
        } else {
            self.say(i, format!("build finished in {}", secs(took)));
            self.spawn_run(i);
        }
    }

    /// Dependents that asked for it (`restart = true`) restart when `i` was rebuilt.
    fn restart_dependents_of(&mut self, i: ServiceId) {
        let name = self.name(i).to_string();
        for k in deps::restart_on_rebuild(&self.cfg, i) {
            if self.svcs[k].serving.up().is_some() {
                self.say(k, format!("restarting: dependency `{name}` was rebuilt"));
                self.replace(k);
            }
        }
    }

    /// The run process ended (or could not start); `then`: we stopped it, and this follows.
    pub(super) fn run_ended(
        &mut self,
        i: ServiceId,
        then: Option<Then>,
        exit: Exit,
        ran: Duration,
    ) {
        let spec = &self.cfg.services[i];
        if let Some(then) = then {
            self.say(i, format!("stopped ({exit})"));
            if self.svcs[i].want_up && !self.shutting_down {
                match then {
                    // Switched to its remote end meanwhile (`use`): served there from now.
                    Then::Run if self.svcs[i].remote => return self.start_remote(i),
                    Then::Run => return self.spawn_run(i),
                    Then::Backoff => return self.schedule_restart(i, exit, ran),
                    Then::Rest => {}
                }
            }
            let status = if self.svcs[i].want_up {
                Status::Exited(exit)
            } else {
                Status::Stopped
            };
            return self.set(i, status);
        }
        // `sh -c` exits 127 when it can't find the command: a few of those in a row, each at
        // once, is a mistake in `run`, not something a restart fixes. (A program that is missing
        // for exec is retried: it is often being rebuilt.)
        let not_found = exit == Exit::Code(127)
            && ran < STABLE_AFTER
            && matches!(spec.run, Some(CommandLine::Shell(_)));
        let svc = &mut self.svcs[i];
        svc.not_found = if not_found { svc.not_found + 1 } else { 0 };
        if svc.not_found >= NOT_FOUND_LIMIT {
            svc.not_found = 0;
            self.say(
                i,
                format!(
                    "command not found: `{}` exited with code 127 {NOT_FOUND_LIMIT} times in a row; not restarting it (check `run` in {})",
                    spec.run.as_ref().map(ToString::to_string).unwrap_or_default(),
                    self.cfg.file.display()
                ),
            );
            return self.set(i, Status::Crashed(exit));
        }
        let again = !self.shutting_down
            && self.svcs[i].want_up
            && match spec.restart {
                Restart::No => false,
                Restart::OnFailure => !exit.success(),
                Restart::Always => true,
            };
        if !again {
            self.say(i, ended(exit));
            let status = if exit.success() {
                Status::Exited(exit)
            } else {
                Status::Crashed(exit)
            };
            return self.set(i, status);
        }
        self.schedule_restart(i, exit, ran);
    }

    /// Start again after the backoff, which grows with each restart that follows a short run.
    fn schedule_restart(&mut self, i: ServiceId, exit: Exit, ran: Duration) {
        let svc = &mut self.svcs[i];
        if ran >= STABLE_AFTER {
            svc.backoff = 0;
        }
        let delay = backoff(svc.backoff);
        svc.backoff += 1;
        svc.restarts += 1;
        let n = svc.restarts;
        svc.status = Status::Restarting {
            at: Instant::now() + delay,
            exit,
        };
        self.say(
            i,
            format!(
                "{}; restarting in {} (restart #{n})",
                ended(exit),
                secs(delay)
            ),
        );
    }

    /// The next instant a timer is due: a restart after its backoff, a port check, a KILL.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.svcs
            .values()
            .flat_map(|s| {
                let backoff = match s.status {
                    Status::Restarting { at, .. } => Some(at),
                    Status::PortBusy { retry, .. } if s.serving.checking().is_none() => Some(retry),
                    _ => None,
                };
                let kills = [s.serving.kill_due(), s.coming.kill_due(), s.retiring.due()];
                backoff.into_iter().chain(kills.into_iter().flatten())
            })
            .min()
    }

    pub(super) fn timers(&mut self) {
        let now = Instant::now();
        for i in self.svcs.ids() {
            if let Status::Restarting { at, .. } = self.svcs[i].status
                && at <= now
            {
                self.set(i, Status::Pending(None));
            }
            self.rollout_timers(i, now);
            let grace = self.cfg.services[i].grace;
            let mut late = Vec::new();
            let svc = &mut self.svcs[i];
            let serving = svc.serving.proc().map(|p| p.pid);
            let coming = svc.coming.proc().map(|p| p.pid);
            let retiring = svc.retiring.proc().map(|p| p.pid);
            for (kill_at, pid) in [
                (svc.serving.kill_at(), serving),
                (svc.coming.kill_at(), coming),
                (svc.retiring.kill_at(), retiring),
            ] {
                if let (Some(kill_at), Some(pid)) = (kill_at, pid)
                    && kill_at.is_some_and(|t| t <= now)
                {
                    *kill_at = None;
                    late.push(pid);
                }
            }
            for pid in late {
                self.say(
                    i,
                    format!(
                        "still running {} after the stop signal: sent KILL",
                        secs(grace)
                    ),
                );
                self.spawner.kill_session(pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (0..8).map(|s| backoff(s).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }
}
