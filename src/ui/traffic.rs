//! What the dashboard's traffic pane and the list's RPS and error columns show: the edge table
//! (refreshed every second) and the tail of recent requests (each as it ends), fed by the proxy's
//! `Stats` in this process, or, on an attached dashboard, by its `subscribe` stream (which
//! sends the table only when it changed). Either way the dashboard wakes only when something
//! changed.

use super::Wake;
use crate::sync::Locked;
use crate::traffic::{Record, Snapshot, Stats};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests the tail keeps.
pub const TAIL: usize = 500;
/// How often the edge table is refreshed.
const EVERY: Duration = Duration::from_secs(1);

/// The traffic as last seen.
#[derive(Default)]
pub struct Seen {
    pub snapshot: Snapshot,
    /// Oldest first.
    pub tail: VecDeque<Arc<Record>>,
}

impl Seen {
    fn push(&mut self, record: Arc<Record>) {
        while self.tail.len() >= TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(record);
    }

    /// Set the table; whether it changed.
    fn set(&mut self, snapshot: Snapshot) -> bool {
        let changed = snapshot != self.snapshot;
        self.snapshot = snapshot;
        changed
    }
}

/// The dashboard's copy of the stack's traffic.
#[derive(Clone, Default)]
pub struct Feed(Arc<Mutex<Seen>>);

impl Feed {
    pub fn read<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.0.locked())
    }

    fn write<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.0.locked())
    }

    /// From the proxy in this process, on a task of the current runtime.
    pub fn local(stats: Arc<Stats>, wake: Arc<Wake>) -> Feed {
        let feed = Feed::default();
        let (recent, mut calls) = stats.recent_and_follow(TAIL);
        feed.write(|seen| {
            for call in recent {
                seen.push(call);
            }
            seen.snapshot = stats.snapshot();
        });
        let updated = feed.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                let changed = tokio::select! {
                    call = calls.recv() => match call {
                        Ok(call) => {
                            updated.write(|seen| seen.push(call));
                            true
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => false,
                        Err(_) => return,
                    },
                    _ = tick.tick() => updated.write(|seen| seen.set(stats.snapshot())),
                };
                if changed {
                    wake.now();
                }
            }
        });
        feed
    }

    /// A request the proxy of an attached stack recorded (its `subscribe` stream's `call`).
    pub fn heard_call(&self, call: Record) {
        self.write(|seen| seen.push(Arc::new(call)));
    }

    /// An attached stack's edge table (its `subscribe` stream's `table`); whether it changed.
    pub fn heard_table(&self, table: Snapshot) -> bool {
        self.write(|seen| seen.set(table))
    }
}
