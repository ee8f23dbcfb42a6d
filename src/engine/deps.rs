//! The dependency rules, as pure functions of the config and the services' state: which services
//! are wanted, whether one may start (and what it waits for), what still depends on one.

use super::{CRASH_LOOP, Engine, HealthState, Status, Svc};
use crate::config::{Condition, Config, ServiceId, Services};

/// Why a service can't start yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Gate {
    /// A dependency hasn't met its condition yet.
    Wait(String),
    /// A dependency failed and won't meet it.
    Never(String),
}

/// Which services start: the ones asked for (or every autostart one) and all they depend on.
pub(super) fn wanted_set(cfg: &Config, only: &[ServiceId]) -> Services<bool> {
    if only.is_empty() {
        let autostart: Vec<ServiceId> = cfg
            .services
            .iter()
            .filter(|(_, s)| s.autostart)
            .map(|(i, _)| i)
            .collect();
        closure(cfg, &autostart)
    } else {
        closure(cfg, only)
    }
}

/// `roots` and everything they depend on, directly or not: each service visited once.
pub(super) fn closure(cfg: &Config, roots: &[ServiceId]) -> Services<bool> {
    let mut wanted = cfg.services.map(|_| false);
    let mut stack = roots.to_vec();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut wanted[i], true) {
            stack.extend(cfg.services[i].deps.iter().map(|d| d.service));
        }
    }
    wanted
}

/// Whether `i` may start now: every dependency meets its condition (Ok), one never will
/// (Err(Gate::Never)), or it waits for one (Err(Gate::Wait)); both say which and why.
pub(super) fn gate(cfg: &Config, svcs: &Services<Svc>, i: ServiceId) -> Result<(), Gate> {
    let mut waiting = None;
    for dep in &cfg.services[i].deps {
        let j = dep.service;
        let status = &svcs[j].status;
        let name = &cfg.services[j].name;
        let met = match dep.condition {
            Condition::Completed => *status == Status::Completed,
            Condition::Started => matches!(status, Status::Running | Status::Completed),
            Condition::Healthy => {
                *status == Status::Running && svcs[j].health.state == HealthState::Healthy
            }
        };
        if met {
            continue;
        }
        let failed = match status {
            Status::Blocked(_)
            | Status::PortBusy { ours: false, .. }
            | Status::BuildFailed(_)
            | Status::Failed(_)
            | Status::Crashed(_) => true,
            // An exited service won't come back (with `restart = "always"` it would be
            // restarting instead).
            Status::Exited(_) => true,
            Status::Stopped => !svcs[j].want_up,
            _ => false,
        };
        if failed {
            return Err(Gate::Never(format!("dependency `{name}` is {status}")));
        }
        if waiting.is_none() {
            let until = match dep.condition {
                Condition::Completed => "to complete",
                Condition::Started => "to start",
                Condition::Healthy => "to be healthy",
            };
            let looping = if svcs[j].backoff >= CRASH_LOOP {
                "crash-looping, "
            } else {
                ""
            };
            let now = match status {
                Status::Running if !svcs[j].health.ever_healthy => match svcs[j].health.state {
                    HealthState::Unhealthy => "running, unhealthy".to_string(),
                    _ => "starting".to_string(),
                },
                Status::Running => format!("running, health {}", svcs[j].health.state.name()),
                other => other.to_string(),
            };
            waiting = Some(format!(
                "waiting for `{name}` {until} (it is {looping}{now})"
            ));
        }
    }
    match waiting {
        Some(why) => Err(Gate::Wait(why)),
        None => Ok(()),
    }
}

/// Something that depends on `i` still runs or builds (so `i` may not stop yet on shutdown).
pub(super) fn has_live_dependent(cfg: &Config, svcs: &Services<Svc>, i: ServiceId) -> bool {
    cfg.services
        .iter()
        .any(|(k, s)| s.deps.iter().any(|d| d.service == i) && !svcs[k].idle())
}

/// In a restart wave (restart all), `i` goes once none of its dependencies still waits to
/// restart and each meets its condition again.
pub(super) fn wave_may_restart(cfg: &Config, svcs: &Services<Svc>, i: ServiceId) -> bool {
    // A dependency whose new process starts beside its old one (blue-green) is renewed only
    // once it serves.
    !cfg.services[i]
        .deps
        .iter()
        .any(|d| svcs[d.service].restart_wave || svcs[d.service].coming.run().is_some())
        && !matches!(gate(cfg, svcs, i), Err(Gate::Wait(_)))
}

/// The services that asked to restart when `i` is rebuilt (`restart = true`).
pub(super) fn restart_on_rebuild(cfg: &Config, i: ServiceId) -> Vec<ServiceId> {
    cfg.services
        .iter()
        .filter(|(_, s)| s.deps.iter().any(|d| d.service == i && d.restart))
        .map(|(k, _)| k)
        .collect()
}

impl Engine {
    pub(super) fn gate(&self, i: ServiceId) -> Result<(), Gate> {
        gate(&self.cfg, &self.svcs, i)
    }
}
