//! The [`Snapshot`] of the traffic at one moment, as the dashboard, `devstack traffic` and the
//! socket's `traffic` request show it: each edge's row ([`EdgeSnapshot`]: totals, rates, error
//! rate, latency percentiles), busiest first, and each callee summed over its callers
//! ([`ServiceSnapshot`]: the service list's columns and its sparkline).

use super::Stats;
use super::edge::{SECONDS, StatusClasses};
use crate::sync::Locked;
use crate::traffic::Caller;
use std::collections::HashMap;
use std::time::Instant;

/// One edge, as shown: the edge table's row (on the wire as `control::wire::Edge`).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeSnapshot {
    pub caller: Caller,
    pub callee: String,
    /// `http` or `tcp`: what the last record on this edge was.
    pub protocol: String,
    /// Requests (HTTP) or connections (TCP) since the start.
    pub requests: u64,
    /// The service's own errors (not a fault's doing).
    pub errors: u64,
    /// Requests a fault touched since the start.
    pub injected: u64,
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
    /// Decoded commands and queries by group (Redis, Postgres), busiest first.
    pub groups: Vec<super::GroupSnapshot>,
}

/// One callee, summed over its callers: the service list's RPS and error-rate columns and the
/// sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSnapshot {
    pub service: String,
    pub rate_10s: f64,
    pub error_rate_1m: f64,
    /// Requests per second for each of the last 60 seconds, oldest first (the current, partial
    /// second last).
    pub history: Vec<u32>,
}

/// Everything at one moment: edges sorted by rate (busiest first); on the wire as
/// `control::wire::Traffic`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub edges: Vec<EdgeSnapshot>,
    pub services: Vec<ServiceSnapshot>,
    /// The faults set on the stack's edges, oldest first.
    pub faults: Vec<crate::traffic::fault::Set>,
}

impl Stats {
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(Instant::now())
    }

    pub(super) fn snapshot_at(&self, now: Instant) -> Snapshot {
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
                injected: edge.injected,
                rate_10s: r10 as f64 / span_10s,
                rate_1m: r60 as f64 / span_1m,
                error_rate_1m: error_rate,
                p50_ms: percentile(0.50),
                p95_ms: percentile(0.95),
                p99_ms: percentile(0.99),
                bytes_in: edge.bytes_in,
                bytes_out: edge.bytes_out,
                status: edge.status.clone(),
                groups: edge.groups.snapshot(),
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
        Snapshot {
            edges,
            services,
            faults: self.faults().list(),
        }
    }
}
