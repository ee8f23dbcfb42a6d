//! What the interfaces see: one `ServiceView` per service, published after every change, and an
//! event for each change of state.

use super::phase::Retiring;
use super::{
    CRASH_LOOP, Change, Engine, HealthState, ServiceId, ServiceView, Services, State, Status,
};
use crate::format::whole_secs;
use crate::ignored::Ignore;

impl Engine {
    pub(super) fn publish(&self) {
        let views: Services<ServiceView> = self.svcs.ids().map(|i| self.view(i)).collect();
        // Nothing new (same states and samples; uptimes are no news): nobody is woken.
        if *self.views.borrow() == views {
            return;
        }
        let old = self.views.send_replace(views);
        if self.events.receiver_count() > 0 {
            let now = self.views.borrow();
            for (i, view) in now.iter() {
                let state = old.get(i).is_none_or(|o| !o.same_state(view));
                if state || old.get(i) != Some(view) {
                    self.events
                        .send(Change {
                            state,
                            view: view.clone(),
                        })
                        .or_say("nobody follows the events right now");
                }
            }
        }
    }

    /// What the interfaces see of service `i` now.
    fn view(&self, i: ServiceId) -> ServiceView {
        let (s, spec) = (&self.svcs[i], &self.cfg.services[i]);
        let (run, build) = (s.serving.proc(), s.coming.build());
        let live = run.or(build);
        let load = run.and_then(|p| self.loads.get(&p.pid));
        let remote = s.serving.remote();
        let probed = spec.health.is_some() && (run.is_some() || remote.is_some());
        let build_failed = spec.build.is_some() && !s.built && run.is_some() && build.is_none();
        // With a probe, a process is only starting until its first success.
        let starting = probed
            && s.status == Status::Running
            && !s.health.ever_healthy
            && s.health.state != HealthState::Unhealthy;
        let detail = match (&s.status, starting) {
            (Status::Pending(Some(why)), _) => format!("pending: {why}"),
            (_, true) => "starting (waiting for its first healthy check)".to_string(),
            // Builds can be long: say for how long it has been building.
            _ if s.status == Status::Building => match s.guard.building_since() {
                // An image service's build is its pull, when it has no build of its own.
                Some(start) => match spec.container.as_ref().filter(|c| c.pulls) {
                    Some(c) => format!("pulling {} for {}", c.image, whole_secs(start.elapsed())),
                    None => format!("building for {}", whole_secs(start.elapsed())),
                },
                None => s.status.to_string(),
            },
            _ if build_failed => format!("{} · build failed", s.status),
            _ if remote.is_some() => format!("{} · remote", s.status),
            _ => match (s.coming.run(), &s.rollout_failed, &s.retiring) {
                (Some(next), ..) => format!("{} · pid {} starting beside", s.status, next.pid),
                (None, Some(why), _) if run.is_some() => {
                    format!("{} · the new process {why}", s.status)
                }
                (None, None, Retiring::Draining { proc, .. }) => {
                    format!("{} · pid {} draining", s.status, proc.pid)
                }
                (None, None, Retiring::Stopping { proc, .. }) => {
                    format!("{} · old pid {} stopping", s.status, proc.pid)
                }
                _ => s.status.to_string(),
            },
        };
        ServiceView {
            log_lost: self.logs.loss(i),
            name: spec.name.clone(),
            state: if starting {
                State::Starting
            } else {
                s.status.state()
            },
            health: probed.then_some(s.health.state),
            health_error: s.health.last_error.clone().filter(|_| probed),
            ready: match s.status {
                Status::Completed => true,
                Status::Running => !probed || s.health.state == HealthState::Healthy,
                _ => false,
            },
            wanted: s.want_up,
            auto_rebuild: (!spec.watch.is_empty()).then_some(s.auto),
            spawns: s.spawns,
            cpu_percent: load.map(|l| l.cpu_percent),
            mem_bytes: load.map(|l| l.rss_bytes),
            building: build.is_some(),
            build_failed,
            settled: s.status.is_settled(),
            crash_loop: s.backoff >= CRASH_LOOP && matches!(s.status, Status::Restarting { .. }),
            detail,
            pid: live.map(|p| p.pid),
            port: spec.port,
            private_port: run
                .and_then(|p| spec.slot(p.slot).port)
                .filter(|_| spec.proxied()),
            next_pid: s.coming.run().map(|p| p.pid),
            draining_pid: s.retiring.proc().map(|p| p.pid),
            rollout_failed: s.rollout_failed.clone().filter(|_| run.is_some()),
            image: spec.container.as_ref().map(|c| c.image.clone()),
            volumes: spec
                .container
                .as_ref()
                .map_or_else(Vec::new, |c| c.named_volumes.clone()),
            remote: remote.and(spec.remote.as_ref()).map(|r| r.url.clone()),
            restarts: s.restarts,
            since: run.map(|p| p.started).or(remote.map(|e| e.since)),
        }
    }

    /// Something shown counts seconds: a restart's backoff, a build's duration.
    pub(super) fn counting_down(&self) -> bool {
        self.svcs.values().any(|s| {
            s.coming.is_some() || matches!(s.status, Status::Restarting { .. } | Status::Building)
        })
    }
}
