//! What the dashboard's traffic pane and the list's RPS and error columns show: the edge table
//! (refreshed every second) and the tail of recent requests (each as it ends), fed by the proxy's
//! `Stats` in this process, or by the control socket's `traffic` request on an attached
//! dashboard. Either way the feed wakes the dashboard only when something changed.

use super::Wake;
use crate::control::Message;
use crate::control::client::Client;
use crate::ignored::Ignore;
use crate::sync::{Locked, Unpoisoned};
use crate::traffic::{Record, Snapshot, Stats};
use std::collections::VecDeque;
use std::path::Path;
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

    /// From a stack answering on `socket`, on threads of its own: a `traffic` follow for the
    /// tail, and a `traffic` request every second for the table while requests come and their
    /// rates fade (a stack without traffic is asked nothing).
    pub fn remote(socket: &Path, wake: Arc<Wake>) -> Feed {
        let feed = Feed::default();
        let calls = Arc::new(LastCall::default());
        let follow = (
            feed.clone(),
            socket.to_path_buf(),
            wake.clone(),
            calls.clone(),
        );
        std::thread::Builder::new()
            .name("traffic-tail".into())
            .spawn(move || follow_tail(follow.0, &follow.1, &follow.2, &follow.3))
            .or_say("without its thread, the traffic pane shows no requests");
        let table = (feed.clone(), socket.to_path_buf());
        std::thread::Builder::new()
            .name("traffic-table".into())
            .spawn(move || poll_table(table.0, &table.1, &wake, &calls))
            .or_say("without its thread, the traffic pane shows no table");
        feed
    }
}

fn connect(socket: &Path) -> Option<Client> {
    let mut c = Client::connect(socket).ok()?;
    c.hello().ok()?;
    Some(c)
}

/// When the last request through the proxy ended, as the tail heard of it.
#[derive(Default)]
struct LastCall {
    at: std::sync::Mutex<Option<std::time::Instant>>,
    heard: std::sync::Condvar,
}

/// A table stays alive this long after the last request: its rates (over a minute) and the
/// sparklines fade to nothing meanwhile.
const FADE: Duration = Duration::from_secs(70);

impl LastCall {
    fn now(&self) {
        *self.at.locked() = Some(std::time::Instant::now());
        self.heard.notify_all();
    }

    /// Until a request ended less than `FADE` ago.
    fn wait_recent(&self) {
        let mut at = self.at.locked();
        while at.is_none_or(|t| t.elapsed() > FADE) {
            at = self.heard.wait(at).unpoisoned();
        }
    }
}

fn follow_tail(feed: Feed, socket: &Path, wake: &Wake, calls: &LastCall) {
    let Some(mut c) = connect(socket) else { return };
    let Ok((_, recent)) = c.traffic(TAIL, true) else {
        return;
    };
    if !recent.is_empty() {
        calls.now(); // rates that are still fading
    }
    feed.write(|seen| seen.tail.extend(recent.into_iter().map(Arc::new)));
    wake.now();
    while let Ok(Some(message)) = c.next_message() {
        match message {
            Message::Call { call } => {
                feed.write(|seen| seen.push(Arc::new(call.into())));
                calls.now();
                wake.now();
            }
            Message::End(_) => return,
            _ => {}
        }
    }
}

fn poll_table(feed: Feed, socket: &Path, wake: &Wake, calls: &LastCall) {
    let Some(mut c) = connect(socket) else { return };
    while let Ok((snapshot, _)) = c.traffic(0, false) {
        if feed.write(|seen| seen.set(snapshot)) {
            wake.now();
        }
        std::thread::sleep(EVERY);
        calls.wait_recent();
    }
}
