//! Faults set on an edge (`orders->users`), a service (every caller of `users`) or
//! `external->users`: what the proxy does to a request or a connection instead of, or before,
//! relaying it. A [`Fault`] is an [`Effect`] (a delay, an answer made here, a reset, a hold
//! without answer, a slow link, a cut, a slow close) with its [`Trigger`] (a probability, the
//! first N requests, a time, a method or path); the [`Faults`] of a stack are asked once per
//! request (HTTP) or connection (TCP, and every connection as it is accepted, for `cut`), and
//! cost nothing while none is set.
//!
//! `spec`: a fault as written on the command line (`orders->users latency=200ms jitter=50ms`).
//! `pace`: what a fault does to a raw TCP connection's bytes (held, paced, closed late).

pub(crate) mod pace;
mod spec;

pub use spec::{parse, read};

use crate::sync::Locked;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Who a fault is set for: the requests to `callee` from `caller` (None: from anyone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    pub callee: String,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.caller {
            Some(caller) => write!(f, "{caller}->{}", self.callee),
            None => f.write_str(&self.callee),
        }
    }
}

/// What is done to a request a fault touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// Held `ms` (± up to `jitter_ms`, evenly) before it goes on.
    Latency { ms: u64, jitter_ms: u64 },
    /// Answered here with `status` (and `body`), never sent to the service; a gRPC call with
    /// the gRPC status `grpc` (or, without one, the code gRPC reads off `status`).
    Error {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grpc: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// The caller's connection reset, nothing answered.
    Reset,
    /// Held without an answer until the caller gives up.
    Timeout,
    /// A slow link: at most this many bytes per second each way (TCP).
    Bandwidth { bytes_per_sec: u64 },
    /// New connections reset as they are accepted (the listener is shared by every caller, so
    /// the caller's connect succeeds and its first read or write fails); those already open
    /// carry on.
    Cut,
    /// When either side closes, the other is told `ms` later (TCP).
    SlowClose { ms: u64 },
}

impl Effect {
    /// Whether it is asked for at this point: `cut` as a connection is accepted, only;
    /// `error` on HTTP requests, Redis commands and Postgres connections (a byte stream has
    /// no error to say); `latency`, `reset` and `timeout` on a Redis connection's commands,
    /// not on the connection; `bandwidth` on connections and HTTP requests; `slow_close` on
    /// TCP connections and HTTP/1 requests (an h2c stream has no close of its own).
    fn applies(&self, on: On) -> bool {
        let tcp = matches!(on, On::Tcp | On::Redis | On::Postgres);
        match self {
            Effect::Cut => on == On::Accept,
            Effect::Error { .. } => {
                matches!(on, On::H1 | On::H2c | On::RedisCommand | On::Postgres)
            }
            Effect::SlowClose { .. } => tcp || on == On::H1,
            Effect::Bandwidth { .. } => !matches!(on, On::Accept | On::RedisCommand),
            Effect::Latency { .. } | Effect::Reset | Effect::Timeout => {
                !matches!(on, On::Accept | On::Redis)
            }
        }
    }
}

/// Where a fault is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// A connection just accepted, before anything is read of it (`cut`).
    Accept,
    /// An HTTP/1 request.
    H1,
    /// An h2c (or gRPC) request.
    H2c,
    /// A raw TCP connection, once: its method and path are empty, so a fault with `method=`
    /// or `path=` never touches one.
    Tcp,
    /// A TCP connection whose caller speaks Redis, once: what shapes its bytes (`bandwidth`,
    /// `slow_close`); the rest is asked per command (`RedisCommand`).
    Redis,
    /// One command of a Redis connection, its name the request's method (`GET`, `CLIENT
    /// REPLY`): `latency`, `error` (answered `-ERR` by the proxy), `reset`, `timeout`.
    RedisCommand,
    /// A TCP connection whose caller speaks PostgreSQL: as `Tcp`, and `error` (its startup
    /// refused by the proxy with a FATAL error).
    Postgres,
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Effect::Latency { ms, jitter_ms: 0 } => write!(f, "latency {ms}ms"),
            Effect::Latency { ms, jitter_ms } => write!(f, "latency {ms}ms ±{jitter_ms}ms"),
            Effect::Error {
                grpc: Some(code), ..
            } => write!(f, "error grpc {code} {}", crate::traffic::grpc::name(*code)),
            Effect::Error { status, .. } => write!(f, "error {status}"),
            Effect::Reset => f.write_str("reset"),
            Effect::Timeout => f.write_str("timeout"),
            Effect::Bandwidth { bytes_per_sec } => {
                write!(f, "bandwidth {}/s", spec::bytes(*bytes_per_sec))
            }
            Effect::Cut => f.write_str("cut"),
            Effect::SlowClose { ms } => write!(f, "slow_close {ms}ms"),
        }
    }
}

/// When a fault touches a request: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// With this probability (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Only the first N requests it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    /// Only for this long after it was set (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
    /// Only requests of this method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose path starts so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A fault as set: what, for whom, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub scope: Scope,
    pub effect: Effect,
    #[serde(default)]
    pub when: Trigger,
}

impl std::fmt::Display for Fault {
    /// As it is written: `orders->users latency=200ms first=3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.scope, spec::effect_words(&self.effect))?;
        for word in spec::trigger_words(&self.when) {
            write!(f, " {word}")?;
        }
        Ok(())
    }
}

/// A fault set on the stack, with its number and how often it touched a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Set {
    pub id: u64,
    #[serde(flatten)]
    pub fault: Fault,
    /// Requests it touched so far.
    pub touched: u64,
    /// It ended (its `first` or `for` ran out): it touches nothing more.
    pub spent: bool,
}

/// The request (or connection) a fault is asked about.
pub struct Request<'a> {
    pub on: On,
    pub caller: &'a str,
    pub callee: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

struct Live {
    id: u64,
    fault: Fault,
    since: Instant,
    /// Requests it matched (for `first`), and touched.
    matched: u64,
    touched: u64,
}

impl Live {
    fn spent(&self, now: Instant) -> bool {
        let first = self.fault.when.first.is_some_and(|n| self.matched >= n);
        let time = (self.fault.when.for_ms)
            .is_some_and(|ms| now.duration_since(self.since) >= Duration::from_millis(ms));
        first || time
    }

    fn matches(&self, r: &Request<'_>) -> bool {
        let scope = &self.fault.scope;
        let when = &self.fault.when;
        self.fault.effect.applies(r.on)
            && scope.callee == r.callee
            && scope.caller.as_deref().is_none_or(|c| c == r.caller)
            && (when.method.as_deref()).is_none_or(|m| m.eq_ignore_ascii_case(r.method))
            && (when.path.as_deref()).is_none_or(|p| r.path.starts_with(p))
    }
}

/// The faults set on a stack (at run time, or by a scenario): asked once per request.
#[derive(Default)]
pub struct Faults {
    /// Any set at all: a request asks nothing more when none is.
    any: AtomicBool,
    next: AtomicU64,
    set: Mutex<Vec<Live>>,
}

impl Faults {
    /// Set `fault`; its number.
    pub fn add(&self, fault: Fault) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut set = self.set.locked();
        set.push(Live {
            id,
            fault,
            since: Instant::now(),
            matched: 0,
            touched: 0,
        });
        self.any.store(true, Ordering::Release);
        id
    }

    /// Set the fault `words` say (as `devstack fault add` takes them), its scope checked first
    /// (`config::scenarios::check_scope`, with `service`): the fault as set, or why it can't be.
    pub fn set(
        &self,
        words: &str,
        service: impl Fn(&str) -> Result<bool, String>,
    ) -> Result<Set, String> {
        let fault = read(words)?;
        crate::config::scenarios::check_scope(&fault.scope, service)?;
        let id = self.add(fault);
        (self.list().into_iter().find(|set| set.id == id))
            .ok_or_else(|| format!("fault {id} was removed as it was set"))
    }

    /// Remove fault `id`; whether it was set.
    pub fn remove(&self, id: u64) -> bool {
        let mut set = self.set.locked();
        let before = set.len();
        set.retain(|l| l.id != id);
        self.any.store(!set.is_empty(), Ordering::Release);
        set.len() < before
    }

    /// Remove every fault; how many there were.
    pub fn clear(&self) -> usize {
        let mut set = self.set.locked();
        self.any.store(false, Ordering::Release);
        std::mem::take(&mut *set).len()
    }

    /// The faults set, oldest first.
    pub fn list(&self) -> Vec<Set> {
        let now = Instant::now();
        self.set
            .locked()
            .iter()
            .map(|l| Set {
                id: l.id,
                fault: l.fault.clone(),
                touched: l.touched,
                spent: l.spent(now),
            })
            .collect()
    }

    /// Whether any fault is set on requests (or connections, as `at` says) to `callee` (the
    /// caller need not be looked up when none is).
    pub fn on(&self, callee: &str, at: On) -> bool {
        self.any.load(Ordering::Acquire)
            && (self.set.locked().iter())
                .any(|l| l.fault.scope.callee == callee && l.fault.effect.applies(at))
    }

    /// What to do to this request: the effect of the first fault that touches it (each
    /// matching fault counts it toward its `first`, in the order they were set).
    pub fn pick(&self, request: &Request<'_>) -> Option<Effect> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let now = Instant::now();
        let mut set = self.set.locked();
        for live in set.iter_mut() {
            if live.spent(now) || !live.matches(request) {
                continue;
            }
            live.matched += 1;
            if live.fault.when.rate.is_some_and(|p| fastrand::f64() >= p) {
                continue;
            }
            live.touched += 1;
            return Some(live.fault.effect.clone());
        }
        None
    }
}

/// Hold a request `d` (a latency's `delay`), to a tenth of a millisecond: tokio's timer wakes
/// on whole milliseconds, up to one late, so the last millisecond is spent yielding (the
/// proxy's other tasks run meanwhile).
pub async fn hold(d: Duration) {
    let until = tokio::time::Instant::now() + d;
    let early = until.checked_sub(Duration::from_millis(1)).unwrap_or(until);
    tokio::time::sleep_until(early).await;
    while tokio::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// How long a latency effect holds this request.
pub fn delay(ms: u64, jitter_ms: u64) -> Duration {
    let spread = jitter_ms.min(ms) as i64;
    let offset = match spread {
        0 => 0,
        s => fastrand::i64(-s..=s),
    };
    Duration::from_millis((ms as i64 + offset) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(caller: &'a str, callee: &'a str, path: &'a str) -> Request<'a> {
        Request {
            on: On::H1,
            caller,
            callee,
            method: "GET",
            path,
        }
    }

    #[test]
    fn a_fault_touches_only_its_edge_and_the_first_n_then_is_spent() {
        let faults = Faults::default();
        assert_eq!(faults.pick(&request("orders", "users", "/")), None);
        let id = faults.add(parse(&["orders->users", "error=503", "first=2"]).unwrap());
        assert!(faults.on("users", On::H1) && !faults.on("orders", On::H1));
        let error = Some(Effect::Error {
            status: 503,
            grpc: None,
            body: None,
        });
        assert_eq!(faults.pick(&request("gateway", "users", "/")), None);
        assert_eq!(faults.pick(&request("orders", "users", "/")), error);
        assert_eq!(faults.pick(&request("orders", "users", "/")), error);
        assert_eq!(faults.pick(&request("orders", "users", "/")), None);
        let listed = faults.list();
        assert_eq!(
            (listed[0].id, listed[0].touched, listed[0].spent),
            (id, 2, true)
        );
        assert!(faults.remove(id) && !faults.remove(id));
        assert!(faults.list().is_empty() && !faults.on("users", On::H1));
    }

    #[test]
    fn a_service_fault_touches_every_caller_matching_its_path_and_method() {
        let faults = Faults::default();
        faults.add(parse(&["users", "latency=10ms", "path=/slow", "method=get"]).unwrap());
        let latency = Some(Effect::Latency {
            ms: 10,
            jitter_ms: 0,
        });
        assert_eq!(faults.pick(&request("orders", "users", "/slow/1")), latency);
        assert_eq!(faults.pick(&request("external", "users", "/slow")), latency);
        assert_eq!(faults.pick(&request("orders", "users", "/fast")), None);
        let post = Request {
            method: "POST",
            ..request("orders", "users", "/slow")
        };
        assert_eq!(faults.pick(&post), None);
        assert_eq!(faults.clear(), 1);
        assert_eq!(faults.pick(&request("orders", "users", "/slow")), None);
    }

    #[test]
    fn a_rate_touches_about_that_share_and_jitter_spreads_evenly_within_its_bounds() {
        let faults = Faults::default();
        faults.add(parse(&["users", "reset", "rate=0.3"]).unwrap());
        let touched = (0..10_000)
            .filter(|_| faults.pick(&request("a", "users", "/")).is_some())
            .count();
        // 3,000 expected; the 99.9% band of a binomial(10000, 0.3) is about ±150.
        assert!((2_850..=3_150).contains(&touched), "{touched}");
        let delays: Vec<u64> = (0..2_000)
            .map(|_| delay(200, 50).as_millis() as u64)
            .collect();
        assert!(delays.iter().all(|d| (150..=250).contains(d)));
        assert!(delays.iter().any(|&d| d < 160) && delays.iter().any(|&d| d > 240));
    }

    #[test]
    fn a_connection_is_asked_only_about_the_effects_it_can_take() {
        let faults = Faults::default();
        faults.add(parse(&["users", "error=503"]).unwrap());
        faults.add(parse(&["users", "latency=5ms", "path=/slow"]).unwrap());
        faults.add(parse(&["users", "cut", "first=1"]).unwrap());
        faults.add(parse(&["orders->users", "bandwidth=1KB"]).unwrap());
        let ask = |on, caller| Request {
            on,
            method: "",
            path: "",
            ..request(caller, "users", "")
        };
        // A TCP connection: no error to say, no path to match.
        assert_eq!(faults.pick(&ask(On::Tcp, "gateway")), None);
        let paced = Some(Effect::Bandwidth {
            bytes_per_sec: 1000,
        });
        assert_eq!(faults.pick(&ask(On::Tcp, "orders")), paced);
        assert_eq!(faults.pick(&ask(On::Accept, "orders")), Some(Effect::Cut));
        assert_eq!(faults.pick(&ask(On::Accept, "orders")), None, "first=1");
        let error = faults.pick(&request("orders", "users", "/"));
        assert!(matches!(error, Some(Effect::Error { status: 503, .. })));
        // A Redis connection: only what shapes its bytes; its commands, each answered with an
        // error.
        assert_eq!(faults.pick(&ask(On::Redis, "gateway")), None);
        let error = faults.pick(&ask(On::RedisCommand, "gateway"));
        assert!(matches!(error, Some(Effect::Error { status: 503, .. })));
        let touched: Vec<u64> = faults.list().iter().map(|f| f.touched).collect();
        assert_eq!(touched, [2, 0, 1, 1]);
    }

    #[test]
    fn a_fault_for_a_time_ends_with_it() {
        let faults = Faults::default();
        faults.add(parse(&["users", "timeout", "for=30ms"]).unwrap());
        assert_eq!(
            faults.pick(&request("a", "users", "/")),
            Some(Effect::Timeout)
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(faults.pick(&request("a", "users", "/")), None);
        assert!(faults.list()[0].spent);
    }
}
