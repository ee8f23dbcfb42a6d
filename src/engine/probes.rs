//! Health probes of run processes (what a result means: start period, retries, a liveness
//! restart).

use super::phase::Serving;
use super::{Engine, HealthState, Msg, ServiceId, Then};
use crate::config::{Probe, Restart};
use crate::format::secs;
use crate::health;
use crate::ignored::Ignore;

impl Engine {
    /// Start the probe loop of run process `id`, for the probes that poll.
    pub(super) fn start_probe(&mut self, i: ServiceId, id: u64) {
        let spec = &self.cfg.services[i];
        let Some(h) = &spec.health else { return };
        if matches!(h.probe, Probe::Log(_)) {
            return; // matched by the output feed
        }
        let target = health::Target {
            service: spec.name.clone(),
            probe: h.probe.clone(),
            port: spec.listen_port(),
            cwd: spec.cwd.clone(),
            env: spec.env.clone(),
            interval: h.interval,
            timeout: h.timeout,
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
        if let Serving::Up(proc) = &mut self.svcs[i].serving {
            proc.probe = Some(handle);
        }
    }

    pub(super) fn probed(&mut self, i: ServiceId, id: u64, result: Result<(), String>) {
        let Some(proc) = self.svcs[i].serving.up().filter(|p| p.id == id) else {
            return; // an older process, or one on its way out
        };
        let ran = proc.started.elapsed();
        let spec = self.cfg.services[i]
            .health
            .as_ref()
            .expect("probed services have a probe");
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
                let restart = self.cfg.services[i].restart != Restart::No;
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
