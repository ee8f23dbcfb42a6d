//! A `Spawner` that starts nothing: it records every spawn, signal and kill (with the service and
//! the command), and lets a test make a process print lines or exit, hold a port, fail to start,
//! ignore its stop signal, and answer its health probe.

use crate::health;
use crate::process::{
    DrainReport, EscapedReport, Exit, OutputSink, PortReport, ProbeReport, SpawnError,
    SpawnRequest, Spawner, Started, Terminal,
};
use crate::sync::Locked;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Pids no real process has (above Linux's highest pid_max).
const FIRST_PID: i32 = 1 << 23;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Spawn {
        service: String,
        cmd: String,
        pid: i32,
    },
    Signal {
        service: String,
        cmd: String,
        signal: Signal,
    },
    Kill {
        service: String,
        cmd: String,
    },
}

struct Proc {
    service: String,
    cmd: String,
    sink: Box<dyn OutputSink>,
    on_exit: Box<dyn FnOnce(Exit) + Send>,
}

#[derive(Default)]
struct State {
    next_pid: i32,
    events: Vec<Event>,
    /// When each command was spawned, in order.
    spawned_at: Vec<(String, Instant)>,
    live: BTreeMap<i32, Proc>,
    reaped: Vec<i32>,
    cannot_start: HashSet<String>,
    stubborn: HashSet<String>,
    ports: HashMap<u16, crate::process::PortHolder>,
    probes: HashMap<String, (ProbeReport, AbortHandle)>,
    input: Vec<(String, Vec<u8>)>,
    /// The drains watched, by port.
    drains: HashMap<u16, (DrainReport, AbortHandle)>,
}

#[derive(Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    /// Woken at each use of the state: the rig's `until` awaits it, with the views.
    touched: tokio::sync::Notify,
}

impl Fake {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.touched.notify_waiters();
        self.state.locked()
    }

    /// Resolves at the next use of the fake's state (a spawn, a signal, an exit, …).
    pub fn touched(&self) -> tokio::sync::futures::Notified<'_> {
        self.touched.notified()
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The commands spawned so far, in order.
    pub fn spawned(&self) -> Vec<String> {
        self.lock()
            .spawned_at
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// When `cmd` was spawned, each time.
    pub fn spawn_times(&self, cmd: &str) -> Vec<Instant> {
        self.lock()
            .spawned_at
            .iter()
            .filter(|(c, _)| c == cmd)
            .map(|(_, t)| *t)
            .collect()
    }

    pub fn count(&self, cmd: &str) -> usize {
        self.spawn_times(cmd).len()
    }

    /// The signals sent to the processes of `cmd` (KILL for a session kill), in order.
    pub fn signals(&self, cmd: &str) -> Vec<Signal> {
        self.lock()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Signal { cmd: c, signal, .. } if c == cmd => Some(*signal),
                Event::Kill { cmd: c, .. } if c == cmd => Some(Signal::SIGKILL),
                _ => None,
            })
            .collect()
    }

    /// The services whose processes got a stop signal, in order.
    pub fn stopped_services(&self) -> Vec<String> {
        self.lock()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Signal { service, .. } => Some(service.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn is_running(&self, cmd: &str) -> bool {
        self.lock().live.values().any(|p| p.cmd == cmd)
    }

    pub fn reaped(&self) -> Vec<i32> {
        self.lock().reaped.clone()
    }

    pub fn input(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().input.clone()
    }

    /// `cmd` fails to start from now on (or starts again, with `false`).
    pub fn cannot_start(&self, cmd: &str, fails: bool) {
        let mut s = self.lock();
        if fails {
            s.cannot_start.insert(cmd.into());
        } else {
            s.cannot_start.remove(cmd);
        }
    }

    /// Processes of `cmd` ignore their stop signal (only KILL ends them).
    pub fn stubborn(&self, cmd: &str) {
        self.lock().stubborn.insert(cmd.into());
    }

    /// Another process holds `port` (`None`: it is free again).
    pub fn hold_port(&self, port: u16, holder: Option<&str>) {
        self.hold_port_as(port, holder, None);
    }

    /// A process of `service` (a leftover of its previous run) holds `port`.
    pub fn hold_port_as(&self, port: u16, holder: Option<&str>, service: Option<&str>) {
        let mut s = self.lock();
        match holder {
            Some(h) => s.ports.insert(
                port,
                crate::process::PortHolder {
                    pid: Some(42),
                    service: service.map(Into::into),
                    text: h.into(),
                },
            ),
            None => s.ports.remove(&port),
        };
    }

    /// The live process of `cmd` prints `line`.
    pub fn say(&self, cmd: &str, line: &str) {
        let mut s = self.lock();
        let proc = s
            .live
            .values_mut()
            .find(|p| p.cmd == cmd)
            .unwrap_or_else(|| panic!("`{cmd}` is not running"));
        proc.sink.chunk(format!("{line}\r\n").as_bytes());
    }

    /// The live process of `cmd` exits.
    pub fn exit(&self, cmd: &str, exit: Exit) {
        let pid = {
            let s = self.lock();
            let found = s
                .live
                .iter()
                .find(|(_, p)| p.cmd == cmd)
                .map(|(&pid, _)| pid);
            found.unwrap_or_else(|| panic!("`{cmd}` is not running"))
        };
        self.end(pid, exit);
    }

    fn end(&self, pid: i32, exit: Exit) {
        let proc = self.lock().live.remove(&pid);
        if let Some(mut proc) = proc {
            proc.sink.end();
            (proc.on_exit)(exit);
        }
    }

    /// The probe of `service` reports `result` (false: it has no live probe).
    pub fn probe(&self, service: &str, result: Result<(), &str>) -> bool {
        let s = self.lock();
        match s.probes.get(service) {
            Some((report, handle)) if !handle.is_finished() => {
                report(result.map_err(String::from));
                true
            }
            _ => false,
        }
    }

    /// Nothing is connected to `port` any more: its drain (if one is watched) reports.
    pub fn drained(&self, port: u16) -> bool {
        let drain = self.lock().drains.remove(&port);
        match drain {
            Some((report, handle)) if !handle.is_finished() => {
                report();
                true
            }
            _ => false,
        }
    }

    pub fn probes_started(&self, service: &str) -> bool {
        self.lock().probes.contains_key(service)
    }

    /// A probe of `service` runs (the last one started was not stopped).
    pub fn probe_runs(&self, service: &str) -> bool {
        self.lock()
            .probes
            .get(service)
            .is_some_and(|(_, handle)| !handle.is_finished())
    }

    fn service_of(&self, pid: i32) -> Option<(String, String)> {
        self.lock()
            .live
            .get(&pid)
            .map(|p| (p.service.clone(), p.cmd.clone()))
    }
}

impl Spawner for Fake {
    fn spawn(
        &self,
        req: SpawnRequest<'_>,
        mut output: Box<dyn OutputSink>,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> Result<Started, SpawnError> {
        let cmd = req.cmd.to_string();
        let mut s = self.lock();
        if s.cannot_start.contains(&cmd) {
            return Err(SpawnError::Start {
                command: cmd,
                cwd: req.cwd.display().to_string(),
                source: "no such file".into(),
            });
        }
        let pid = FIRST_PID + s.next_pid;
        s.next_pid += 1;
        output.started(pid);
        s.events.push(Event::Spawn {
            service: req.service.into(),
            cmd: cmd.clone(),
            pid,
        });
        s.spawned_at.push((cmd.clone(), Instant::now()));
        s.live.insert(
            pid,
            Proc {
                service: req.service.into(),
                cmd,
                sink: output,
                on_exit,
            },
        );
        let terminal = FakeTerminal {
            service: req.service.into(),
            state: self.state.clone(),
        };
        Ok(Started {
            pid,
            terminal: Box::new(terminal),
        })
    }

    fn signal(&self, pgid: i32, sig: Signal) -> bool {
        let Some((service, cmd)) = self.service_of(pgid) else {
            return false;
        };
        let stubborn = {
            let mut s = self.lock();
            s.events.push(Event::Signal {
                service,
                cmd: cmd.clone(),
                signal: sig,
            });
            s.stubborn.contains(&cmd)
        };
        if !stubborn {
            self.end(pgid, Exit::Signal(sig as i32));
        }
        true
    }

    fn kill_session(&self, sid: i32) {
        if let Some((service, cmd)) = self.service_of(sid) {
            self.lock().events.push(Event::Kill { service, cmd });
            self.end(sid, Exit::Signal(Signal::SIGKILL as i32));
        }
    }

    fn reap(&self, pid: i32) {
        self.lock().reaped.push(pid);
    }

    /// Answers at once (the engine hears it with its next message).
    fn check_port(&self, port: u16, report: PortReport) {
        let holder = self.lock().ports.get(&port).cloned();
        report(holder);
    }

    fn probe(&self, service: &str, _target: health::Target, report: ProbeReport) -> AbortHandle {
        let handle = tokio::spawn(std::future::pending::<()>()).abort_handle();
        let old = self
            .lock()
            .probes
            .insert(service.into(), (report, handle.clone()));
        if let Some((_, old)) = old {
            old.abort();
        }
        handle
    }

    fn watch_drain(&self, port: u16, report: DrainReport) -> AbortHandle {
        let handle = tokio::spawn(std::future::pending::<()>()).abort_handle();
        self.lock().drains.insert(port, (report, handle.clone()));
        handle
    }

    fn keep_escaped(
        &self,
        _services: Vec<crate::process::orphans::Kept>,
        _report: EscapedReport,
        _usage: crate::process::UsageFeed,
    ) -> Box<dyn Send> {
        Box::new(())
    }
}

struct FakeTerminal {
    service: String,
    state: Arc<Mutex<State>>,
}

impl Terminal for FakeTerminal {
    fn write(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let mut s = self.state.locked();
        s.input.push((self.service.clone(), bytes));
        Ok(())
    }

    fn resize(&self, _rows: u16, _cols: u16) {}
}
