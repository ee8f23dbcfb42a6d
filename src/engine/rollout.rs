//! Blue-green rollouts (`rollout = "blue-green"`, a proxied service's default): a rebuild or
//! restart starts the new run process in the other slot (a private port of its own, with the
//! `PORT` that says it) while the old one serves. Once the new one is ready (its probe passes;
//! without one, once it listens) it is the service's process: the views name it, the route
//! follows them, and the old one drains (until nothing is connected to it, as the spawner's
//! `watch_drain` says, or for `drain` at most), then stops with its signal and grace. A new
//! process that cannot start, exits, or is not ready in time is stopped: the old one keeps
//! serving, and the service's row and log say why. While two run processes live, their lines
//! are marked with their pids.

use super::phase::{Coming, Retiring, Serving};
use super::{Engine, Health, HealthState, Proc, ServiceId, Status, Then};
use crate::format::secs;
use crate::process::Exit;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Whether the serving process is known to listen on its port (a service without a probe is
/// rolled out only if it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Listens {
    #[default]
    Unknown,
    /// Asked of the spawner, for the process with this id.
    Asked(u64),
    Yes(u64),
}

/// How long a new process without a probe may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(30);

impl Engine {
    /// Put a new run process in place of the serving one: beside it when the service rolls
    /// out blue-green and it is up, else by stopping it and starting again.
    pub(super) fn replace(&mut self, i: ServiceId) {
        let svc = &self.svcs[i];
        let beside = self.cfg.services[i].blue_green()
            && svc.serving.up().is_some()
            && svc.coming.build().is_none()
            && !self.shutting_down;
        if !beside {
            return self.stop(i, Then::Run);
        }
        if svc.coming.is_some() {
            return self.say(i, "a new process is starting already: it serves once ready");
        }
        let slot = svc.serving.up().map(|p| p.slot.other()).unwrap_or_default();
        // Its port is still the process the last switch replaced: that one drains and goes
        // first (a probe there would be answered by it).
        let on_port = svc.retiring.proc().filter(|p| p.slot == slot);
        if let Some(old) = on_port.map(|p| p.pid) {
            self.svcs[i].roll_next = true;
            let then = format!("the new process starts once pid {old}, on its port, has drained");
            return self.say(i, then);
        }
        // Without a probe, a new process is ready once it listens: one serving now that does
        // not (a worker given a port) would never be replaced so; it is asked first.
        let spec = &self.cfg.services[i];
        let serving = svc.serving.up().expect("checked above");
        let (id, port) = (serving.id, spec.slot(serving.slot).port);
        if let (None, Some(port)) = (spec.slot(serving.slot).health, port)
            && svc.listens != Listens::Yes(id)
        {
            self.svcs[i].listens = Listens::Asked(id);
            let tx = self.tx.clone();
            let report = move |holder: Option<crate::process::PortHolder>| {
                let listening = holder.is_some();
                drop(tx.send(super::Msg::Listening {
                    service: i,
                    id,
                    listening,
                }));
            };
            return self.spawner.check_port(port, Box::new(report));
        }
        let cmd = spec.slot(slot).run.cloned();
        self.spawn(
            i,
            super::lifecycle::Start::Beside(slot),
            &cmd.expect("has a run command"),
        );
    }

    /// Whether the serving process `id` listens on its port, as `replace` asked: if it does,
    /// the rollout goes on; if not, it is restarted (stopped, then started).
    pub(super) fn listening(&mut self, i: ServiceId, id: u64, listening: bool) {
        let svc = &mut self.svcs[i];
        if svc.listens != Listens::Asked(id) || svc.serving.up().is_none_or(|p| p.id != id) {
            return; // asked again, or it changed meanwhile
        }
        if listening {
            svc.listens = Listens::Yes(id);
            return self.replace(i);
        }
        svc.listens = Listens::Unknown;
        let port = self.cfg.services[i]
            .slot(self.svcs[i].slot)
            .port
            .unwrap_or_default();
        self.say(
            i,
            format!("it does not listen on its PORT {port}, so nothing could switch to a new process: restarting it"),
        );
        self.stop(i, Then::Run);
    }

    /// The new process started beside the serving one: probed until it is ready.
    pub(super) fn beside_started(&mut self, i: ServiceId, proc: Proc) {
        let spec = &self.cfg.services[i];
        let slot = spec.slot(proc.slot);
        let within = slot
            .health
            .map_or(READY_WITHIN, |h| h.start_period.max(READY_WITHIN));
        let old = self.svcs[i].serving.proc().map_or(0, |p| p.pid);
        let port = slot.port.unwrap_or_default();
        let (pid, id) = (proc.pid, proc.id);
        self.say(
            i,
            format!(
                "pid {pid} starts on port {port} beside pid {old}, which serves until it is ready"
            ),
        );
        let svc = &mut self.svcs[i];
        svc.coming = Coming::Run {
            proc,
            until: Instant::now() + within,
        };
        svc.rollout_failed = None;
        svc.overlap.store(true, Ordering::Relaxed);
        self.start_probe(i, id);
    }

    /// The new process is ready: it serves from now on, and the old one drains.
    pub(super) fn switch(&mut self, i: ServiceId) {
        let svc = &mut self.svcs[i];
        let Coming::Run { proc: mut new, .. } = std::mem::replace(&mut svc.coming, Coming::None)
        else {
            return;
        };
        let cfg = self.cfg.clone();
        let spec = &cfg.services[i];
        let probed = spec.slot(new.slot).health.is_some();
        if !probed {
            // Its probe was only to see it listen.
            new.probe.take().inspect(|p| p.abort());
        }
        let (pid, took) = (new.pid, new.started.elapsed());
        svc.slot = new.slot;
        svc.spawns += 1;
        svc.health = Health {
            state: if probed {
                HealthState::Healthy
            } else {
                HealthState::Unknown
            },
            ever_healthy: probed,
            ..Health::default()
        };
        let old = match std::mem::replace(&mut svc.serving, Serving::Up(new)) {
            Serving::Up(old) => Some(old),
            // The old one ended meanwhile: nothing drains.
            _ => None,
        };
        svc.status = Status::Running;
        // It was found ready by its probe, or listening.
        svc.listens = Listens::Yes(svc.serving.up().map_or(0, |p| p.id));
        let Some(mut old) = old else {
            return self.say(i, format!("pid {pid} serves (ready after {})", secs(took)));
        };
        // A rollout before this one still draining: it goes now.
        self.stop_retiring(i, "replaced again");
        let drain = spec.drain;
        let port = spec.slot(old.slot).port.unwrap_or_default();
        self.say(
            i,
            format!(
                "switched to pid {pid} after {}; pid {} drains (up to {})",
                secs(took),
                old.pid,
                secs(drain)
            ),
        );
        let (tx, id) = (self.tx.clone(), old.id);
        let report = Box::new(move || drop(tx.send(super::Msg::Drained { service: i, id })));
        // Its probe stops; its drain is watched as long as the process is kept.
        old.probe.take().inspect(|p| p.abort());
        old.probe = Some(self.spawner.watch_drain(port, report));
        let now = Instant::now();
        self.svcs[i].retiring = Retiring::Draining {
            proc: old,
            since: now,
            until: now + drain,
        };
    }

    /// Nothing is connected any more to the old process `id`.
    pub(super) fn drained(&mut self, i: ServiceId, id: u64) {
        if let Retiring::Draining { proc, since, .. } = &self.svcs[i].retiring
            && proc.id == id
        {
            let why = format!("drained in {}ms", since.elapsed().as_millis());
            self.stop_retiring(i, &why);
        }
    }

    /// The draining process gets its stop signal (KILL after its grace).
    pub(super) fn stop_retiring(&mut self, i: ServiceId, why: &str) {
        let svc = &mut self.svcs[i];
        let Retiring::Draining { proc, .. } = std::mem::replace(&mut svc.retiring, Retiring::None)
        else {
            return;
        };
        let pid = proc.pid;
        let kill_at = Some(Instant::now() + self.cfg.services[i].grace);
        svc.retiring = Retiring::Stopping { proc, kill_at };
        self.signal(i, pid, &format!("old pid {pid} {why}; stopping it"));
    }

    /// The new process is given up on before it served: its stop signal (KILL after its
    /// grace); `build`: a build starts once it has gone.
    pub(super) fn stop_coming_run(&mut self, i: ServiceId, build: bool) {
        let svc = &mut self.svcs[i];
        let Coming::Run { proc, .. } = std::mem::replace(&mut svc.coming, Coming::None) else {
            return;
        };
        let pid = proc.pid;
        let kill_at = Some(Instant::now() + self.cfg.services[i].grace);
        svc.coming = Coming::StoppingRun {
            proc,
            kill_at,
            build,
        };
        self.signal(i, pid, "stopping the new process");
    }

    /// A new process or a draining one whose time is up.
    pub(super) fn rollout_timers(&mut self, i: ServiceId, now: Instant) {
        if let Coming::Run { until, proc } = &self.svcs[i].coming
            && *until <= now
        {
            let waited = secs(proc.started.elapsed());
            self.stop_coming_run(i, false);
            self.rollout_failed(i, format!("was not ready after {waited}"));
        }
        if let Retiring::Draining { until, .. } = self.svcs[i].retiring
            && until <= now
        {
            let drain = secs(self.cfg.services[i].drain);
            self.stop_retiring(
                i,
                &format!("still connected after its drain time ({drain})"),
            );
        }
    }

    /// The new process ended before it served (`stopped`: by us; `build`: one follows).
    pub(super) fn beside_exited(
        &mut self,
        i: ServiceId,
        (stopped, build): (bool, bool),
        exit: Exit,
        ran: Duration,
    ) {
        if stopped {
            self.say(i, format!("the new process stopped ({exit})"));
            if build && self.svcs[i].want_up && !self.shutting_down {
                self.spawn_build(i);
            }
            return;
        }
        if self.svcs[i].serving.proc().is_none() {
            // The old one has gone too: the service ended, as any run process does.
            return self.run_ended(i, None, exit, ran);
        }
        self.rollout_failed(i, format!("exited ({exit}) before it was ready"));
    }

    /// The rollout failed: the old process serves on, and the row and log say why.
    pub(super) fn rollout_failed(&mut self, i: ServiceId, why: String) {
        let old = self.svcs[i].serving.proc().map_or(0, |p| p.pid);
        self.say(
            i,
            format!(
                "the new process {why}; pid {old} keeps serving (a service that can't run twice, \
                 holding a lock, a data directory or a fixed port, wants `rollout = \"restart\"`)"
            ),
        );
        self.svcs[i].rollout_failed = Some(why);
    }

    /// The process a switch replaced has stopped: a rollout that waited for its port goes on.
    pub(super) fn retired(&mut self, i: ServiceId, pid: i32, exit: Exit) {
        self.say(i, format!("old pid {pid} stopped ({exit})"));
        let svc = &mut self.svcs[i];
        if std::mem::take(&mut svc.roll_next) && svc.want_up && !self.shutting_down {
            self.replace(i);
        }
    }

    /// A run process ended: while fewer than two live, lines are no longer marked.
    pub(super) fn overlap_ended(&mut self, i: ServiceId) {
        let svc = &self.svcs[i];
        let runs = [
            svc.serving.proc().is_some(),
            svc.coming.run().is_some() || matches!(svc.coming, Coming::StoppingRun { .. }),
            svc.retiring.proc().is_some(),
        ];
        if runs.iter().filter(|r| **r).count() < 2 {
            svc.overlap.store(false, Ordering::Relaxed);
        }
    }
}
