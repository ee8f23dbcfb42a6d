//! One edge (caller → callee) of the traffic: its counters since the start, its classes of
//! status, 60 one-second counters of requests and errors (the 1-minute rate and the sparkline)
//! and six ten-second latency histograms (hdrhistogram: the last minute's percentiles). Its
//! memory stays the same however long the stack runs.

use super::{Kind, Record};
use crate::ignored::Ignore;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Seconds of per-second counters an edge keeps (the 1-minute rate and the sparkline).
pub(super) const SECONDS: usize = 60;
/// Latency histograms per edge, each covering `SLOT` seconds: together the last minute.
const SLOTS: usize = 6;
const SLOT: u64 = 10;
/// Latencies are recorded in microseconds up to a minute, to 2 significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

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
            Kind::Tcp | Kind::Redis(_) | Kind::Postgres(_) => 0,
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

/// One edge's counters.
pub(super) struct Edge {
    pub(super) protocol: &'static str,
    pub(super) requests: u64,
    pub(super) errors: u64,
    /// Requests a fault touched (their errors are not the service's: not in `errors`).
    pub(super) injected: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) status: StatusClasses,
    /// Its decoded commands and queries, by group.
    pub(super) groups: super::groups::Groups,
    /// Per second, at second % SECONDS: (the second it counts, requests, errors).
    seconds: [(u64, u32, u32); SECONDS],
    /// Per 10-second slot, at slot % SLOTS: the slot it holds and its latencies.
    latency: [Option<(u64, Histogram<u32>)>; SLOTS],
}

impl Edge {
    pub(super) fn new() -> Edge {
        Edge {
            protocol: "http",
            requests: 0,
            errors: 0,
            injected: 0,
            bytes_in: 0,
            bytes_out: 0,
            status: StatusClasses::default(),
            groups: Default::default(),
            // u64::MAX: a second no window contains.
            seconds: [(u64::MAX, 0, 0); SECONDS],
            latency: Default::default(),
        }
    }

    pub(super) fn add(&mut self, record: &Record, second: u64) {
        // A fault's doing is counted apart: the service's error rate stays its own.
        let error = record.is_error() && record.injected.is_none();
        self.injected += u64::from(record.injected.is_some());
        self.protocol = match record.kind {
            Kind::Http { .. } => "http",
            Kind::Tcp => "tcp",
            Kind::Redis(_) => "redis",
            Kind::Postgres(_) => "postgres",
        };
        self.requests += 1;
        self.errors += u64::from(error);
        self.bytes_in += record.bytes_in;
        self.bytes_out += record.bytes_out;
        self.status.add(&record.kind);
        if let Kind::Redis(d) | Kind::Postgres(d) = &record.kind {
            self.groups.add(&d.group, error, record.latency_us);
        }
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
    pub(super) fn window(&self, second: u64, n: u64) -> (u64, u64) {
        (second.saturating_sub(n - 1)..=second)
            .map(|s| self.at(s))
            .fold((0, 0), |(r, e), (r1, e1)| {
                (r + u64::from(r1), e + u64::from(e1))
            })
    }

    /// Requests in each of the 60 seconds ending at `second`, oldest first.
    pub(super) fn history(&self, second: u64) -> Vec<u32> {
        (0..SECONDS as u64)
            .rev()
            .map(|ago| second.checked_sub(ago).map_or(0, |s| self.at(s).0))
            .collect()
    }

    /// The latencies of the last minute (the slots ending at `second`'s).
    pub(super) fn latencies(&self, second: u64) -> Option<Histogram<u32>> {
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
