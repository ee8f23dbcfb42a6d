//! What the proxy keeps of each exchange beyond its [`Record`](super::Record), for the
//! inspector, `traffic show`, `curl`, HAR and replay: the request's and the response's heads as
//! they went through, the first bytes of each body (up to a cap per body, the rest counted), and
//! timings. The relay fills a [`Capture`] while an exchange passes (a copy into a bounded buffer
//! is all the hot path pays); the [`Store`] keeps the recent ones, bounded by count and bytes
//! per service and overall; [`view`] makes them readable (heads split into fields, bodies
//! de-chunked and decompressed by `body.rs`, gRPC messages by [`grpc`], secrets redacted) and
//! [`har`] and [`curl`] write them out.
//!
//! Nothing is written to disk: what is kept lives as long as the stack, within its bounds.

mod body;
pub mod curl;
pub mod grpc;
pub mod har;
mod store;
pub mod text;
pub mod view;
pub mod websocket;

pub use crate::config::capture::Bounds;
pub use store::{Held, Store};
pub use view::{Inspected, Shown};

use bytes::Bytes;
use std::time::{Duration, Instant};

/// How one service's exchanges are captured (`capture` in `devstack.toml`).
pub use crate::config::capture::Capture as Settings;

/// The first bytes of a body as they went through (chunked framing included), and how many
/// went through in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    pub bytes: Vec<u8>,
    /// Bytes seen in all (more than kept when the body was cut).
    pub seen: u64,
    /// The most kept.
    cap: usize,
}

impl Kept {
    pub fn new(cap: usize) -> Kept {
        Kept {
            cap,
            ..Kept::default()
        }
    }

    /// Take what fits of `bytes`; count them all.
    pub fn add(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        let room = self.cap.saturating_sub(self.bytes.len());
        if room > 0 {
            self.bytes
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    pub fn cut(&self) -> bool {
        self.seen > self.bytes.len() as u64
    }
}

/// The response side of an exchange being captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    started: Instant,
    /// The final response's head as the caller got it (empty: none came; made by the proxy
    /// when it answered itself).
    pub head: Bytes,
    pub body: Kept,
    /// HTTP/2 trailers (gRPC's status and message), as `head_text("", trailers)`.
    pub trailers: Bytes,
    /// From the request's head to the response's first byte.
    pub first_byte: Option<Duration>,
}

impl Answer {
    /// The response's head came (a later one, after a 1xx, replaces it).
    pub fn head(&mut self, head: &[u8]) {
        if self.first_byte.is_none() {
            self.first_byte = Some(self.started.elapsed());
        }
        self.head = Bytes::copy_from_slice(head);
        self.body = Kept::new(self.body.cap);
    }

    /// The proxy answered the caller itself with `bytes` (head and body).
    pub fn made(&mut self, bytes: &[u8]) {
        let split = memchr::memmem::find(bytes, b"\r\n\r\n").map_or(bytes.len(), |i| i + 4);
        self.head = Bytes::copy_from_slice(&bytes[..split]);
        self.body = Kept::new(self.body.cap);
        self.body.add(&bytes[split..]);
    }
}

/// An HTTP/2 head (hyper's, parsed already) written as HTTP/1's text, the form the store keeps:
/// `start` line, then a `name: value` line per field, then a blank line.
pub fn head_text(start: &str, fields: &hyper::HeaderMap) -> Bytes {
    let mut text = Vec::with_capacity(start.len() + 2 + fields.len() * 32);
    text.extend_from_slice(start.as_bytes());
    text.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"\r\n");
    text.into()
}

/// One exchange being captured by the relay, then kept by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Show secrets redacted.
    pub redact: bool,
    /// The request's head, as the caller sent it.
    pub request_head: Bytes,
    pub request_body: Kept,
    pub answer: Answer,
    /// Waiting for a connection to the service (None: a kept-alive one was used).
    pub connect: Option<Duration>,
    /// An upgraded WebSocket's frames.
    pub websocket: Option<websocket::Frames>,
}

impl Capture {
    /// An exchange starting now with this request head (None when capture is off).
    pub fn start(settings: Settings, request_head: &Bytes) -> Option<Capture> {
        settings.on.then(|| Capture {
            redact: settings.redact,
            // A copy, not a share: the head's bytes are a slice of the connection's read
            // buffer, which a shared `Bytes` would keep whole (16 KiB an exchange, not counted
            // by the store's bounds) and make the relay allocate anew for every request.
            request_head: Bytes::copy_from_slice(request_head),
            request_body: Kept::new(settings.body),
            answer: Answer {
                started: Instant::now(),
                head: Bytes::new(),
                body: Kept::new(settings.body),
                trailers: Bytes::new(),
                first_byte: None,
            },
            connect: None,
            websocket: None,
        })
    }

    /// Memory it holds, for the store's bounds.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Capture>()
            + self.request_head.len()
            + self.request_body.bytes.capacity()
            + self.answer.head.len()
            + self.answer.body.bytes.capacity()
            + self.answer.trailers.len()
            + self.websocket.as_ref().map_or(0, websocket::Frames::size)
    }

    /// The request asked to become a WebSocket.
    pub fn asks_websocket(&self) -> bool {
        memchr::memmem::find(&self.request_head.to_ascii_lowercase(), b"websocket").is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_keeps_what_fits_under_its_cap_and_counts_the_rest() {
        let mut kept = Kept::new(8);
        kept.add(b"hello ");
        kept.add(b"world");
        assert_eq!(kept.bytes, b"hello wo");
        assert_eq!(kept.seen, 11);
        assert!(kept.cut());
        let mut whole = Kept::new(8);
        whole.add(b"abc");
        assert!(!whole.cut());
    }

    #[test]
    fn capture_off_keeps_nothing_and_a_made_answer_is_split_into_head_and_body() {
        let head = Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n");
        let off = Settings {
            on: false,
            ..Settings::default()
        };
        assert!(Capture::start(off, &head).is_none());
        let mut c = Capture::start(Settings::default(), &head).unwrap();
        c.answer
            .made(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 4\r\n\r\ngone");
        assert_eq!(
            &c.answer.head[..],
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 4\r\n\r\n"
        );
        assert_eq!(c.answer.body.bytes, b"gone");
    }
}
