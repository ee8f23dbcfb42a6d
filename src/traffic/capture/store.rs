//! The recent exchanges, kept per service (the callee), bounded by count and bytes per service
//! and by bytes overall: past a bound, a service's oldest go first (past the overall one, the
//! oldest of all). Found by the record's id. An HTTP exchange is kept as its [`Capture`]; a
//! decoded Redis command or PostgreSQL query as what a replay needs of it ([`Resend`]), under
//! the same bounds.

use super::{Bounds, Capture};
use crate::traffic::Record;
use crate::traffic::decode::Resend;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One kept exchange: its record (id, caller, timings, status) and what was captured of it.
pub type Entry = (Arc<Record>, Arc<Capture>);

/// What is kept of an exchange.
#[derive(Debug, Clone)]
pub enum Held {
    Http(Arc<Capture>),
    Decoded(Arc<Resend>),
}

impl From<Capture> for Held {
    fn from(capture: Capture) -> Held {
        Held::Http(Arc::new(capture))
    }
}

impl From<Arc<Resend>> for Held {
    fn from(resend: Arc<Resend>) -> Held {
        Held::Decoded(resend)
    }
}

impl Held {
    fn size(&self) -> usize {
        match self {
            Held::Http(capture) => capture.size(),
            Held::Decoded(resend) => resend.size(),
        }
    }
}

#[derive(Default)]
struct Service {
    /// Oldest first (ids rising).
    entries: VecDeque<((Arc<Record>, Held), usize)>,
    bytes: usize,
}

/// The recent exchanges of every service.
#[derive(Default)]
pub struct Store {
    bounds: Bounds,
    services: HashMap<String, Service>,
    bytes: usize,
}

impl Store {
    pub fn new(bounds: Bounds) -> Store {
        Store {
            bounds,
            ..Store::default()
        }
    }

    /// Keep an exchange, letting the oldest go past the bounds.
    pub fn keep(&mut self, record: Arc<Record>, held: impl Into<Held>) {
        let held = held.into();
        let size = held.size() + std::mem::size_of::<Record>() + record.callee.len();
        let bounds = self.bounds;
        if !self.services.contains_key(record.callee.as_str()) {
            self.services
                .insert(record.callee.clone(), Service::default());
        }
        let Some(service) = self.services.get_mut(record.callee.as_str()) else {
            return;
        };
        service.entries.push_back(((record, held), size));
        service.bytes += size;
        self.bytes += size;
        while service.entries.len() > bounds.exchanges || service.bytes > bounds.service_bytes {
            let Some((_, gone)) = service.entries.pop_front() else {
                break;
            };
            service.bytes -= gone;
            self.bytes -= gone;
        }
        while self.bytes > bounds.total_bytes {
            let oldest = self
                .services
                .values_mut()
                .filter(|s| !s.entries.is_empty())
                .min_by_key(|s| s.entries.front().map(|((r, _), _)| r.id));
            let Some(service) = oldest else { break };
            if let Some((_, gone)) = service.entries.pop_front() {
                service.bytes -= gone;
                self.bytes -= gone;
            }
        }
    }

    /// What is kept of the exchange with this record id, if it still is.
    pub fn held(&self, id: u64) -> Option<(Arc<Record>, Held)> {
        self.services.values().find_map(|s| {
            let at = s
                .entries
                .binary_search_by_key(&id, |((r, _), _)| r.id)
                .ok()?;
            Some(s.entries[at].0.clone())
        })
    }

    /// The HTTP exchange with this record id, if it is still kept.
    pub fn get(&self, id: u64) -> Option<Entry> {
        match self.held(id)? {
            (record, Held::Http(capture)) => Some((record, capture)),
            _ => None,
        }
    }

    /// The last `n` HTTP exchanges of these services (all when empty), oldest first.
    pub fn recent(&self, services: &[String], n: usize) -> Vec<Entry> {
        let mut all: Vec<Entry> = self
            .services
            .iter()
            .filter(|(name, _)| services.is_empty() || services.contains(name))
            .flat_map(|(_, s)| s.entries.iter())
            .filter_map(|((record, held), _)| match held {
                Held::Http(capture) => Some((record.clone(), capture.clone())),
                Held::Decoded(_) => None,
            })
            .collect();
        all.sort_by_key(|(r, _)| r.id);
        let skip = all.len().saturating_sub(n);
        all.split_off(skip)
    }

    /// Bytes held, for the bounds' tests.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Caller, Kind};
    use bytes::Bytes;

    fn exchange(id: u64, callee: &str, body: usize) -> (Arc<Record>, Capture) {
        let mut record = Record::now(Caller::External, callee, Kind::Tcp);
        record.id = id;
        let head = Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n");
        let mut capture = Capture::start(super::super::Settings::default(), &head).unwrap();
        capture.request_body.add(&vec![b'x'; body]);
        (Arc::new(record), capture)
    }

    #[test]
    fn a_service_keeps_its_last_exchanges_within_its_count_and_bytes() {
        let mut store = Store::new(Bounds {
            exchanges: 3,
            service_bytes: 1 << 20,
            total_bytes: 1 << 30,
        });
        for id in 1..=5 {
            let (r, c) = exchange(id, "api", 10);
            store.keep(r, c);
        }
        let ids: Vec<u64> = store.recent(&[], 10).iter().map(|(r, _)| r.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert!(store.get(2).is_none());
        assert_eq!(store.get(4).unwrap().0.id, 4);

        let mut small = Store::new(Bounds {
            exchanges: 1000,
            service_bytes: 3000,
            total_bytes: 1 << 30,
        });
        for id in 1..=10 {
            let (r, c) = exchange(id, "api", 1000);
            small.keep(r, c);
        }
        assert!(small.bytes() <= 3000, "{}", small.bytes());
        assert_eq!(small.recent(&[], 10).last().unwrap().0.id, 10);
    }

    #[test]
    fn a_decoded_exchange_is_kept_under_the_same_bounds_apart_from_the_http_ones() {
        use crate::traffic::decode::resend::Command;
        let mut store = Store::new(Bounds {
            exchanges: 1000,
            service_bytes: 3000,
            total_bytes: 1 << 30,
        });
        let (http, capture) = exchange(1, "db", 0);
        store.keep(http, capture);
        for id in 2..=4 {
            let mut record = Record::now(Caller::External, "db", Kind::Tcp);
            record.id = id;
            let args = vec![b"GET".to_vec(), vec![b'k'; 1000]];
            let resend = Arc::new(Resend::Redis(Command { args, db: None }));
            store.keep(Arc::new(record), resend);
        }
        assert!(store.bytes() <= 3000, "{}", store.bytes());
        assert!(store.get(1).is_none(), "the oldest went first");
        assert!(matches!(store.held(4), Some((_, Held::Decoded(_)))));
        assert!(store.get(4).is_none(), "not an HTTP exchange");
        assert!(store.recent(&[], 10).is_empty(), "nor among them");
    }

    #[test]
    fn past_the_overall_bound_the_oldest_of_all_go_first() {
        let mut store = Store::new(Bounds {
            exchanges: 1000,
            service_bytes: 1 << 30,
            total_bytes: 5000,
        });
        for id in 1..=20 {
            let callee = if id % 2 == 0 { "a" } else { "b" };
            let (r, c) = exchange(id, callee, 500);
            store.keep(r, c);
        }
        assert!(store.bytes() <= 5000);
        let ids: Vec<u64> = store.recent(&[], 100).iter().map(|(r, _)| r.id).collect();
        assert_eq!(*ids.last().unwrap(), 20);
        // What is left is the newest, of both services.
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
        let only_a: Vec<u64> = store
            .recent(&["a".to_string()], 100)
            .iter()
            .map(|(r, _)| r.id)
            .collect();
        assert!(only_a.iter().all(|id| id % 2 == 0));
    }
}
