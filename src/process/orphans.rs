//! Descendants that escape a service's session: a daemon that forks twice, calls `setsid` and
//! closes its terminal leaves no trace in the session or on the terminal. devstack is a child
//! subreaper (`PR_SET_CHILD_SUBREAPER`), so such a process, once its parent is gone, becomes a
//! child of devstack; it still carries its service's `DEVSTACK_SERVICE`, which says whose it is.
//! A keeper thread looks at devstack's children: an escaped one lives as long as a process of its
//! service that was started before it (the run it came from) does, and is killed once none does.
//! What it finds alive is reported, so that the group record lets the next `up` kill it too.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the keeper looks.
const EVERY: Duration = Duration::from_millis(300);

/// An escaped process of a service, alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub pid: i32,
    /// Start time in clock ticks since boot (tells a reused pid apart).
    pub start: u64,
    pub service: String,
}

/// The children devstack started itself (terminal leaders, probes): pid → (service, start time).
pub struct Own(BTreeMap<i32, (String, u64)>);

static OWN: Mutex<Own> = Mutex::new(Own(BTreeMap::new()));

/// Hold this while starting a child and until it is added, so the keeper can't take the new
/// child for an escaped one.
pub fn own() -> MutexGuard<'static, Own> {
    OWN.lock().unwrap_or_else(|e| e.into_inner())
}

impl Own {
    pub fn add(&mut self, pid: i32, service: Option<&str>) {
        let start = super::group::start_time(pid).unwrap_or(0);
        self.0
            .insert(pid, (service.unwrap_or_default().to_string(), start));
    }

    pub fn remove(&mut self, pid: i32) {
        self.0.remove(&pid);
    }

    /// A live process of `service` started no later than `start`.
    fn has_owner(&self, service: &str, start: u64) -> bool {
        self.0
            .iter()
            .any(|(&pid, (s, t))| s == service && *t <= start && alive(pid))
    }
}

/// Make this process the subreaper of everything it starts. False where the platform has none.
pub fn become_subreaper() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_child_subreaper(true).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The keeper thread; stopped (after a last sweep that kills every escaped process left) when
/// dropped.
pub struct Keeper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    services: Vec<String>,
}

/// Start keeping the escaped processes of `services`; `report` gets the live ones whenever they
/// change.
pub fn keep(services: Vec<String>, report: impl Fn(Vec<Orphan>) + Send + 'static) -> Keeper {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stop, services) = (stop.clone(), services.clone());
        std::thread::Builder::new()
            .name("orphans".into())
            .spawn(move || {
                let mut sweep = Sweep::default();
                let mut last = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let now = sweep.run(&services, false);
                    if now != last {
                        report(now.clone());
                        last = now;
                    }
                    std::thread::sleep(EVERY);
                }
            })
            .ok()
    };
    Keeper {
        stop,
        thread,
        services,
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The stack has stopped: whatever escaped goes now, and is collected.
        let mut sweep = Sweep::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        while sweep.run(&self.services, true).len() + sweep.killed > 0 && Instant::now() < deadline
        {
            sweep.killed = 0;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Default)]
struct Sweep {
    /// Escaped processes seen alive: collected once they are zombies.
    seen: HashSet<i32>,
    /// Unknown zombie children seen last time (collected the second time: by then whoever
    /// started them would have collected them).
    zombies: HashSet<i32>,
    /// Killed in the last run.
    killed: usize,
}

impl Sweep {
    /// Look at devstack's children once: collect dead escaped ones, kill those whose service
    /// process is gone (all of them with `all`); return the others, and the processes that left
    /// a service's session but still have a parent in it (for the record).
    #[cfg(target_os = "linux")]
    fn run(&mut self, services: &[String], all: bool) -> Vec<Orphan> {
        let me = std::process::id() as i32;
        let own = own();
        let mut alive_now = Vec::new();
        let mut zombies = HashSet::new();
        let Ok(procs) = procfs::process::all_processes() else {
            return alive_now;
        };
        // Every live process by parent, to find what left a service's session while its parent
        // still runs (it becomes ours only once that parent is gone).
        let mut children: BTreeMap<i32, Vec<(i32, i32, u64)>> = BTreeMap::new();
        for proc in procs.flatten() {
            let Ok(stat) = proc.stat() else { continue };
            if stat.state != 'Z' {
                children.entry(stat.ppid).or_default().push((
                    stat.pid,
                    stat.session,
                    stat.starttime,
                ));
            }
            if stat.ppid != me || own.0.contains_key(&stat.pid) {
                continue;
            }
            if stat.state == 'Z' {
                if self.seen.remove(&stat.pid) || self.zombies.contains(&stat.pid) {
                    // Not `super::reap`: that takes the lock held here.
                    let _ = nix::sys::wait::waitpid(
                        Pid::from_raw(stat.pid),
                        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                    );
                } else {
                    zombies.insert(stat.pid);
                }
                continue;
            }
            let Some(service) = proc.environ().ok().and_then(|env| {
                env.get(std::ffi::OsStr::new("DEVSTACK_SERVICE"))
                    .map(|s| s.to_string_lossy().into_owned())
            }) else {
                continue;
            };
            if !services.contains(&service) {
                continue;
            }
            self.seen.insert(stat.pid);
            if !all && own.has_owner(&service, stat.starttime) {
                alive_now.push(Orphan {
                    pid: stat.pid,
                    start: stat.starttime,
                    service,
                });
            } else {
                kill_escaped(stat.pid, stat.session);
                self.killed += 1;
            }
        }
        self.zombies = zombies;
        if !all {
            for (&leader, (service, _)) in &own.0 {
                let mut stack = vec![leader];
                while let Some(pid) = stack.pop() {
                    for &(child, session, start) in children.get(&pid).into_iter().flatten() {
                        if session != leader && !own.0.contains_key(&child) {
                            alive_now.push(Orphan {
                                pid: child,
                                start,
                                service: service.clone(),
                            });
                        }
                        stack.push(child);
                    }
                }
            }
        }
        alive_now.sort_by_key(|o| o.pid);
        alive_now.dedup_by_key(|o| o.pid);
        alive_now
    }

    #[cfg(not(target_os = "linux"))]
    fn run(&mut self, _services: &[String], _all: bool) -> Vec<Orphan> {
        Vec::new()
    }
}

/// SIGKILL an escaped process, and its whole session when it leads one (a daemon's helpers).
pub fn kill_escaped(pid: i32, session: i32) {
    if session == pid {
        super::kill_session(pid);
    } else {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Running (not a zombie).
#[cfg(target_os = "linux")]
fn alive(pid: i32) -> bool {
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.state != 'Z')
}

#[cfg(not(target_os = "linux"))]
fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}
