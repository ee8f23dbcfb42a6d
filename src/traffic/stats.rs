//! What the proxy saw: one [`Record`] per HTTP request or TCP connection, folded into per-edge
//! (caller → callee) counters, a ring of recent records and a broadcast for a live tail.
//!
//! Memory is bounded however long a stack runs: an edge keeps 60 one-second counters and six
//! ten-second latency histograms (the last minute), the ring keeps [`RECENT`] records, and the
//! edges themselves are bounded by the callers (services, `external`, `unknown`) × the callees.

use super::Caller;
use crate::ignored::Ignore;
use crate::sync::Locked;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Records kept for the tail shown on request (the live tail is the broadcast).
pub const RECENT: usize = 1000;
/// Seconds of per-second counters an edge keeps (the 1-minute rate and the sparkline).
const SECONDS: usize = 60;
/// Latency histograms per edge, each covering `SLOT` seconds: together the last minute.
const SLOTS: usize = 6;
const SLOT: u64 = 10;
/// Latencies are recorded in microseconds up to a minute, to 2 significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;
/// A path longer than this is cut (a record's memory stays bounded).
const MAX_PATH: usize = 512;
/// Edges beyond this are not tracked (only reachable with a huge number of services).
const MAX_EDGES: usize = 4096;

/// Why a request or connection failed, beyond what its status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The service is stopped (by hand, failed, done): nothing was tried.
    Stopped,
    /// The backend refused the connection (the service is not listening on its port).
    Refused,
    /// No backend address came within the wait (the service stayed stopped or restarting).
    Timeout,
    /// The connection broke mid-request or mid-response (either side).
    Reset,
}

impl ErrorKind {
    /// What the proxy answers an HTTP caller for a request that failed so, and why in words
    /// (after the service's name).
    pub fn answer(self) -> (u16, &'static str) {
        match self {
            ErrorKind::Timeout => (503, "did not come up in time"),
            ErrorKind::Stopped => (502, "is stopped"),
            ErrorKind::Refused => (502, "refused the connection (not listening on its port)"),
            ErrorKind::Reset => (502, "closed the connection without answering"),
        }
    }
}

/// What was exchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum Kind {
    Http {
        /// `HTTP/1.1` or `HTTP/2.0`.
        version: Cow<'static, str>,
        method: Cow<'static, str>,
        path: String,
        /// The status the caller got (a proxy-made 502/503 included); 0 if none was sent.
        status: u16,
        /// gRPC's status, from the trailers (or a trailers-only response's headers).
        #[serde(skip_serializing_if = "Option::is_none")]
        grpc_status: Option<u32>,
    },
    Tcp,
}

/// One HTTP request (head to response end) or one TCP connection (accept to close).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When it started, milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub caller: Caller,
    pub callee: String,
    #[serde(flatten)]
    pub kind: Kind,
    /// HTTP: request head to response end; TCP: the connection's life.
    pub latency_us: u64,
    /// Body bytes (HTTP) or stream bytes (TCP, and an upgraded connection) caller → callee.
    pub bytes_in: u64,
    /// … and callee → caller.
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
}

impl Record {
    /// A failure for the edge's error rate: a transport error, an HTTP 5xx, a gRPC status but OK.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
            || matches!(&self.kind, Kind::Http { status, grpc_status, .. }
                if *status >= 500 || grpc_status.is_some_and(|g| g != 0))
    }

    /// When it started, as the time of day (`12:00:01.250`, UTC as the log files have it).
    pub fn time_of_day(&self) -> String {
        crate::format::time_of_day(UNIX_EPOCH + Duration::from_millis(self.time_ms))
    }

    /// An HTTP record's status (what the caller got), and gRPC's when one is known.
    pub fn set_status(&mut self, code: u16, grpc: Option<u32>) {
        if let Kind::Http {
            status,
            grpc_status,
            ..
        } = &mut self.kind
        {
            *status = code;
            if grpc.is_some() {
                *grpc_status = grpc;
            }
        }
    }

    /// A record starting now.
    pub fn now(caller: Caller, callee: &str, kind: Kind) -> Record {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Record {
            time_ms,
            caller,
            callee: callee.to_string(),
            kind,
            latency_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            error: None,
        }
    }
}

impl std::fmt::Display for Record {
    /// One line, as `devstack traffic -f` and the dashboard's tail show it:
    /// `web → api GET /users 200 3.2ms` or `api → db tcp ↑120B ↓3.4kB 1.20s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {} ", self.caller, self.callee)?;
        match &self.kind {
            Kind::Http {
                method,
                path,
                status,
                grpc_status,
                ..
            } => {
                write!(f, "{method} {path} {status}")?;
                if let Some(g) = grpc_status {
                    write!(f, " grpc-status={g}")?;
                }
            }
            Kind::Tcp => write!(
                f,
                "tcp ↑{} ↓{}",
                crate::format::bytes(self.bytes_in),
                crate::format::bytes(self.bytes_out)
            )?,
        }
        write!(f, " {}", crate::format::latency(self.latency_us))?;
        if let Some(e) = self.error {
            write!(f, " ({})", e.describe())?;
        }
        Ok(())
    }
}

impl ErrorKind {
    /// What happened, in words.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::Stopped => "the service is stopped",
            ErrorKind::Refused => "refused: the service is not listening",
            ErrorKind::Timeout => "timed out waiting for the service to come up",
            ErrorKind::Reset => "connection reset",
        }
    }
}

/// Cut a request target to a bounded length (on a character boundary).
pub fn bounded_path(mut path: String) -> String {
    if path.len() <= MAX_PATH {
        return path;
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path.truncate(end);
    path.push('…');
    path
}

/// `HTTP/1.1` and friends, without allocating per request.
pub fn version_name(version: hyper::Version) -> &'static str {
    match version {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_11 => "HTTP/1.1",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A request's method; the standard ones without allocating.
pub fn method_name(method: &hyper::Method) -> Cow<'static, str> {
    use hyper::Method as M;
    Cow::Borrowed(match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => return Cow::Owned(method.as_str().to_string()),
    })
}

/// Counts of HTTP responses by class; `other` counts records without a status (TCP, failures
/// before a response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    pub s1xx: u64,
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub other: u64,
}

impl StatusClasses {
    fn add(&mut self, kind: &Kind) {
        let status = match kind {
            Kind::Http { status, .. } => *status,
            Kind::Tcp => 0,
        };
        match status {
            100..=199 => self.s1xx += 1,
            200..=299 => self.s2xx += 1,
            300..=399 => self.s3xx += 1,
            400..=499 => self.s4xx += 1,
            500..=599 => self.s5xx += 1,
            _ => self.other += 1,
        }
    }
}

/// One edge, as shown: the edge table's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeSnapshot {
    pub caller: Caller,
    pub callee: String,
    /// `http` or `tcp`: what the last record on this edge was.
    pub protocol: String,
    /// Requests (HTTP) or connections (TCP) since the start.
    pub requests: u64,
    pub errors: u64,
    /// Requests per second over the last 10 s and the last minute.
    pub rate_10s: f64,
    pub rate_1m: f64,
    /// Errors / requests over the last minute (0 when idle).
    pub error_rate_1m: f64,
    /// Latency percentiles over the last minute, in milliseconds (None when idle).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub status: StatusClasses,
}

/// One callee, summed over its callers: the service list's RPS and error-rate columns and the
/// sparkline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub service: String,
    pub rate_10s: f64,
    pub error_rate_1m: f64,
    /// Requests per second for each of the last 60 seconds, oldest first (the current, partial
    /// second last).
    pub history: Vec<u32>,
}

/// Everything at one moment: edges sorted by rate (busiest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub edges: Vec<EdgeSnapshot>,
    pub services: Vec<ServiceSnapshot>,
}

/// Collects records; shared by every listener of a proxy (and readable from any thread).
pub struct Stats {
    inner: Mutex<Inner>,
    tail: broadcast::Sender<Arc<Record>>,
    start: Instant,
}

struct Inner {
    /// By caller, then callee (looked up without building a key per record).
    edges: HashMap<Caller, HashMap<String, Edge>>,
    /// Edges in `edges`.
    edge_count: usize,
    recent: VecDeque<Arc<Record>>,
}

struct Edge {
    protocol: &'static str,
    requests: u64,
    errors: u64,
    bytes_in: u64,
    bytes_out: u64,
    status: StatusClasses,
    /// Per second, at second % SECONDS: (the second it counts, requests, errors).
    seconds: [(u64, u32, u32); SECONDS],
    /// Per 10-second slot, at slot % SLOTS: the slot it holds and its latencies.
    latency: [Option<(u64, Histogram<u32>)>; SLOTS],
}

impl Edge {
    fn new() -> Edge {
        Edge {
            protocol: "http",
            requests: 0,
            errors: 0,
            bytes_in: 0,
            bytes_out: 0,
            status: StatusClasses::default(),
            // u64::MAX: a second no window contains.
            seconds: [(u64::MAX, 0, 0); SECONDS],
            latency: Default::default(),
        }
    }

    fn add(&mut self, record: &Record, second: u64) {
        let error = record.is_error();
        self.protocol = match record.kind {
            Kind::Http { .. } => "http",
            Kind::Tcp => "tcp",
        };
        self.requests += 1;
        self.errors += u64::from(error);
        self.bytes_in += record.bytes_in;
        self.bytes_out += record.bytes_out;
        self.status.add(&record.kind);
        let counts = &mut self.seconds[(second % SECONDS as u64) as usize];
        if counts.0 != second {
            *counts = (second, 0, 0);
        }
        counts.1 = counts.1.saturating_add(1);
        counts.2 = counts.2.saturating_add(u32::from(error));
        let slot = second / SLOT;
        let entry = &mut self.latency[(slot % SLOTS as u64) as usize];
        match entry {
            Some((held, h)) if *held != slot => {
                h.reset();
                *held = slot;
            }
            Some(_) => {}
            None => {
                let h = Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
                    .expect("valid histogram bounds");
                *entry = Some((slot, h));
            }
        }
        if let Some((_, h)) = entry {
            h.saturating_record(record.latency_us.clamp(1, MAX_LATENCY_US));
        }
    }

    /// Requests and errors in second `s`, if the ring still holds it.
    fn at(&self, s: u64) -> (u32, u32) {
        let (held, r, e) = self.seconds[(s % SECONDS as u64) as usize];
        if held == s { (r, e) } else { (0, 0) }
    }

    /// (requests, errors) over the `n` seconds ending at `second`.
    fn window(&self, second: u64, n: u64) -> (u64, u64) {
        (second.saturating_sub(n - 1)..=second)
            .map(|s| self.at(s))
            .fold((0, 0), |(r, e), (r1, e1)| {
                (r + u64::from(r1), e + u64::from(e1))
            })
    }

    /// Requests in each of the 60 seconds ending at `second`, oldest first.
    fn history(&self, second: u64) -> Vec<u32> {
        (0..SECONDS as u64)
            .rev()
            .map(|ago| second.checked_sub(ago).map_or(0, |s| self.at(s).0))
            .collect()
    }

    /// The latencies of the last minute (the slots ending at `second`'s).
    fn latencies(&self, second: u64) -> Option<Histogram<u32>> {
        let current = second / SLOT;
        let mut merged: Option<Histogram<u32>> = None;
        for (held, h) in self.latency.iter().flatten() {
            if *held > current || current - held >= SLOTS as u64 || h.is_empty() {
                continue;
            }
            match &mut merged {
                Some(m) => m
                    .add(h)
                    .or_say("histograms of one shape always add; a failing one is left out"),
                None => merged = Some(h.clone()),
            }
        }
        merged
    }
}

impl Stats {
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats {
            inner: Mutex::new(Inner {
                edges: HashMap::new(),
                edge_count: 0,
                recent: VecDeque::with_capacity(RECENT),
            }),
            tail: broadcast::channel(1024).0,
            start: Instant::now(),
        })
    }

    /// Count a finished request or connection and pass it to the tail.
    pub fn record(&self, record: Record) {
        self.record_at(record, Instant::now());
    }

    fn record_at(&self, record: Record, now: Instant) {
        let second = self.second(now);
        let record = Arc::new(record);
        {
            let mut inner = self.inner.locked();
            let inner = &mut *inner;
            let known = inner
                .edges
                .get_mut(&record.caller)
                .and_then(|callees| callees.get_mut(record.callee.as_str()));
            if let Some(edge) = known {
                edge.add(&record, second);
            } else if inner.edge_count < MAX_EDGES {
                let mut edge = Edge::new();
                edge.add(&record, second);
                inner
                    .edges
                    .entry(record.caller.clone())
                    .or_default()
                    .insert(record.callee.clone(), edge);
                inner.edge_count += 1;
            }
            if inner.recent.len() == RECENT {
                inner.recent.pop_front();
            }
            inner.recent.push_back(record.clone());
            // Sent under the lock, so that `recent_and_follow` splits the records cleanly; only
            // while someone follows the tail.
            if self.tail.receiver_count() > 0 {
                self.tail
                    .send(record)
                    .or_say("the last follower may have left since they were counted");
            }
        }
    }

    /// Every record from now on. A receiver that falls more than 1024 behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Record>> {
        self.tail.subscribe()
    }

    /// The last (at most [`RECENT`]) records, oldest first.
    pub fn recent(&self) -> Vec<Arc<Record>> {
        let inner = self.inner.locked();
        inner.recent.iter().cloned().collect()
    }

    /// The last `n` (at most [`RECENT`]) records, oldest first, and every record after them:
    /// none is in both, none falls between (as `LogHub::tail_and_follow` does for lines).
    pub fn recent_and_follow(
        &self,
        n: usize,
    ) -> (Vec<Arc<Record>>, broadcast::Receiver<Arc<Record>>) {
        let inner = self.inner.locked();
        let skip = inner.recent.len().saturating_sub(n);
        let recent = inner.recent.iter().skip(skip).cloned().collect();
        (recent, self.tail.subscribe())
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(Instant::now())
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    fn snapshot_at(&self, now: Instant) -> Snapshot {
        let second = self.second(now);
        // Rates over the seconds the window holds (fewer at the start).
        let span_10s = (second + 1).min(10) as f64;
        let span_1m = (second + 1).min(60) as f64;
        let inner = self.inner.locked();
        let mut edges = Vec::with_capacity(inner.edge_count);
        let mut services: HashMap<&str, ServiceSnapshot> = HashMap::new();
        let mut service_1m: HashMap<&str, (u64, u64)> = HashMap::new();
        let all = inner.edges.iter().flat_map(|(caller, callees)| {
            callees.iter().map(move |(callee, e)| (caller, callee, e))
        });
        for (caller, callee, edge) in all {
            let (r10, _) = edge.window(second, 10);
            let (r60, e60) = edge.window(second, 60);
            let merged = edge.latencies(second);
            let percentile = |q: f64| {
                merged
                    .as_ref()
                    .filter(|m| !m.is_empty())
                    .map(|m| m.value_at_quantile(q) as f64 / 1000.0)
            };
            let error_rate = if r60 == 0 {
                0.0
            } else {
                e60 as f64 / r60 as f64
            };
            edges.push(EdgeSnapshot {
                caller: caller.clone(),
                callee: callee.clone(),
                protocol: edge.protocol.to_string(),
                requests: edge.requests,
                errors: edge.errors,
                rate_10s: r10 as f64 / span_10s,
                rate_1m: r60 as f64 / span_1m,
                error_rate_1m: error_rate,
                p50_ms: percentile(0.50),
                p95_ms: percentile(0.95),
                p99_ms: percentile(0.99),
                bytes_in: edge.bytes_in,
                bytes_out: edge.bytes_out,
                status: edge.status.clone(),
            });
            let service = services.entry(callee).or_insert_with(|| ServiceSnapshot {
                service: callee.clone(),
                rate_10s: 0.0,
                error_rate_1m: 0.0,
                history: vec![0; SECONDS],
            });
            service.rate_10s += r10 as f64 / span_10s;
            for (sum, n) in service.history.iter_mut().zip(edge.history(second)) {
                *sum = sum.saturating_add(n);
            }
            let totals = service_1m.entry(callee).or_default();
            totals.0 += r60;
            totals.1 += e60;
        }
        edges.sort_by(|a, b| {
            b.rate_10s
                .total_cmp(&a.rate_10s)
                .then(b.rate_1m.total_cmp(&a.rate_1m))
                .then(b.requests.cmp(&a.requests))
                .then_with(|| (&a.callee, &a.caller).cmp(&(&b.callee, &b.caller)))
        });
        let mut services: Vec<ServiceSnapshot> = services
            .into_iter()
            .map(|(name, mut s)| {
                let (r, e) = service_1m[name];
                s.error_rate_1m = if r == 0 { 0.0 } else { e as f64 / r as f64 };
                s
            })
            .collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        Snapshot { edges, services }
    }
}

/// Microseconds in a duration, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While records keep coming, the recent ones and the follow meet exactly: no record in
    /// both, none missing between them.
    #[test]
    fn recent_and_follow_split_the_records_cleanly() {
        let stats = Stats::new();
        let writer = {
            let stats = stats.clone();
            std::thread::spawn(move || {
                // Fewer after the split than the tail's 1024: the follow can't lag.
                for n in 0..1000 {
                    stats.record(http("a", "b", 200, n));
                }
            })
        };
        while stats.recent().len() < 100 {
            std::thread::yield_now();
        }
        let (recent, mut follow) = stats.recent_and_follow(RECENT);
        writer.join().unwrap();
        let mut seen: Vec<u64> = recent.iter().map(|r| r.latency_us).collect();
        while let Ok(r) = follow.try_recv() {
            seen.push(r.latency_us);
        }
        assert_eq!(seen, (0..1000).collect::<Vec<u64>>(), "in order, each once");
    }

    fn http(caller: &str, callee: &str, status: u16, latency_us: u64) -> Record {
        let mut r = Record::now(
            Caller::Service(caller.into()),
            callee,
            Kind::Http {
                version: "HTTP/1.1".into(),
                method: "GET".into(),
                path: "/".into(),
                status,
                grpc_status: None,
            },
        );
        r.latency_us = latency_us;
        r.bytes_in = 10;
        r.bytes_out = 20;
        r
    }

    #[test]
    fn an_edge_counts_requests_errors_bytes_and_classes() {
        let stats = Stats::new();
        let t = stats.start;
        for i in 0..10 {
            stats.record_at(http("a", "b", if i < 8 { 200 } else { 503 }, 1000), t);
        }
        stats.record_at(http("a", "b", 404, 1000), t);
        let snap = stats.snapshot_at(t + Duration::from_secs(9));
        let e = &snap.edges[0];
        assert_eq!((e.requests, e.errors), (11, 2));
        assert_eq!((e.bytes_in, e.bytes_out), (110, 220));
        assert_eq!((e.status.s2xx, e.status.s4xx, e.status.s5xx), (8, 1, 2));
        assert!((e.rate_1m - 1.1).abs() < 1e-9, "{}", e.rate_1m);
        assert!((e.error_rate_1m - 2.0 / 11.0).abs() < 1e-9);
    }

    #[test]
    fn rates_and_latencies_cover_only_their_window() {
        let stats = Stats::new();
        let t = stats.start;
        for _ in 0..100 {
            stats.record_at(http("a", "b", 200, 5_000), t);
        }
        let at = |s| t + Duration::from_secs(s);
        for _ in 0..20 {
            stats.record_at(http("a", "b", 200, 1_000), at(55));
        }
        let snap = stats.snapshot_at(at(59));
        let e = &snap.edges[0];
        assert_eq!(e.rate_10s, 2.0);
        assert!((e.rate_1m - 2.0).abs() < 1e-9);
        // hdrhistogram's 2 significant digits: within 1%.
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() <= want / 100.0);
        assert!(near(e.p99_ms, 5.0), "{:?}", e.p99_ms);
        // A minute later the first burst is out of every window; the total stays.
        let snap = stats.snapshot_at(at(65));
        let e = &snap.edges[0];
        assert_eq!(e.requests, 120);
        assert!((e.rate_1m - 20.0 / 60.0).abs() < 1e-9);
        assert!(near(e.p50_ms, 1.0) && near(e.p99_ms, 1.0), "{e:?}");
        let history = &snap.services[0].history;
        assert_eq!(history.len(), 60);
        assert_eq!(history[59 - 10], 20);
        assert_eq!(history.iter().map(|&n| n as u64).sum::<u64>(), 20);
        // Long idle: nothing in the windows, no percentiles.
        let snap = stats.snapshot_at(at(1000));
        let e = &snap.edges[0];
        assert_eq!((e.rate_10s, e.rate_1m, e.p50_ms), (0.0, 0.0, None));
    }

    #[test]
    fn edges_are_sorted_by_rate_and_the_ring_is_bounded() {
        let stats = Stats::new();
        let t = stats.start;
        stats.record_at(http("a", "quiet", 200, 10), t);
        for _ in 0..(RECENT + 5) {
            stats.record_at(http("a", "busy", 200, 10), t);
        }
        let snap = stats.snapshot_at(t);
        let order: Vec<&str> = snap.edges.iter().map(|e| e.callee.as_str()).collect();
        assert_eq!(order, ["busy", "quiet"]);
        assert_eq!(stats.recent().len(), RECENT);
        let json = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn grpc_non_ok_and_transport_errors_are_errors() {
        let mut r = http("a", "b", 200, 1);
        assert!(!r.is_error());
        if let Kind::Http { grpc_status, .. } = &mut r.kind {
            *grpc_status = Some(14);
        }
        assert!(r.is_error());
        let mut t = Record::now(Caller::External, "b", Kind::Tcp);
        assert!(!t.is_error());
        t.error = Some(ErrorKind::Reset);
        assert!(t.is_error());
    }

    #[test]
    fn long_paths_are_cut() {
        let long = "é".repeat(1000);
        let cut = bounded_path(long.clone());
        assert!(cut.len() <= MAX_PATH + "…".len());
        assert!(cut.ends_with('…'));
    }
}
