//! An edge's decoded commands and queries grouped by what they are (a Redis command's name, a
//! normalised SQL query): count, errors and latency percentiles since the start, per group. At
//! most [`MAX_GROUPS`] groups an edge: what comes after is counted under `(other)`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Groups kept per edge.
pub const MAX_GROUPS: usize = 64;
/// Groups a snapshot shows per edge, busiest first.
const SHOWN: usize = 20;
/// What the groups past `MAX_GROUPS` are counted as.
const OTHER: &str = "(other)";
const MAX_LATENCY_US: u64 = 3_600_000_000;

struct Group {
    requests: u64,
    errors: u64,
    latency: Histogram<u32>,
}

/// One group, as shown (on the wire as it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Default)]
pub(super) struct Groups(HashMap<String, Group>);

impl Groups {
    pub(super) fn add(&mut self, group: &str, error: bool, latency_us: u64) {
        let key = match self.0.contains_key(group) || self.0.len() < MAX_GROUPS - 1 {
            true => group,
            false => OTHER,
        };
        if !self.0.contains_key(key) {
            let latency =
                Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds");
            let group = Group {
                requests: 0,
                errors: 0,
                latency,
            };
            self.0.insert(key.to_string(), group);
        }
        if let Some(g) = self.0.get_mut(key) {
            g.requests += 1;
            g.errors += u64::from(error);
            g.latency
                .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
        }
    }

    /// The busiest groups, most requests first.
    pub(super) fn snapshot(&self) -> Vec<GroupSnapshot> {
        let ms = |h: &Histogram<u32>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut shown: Vec<GroupSnapshot> = self
            .0
            .iter()
            .map(|(group, g)| GroupSnapshot {
                group: group.clone(),
                requests: g.requests,
                errors: g.errors,
                p50_ms: ms(&g.latency, 0.5),
                p99_ms: ms(&g.latency, 0.99),
            })
            .collect();
        shown.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.group.cmp(&b.group)));
        shown.truncate(SHOWN);
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_count_errors_and_latency_and_stay_bounded() {
        let mut groups = Groups::default();
        for i in 0..10 {
            groups.add("GET", i == 0, 1000);
        }
        groups.add("SET", false, 3000);
        let shown = groups.snapshot();
        assert_eq!(shown[0].group, "GET");
        assert_eq!((shown[0].requests, shown[0].errors), (10, 1));
        assert!((shown[0].p50_ms - 1.0).abs() < 0.05, "{shown:?}");
        assert_eq!(shown[1].group, "SET");
        for i in 0..200 {
            groups.add(&format!("SELECT {i}"), false, 10);
        }
        assert!(groups.0.len() <= MAX_GROUPS);
        assert!(groups.0["(other)"].requests > 100);
    }
}
