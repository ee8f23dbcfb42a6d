//! Descendants that escape a service's session: a daemon that forks twice, calls `setsid` and
//! closes its terminal leaves no trace in the session or on the terminal. devstack is a child
//! subreaper (`PR_SET_CHILD_SUBREAPER`), so such a process, once its parent is gone, becomes a
//! child of devstack. Whose it is: its `DEVSTACK_SERVICE`, or, for one that cleared its
//! environment, what the keeper saw of it while its parent was still in the service.
//!
//! A keeper thread looks at devstack's children every 300 ms while it keeps escaped processes,
//! every 5 s while none escaped. An escaped process lives
//! as long as a process of its service that started before it (the run it came from) does, or,
//! for a one-shot task's (a database a task started with `pg_ctl start`), as long as the stack;
//! then it gets its service's stop signal and, after its grace, SIGKILL. What a `cmd` probe left
//! behind goes at once. What the keeper finds alive is reported, so that the group record lets
//! the next `up` kill it too after a SIGKILL of devstack.
//!
//! The keeper's walk of the services' trees also samples their CPU and memory (`usage`), and at
//! the stack's end it collects every process that came back to devstack and exited.

#[cfg(target_os = "linux")]
use super::tree::Tree;
use super::usage::Usage;
use crate::ignored::Ignore;
use crate::sync::Locked;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the keeper looks at devstack's children while it keeps escaped processes,
const EVERY: Duration = Duration::from_millis(300);
/// and while none escaped (an idle stack of 20 services must cost next to nothing: on a
/// virtual machine a wake-up alone costs about half a millisecond);
const QUIET_EVERY: Duration = Duration::from_secs(5);
/// how often it walks the services' process trees for processes leaving their session, while
/// it keeps some and while none escaped.
const WALK_EVERY: Duration = Duration::from_secs(2);
const QUIET_WALK_EVERY: Duration = Duration::from_secs(5);
/// Set in a `cmd` probe's environment: what it leaves behind goes at once.
pub const PROBE_MARK: &str = "DEVSTACK_PROBE";

/// An escaped process of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub pid: i32,
    /// Start time in clock ticks since boot (tells a reused pid apart).
    pub start: u64,
    pub service: String,
}

/// What the keeper saw in one look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Escaped {
    /// Alive and kept (for the record).
    pub alive: Vec<Orphan>,
    /// Sent their stop signal just now: the run they came from has ended.
    pub stopping: Vec<Orphan>,
}

/// A service as the keeper needs it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub name: String,
    /// Its containers' names (an `image` service's): their processes, under the engine's
    /// monitor outside the session, count as the service's CPU and memory.
    pub containers: Vec<String>,
    /// A one-shot task: what it starts may outlive it, until the stack stops.
    pub task: bool,
    pub stop_signal: Signal,
    pub grace: Duration,
}

/// The children devstack started itself (terminal leaders, probes, `run`'s command):
/// pid → (service, start time, leads its own session).
pub struct Own(BTreeMap<i32, (String, u64, bool)>);

static OWN: Mutex<Own> = Mutex::new(Own(BTreeMap::new()));

/// Hold this while starting a child and until it is added, so the keeper can't take the new
/// child for an escaped one.
pub fn own() -> MutexGuard<'static, Own> {
    OWN.locked()
}

impl Own {
    /// `session`: the child leads a session of its own (a service's terminal), so whatever of
    /// its descendants is in another session has escaped it.
    pub fn add(&mut self, pid: i32, service: Option<&str>, session: bool) {
        let start = super::group::start_time(pid).unwrap_or(0);
        self.0.insert(
            pid,
            (service.unwrap_or_default().to_string(), start, session),
        );
    }

    pub fn remove(&mut self, pid: i32) {
        self.0.remove(&pid);
    }

    /// A live process of `service` started no later than `start`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn has_owner(&self, service: &str, start: u64) -> bool {
        self.0
            .iter()
            .any(|(&pid, (s, t, _))| s == service && *t <= start && alive(pid))
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

/// The keeper thread; stopped (after stopping every escaped process left, with each one's stop
/// signal and grace) when dropped.
pub struct Keeper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    sweep: Arc<Mutex<Sweep>>,
    services: Vec<Kept>,
}

/// Start keeping the escaped processes of `services`; `report` gets what the keeper sees
/// whenever it changes. The same thread samples the services' CPU and memory for `usage`
/// while it wants them, from the same reading of the process tree.
pub fn keep(
    services: Vec<Kept>,
    report: impl Fn(Escaped) + Send + 'static,
    usage: super::UsageFeed,
) -> Keeper {
    let stop = Arc::new(AtomicBool::new(false));
    let sweep = Arc::new(Mutex::new(Sweep::default()));
    let thread = {
        let (stop, services, sweep) = (stop.clone(), services.clone(), sweep.clone());
        std::thread::Builder::new()
            .name("orphans".into())
            .spawn(move || {
                let mut last = Escaped::default();
                let mut meter = super::usage::Meter::default();
                while !stop.load(Ordering::Relaxed) {
                    let wanted = (usage.wanted)();
                    if !wanted {
                        meter.forget();
                    }
                    let (now, sample) = sweep.locked().run(&services, false, wanted && meter.due());
                    if let Some(loads) = sample.and_then(|u| meter.take(Instant::now(), u)) {
                        (usage.report)(loads);
                    }
                    if now != last {
                        report(now.clone());
                        last = now;
                    }
                    let quiet = last.alive.is_empty();
                    // Woken early by `drop` (a spurious wake only makes a look sooner).
                    std::thread::park_timeout(if quiet { QUIET_EVERY } else { EVERY });
                }
            })
            .ok()
    };
    Keeper {
        stop,
        thread,
        sweep,
        services,
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            t.join()
                .or_say("the keeper's thread panicked; the sweep below still runs");
        }
        // The stack has stopped: whatever escaped goes now (stop signal, grace, KILL), and is
        // collected.
        let mut sweep = self.sweep.locked();
        let longest = self.services.iter().map(|s| s.grace).max();
        let deadline = Instant::now() + longest.unwrap_or_default() + Duration::from_secs(1);
        loop {
            sweep.run(&self.services, true, false);
            if (sweep.doomed.is_empty() && sweep.seen.is_empty()) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        reap_adopted(Instant::now() + ADOPTED_WAIT);
    }
}

/// How long the stack's end waits for adopted processes just killed to become collectable.
const ADOPTED_WAIT: Duration = Duration::from_millis(500);

/// Collect every process that came back to devstack (the subreaper) and has exited, whoever's
/// it was (the sweeps collect an unknown one only the second time they see it dead), waiting
/// until `deadline` for those still dying: once the stack has stopped, none must be left a
/// zombie, here or under whoever adopts them after devstack.
#[cfg(target_os = "linux")]
fn reap_adopted(deadline: Instant) {
    let me = std::process::id() as i32;
    loop {
        let adopted: Vec<i32> = {
            let own = own();
            Tree::new()
                .children_of_thread(me)
                .into_iter()
                .filter(|pid| !own.0.contains_key(pid))
                .collect()
        };
        let mut dying = false;
        for pid in adopted {
            match super::stat::stat(pid) {
                Some(stat) if stat.state == 'Z' => super::collect(pid),
                Some(_) => dying = true,
                None => {}
            }
        }
        if !dying || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(not(target_os = "linux"))]
fn reap_adopted(_deadline: Instant) {}

#[derive(Default)]
struct Sweep {
    /// Escaped processes seen alive: collected once they are zombies.
    seen: HashSet<i32>,
    /// Unknown zombie children seen last time (collected the second time: by then whoever
    /// started them would have collected them).
    zombies: HashSet<i32>,
    /// Processes seen leaving a service's session while their parent was in it, by pid: (start
    /// time, service). Tells whose they are once they are ours, environment or not.
    known: HashMap<i32, (u64, String)>,
    /// Sent their stop signal: when they get SIGKILL.
    doomed: HashMap<i32, Instant>,
    /// When the services' trees were last walked.
    walked: Option<Instant>,
    /// How the process tree is read here (decided at the first look).
    #[cfg(target_os = "linux")]
    tree: Option<Tree>,
}

/// One of devstack's children that is not its own, as the first look read it: its `stat`,
/// and its environment (empty for a zombie).
#[cfg(target_os = "linux")]
type Child = (super::Stat, HashMap<std::ffi::OsString, std::ffi::OsString>);

#[cfg(target_os = "linux")]
impl Sweep {
    /// Look at devstack's children once: collect dead escaped ones, stop those whose service
    /// process is gone (all of them with `all`); report the others, and the processes that left
    /// a service's session but still have a parent in it.
    /// With `sample`, the services' trees are walked now, and the CPU time and memory of each
    /// service's session come back too.
    fn run(
        &mut self,
        services: &[Kept],
        all: bool,
        sample: bool,
    ) -> (Escaped, Option<HashMap<i32, Usage>>) {
        // First look at /proc without the lock (starting a process takes it); then decide
        // under it, where a child registered meanwhile is known to be devstack's own. Only
        // devstack's children and the services' trees are read, through the kernel's lists of
        // children, not every process on the machine.
        let tree = self.tree.get_or_insert_with(Tree::new);
        if tree.scans() {
            tree.pass(); // a fresh scan for this look
        }
        let (owned, leaders) = owned_and_leaders();
        let mut live = HashSet::new();
        let mut monitors = Vec::new();
        let mine = adopted(tree, &owned, &mut live, &mut monitors);
        let walk = !all && (sample || self.walk_due());
        let mut usage: Option<HashMap<i32, Usage>> = sample.then(|| {
            leaders
                .iter()
                .map(|(l, _)| (*l, Usage::default()))
                .collect()
        });
        let walked = if walk {
            self.walked = Some(Instant::now());
            let tree = self.tree.get_or_insert_with(Tree::new); // the one read above
            if !tree.scans() {
                tree.pass();
            }
            let walked = walk_trees(tree, &leaders, &mine, usage.as_mut(), &mut live);
            if let Some(usage) = usage.as_mut() {
                super::containers::add_usage(tree, services, &leaders, &monitors, usage);
            }
            walked
        } else {
            Vec::new()
        };
        let own = own();
        let mut seen = Escaped::default();
        let mut zombies = HashSet::new();
        for (stat, env) in mine {
            if own.0.contains_key(&stat.pid) {
                continue;
            }
            if stat.state == 'Z' {
                self.collect_or_note(stat.pid, &mut zombies);
            } else {
                self.judge(&own, services, all, (stat, env), &mut seen);
            }
        }
        self.forget(zombies, &live, walk);
        self.note_walked(&own, walked, &mut seen);
        seen.alive.sort_by_key(|o| o.pid);
        seen.alive.dedup_by_key(|o| o.pid);
        (seen, usage)
    }

    /// Whether the services' trees are due to be walked. They are walked less often than
    /// devstack's children are looked at: an idle stack of 20 services must cost next to
    /// nothing. A sample of CPU and memory is taken on the same walk.
    fn walk_due(&self) -> bool {
        let every = if self.known.is_empty() && self.doomed.is_empty() {
            QUIET_WALK_EVERY
        } else {
            WALK_EVERY
        };
        self.walked.is_none_or(|at| at.elapsed() >= every)
    }

    /// A zombie child not devstack's own: collected if it was an escaped process seen alive, or
    /// an unknown one seen dead last time (by then whoever started it would have collected
    /// it); else noted in `zombies` for next time.
    fn collect_or_note(&mut self, pid: i32, zombies: &mut HashSet<i32>) {
        if self.seen.remove(&pid) || self.zombies.contains(&pid) {
            // Not `super::reap`: that takes the lock held here.
            super::collect(pid);
            self.doomed.remove(&pid);
        } else {
            zombies.insert(pid);
        }
    }

    /// A live child not devstack's own, decided under the lock (`own`): what a probe left goes
    /// at once; one of a service is kept while its run does (or it is still in the session of
    /// a leader that exited), else sent its stop signal, then SIGKILL after its grace.
    fn judge(&mut self, own: &Own, services: &[Kept], all: bool, child: Child, seen: &mut Escaped) {
        let (stat, env) = child;
        if env.contains_key(std::ffi::OsStr::new(PROBE_MARK)) {
            // What a health probe left behind: the probe is over.
            kill_escaped(stat.pid, stat.session, Signal::SIGKILL);
            self.seen.insert(stat.pid);
            return;
        }
        let name = super::group::service_of(&env).or_else(|| {
            self.known
                .get(&stat.pid)
                .filter(|(start, _)| *start == stat.starttime)
                .map(|(_, s)| s.clone())
        });
        let Some(svc) = name.and_then(|n| services.iter().find(|s| s.name == n)) else {
            return;
        };
        self.seen.insert(stat.pid);
        let orphan = Orphan {
            pid: stat.pid,
            start: stat.starttime,
            service: svc.name.clone(),
        };
        let owned = !all && (svc.task || own.has_owner(&svc.name, stat.starttime));
        // Still in the session of a leader that exited: its waiter is giving it the rest of
        // the grace (`group::end_session`), and kills it after.
        let ending = stat.session != stat.pid
            && own
                .0
                .get(&stat.session)
                .is_some_and(|(_, _, session)| *session);
        if owned || ending {
            seen.alive.push(orphan);
            return;
        }
        match self.doomed.get(&stat.pid) {
            None => {
                kill_escaped(stat.pid, stat.session, svc.stop_signal);
                self.doomed.insert(stat.pid, Instant::now() + svc.grace);
                seen.stopping.push(orphan.clone());
                seen.alive.push(orphan);
            }
            Some(&at) if Instant::now() >= at => {
                kill_escaped(stat.pid, stat.session, Signal::SIGKILL);
            }
            Some(_) => seen.alive.push(orphan),
        }
    }

    /// Forget what is no longer alive (`live`); what left a session, only after a walk (which
    /// sees it). The zombies seen now are collected next time.
    fn forget(&mut self, zombies: HashSet<i32>, live: &HashSet<i32>, walked: bool) {
        self.zombies = zombies;
        self.doomed.retain(|pid, _| live.contains(pid));
        if walked {
            self.known.retain(|pid, _| live.contains(pid));
        }
        self.seen
            .retain(|pid| live.contains(pid) || self.zombies.contains(pid));
    }

    /// What the walk saw leaving a service's session, unless it is devstack's own: known from
    /// now on as that service's, and reported alive.
    fn note_walked(&mut self, own: &Own, walked: Vec<(i32, u64, String)>, seen: &mut Escaped) {
        for (pid, start, service) in walked {
            if !own.0.contains_key(&pid) {
                self.known.insert(pid, (start, service.clone()));
                seen.alive.push(Orphan {
                    pid,
                    start,
                    service,
                });
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl Sweep {
    fn run(
        &mut self,
        _services: &[Kept],
        _all: bool,
        _sample: bool,
    ) -> (Escaped, Option<HashMap<i32, Usage>>) {
        (Escaped::default(), None)
    }
}

/// devstack's own children's pids, and those that lead a service's session with their
/// service, taken under the lock and read without it.
#[cfg(target_os = "linux")]
fn owned_and_leaders() -> (HashSet<i32>, Vec<(i32, String)>) {
    let own = own();
    let leaders = own
        .0
        .iter()
        .filter(|(_, (_, _, session))| *session)
        .map(|(&pid, (service, _, _))| (pid, service.clone()))
        .collect();
    (own.0.keys().copied().collect(), leaders)
}

/// The first look, without the lock: devstack's children that are not `owned` (checked again
/// under the lock), with their environments; the live ones go into `live`.
#[cfg(target_os = "linux")]
fn adopted(
    tree: &mut Tree,
    owned: &HashSet<i32>,
    live: &mut HashSet<i32>,
    monitors: &mut Vec<(i32, String)>,
) -> Vec<Child> {
    let me = std::process::id() as i32;
    let mut mine = Vec::new();
    // An orphan comes back to the subreaper's main thread (the kernel picks its first live
    // thread); the children the other threads started are devstack's own.
    for pid in tree.children_of_thread(me) {
        if owned.contains(&pid) {
            continue; // devstack's own (checked again under the lock)
        }
        let Ok(proc) = procfs::process::Process::new(pid) else {
            continue;
        };
        let Some(stat) = super::Stat::of(&proc) else {
            continue;
        };
        let env = if stat.state == 'Z' {
            Default::default()
        } else {
            if super::containers::monitor(pid) {
                if let Some(name) = super::containers::monitored(&proc) {
                    monitors.push((pid, name));
                }
                continue;
            }
            live.insert(pid);
            proc.environ().unwrap_or_default()
        };
        mine.push((stat, env));
    }
    mine
}

/// Walk each service's tree from its leader, and from what came back to devstack (`mine`)
/// while still in its session: what runs goes into `live`, and with `usage`, what is in the
/// session is added to its leader's. What left a service's session while its parent still
/// runs comes back, as (pid, start time, service): it becomes ours only once that parent is
/// gone.
#[cfg(target_os = "linux")]
fn walk_trees(
    tree: &mut Tree,
    leaders: &[(i32, String)],
    mine: &[Child],
    mut usage: Option<&mut HashMap<i32, Usage>>,
    live: &mut HashSet<i32>,
) -> Vec<(i32, u64, String)> {
    let mut walked = Vec::new();
    let roots = leaders
        .iter()
        .map(|(l, s)| (*l, *l, s))
        .chain(mine.iter().filter_map(|(stat, _)| {
            let service = leaders.iter().find(|(l, _)| *l == stat.session)?;
            (stat.state != 'Z').then_some((stat.pid, service.0, &service.1))
        }));
    for (root, leader, service) in roots {
        let Some(first) = tree.stat(root) else {
            continue;
        };
        let mut stack = vec![(root, first)];
        while let Some((pid, stat)) = stack.pop() {
            if stat.session == leader
                && let Some(u) = usage.as_mut().and_then(|u| u.get_mut(&leader))
            {
                u.add(&stat);
            }
            for child in tree.children_of(pid, stat.threads) {
                let Some(stat) = tree.stat(child).filter(|s| s.state != 'Z') else {
                    continue;
                };
                live.insert(child);
                if stat.session != leader && !super::containers::monitor(child) {
                    walked.push((child, stat.starttime, service.clone()));
                }
                stack.push((child, stat));
            }
        }
    }
    walked
}

/// Signal an escaped process, and its whole session when it leads one (a daemon's helpers).
pub fn kill_escaped(pid: i32, session: i32, sig: Signal) {
    if sig == Signal::SIGKILL && session == pid {
        super::kill_session(pid);
    } else if session == pid {
        super::signal_group(pid, sig);
        super::signal(pid, sig);
    } else {
        super::signal(pid, sig);
    }
}

/// Running (not a zombie).
fn alive(pid: i32) -> bool {
    super::group::session_of(pid).is_some()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A sample counts a service's session: its leader and the leader's children.
    #[test]
    fn a_sample_counts_a_session_and_its_children() {
        use std::os::unix::process::CommandExt;
        // A session of its own (the test's session leader may be outside this pid namespace).
        let mut child = std::process::Command::new("sh");
        child.args(["-c", "sleep 30 & wait"]);
        unsafe {
            child.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = child.spawn().unwrap();
        let sid = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while super::super::tree::Tree::new()
            .children_of(sid, 1)
            .is_empty()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The child may still be between fork and exec at the first look: look again for a
        // while (without counting children, the sum never passes the leader's own).
        let leader = || crate::process::stat(sid).unwrap().rss * procfs::page_size();
        super::own().add(sid, Some("svc"), true);
        let services = [Kept {
            name: "svc".into(),
            containers: Vec::new(),
            task: false,
            stop_signal: Signal::SIGTERM,
            grace: Duration::from_secs(1),
        }];
        let mut sweep = Sweep::default();
        let mut sample = || sweep.run(&services, false, true).1.unwrap()[&sid];
        let mut usage = sample();
        let mut own = leader();
        while usage.rss_bytes <= own && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            own = leader();
            usage = sample();
        }
        super::own().remove(sid);
        let leader = own;
        super::super::signal_group(sid, Signal::SIGKILL);
        child
            .wait()
            .or_say("another test's keeper may have collected it");
        assert!(leader > 0);
        assert!(
            usage.rss_bytes > leader,
            "the child's memory is counted too"
        );
    }
}
