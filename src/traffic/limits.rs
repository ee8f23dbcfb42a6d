//! What the proxy bounds, so that no caller can exhaust devstack: connections at once per
//! service (`Limits`, past which a connection is `refuse`d), the HTTP/1 head and idle timeouts,
//! what a listener says about it (`Notice`, at most once in a while: `Said`), and the memory
//! of a burst of connections, given back once it is over (`OpenConnections`).

use super::proxy::{Protocol, Route};
use crate::ignored::Ignore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What one of a route's connections may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once; past it, a new one is closed at once (an HTTP/1 caller is told
    /// why) and the service's log says so.
    pub max_connections: usize,
    /// How long an HTTP/1 request head may take to arrive, from its first byte (the first
    /// request's: from the connection's start): past it, 408 and the connection closes.
    pub head_timeout: Duration,
    /// How long a kept-alive HTTP/1 connection may wait for its next request.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            // nginx's `client_header_timeout` is 60 s: a head is a few hundred bytes, which a
            // local caller sends at once; a slow sender's memory is freed sooner.
            head_timeout: Duration::from_secs(30),
            // nginx's `keepalive_timeout` is 75 s; Node's 5 s.
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What a listener has to say about its service (connections refused at the cap, accepting
/// failing): said in the service's log, each kind at most once in `NOTICE_EVERY`.
pub type Notice = Arc<dyn Fn(String) + Send + Sync>;
const NOTICE_EVERY: Duration = Duration::from_secs(10);

/// Said at most once in `NOTICE_EVERY`.
pub(crate) struct Said(pub Option<Instant>);

impl Said {
    pub fn say(&mut self, route: &Route, text: impl FnOnce() -> String) {
        if self.0.is_some_and(|at| at.elapsed() < NOTICE_EVERY) {
            return;
        }
        self.0 = Some(Instant::now());
        if let Some(notice) = &route.notice {
            notice(text());
        }
    }
}

/// A connection past the cap: an HTTP caller is told why (best effort, never waited for).
pub(crate) fn refuse(stream: TcpStream, route: &Route) {
    // Not to a service said to speak TCP. With `auto` most callers are HTTP, and the others
    // fail either way (a database's client reads a closed connection or a bad greeting).
    if route.protocol != Protocol::Tcp {
        let text = format!(
            "devstack: {} has {} connections open: try again when some have closed\n",
            route.service, route.limits.max_connections
        );
        stream
            .try_write(&super::h1::made_response(503, &text, true, false))
            .or_say("best effort: the connection is closed anyway");
    }
}

/// The proxy's open connections, counted so that the memory of a burst is given back to the
/// system once it is over: glibc's allocator keeps freed memory for reuse (a burst of 5,000
/// connections left 140 MB resident for good); `malloc_trim` returns it.
#[derive(Default)]
pub(crate) struct OpenConnections {
    now: std::sync::atomic::AtomicUsize,
    /// The most open at once since the memory was last given back.
    high: std::sync::atomic::AtomicUsize,
}

/// A burst this large (connections at once) is worth giving its memory back after.
const BURST: usize = 256;

impl OpenConnections {
    pub fn opened(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now.fetch_add(1, Relaxed) + 1;
        self.high.fetch_max(now, Relaxed);
    }

    pub fn closed(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now.fetch_sub(1, Relaxed) - 1;
        let high = self.high.load(Relaxed);
        // Once a burst has mostly ended: one trim (the next needs another burst), off the
        // proxy's thread.
        if high >= BURST
            && now <= high / 8
            && self
                .high
                .compare_exchange(high, now, Relaxed, Relaxed)
                .is_ok()
        {
            tokio::task::spawn_blocking(give_back_memory);
        }
    }
}

/// Return the allocator's free memory to the system (glibc; elsewhere nothing to do).
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
