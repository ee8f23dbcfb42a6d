//! Health probes of run processes (what a result means: start period, retries, a liveness
//! restart).

use super::phase::Serving;
use super::{Engine, HealthState, Msg, ServiceId, Then};
use crate::config::{Probe, Restart, Slot};
use crate::format::secs;
use crate::health;
use crate::ignored::Ignore;

/// How often a rollout's new process without a probe is looked at until it listens.
const LISTENING_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Engine {
    /// Start the probe loop of run process `id`, for the probes that poll; a rollout's new
    /// process without a probe is probed until it listens.
    pub(super) fn start_probe(&mut self, i: ServiceId, id: u64) {
        let spec = &self.cfg.services[i];
        let svc = &self.svcs[i];
        let remote = svc.serving.remote().is_some_and(|e| e.id == id);
        let proc = (svc.serving.up().into_iter().chain(svc.coming.run())).find(|p| p.id == id);
        let slot = match (proc, remote) {
            (Some(proc), _) => spec.slot(proc.slot),
            (None, true) => spec.slot(Slot::A),
            (None, false) => return,
        };
        let beside = svc.coming.run().is_some_and(|p| p.id == id);
        let (probe, interval, timeout) = match slot.health {
            Some(h) => (h.probe.clone(), h.interval, h.timeout),
            None if beside => (Probe::Tcp, LISTENING_EVERY, LISTENING_EVERY * 10),
            None => return,
        };
        if matches!(probe, Probe::Log(_)) {
            return; // matched by the output feed
        }
        let target = health::Target {
            service: spec.name.clone(),
            probe,
            port: slot.port,
            cwd: spec.cwd.clone(),
            env: slot.env.to_vec(),
            interval,
            timeout,
            remote: spec.remote.clone().filter(|_| remote),
        };
        let tx = self.tx.clone();
        let report = Box::new(move |result| {
            tx.send(Msg::Probe {
                service: i,
                id,
                result,
            })
            .or_say("the engine has ended");
        });
        let handle = self.spawner.probe(&spec.name, target, report);
        let svc = &mut self.svcs[i];
        let up = match &mut svc.serving {
            Serving::Up(proc) => Some(proc),
            Serving::Remote(end) => {
                end.probe = Some(handle);
                return;
            }
            _ => None,
        };
        if let Some(proc) = up
            .into_iter()
            .chain(svc.coming.run_mut())
            .find(|p| p.id == id)
        {
            proc.probe = Some(handle);
        }
    }

    pub(super) fn probed(&mut self, i: ServiceId, id: u64, result: Result<(), String>) {
        if self.svcs[i].coming.run().is_some_and(|p| p.id == id) {
            // A rollout's new process: it serves once it passes (failures while it starts
            // don't count; its time to be ready is the limit).
            if result.is_ok() {
                self.switch(i);
            }
            return;
        }
        let serving = &self.svcs[i].serving;
        let remote = serving.remote().filter(|e| e.id == id);
        let (ran, slot) = match (serving.up().filter(|p| p.id == id), remote) {
            (Some(proc), _) => (proc.started.elapsed(), proc.slot),
            (None, Some(end)) => (end.since.elapsed(), Slot::A),
            // An older process, or one on its way out.
            (None, None) => return,
        };
        let remote = remote.is_some();
        let Some(spec) = self.cfg.services[i].slot(slot).health else {
            return; // a new process's probe, until it listened
        };
        let (retries, start_period) = (spec.retries, spec.start_period);
        let health = &mut self.svcs[i].health;
        match result {
            Ok(()) => {
                health.fails = 0;
                health.last_error = None;
                health.ever_healthy = true;
                if health.state != HealthState::Healthy {
                    health.state = HealthState::Healthy;
                    self.say(i, format!("health: healthy after {}", secs(ran)));
                }
            }
            Err(e) => {
                health.last_error = Some(e.clone());
                if !health.ever_healthy && ran < start_period {
                    return; // failures while it starts don't count
                }
                health.fails += 1;
                if health.fails < retries || health.state == HealthState::Unhealthy {
                    return;
                }
                let was_healthy = health.state == HealthState::Healthy;
                health.state = HealthState::Unhealthy;
                let n = health.fails;
                self.say(i, format!("health: unhealthy after {n} failed checks: {e}"));
                // A remote end has nothing here to restart.
                let restart = self.cfg.services[i].restart != Restart::No && !remote;
                if was_healthy && restart {
                    self.say(
                        i,
                        "restarting: it was healthy and stopped answering its probe",
                    );
                    self.stop(i, Then::Backoff);
                }
            }
        }
    }
}
