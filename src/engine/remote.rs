//! A service served by its remote end (`url`): no process here. It is `running` while devstack
//! forwards to it, probed there (its probe reaches the remote end), stopped and started as a
//! process would be, and never restarted for a failed probe (there is nothing here to restart).
//! A service with both a `run` and a `url` is switched between them by `devstack use`
//! (`Command::Use`): to the remote end, its local processes stop first; back, they start again.

use super::phase::{RemoteEnd, Serving};
use super::{Engine, Health, ServiceId, Status, Then};
use tokio::time::Instant;

impl Engine {
    /// Serve `i` by its remote end from now on.
    pub(super) fn start_remote(&mut self, i: ServiceId) {
        self.next_id += 1;
        let id = self.next_id;
        let svc = &mut self.svcs[i];
        svc.serving = Serving::Remote(RemoteEnd {
            id,
            since: Instant::now(),
            probe: None,
        });
        svc.health = Health::default();
        svc.rollout_failed = None;
        // Counted as a start: a restart's ticket waits for a new one.
        svc.spawns += 1;
        let url = self.cfg.services[i].remote.as_ref().map(|r| r.url.clone());
        self.say(
            i,
            format!(
                "served by its remote end {}: nothing runs here",
                url.unwrap_or_default()
            ),
        );
        self.start_probe(i, id);
        self.set(i, Status::Running);
    }

    /// No longer served by its remote end (its probe ends); `then`, as after a process's exit.
    /// False when it was not.
    pub(super) fn end_remote(&mut self, i: ServiceId, then: Then) -> bool {
        if self.svcs[i].serving.remote().is_none() {
            return false;
        }
        self.svcs[i].serving = Serving::None;
        self.set(
            i,
            match then {
                Then::Run => Status::Pending(None),
                Then::Rest | Then::Backoff => Status::Stopped,
            },
        );
        true
    }

    /// `devstack use`: serve `i` by its remote end (`remote`) or its local process from now on;
    /// what it does not have is said in its log.
    pub(super) fn use_end(&mut self, i: ServiceId, remote: bool) {
        if let Some(why) = self.cfg.services[i].cannot_use(remote) {
            return self.say(i, format!("not switched: it {why}"));
        }
        if self.svcs[i].remote == remote {
            return;
        }
        self.svcs[i].remote = remote;
        let want = self.svcs[i].want_up;
        let then = if want { Then::Run } else { Then::Rest };
        if remote {
            let url = self.cfg.services[i].remote.as_ref().map(|r| r.url.clone());
            let url = url.unwrap_or_default();
            self.say(
                i,
                format!("using its remote end {url}; the local process stops"),
            );
            self.stop(i, then);
            if want && self.svcs[i].idle() && self.svcs[i].serving.remote().is_none() {
                self.set(i, Status::Pending(None));
            }
        } else {
            self.say(i, "using the local process again");
            self.end_remote(i, then);
        }
    }
}
