//! The connection slots: at most `MAX_CONNECTIONS` connections at once (each costs a file
//! descriptor), of which at most `MAX_STREAMS` stream, so that a few always serve requests. A
//! newcomer past the cap takes the slot of the connection idle the longest, which is told to
//! close; when every one is busy it is refused.

use crate::sync::Locked;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Connections served at once. Past it, the connection idle the longest (waiting for a request)
/// is closed to make room; when every one is busy (streaming), the newcomer is refused.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections that may stream at once; the other slots are kept for requests (`ps` answers even
/// when every stream is taken).
pub const MAX_STREAMS: usize = MAX_CONNECTIONS - 16;

/// The open connections, so that there are never more than `MAX_CONNECTIONS` (each costs a file
/// descriptor, and devstack has a limited number).
#[derive(Default)]
pub(super) struct Slots {
    inner: Mutex<SlotsInner>,
    next: AtomicU64,
}

#[derive(Default)]
struct SlotsInner {
    open: HashMap<u64, SlotState>,
    /// Connections streaming (`logs` with `follow`, `subscribe`): at most `MAX_STREAMS`, so that
    /// a few slots always serve requests.
    streams: usize,
}

struct SlotState {
    /// Waiting for a request since then; None while serving one.
    idle_since: Option<Instant>,
    streaming: bool,
    close: Arc<Notify>,
}

/// A connection's place among the open ones; given back when dropped.
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    /// Notified when the connection is to close, to make room for a new one.
    pub(super) close: Arc<Notify>,
}

impl Slots {
    /// A place for a new connection: a free one, or the one of the connection idle the longest,
    /// which is told to close. None when every connection is busy.
    pub(super) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.inner.locked();
        if inner.open.len() >= MAX_CONNECTIONS {
            let oldest = inner
                .open
                .iter()
                .filter_map(|(id, s)| Some((*id, s.idle_since?)))
                .min_by_key(|(_, since)| *since)?
                .0;
            let evicted = inner.open.remove(&oldest).expect("found above");
            evicted.close.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        inner.open.insert(
            id,
            SlotState {
                // It has sent no request yet (its task may not even have run).
                idle_since: Some(Instant::now()),
                streaming: false,
                close: close.clone(),
            },
        );
        Some(Slot {
            slots: self.clone(),
            id,
            close,
        })
    }
}

impl Slot {
    pub(super) fn idle(&self, idle: bool) {
        let mut inner = self.slots.inner.locked();
        if let Some(s) = inner.open.get_mut(&self.id) {
            s.idle_since = idle.then(Instant::now);
        }
    }

    /// Make this connection a stream, if there is room for one more.
    pub(super) fn stream(&self) -> Result<(), String> {
        let mut inner = self.slots.inner.locked();
        if inner.streams >= MAX_STREAMS {
            return Err(format!(
                "too many streams: {MAX_STREAMS} connections follow logs or subscribe; close some"
            ));
        }
        if let Some(s) = inner.open.get_mut(&self.id)
            && !s.streaming
        {
            s.streaming = true;
            inner.streams += 1;
        }
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.inner.locked();
        if inner.open.remove(&self.id).is_some_and(|s| s.streaming) {
            inner.streams -= 1;
        }
    }
}
