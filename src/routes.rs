//! The stack's side of the traffic proxy (README "Traffic"; ARCHITECTURE "Traffic: how the stack
//! uses the library"): one `traffic::Route` per proxied service, listening on its public port,
//! whose backend follows the engine's views, and the sessions that tell which service a caller
//! is. `traffic` knows nothing of services' states; the engine knows nothing of the proxy; this
//! module maps one onto the other.

use crate::config::{self, Config};
use crate::engine::{ServiceId, ServiceView, Services, State};
use crate::ignored::Ignore;
use crate::logs::LogHub;
use crate::sync::Locked;
use crate::traffic::{self, Limits, Listener, Mark, Notice, Proxy, Route, Sessions, Stats, Target};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Threads of the proxy's own runtime: one, which runs it as a current-thread runtime (1.4× the
/// requests a second of a multi-thread one with one or two workers on 2 cores, benches/proxy.sh).
const THREADS: usize = 1;
/// How long a new connection waits for a service that is coming (starting, restarting,
/// rebuilding) without a health probe saying how long it may take to start.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// At most this long, whatever the probe's start period.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// How often a new process's private port is tried until it accepts, at first, later, and once
/// it looks like a process that never listens (a Procfile worker has a port too): a quiet
/// stack must cost next to nothing.
const POLL: Duration = Duration::from_millis(20);
const POLL_LATER: Duration = Duration::from_millis(250);
const POLL_IDLE: Duration = Duration::from_secs(1);
const POLL_FAST_FOR: Duration = Duration::from_secs(5);
const POLL_LATER_FOR: Duration = Duration::from_secs(60);

/// Picks the private ports of a stack's proxied services: free ones below the range the kernel
/// hands out for outgoing connections and port 0 (`ip_local_port_range`), so that they never
/// collide with a port another program just got that way, and each held until the picker is
/// dropped, so that no two services get the same one.
#[derive(Default)]
pub struct PrivatePorts {
    held: std::cell::RefCell<Vec<std::net::TcpListener>>,
}

/// How many ports below the ephemeral range private ports are taken from.
const PRIVATE_SPAN: u16 = 10_000;

impl PrivatePorts {
    pub fn pick(&self) -> Option<u16> {
        let bind = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).ok();
        let low = ephemeral_low();
        let listener = if low > PRIVATE_SPAN + 1024 {
            // Start anywhere in the span (two stacks starting together rarely try the same
            // ports), then take the next free one.
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
                ^ std::process::id().wrapping_mul(2_654_435_761);
            let start = (seed % u32::from(PRIVATE_SPAN)) as u16;
            (0..PRIVATE_SPAN)
                .take(200)
                .map(|i| low - PRIVATE_SPAN + (start + i * 37) % PRIVATE_SPAN)
                .find_map(bind)
                .or_else(|| bind(0))
        } else {
            bind(0)
        }?;
        let port = listener.local_addr().ok()?.port();
        self.held.borrow_mut().push(listener);
        Some(port)
    }
}

/// Files kept for the rest of devstack whatever the connections: the engine, each service's
/// terminal and log, the control socket's clients, probes, spawning.
const RESERVED_FILES: u64 = 256;
const RESERVED_PER_SERVICE: u64 = 16;

/// What each proxied service's connections may take, with `files` open files allowed: an equal
/// share of what the reserve leaves (two files a connection), so that one service's flood never
/// starves another service or the supervisor. The timeouts can be set through
/// `DEVSTACK_PROXY_HEAD_TIMEOUT` and `DEVSTACK_PROXY_IDLE_TIMEOUT` (`"30s"`, `"500ms"`).
fn limits(files: u64, proxied: usize, services: usize) -> Limits {
    let reserve = RESERVED_FILES + RESERVED_PER_SERVICE * services as u64;
    let share = files.saturating_sub(reserve) / 2 / proxied.max(1) as u64;
    let default = Limits::default();
    let duration = |var: &str, or: Duration| {
        std::env::var(var)
            .ok()
            .and_then(|v| humantime::parse_duration(v.trim()).ok())
            .unwrap_or(or)
    };
    Limits {
        max_connections: (share as usize).clamp(8, default.max_connections),
        head_timeout: duration("DEVSTACK_PROXY_HEAD_TIMEOUT", default.head_timeout),
        idle_timeout: duration("DEVSTACK_PROXY_IDLE_TIMEOUT", default.idle_timeout),
    }
}

/// How the proxy reads a service's traffic, as its config says (`protocol`).
fn protocol(p: config::Protocol) -> traffic::Protocol {
    match p {
        config::Protocol::Auto => traffic::Protocol::Auto,
        config::Protocol::Http => traffic::Protocol::Http,
        config::Protocol::Tcp => traffic::Protocol::Tcp,
    }
}

/// The first port of the kernel's ephemeral range (32768 where it can't be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// The proxy of a running stack, with a listener per proxied service.
pub struct Routes {
    proxy: Proxy,
    sessions: Arc<Sessions>,
    /// Until `follow` takes them.
    routed: Vec<Followed>,
    /// What the listeners say about a service, until `follow` takes it.
    notes: Option<std::sync::mpsc::Receiver<(ServiceId, String)>>,
    _listeners: Vec<Listener>,
}

impl Routes {
    /// Listen on the public port of every proxied service of `cfg` (None when there is none).
    /// A port that can't be listened on is an error naming the service, the port and, when
    /// another process holds it, that process.
    pub fn open(cfg: &Config, files: u64) -> Result<Option<Routes>, Vec<String>> {
        let proxied: Vec<ServiceId> = cfg
            .services
            .iter()
            .filter(|(_, s)| s.proxied())
            .map(|(i, _)| i)
            .collect();
        if proxied.is_empty() {
            return Ok(None);
        }
        // A process outside the stack's sessions (one that left its session, or one whose
        // session is not registered yet) is told by the mark in its environment.
        let sessions = Sessions::marked(Mark::new(
            crate::config::STACK_VAR,
            &cfg.stack_id,
            crate::config::SERVICE_VAR,
        ));
        let proxy = Proxy::start(Stats::with_bounds(cfg.capture), sessions.clone(), THREADS)
            .map_err(|e| vec![format!("can't start the traffic proxy: {e}")])?;
        let limits = limits(files, proxied.len(), cfg.services.len());
        tracing::info!(?limits, files, "proxy limits");
        let (notes, notes_rx) = std::sync::mpsc::sync_channel(64);
        let (mut routed, mut listeners, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for i in proxied {
            let svc = &cfg.services[i];
            let (Some(port), Some(private)) = (svc.port, svc.private_port) else {
                continue;
            };
            let wait = svc
                .health
                .as_ref()
                .map_or(DEFAULT_WAIT, |h| h.start_period.max(DEFAULT_WAIT))
                .min(MAX_WAIT);
            let (tx, rx) = watch::channel(Target::Coming);
            let route_notice: Notice = {
                let notes = notes.clone();
                Arc::new(move |text| {
                    notes
                        .try_send((i, text))
                        .or_say("a listener's note is dropped when 64 wait, or after the stack");
                })
            };
            let route = Route {
                service: svc.name.clone(),
                port,
                backend: rx,
                protocol: protocol(svc.protocol),
                wait,
                limits,
                notice: Some(route_notice.clone()),
                capture: svc.capture,
            };
            if let Some(protos) = &svc.protos {
                proxy.stats().describe(&svc.name, protos.clone());
            }
            match proxy.listen(route) {
                Ok(listener) => listeners.push(listener),
                Err(e) => errors.push(format!("`{}`: {e}", svc.name)),
            }
            let remote = svc.remote.as_ref().and_then(|r| {
                let end =
                    crate::traffic::upstream::RemoteEnd::new(&r.host, r.port, r.tls, r.insecure);
                end.map(Arc::new)
                    .map_err(|e| route_notice(format!("its remote end can't be reached: {e}")))
                    .ok()
            });
            routed.push(Followed {
                service: i,
                name: svc.name.clone(),
                remote,
                private,
                ports: [Some(private), svc.twin.as_ref().map(|t| t.private_port)],
                notice: route_notice,
                target: Arc::new(tx),
                pid: None,
                poll: None,
                generation: Arc::default(),
                next: None,
                next_found: Arc::default(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(Routes {
            proxy,
            sessions,
            routed,
            notes: Some(notes_rx),
            _listeners: listeners,
        }))
    }

    /// What the proxy records.
    pub fn stats(&self) -> Arc<Stats> {
        self.proxy.stats().clone()
    }

    /// Keep every route's backend and the callers' sessions current with the engine's views,
    /// on the proxy's own threads, until the views end.
    pub fn follow(&mut self, mut views: watch::Receiver<Services<ServiceView>>, logs: Arc<LogHub>) {
        if let Some(notes) = self.notes.take() {
            // Its own thread: the notes come from the proxy's, which must not wait on a log.
            std::thread::Builder::new()
                .name("devstack-proxy-notes".into())
                .spawn(move || {
                    for (service, text) in notes {
                        logs.system(service, text);
                    }
                })
                .or_say("without its thread, what the listeners say is not logged");
        }
        let sessions = self.sessions.clone();
        let mut routed = std::mem::take(&mut self.routed);
        self.proxy.spawn(async move {
            // The run processes of each service (proxied or not: any may call), by session: the
            // serving one, and in a rollout the new one beside it and the old one draining.
            let mut pids: Vec<[Option<i32>; 3]> = Vec::new();
            loop {
                {
                    let now = views.borrow_and_update();
                    pids.resize(now.len(), [None; 3]);
                    for (view, known) in now.values().zip(&mut pids) {
                        let live = [view.pid, view.next_pid, view.draining_pid];
                        for gone in known
                            .iter()
                            .flatten()
                            .filter(|p| !live.contains(&Some(**p)))
                        {
                            sessions.remove(*gone);
                        }
                        for new in live
                            .iter()
                            .flatten()
                            .filter(|p| !known.contains(&Some(**p)))
                        {
                            sessions.insert(*new, &view.name);
                        }
                        *known = live;
                    }
                    for r in &mut routed {
                        if let Some(view) = now.get(r.service) {
                            r.update(view);
                        }
                    }
                }
                if views.changed().await.is_err() {
                    break;
                }
            }
            for r in &mut routed {
                r.target.send_replace(Target::Down);
            }
        });
    }
}

/// A proxied service's route, as its follower keeps it current.
struct Followed {
    service: ServiceId,
    name: String,
    /// Its remote end (`url`), forwarded to while the service is remote.
    remote: Option<Arc<crate::traffic::upstream::RemoteEnd>>,
    /// The port its serving process is given (`PORT`): a blue-green service's changes with
    /// each rollout.
    private: u16,
    /// Said in its log.
    notice: Notice,
    target: Arc<watch::Sender<Target>>,
    /// The run process the route forwards to (once it listens).
    pid: Option<i32>,
    /// Waiting for that process to listen.
    poll: Option<tokio::task::AbortHandle>,
    /// Raised at each change of process: a poll for an earlier one (an abort does not stop one
    /// running at that moment on another thread) must not set the target.
    generation: Arc<AtomicU64>,
    /// Its private ports: a blue-green service's two.
    ports: [Option<u16>; 2],
    /// A blue-green rollout's new process (its pid) and the poll finding where it listens,
    /// so that the switch to it is immediate.
    next: Option<(i32, tokio::task::AbortHandle)>,
    /// Where that new process was found listening.
    next_found: Arc<std::sync::Mutex<Option<(i32, SocketAddr)>>>,
}

/// What a route should do for a service in this state.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    /// Forward to this process once it listens.
    Up(i32),
    /// Hold new connections: it is on its way (starting, restarting, rebuilding).
    Coming,
    /// Refuse at once: stopped, failed, or done, until someone starts it.
    Down,
}

fn want(view: &ServiceView) -> Want {
    match view.pid {
        Some(pid) if view.state != State::Stopping => Want::Up(pid),
        _ if view.wanted && !view.settled => Want::Coming,
        _ => Want::Down,
    }
}

impl Followed {
    fn update(&mut self, view: &ServiceView) {
        if view.remote.is_some() {
            // Served by its remote end: no process here to follow.
            self.pid = None;
            self.generation.fetch_add(1, Ordering::SeqCst);
            if let Some(poll) = self.poll.take() {
                poll.abort();
            }
            // Forwarded from its first probe on (a probe that has not passed yet says nothing
            // against the end); stopping or stopped, nothing is.
            let target = match (&self.remote, view.state) {
                (Some(end), State::Running | State::Starting) => Target::Remote(end.clone()),
                _ => Target::Down,
            };
            if *self.target.borrow() != target {
                self.target.send_replace(target);
            }
            return;
        }
        self.follow_next(view);
        let want = want(view);
        let pid = match want {
            Want::Up(pid) => Some(pid),
            _ => None,
        };
        if pid != self.pid {
            self.pid = pid;
            if let Some(port) = view.private_port {
                self.private = port;
            }
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(poll) = self.poll.take() {
                poll.abort();
            }
            let found = *self.next_found.locked();
            if let (Some(pid), Some((next, addr))) = (pid, found)
                && pid == next
            {
                // A blue-green switch to a new process already found listening: at once.
                self.target.send_replace(Target::Up(addr));
                tracing::debug!(service = %self.name, pid, "route switched at once");
            } else if pid.is_some() {
                // A blue-green switch whose new process (its probe passed: it listens) was not
                // found yet: to it at once on 127.0.0.1, where most listen, the poll below
                // correcting that if it is elsewhere; a process coming up: new connections
                // wait for it. None goes to a process that serves no more.
                let switch = matches!(*self.target.borrow(), Target::Up(_));
                let guess = SocketAddr::from(([127, 0, 0, 1], self.private));
                self.target.send_replace(if switch {
                    Target::Up(guess)
                } else {
                    Target::Coming
                });
                tracing::debug!(service = %self.name, ?pid, switch, "route waits for the address");
                let poll = up_once_listening(
                    self.private,
                    self.target.clone(),
                    (self.generation.clone(), generation),
                    self.not_listening(pid),
                );
                self.poll = Some(tokio::spawn(poll).abort_handle());
            }
        }
        match want {
            Want::Up(_) => {}
            Want::Coming => {
                self.target.send_replace(Target::Coming);
            }
            Want::Down => {
                self.target.send_replace(Target::Down);
            }
        }
    }
}

impl Followed {
    /// A blue-green rollout's new process, while it starts: where it listens is found ahead
    /// (on the port the serving one does not use), for the switch.
    fn follow_next(&mut self, view: &ServiceView) {
        if view.next_pid == self.next.as_ref().map(|(pid, _)| *pid) {
            return;
        }
        if let Some((_, poll)) = self.next.take() {
            poll.abort();
        }
        let other = self
            .ports
            .into_iter()
            .flatten()
            .find(|p| Some(*p) != view.private_port);
        let (Some(pid), Some(port)) = (view.next_pid, other) else {
            return;
        };
        let found = self.next_found.clone();
        let poll = tokio::spawn(async move {
            loop {
                let at = tokio::task::spawn_blocking(move || crate::process::reachable_at(port));
                if let Ok(Some(addr)) = at.await {
                    *found.locked() = Some((pid, addr));
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        self.next = Some((pid, poll.abort_handle()));
    }

    /// What to say when the process `pid` has not listened on its port for a while: where its
    /// session listens instead, if anywhere.
    fn not_listening(&self, pid: Option<i32>) -> impl FnOnce() + Send + 'static {
        let (name, port, notice) = (self.name.clone(), self.private, self.notice.clone());
        move || {
            let elsewhere = pid
                .map(crate::process::listening_in_session)
                .unwrap_or_default();
            let text = if elsewhere.is_empty() {
                format!(
                    "`{name}` is running but not listening on its PORT {port} (127.0.0.1 or ::1) after {}s: callers wait for it; make it listen on $PORT",
                    NOT_LISTENING_AFTER.as_secs()
                )
            } else {
                let at: Vec<String> = elsewhere.iter().map(ToString::to_string).collect();
                format!(
                    "`{name}` is running but not listening on its PORT {port} after {}s; it listens on {}: make it listen on $PORT, or give it `proxy = false` with the port it binds",
                    NOT_LISTENING_AFTER.as_secs(),
                    at.join(", ")
                )
            };
            notice(text);
        }
    }
}

/// How long a process may run without listening on its port before its log says where it
/// listens instead.
const NOT_LISTENING_AFTER: Duration = Duration::from_secs(10);

/// Wait until the new process listens on its port (on 127.0.0.1, ::1, or any address), then
/// forward to it, unless the process changed meanwhile (`generation` moved on). Aborted when
/// the process changes. Said once, if it takes long: `not_listening`.
async fn up_once_listening(
    port: u16,
    target: Arc<watch::Sender<Target>>,
    (generation, mine): (Arc<AtomicU64>, u64),
    not_listening: impl FnOnce() + Send + 'static,
) {
    let start = tokio::time::Instant::now();
    let mut not_listening = Some(not_listening);
    loop {
        let found = tokio::task::spawn_blocking(move || crate::process::reachable_at(port))
            .await
            .ok()
            .flatten();
        if let Some(addr) = found {
            // Checked under the target's lock: the follower raises the generation before it
            // sets the target, so a stale `Up` is either refused here or overwritten after.
            // (Not news when it is where it was guessed: kept-alive connections stay.)
            target.send_if_modified(|t| {
                let current = generation.load(Ordering::SeqCst) == mine;
                let news = current && *t != Target::Up(addr);
                if news {
                    *t = Target::Up(addr);
                }
                news
            });
            return;
        }
        if start.elapsed() >= NOT_LISTENING_AFTER
            && let Some(say) = not_listening.take()
        {
            // It reads `/proc`: off the proxy's thread.
            tokio::task::spawn_blocking(say);
        }
        let pause = match start.elapsed() {
            t if t < POLL_FAST_FOR => POLL,
            t if t < POLL_LATER_FOR => POLL_LATER,
            _ => POLL_IDLE,
        };
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: State, pid: Option<i32>, wanted: bool, settled: bool) -> ServiceView {
        let mut v = ServiceView::from(
            serde_json::from_value::<crate::control::wire::Service>(serde_json::json!({
                "name": "api", "state": "running", "health": null, "health_error": null,
                "ready": false, "wanted": false, "auto_rebuild": null, "spawns": 0,
                "building": false, "build_failed": false, "cpu_percent": null, "mem_bytes": null,
                "crash_loop": false, "detail": "", "pid": null, "port": null, "restarts": 0,
                "uptime_secs": null, "log_lost": null,
            }))
            .unwrap(),
        );
        (v.state, v.pid, v.wanted, v.settled) = (state, pid, wanted, settled);
        v
    }

    #[test]
    fn private_ports_are_free_distinct_and_outside_the_ephemeral_range() {
        let ports = PrivatePorts::default();
        let picked: Vec<u16> = (0..20).map(|_| ports.pick().unwrap()).collect();
        let mut distinct = picked.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), picked.len(), "{picked:?}");
        let low = ephemeral_low();
        if low > PRIVATE_SPAN + 1024 {
            assert!(
                picked.iter().all(|&p| p < low),
                "{picked:?} (ephemeral from {low})"
            );
        }
        // Free once the picker is gone.
        drop(ports);
        for p in picked {
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }

    #[test]
    fn a_running_process_is_forwarded_to_and_a_stopping_one_is_not() {
        assert_eq!(
            want(&view(State::Running, Some(7), true, false)),
            Want::Up(7)
        );
        // A build with the old process still running keeps forwarding to it.
        assert_eq!(
            want(&view(State::Building, Some(7), true, false)),
            Want::Up(7)
        );
        // Stopped for a restart: callers wait for the new process.
        assert_eq!(
            want(&view(State::Stopping, Some(7), true, false)),
            Want::Coming
        );
        assert_eq!(
            want(&view(State::Restarting, None, true, false)),
            Want::Coming
        );
        // Stopped by the user, or given up on: callers hear at once.
        assert_eq!(
            want(&view(State::Stopping, Some(7), false, false)),
            Want::Down
        );
        assert_eq!(want(&view(State::Stopped, None, false, true)), Want::Down);
        assert_eq!(want(&view(State::Failed, None, true, true)), Want::Down);
    }
}
