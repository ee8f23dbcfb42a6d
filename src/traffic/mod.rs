//! Inter-service traffic: a proxy in front of each service's port that forwards every connection
//! to the service's private port and records who called whom, how often, how fast and how badly.
//!
//! - [`proxy`]: the listeners ([`Proxy::start`], [`Proxy::listen`] with a [`Route`]) on a
//!   runtime of their own; raw TCP forwarding.
//! - `sniff`: telling HTTP/1, h2c and anything else apart from the first bytes.
//! - `h1`: HTTP/1.x relayed as bytes (`h1::message`: heads parsed with httparse, bodies framed;
//!   `h1::chunked`: where a chunked body ends), one record per request, upgrades passed through.
//! - `http`: h2c (and gRPC) through hyper, one record per request.
//! - [`caller`]: which service a connection comes from (`/proc` on Linux), by [`Sessions`].
//! - [`stats`]: per-edge counters, rates, latency percentiles, the recent ring and the tail.

pub mod caller;
pub mod h1;
mod http;
pub mod proxy;
pub mod sniff;
pub mod stats;

pub use caller::{Attributor, Caller, Sessions};
pub use proxy::{BindError, Listener, Protocol, Proxy, Route, Target};
pub use stats::{EdgeSnapshot, ErrorKind, Kind, Record, ServiceSnapshot, Snapshot, Stats};

use std::sync::Arc;

/// One accepted connection, once its caller is known.
pub(crate) struct Conn {
    pub caller: Caller,
    pub callee: Arc<str>,
    pub backend: proxy::Backend,
    pub stats: Arc<Stats>,
}
