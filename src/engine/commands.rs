//! What each command does: start, stop, restart, restart all, kill, shutdown, input, resize.

use super::phase::{Coming, Retiring, Serving};
use super::{Command, Engine, ServiceId, Status, Then, deps};
use tokio::time::Instant;

impl Engine {
    /// Queue `bytes` for service `i`'s terminal.
    pub(super) fn type_into(&mut self, i: ServiceId, bytes: Vec<u8>) -> Result<(), String> {
        match self.svcs[i].serving.proc_mut() {
            Some(proc) => proc.terminal.write(bytes),
            None => Err("it is not running: nothing to type into".into()),
        }
    }

    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start { service } => self.start(service),
            Command::Stop { service: i } => {
                self.user_stopped = true;
                self.svcs[i].want_up = false;
                self.stop(i, Then::Rest);
                if self.svcs[i].idle() {
                    self.set(i, Status::Stopped);
                }
            }
            Command::Restart { service } => self.restart(service),
            Command::RestartAll => self.restart_all(),
            Command::Rebuild { service } => self.rebuild(service),
            Command::Kill { service: i } => {
                self.user_stopped = true;
                self.kill(i);
                self.say(i, "killed (SIGKILL to the process group)");
                if self.svcs[i].idle() {
                    self.set(i, Status::Stopped);
                }
            }
            Command::Shutdown => self.shutdown(),
            Command::ForceShutdown => {
                self.shutting_down = true;
                for i in self.svcs.ids() {
                    self.kill(i);
                }
            }
            // Keys typed in the dashboard: a service that has ended ignores them, as before; a
            // refusal from its terminal is said in its log.
            Command::Input { service: i, bytes } => {
                if let Some(proc) = self.svcs[i].serving.proc_mut()
                    && let Err(e) = proc.terminal.write(bytes)
                {
                    self.say(i, format!("input not sent: {e}"));
                }
            }
            Command::Resize {
                service,
                rows,
                cols,
            } => {
                if let Some(proc) = self.svcs[service].serving.proc() {
                    proc.terminal.resize(rows, cols);
                }
            }
            Command::FilesChanged { service, paths, at } => {
                self.files_changed(service, paths, at.into())
            }
            Command::SetAuto { service, auto } => self.set_auto(service, auto),
            Command::Use { service, remote } => self.use_end(service, remote),
        }
    }

    /// Restart every wanted service, in waves: dependencies first (`lifecycle::restart_wave`).
    fn restart_all(&mut self) {
        for i in self.svcs.ids() {
            let svc = &mut self.svcs[i];
            if !svc.want_up || self.cfg.services[i].is_task() {
                continue; // tasks ran once; `r` on one runs it again
            }
            if svc.serving.up().is_some() {
                svc.restart_wave = true;
            } else if svc.idle() {
                self.start(i);
            }
        }
    }

    fn set_auto(&mut self, i: ServiceId, auto: bool) {
        let svc = &mut self.svcs[i];
        svc.auto = auto;
        svc.guard.reset();
        self.say(
            i,
            if auto {
                "rebuild on change: on"
            } else {
                "rebuild on change: off (rebuild by hand)"
            },
        );
    }

    fn restart(&mut self, i: ServiceId) {
        let task = self.cfg.services[i].is_task();
        let svc = &mut self.svcs[i];
        svc.want_up = true;
        svc.backoff = 0;
        if task {
            svc.built = false;
        }
        if svc.serving.proc().is_some() {
            self.say(i, "restarting");
            self.replace(i);
        } else if svc.coming.is_none() {
            // Not running: as `start`, with whatever it depends on.
            self.start(i);
            self.set(i, Status::Pending(None));
        }
    }

    /// Stop everything: builds now, run processes in reverse dependency order (`reconcile`).
    fn shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for i in self.svcs.ids() {
            self.svcs[i].want_up = false;
            self.stop_build(i);
            self.stop_coming_run(i, false);
            self.stop_retiring(i, "the stack stops");
            self.end_remote(i, Then::Rest);
            if self.svcs[i].serving.proc().is_none() && !self.svcs[i].status.is_settled() {
                self.set(i, Status::Stopped);
            }
        }
    }

    /// Want `i` and everything it depends on up (each service once, however the graph is
    /// cross-linked).
    pub(super) fn start(&mut self, i: ServiceId) {
        let wanted = deps::closure(&self.cfg, &[i]);
        for k in self.svcs.ids().filter(|&k| wanted[k]) {
            let svc = &mut self.svcs[k];
            svc.want_up = true;
            svc.backoff = 0;
            if let Serving::Stopping { then, .. } = &mut svc.serving {
                // Asked to start while it stops: start again once it has.
                *then = Then::Run;
            } else if svc.idle() && !matches!(svc.status, Status::Completed) {
                svc.status = Status::Pending(None);
            }
        }
    }

    /// SIGKILL the service's processes, as a stop (their exits are not crashes).
    fn kill(&mut self, i: ServiceId) {
        self.end_remote(i, Then::Rest);
        let svc = &mut self.svcs[i];
        svc.want_up = false;
        svc.restart_wave = false;
        svc.serving = match std::mem::replace(&mut svc.serving, Serving::None) {
            Serving::Up(proc) | Serving::Stopping { proc, .. } => Serving::Stopping {
                proc,
                then: Then::Rest,
                kill_at: None,
            },
            other => other,
        };
        svc.coming = match std::mem::replace(&mut svc.coming, Coming::None) {
            Coming::Build { proc, .. } | Coming::StoppingBuild { proc, .. } => {
                Coming::StoppingBuild {
                    proc,
                    kill_at: None,
                }
            }
            Coming::Run { proc, .. } | Coming::StoppingRun { proc, .. } => Coming::StoppingRun {
                proc,
                kill_at: None,
                build: false,
            },
            Coming::None => Coming::None,
        };
        svc.retiring = match std::mem::replace(&mut svc.retiring, Retiring::None) {
            Retiring::Draining { proc, .. } | Retiring::Stopping { proc, .. } => {
                Retiring::Stopping {
                    proc,
                    kill_at: None,
                }
            }
            Retiring::None => Retiring::None,
        };
        let procs = [svc.serving.proc(), svc.coming.proc(), svc.retiring.proc()];
        for proc in procs.into_iter().flatten() {
            self.spawner.kill_session(proc.pid);
        }
    }

    /// Stop the service's processes with its stop signal; `then` says what follows the run
    /// process's exit.
    pub(super) fn stop(&mut self, i: ServiceId, then: Then) {
        self.svcs[i].restart_wave = false;
        self.svcs[i].roll_next = false;
        self.stop_build(i);
        self.stop_coming_run(i, false);
        self.stop_retiring(i, "stops with the service");
        match &mut self.svcs[i].serving {
            Serving::Stopping { then: next, .. } => *next = then,
            Serving::Up(_) => self.stop_run(i, then),
            Serving::Remote(_) => drop(self.end_remote(i, then)),
            Serving::None | Serving::Checking(_) => {
                if matches!(
                    self.svcs[i].status,
                    Status::Restarting { .. }
                        | Status::Pending(_)
                        | Status::Blocked(_)
                        | Status::PortBusy { .. }
                ) {
                    self.svcs[i].status = Status::Stopped;
                }
            }
        }
    }

    /// Send the stop signal to the run process; KILL follows after the grace.
    fn stop_run(&mut self, i: ServiceId, then: Then) {
        let kill_at = Some(Instant::now() + self.cfg.services[i].grace);
        let svc = &mut self.svcs[i];
        let Serving::Up(proc) = std::mem::replace(&mut svc.serving, Serving::None) else {
            return;
        };
        let pid = proc.pid;
        svc.serving = Serving::Stopping {
            proc,
            then,
            kill_at,
        };
        svc.status = Status::Stopping;
        self.signal(i, pid, "stopping");
    }

    /// Send the stop signal to the build (one queued after it is dropped); KILL follows after
    /// the grace.
    pub(super) fn stop_build(&mut self, i: ServiceId) {
        let kill_at = Some(Instant::now() + self.cfg.services[i].grace);
        let svc = &mut self.svcs[i];
        let Coming::Build { proc, .. } = std::mem::replace(&mut svc.coming, Coming::None) else {
            return;
        };
        let pid = proc.pid;
        svc.coming = Coming::StoppingBuild { proc, kill_at };
        self.signal(i, pid, "stopping the build");
    }

    /// Send `i`'s stop signal to the group `pid`, saying so first.
    pub(super) fn signal(&mut self, i: ServiceId, pid: i32, what: &str) {
        let signal = self.cfg.services[i].stop_signal;
        // Said before the signal goes: the service's reaction to it comes after in its log.
        self.say(
            i,
            format!(
                "{what}: sent {} to process group {pid}",
                signal.as_str().trim_start_matches("SIG")
            ),
        );
        self.spawner.signal(pid, signal);
    }
}
