//! What each command does: start, stop, restart, restart all, kill, shutdown, input, resize.

use super::{Command, Engine, Status, Then, deps};
use tokio::time::Instant;

impl Engine {
    /// Queue `bytes` for service `i`'s terminal.
    pub(super) fn type_into(&mut self, i: usize, bytes: Vec<u8>) -> Result<(), String> {
        match &mut self.svcs[i].run {
            Some(proc) => proc.terminal.write(bytes),
            _ => Err("it is not running: nothing to type into".into()),
        }
    }

    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start(i) => self.start(i),
            Command::Stop(i) => {
                self.user_stopped = true;
                self.svcs[i].want_up = false;
                self.stop(i, Then::Rest);
                if self.svcs[i].idle() {
                    self.set(i, Status::Stopped);
                }
            }
            Command::Restart(i) => self.restart(i),
            Command::RestartAll => {
                for i in 0..self.svcs.len() {
                    let svc = &mut self.svcs[i];
                    if !svc.want_up || self.cfg.services[i].is_task() {
                        continue; // tasks ran once; `r` on one runs it again
                    }
                    if svc.run.as_ref().is_some_and(|p| !p.stopping) {
                        svc.restart_wave = true;
                    } else if svc.idle() {
                        self.start(i);
                    }
                }
            }
            Command::Rebuild(i) => self.rebuild(i),
            Command::Kill(i) => {
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
                for i in 0..self.svcs.len() {
                    self.kill(i);
                }
            }
            // Keys typed in the dashboard: a service that has ended ignores them, as before; a
            // refusal from its terminal is said in its log.
            Command::Input(i, bytes) => {
                if let Some(proc) = &mut self.svcs[i].run
                    && let Err(e) = proc.terminal.write(bytes)
                {
                    self.say(i, format!("input not sent: {e}"));
                }
            }
            Command::Resize(i, rows, cols) => {
                if let Some(proc) = &self.svcs[i].run {
                    proc.terminal.resize(rows, cols);
                }
            }
            Command::FilesChanged(i, paths, at) => self.files_changed(i, paths, at.into()),
            Command::SetAuto(i, auto) => {
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
        }
    }

    fn restart(&mut self, i: usize) {
        let task = self.cfg.services[i].is_task();
        let svc = &mut self.svcs[i];
        svc.want_up = true;
        svc.backoff = 0;
        if task {
            svc.built = false;
        }
        if svc.run.is_some() {
            self.say(i, "restarting");
            self.stop(i, Then::Run);
        } else if svc.build.is_none() {
            // Not running: as `start`, with whatever it depends on.
            self.start(i);
            self.set(i, Status::Pending);
        }
    }

    /// Stop everything: builds now, run processes in reverse dependency order (`reconcile`).
    fn shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for i in 0..self.svcs.len() {
            self.svcs[i].want_up = false;
            if let Some(b) = &self.svcs[i].build
                && !b.stopping
            {
                self.stop_proc(i, false);
            }
            if self.svcs[i].run.is_none() && !self.svcs[i].status.is_settled() {
                self.set(i, Status::Stopped);
            }
        }
    }

    /// Want `i` and everything it depends on up (each service once, however the graph is
    /// cross-linked).
    pub(super) fn start(&mut self, i: usize) {
        let wanted = deps::closure(&self.cfg, &[i]);
        for k in (0..self.svcs.len()).filter(|&k| wanted[k]) {
            let svc = &mut self.svcs[k];
            svc.want_up = true;
            svc.backoff = 0;
            if svc.run.as_ref().is_some_and(|p| p.stopping) {
                // Asked to start while it stops: start again once it has.
                svc.then = Then::Run;
            } else if svc.idle() && !matches!(svc.status, Status::Completed) {
                svc.status = Status::Pending;
            }
        }
    }

    /// SIGKILL the service's processes, as a stop (their exits are not crashes).
    fn kill(&mut self, i: usize) {
        let svc = &mut self.svcs[i];
        svc.want_up = false;
        svc.rebuild_queued = false;
        svc.restart_wave = false;
        for proc in svc.build.iter_mut().chain(svc.run.iter_mut()) {
            proc.stopping = true;
            proc.kill_at = None;
            self.spawner.kill_session(proc.pid);
        }
    }

    /// Stop the service's processes with its stop signal; `then` says what follows the run
    /// process's exit.
    pub(super) fn stop(&mut self, i: usize, then: Then) {
        self.svcs[i].rebuild_queued = false;
        self.svcs[i].restart_wave = false;
        if self.svcs[i].build.is_some() {
            self.stop_proc(i, false);
        }
        if self.svcs[i].run.is_some() {
            self.svcs[i].then = then;
            self.stop_proc(i, true);
        } else if matches!(
            self.svcs[i].status,
            Status::Restarting { .. }
                | Status::Pending
                | Status::Blocked(_)
                | Status::PortBusy { .. }
        ) {
            self.svcs[i].status = Status::Stopped;
        }
    }

    /// Send the stop signal to the run (`run`) or build process; KILL follows after the grace.
    fn stop_proc(&mut self, i: usize, run: bool) {
        let spec = &self.cfg.services[i];
        let (signal, grace) = (spec.stop_signal, spec.grace);
        let svc = &mut self.svcs[i];
        let proc = if run {
            svc.run.as_mut()
        } else {
            svc.build.as_mut()
        };
        let Some(proc) = proc else { return };
        if proc.stopping {
            return;
        }
        proc.stopping = true;
        proc.kill_at = Some(Instant::now() + grace);
        let pid = proc.pid;
        if run {
            svc.status = Status::Stopping;
        }
        let what = if run {
            "stopping"
        } else {
            "stopping the build"
        };
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
