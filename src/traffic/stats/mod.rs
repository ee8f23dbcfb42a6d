//! What the proxy saw: one [`Record`] per HTTP request or TCP connection, folded into per-edge
//! (caller → callee) counters, a ring of recent records and a broadcast for a live tail.
//!
//! Memory is bounded however long a stack runs: an edge keeps 60 one-second counters and six
//! ten-second latency histograms (the last minute), the ring keeps [`RECENT`] records, and the
//! edges themselves are bounded by the callers (services, `external`, `unknown`) × the callees.
//!
//! The parts: [`Record`] and its kinds (`record.rs`), an edge's counters and histograms
//! (`edge.rs`), the [`Snapshot`] (`snapshot.rs`); here, the [`Stats`] store with its edges, its
//! ring of recent records and its tail.

mod edge;
mod groups;
mod record;
mod snapshot;

pub use edge::StatusClasses;
pub use groups::GroupSnapshot;
pub use record::{
    Decoded, ErrorKind, Kind, Record, bounded_path, method_name, micros, version_name,
};
pub use snapshot::{EdgeSnapshot, ServiceSnapshot, Snapshot};

use super::Caller;
use super::capture::{self, Bounds, Capture, Held, Inspected, Store};
use super::decode::Resend;
use crate::ignored::Ignore;
use crate::sync::Locked;
use edge::Edge;
use prost_reflect::DescriptorPool;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast;

/// Records kept for the tail shown on request (the live tail is the broadcast).
pub const RECENT: usize = 1000;
/// Edges beyond this are not tracked (only reachable with a huge number of services).
const MAX_EDGES: usize = 4096;

/// Collects records; shared by every listener of a proxy (and readable from any thread).
pub struct Stats {
    inner: Mutex<Inner>,
    /// The addresses devstack's own replays connect from (`traffic replay`): their caller is
    /// `replay`.
    replays: Mutex<Vec<std::net::SocketAddr>>,
    tail: broadcast::Sender<Arc<Record>>,
    start: Instant,
    /// The schemas each callee's gRPC messages are shown with.
    protos: Mutex<HashMap<String, DescriptorPool>>,
    /// The faults set on the stack's edges.
    faults: crate::traffic::fault::Faults,
}

struct Inner {
    /// The last record's id.
    last_id: u64,
    /// What was captured of the recent exchanges.
    captures: Store,
    /// By caller, then callee (looked up without building a key per record).
    edges: HashMap<Caller, HashMap<String, Edge>>,
    /// Edges in `edges`.
    edge_count: usize,
    recent: VecDeque<Arc<Record>>,
}

impl Stats {
    pub fn new() -> Arc<Stats> {
        Stats::with_bounds(Bounds::default())
    }

    /// Stats keeping captured exchanges within `bounds`.
    pub fn with_bounds(bounds: Bounds) -> Arc<Stats> {
        Arc::new(Stats {
            inner: Mutex::new(Inner {
                last_id: 0,
                captures: Store::new(bounds),
                edges: HashMap::new(),
                edge_count: 0,
                recent: VecDeque::with_capacity(RECENT),
            }),
            replays: Mutex::new(Vec::new()),
            tail: broadcast::channel(1024).0,
            start: Instant::now(),
            protos: Mutex::new(HashMap::new()),
            faults: Default::default(),
        })
    }

    /// Count a finished request or connection and pass it to the tail.
    pub fn record(&self, record: Record) {
        self.record_at(record, None, Instant::now());
    }

    /// … with what was captured of it (an HTTP exchange's capture, what a replay needs of a
    /// decoded one), kept by the store.
    pub fn record_captured(&self, record: Record, capture: Option<impl Into<Held>>) {
        self.record_at(record, capture.map(Into::into), Instant::now());
    }

    fn record_at(&self, mut record: Record, capture: Option<Held>, now: Instant) {
        let second = self.second(now);
        {
            let mut inner = self.inner.locked();
            let inner = &mut *inner;
            inner.last_id += 1;
            record.id = inner.last_id;
            let record = Arc::new(record);
            if let Some(capture) = capture {
                inner.captures.keep(record.clone(), capture);
            }
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

    /// A connection from `from` is a replay (until `replayed`).
    pub fn replaying(&self, from: std::net::SocketAddr) {
        self.replays.locked().push(from);
    }

    pub fn replayed(&self, from: std::net::SocketAddr) {
        self.replays.locked().retain(|a| *a != from);
    }

    /// Does a connection from `peer` replay a request?
    pub fn is_replay(&self, peer: std::net::SocketAddr) -> bool {
        let replays = self.replays.locked();
        !replays.is_empty() && replays.contains(&peer)
    }

    /// A kept exchange as it was captured (its secrets too: for a replay, never shown).
    pub fn kept(&self, id: u64) -> Option<(Arc<Record>, Arc<Capture>)> {
        self.inner.locked().captures.get(id)
    }

    /// What a replay needs of a kept decoded command or query.
    pub fn resend(&self, id: u64) -> Option<(Arc<Record>, Arc<Resend>)> {
        match self.inner.locked().captures.held(id)? {
            (record, Held::Decoded(resend)) => Some((record, resend)),
            _ => None,
        }
    }

    /// The record of an exchange kept (HTTP or decoded).
    pub fn kept_record(&self, id: u64) -> Option<Arc<Record>> {
        self.inner
            .locked()
            .captures
            .held(id)
            .map(|(record, _)| record)
    }

    /// A recent record (among the last [`RECENT`]).
    pub fn recent_record(&self, id: u64) -> Option<Arc<Record>> {
        let inner = self.inner.locked();
        let at = inner.recent.binary_search_by_key(&id, |r| r.id).ok()?;
        Some(inner.recent[at].clone())
    }

    /// The faults set on the stack's edges (what the proxy does to a request instead of, or
    /// before, relaying it).
    pub fn faults(&self) -> &crate::traffic::fault::Faults {
        &self.faults
    }

    /// `service`'s gRPC messages are shown with `protos` (its `proto` in `capture`).
    pub fn describe(&self, service: &str, protos: DescriptorPool) {
        self.protos.locked().insert(service.to_string(), protos);
    }

    /// The schemas `service`'s gRPC messages are shown with (a copy shares what it holds).
    fn protos(&self, service: &str) -> Option<DescriptorPool> {
        self.protos.locked().get(service).cloned()
    }

    /// The last record's id (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.inner.locked().last_id
    }

    /// The exchange with this id, readable, while it is kept.
    pub fn inspect(&self, id: u64) -> Option<Inspected> {
        let inner = self.inner.locked();
        if let Some((record, capture)) = inner.captures.get(id) {
            drop(inner);
            let protos = self.protos(&record.callee);
            return Some(capture::view::inspect(&record, &capture, protos.as_ref()));
        }
        // A decoded command or query is its record (among the recent ones).
        let at = inner.recent.binary_search_by_key(&id, |r| r.id).ok()?;
        capture::view::decoded(&inner.recent[at])
    }

    /// The last `n` kept exchanges of these services (all when empty), oldest first, readable.
    pub fn inspect_recent(&self, services: &[String], n: usize) -> Vec<Inspected> {
        let entries = self.inner.locked().captures.recent(services, n);
        entries
            .iter()
            .map(|(record, capture)| {
                let protos = self.protos(&record.callee);
                capture::view::inspect(record, capture, protos.as_ref())
            })
            .collect()
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

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            stats.record_at(http("a", "b", if i < 8 { 200 } else { 503 }, 1000), None, t);
        }
        stats.record_at(http("a", "b", 404, 1000), None, t);
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
            stats.record_at(http("a", "b", 200, 5_000), None, t);
        }
        let at = |s| t + Duration::from_secs(s);
        for _ in 0..20 {
            stats.record_at(http("a", "b", 200, 1_000), None, at(55));
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
        stats.record_at(http("a", "quiet", 200, 10), None, t);
        for _ in 0..(RECENT + 5) {
            stats.record_at(http("a", "busy", 200, 10), None, t);
        }
        let snap = stats.snapshot_at(t);
        let order: Vec<&str> = snap.edges.iter().map(|e| e.callee.as_str()).collect();
        assert_eq!(order, ["busy", "quiet"]);
        assert_eq!(stats.recent().len(), RECENT);
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
}
