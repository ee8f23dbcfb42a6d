//! Inter-service traffic: a proxy in front of each service's port that forwards every connection
//! to the service's private port and records who called whom, how often, how fast and how badly.
//!
//! - [`proxy`]: the listeners ([`Proxy::start`], [`Proxy::listen`] with a [`Route`]) on a
//!   runtime of their own; raw TCP forwarding.
//! - `limits`: what the proxy bounds (connections per route, head and idle timeouts, notices,
//!   the memory of a burst).
//! - `sniff`: telling HTTP/1, h2c and anything else apart from the first bytes.
//! - `h1`: HTTP/1.x relayed as bytes (`h1::message`: heads parsed with httparse, bodies framed;
//!   `h1::chunked`: where a chunked body ends), one record per request, upgrades passed through.
//! - `http`: h2c (and gRPC) through hyper, one record per request.
//! - [`caller`]: which service a connection comes from (`/proc` on Linux), by [`Sessions`].
//! - [`stats`]: per-edge counters, rates, latency percentiles, the recent ring and the tail.
//! - [`capture`]: what is kept of each exchange (heads, capped bodies, timings) for the
//!   inspector, `traffic show`, `curl` and HAR.

pub mod caller;
pub mod capture;
pub mod decode;
pub mod fault;
pub mod grpc;
pub mod h1;
mod http;
mod limits;
pub mod proxy;
pub mod replay;
pub mod sniff;
pub mod stats;
mod tcp;
pub mod upstream;

pub use caller::{Attributor, Caller, Lookup, Mark, Sessions};
pub use limits::{Limits, Notice};
pub use proxy::{BindError, Listener, Protocol, Proxy, Route, Target};
pub use stats::{EdgeSnapshot, ErrorKind, Kind, Record, ServiceSnapshot, Snapshot, Stats};

use std::sync::Arc;
use std::time::Duration;

/// At most this long is an answer held for its caller to be known (`Recorder::hold`).
const HOLD: Duration = Duration::from_millis(100);

/// One accepted connection: where its requests go and where their records go.
pub(crate) struct Conn {
    pub backend: proxy::Backend,
    pub records: Recorder,
    pub limits: limits::Limits,
    pub capture: capture::Settings,
}

/// Where one connection's records go: into the stats, each once its caller is known (the
/// connection is forwarded while the caller is looked up).
#[derive(Clone)]
pub(crate) struct Recorder {
    caller: Lookup,
    callee: Arc<str>,
    stats: Arc<Stats>,
}

impl Recorder {
    pub fn new(caller: Lookup, callee: Arc<str>, stats: Arc<Stats>) -> Recorder {
        Recorder {
            caller,
            callee,
            stats,
        }
    }

    /// Wait (a little at most) until the caller is known: what the service answers is held
    /// until then, so that a caller that would exit once answered (a `curl`) is still there to
    /// be found. The request went to the service meanwhile; the index answers within a
    /// millisecond unless a stack process holding thousands of files keeps changing them.
    pub async fn hold(&self) {
        if self.caller.now().is_none() {
            self.caller.clone().within(HOLD).await;
        }
    }

    /// What a fault set on this edge does to a request (`method`, `path`) or a connection
    /// (`on`; its method and path empty): None, at once, while no fault is set on the service;
    /// else once the caller is known (within a moment: a fault may be for one caller only).
    pub async fn fault(&self, on: fault::On, method: &str, path: &str) -> Option<fault::Effect> {
        let faults = self.stats.faults();
        if !faults.on(&self.callee, on) {
            return None;
        }
        self.hold().await;
        let caller = self.caller.now().unwrap_or(Caller::Unknown).to_string();
        faults.pick(&fault::Request {
            on,
            caller: &caller,
            callee: &self.callee,
            method,
            path,
        })
    }

    /// Whether any fault is set on the callee that is asked at `on` (the caller need not be
    /// known to tell).
    pub fn asks(&self, on: fault::On) -> bool {
        self.stats.faults().on(&self.callee, on)
    }

    /// The service called.
    pub fn callee(&self) -> &str {
        &self.callee
    }

    /// A record of this connection starting now (its caller is set when it is recorded).
    pub fn start(&self, kind: Kind) -> Record {
        Record::now(Caller::Unknown, &self.callee, kind)
    }

    /// Count a finished record: at once when the caller is known, else once it is.
    pub fn record(&self, record: Record) {
        self.record_captured(record, None::<capture::Held>);
    }

    /// … with what was captured of its exchange (or what a replay needs of a decoded one).
    pub fn record_captured(&self, mut record: Record, capture: Option<impl Into<capture::Held>>) {
        let capture = capture.map(Into::into);
        if let Some(caller) = self.caller.now() {
            record.caller = caller;
            self.stats.record_captured(record, capture);
            return;
        }
        let (mut caller, stats) = (self.caller.clone(), self.stats.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    record.caller = caller.caller().await;
                    stats.record_captured(record, capture);
                });
            }
            Err(_) => stats.record_captured(record, capture),
        }
    }
}
