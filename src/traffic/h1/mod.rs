//! HTTP/1.x through the proxy, relayed as bytes: each request and response head is parsed (with
//! `httparse`) for what the record needs and how its body is framed, and forwarded exactly as it
//! came, body bytes streamed through as they arrive (never held whole). One task per caller
//! connection, with its backend connection kept alive beside it; requests in order (keep-alive,
//! pipelining), a request body and its response both moving at once (a service may answer while
//! it reads) and the caller watched meanwhile (its leaving ends the exchange and frees the
//! service's connection), 1xx interim responses passed on, an `Upgrade` (WebSocket) tunnelled
//! after the 101 and counted in its request's record. The backend connection is kept for the
//! next request only after a clean answer with nothing more behind it; a bodiless idempotent
//! request the service dropped unanswered is sent again once, on a new one. What the proxy says
//! itself (400, 408, 431, 502, 503) is made here, and a caller whose request was not read whole
//! is drained for a while before its connection closes. The relay is generic over its streams
//! (`io`): TCP sockets in the proxy, scripted ends in its tests (`tests`, `script`).
//!
//! Hand-written rather than hyper (which serves h2c, in `http`), for two reasons. The bytes go
//! through as they came: hyper's server and client parse each head into a header map and write
//! it anew (names lower-cased, chunk boundaries and extensions its own). And it costs less: in
//! `benches/proxy.sh` (wrk, 50 keep-alive connections, one proxy thread) the hyper-based proxy
//! took 18–22 µs of CPU per request, a third more than nginx's 12.8–16.6 µs; relayed as bytes it
//! takes 11–13.5 µs (the README's benchmark table).

mod answer;
pub mod chunked;
mod io;
pub mod message;
mod tunnel;
pub(crate) use io::Stream;
#[cfg(test)]
mod script;
#[cfg(test)]
mod tests;

use super::capture::{Capture, Settings};
use super::fault;
use super::limits::Limits;
use super::stats::{self, ErrorKind, Kind, Record};
use super::{Conn, Recorder};
use crate::ignored::Ignore;
use answer::{Ends, Unanswered, send_body_and_answer};
use bytes::{Bytes, BytesMut};
use io::Dial;
use message::{
    BadHead, Framing, HeadError, MAX_HEAD, READ_SIZE, RequestHead, parse_request, read_head,
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tunnel::tunnel;

/// How often a request is tried on a new backend connection when the kept-alive one broke
/// before taking it (a bodiless idempotent request is sent again once when it broke before
/// answering).
const TRIES: usize = 3;
/// How long, and for how many bytes, a caller's unread request is drained before its
/// connection is dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// A kept-alive connection to the service, with what was read from it and not used yet.
struct Upstream<S> {
    stream: S,
    buf: BytesMut,
}

impl<S> Upstream<S> {
    fn new(stream: S) -> Upstream<S> {
        Upstream {
            stream,
            buf: BytesMut::with_capacity(READ_SIZE),
        }
    }
}

/// How one exchange ended.
enum Exchange {
    /// The response went to the caller; `close`: the connection ends here.
    Answered { close: bool },
    /// The response went to the caller before the whole request body was read: the connection
    /// ends here, once the caller has had time to read the answer.
    AnsweredEarly,
    /// A 101 went to the caller: the connection is a tunnel from now on.
    Upgraded,
    /// No response came (or the service is down): the caller gets one made here.
    Failed(ErrorKind),
    /// What came was not an HTTP/1 response: the caller gets a 502 made here.
    Garbled,
    /// The response's head is over `MAX_HEAD`: the caller gets a 502 made here, naming it.
    TooLarge,
    /// The caller went away (or broke its request): nothing more to say to it.
    CallerGone,
    /// A fault answers for the service: the caller gets this status (and body) made here.
    Injected { status: u16, body: Option<String> },
}

impl Exchange {
    /// For an exchange that failed: its error, and the status and words of the answer made for
    /// the caller.
    fn failure(&self) -> Option<(ErrorKind, u16, &'static str)> {
        match self {
            Exchange::Failed(kind) => {
                let (status, why) = kind.answer();
                Some((*kind, status, why))
            }
            Exchange::Garbled => Some((
                ErrorKind::Reset,
                502,
                "answered with something that is not HTTP/1",
            )),
            Exchange::TooLarge => Some((
                ErrorKind::Reset,
                502,
                "answered with a head over 64 KiB (the proxy's limit for a head)",
            )),
            _ => None,
        }
    }
}

/// What becomes of a caller's connection after an exchange.
enum After {
    /// The next request.
    Next,
    /// The end: the caller is let go (after a linger: it may still be sending).
    Close,
    /// The caller has gone.
    Gone,
    /// A 101 (or a 2xx to CONNECT) went to the caller: bytes both ways from now on.
    Tunnel,
}

/// Relay a caller speaking HTTP/1.x (the bytes read while sniffing first) to the service, on
/// the proxy's sockets (`server`: a connection to the service already open).
pub(super) async fn relay(
    prefix: Vec<u8>,
    client: TcpStream,
    conn: Conn,
    server: Option<super::upstream::Upstream>,
) {
    let ends = (conn.records, conn.limits, conn.capture);
    relay_streams(prefix, client, server, conn.backend, ends).await
}

/// [`relay`] over any streams: the caller's `client`, and the service `backend` dials.
async fn relay_streams<C: Stream, D: Dial>(
    prefix: Vec<u8>,
    client: C,
    server: Option<D::Stream>,
    backend: D,
    (records, limits, capture): (Recorder, Limits, Settings),
) {
    let mut cbuf = BytesMut::with_capacity(READ_SIZE.max(prefix.len()));
    cbuf.extend_from_slice(&prefix);
    let relay = Relay {
        client,
        cbuf,
        up: server.map(Upstream::new),
        backend,
        records,
        limits,
        capture,
        pace: None,
        slow_close: None,
    };
    relay.run().await
}

/// One caller's connection, relayed: the caller, what it sent that is not used yet, the
/// service's side (how to reach it, the connection kept alive to it) and where records go.
struct Relay<C, D: Dial> {
    client: C,
    cbuf: BytesMut,
    up: Option<Upstream<D::Stream>>,
    backend: D,
    records: Recorder,
    limits: Limits,
    capture: Settings,
    /// A `bandwidth` fault's rate for the answer under way (bytes per second).
    pace: Option<u64>,
    /// A `slow_close` fault touched a request: the caller's connection is closed this late.
    slow_close: Option<Duration>,
}

impl<C: Stream, D: Dial> Relay<C, D> {
    /// Request after request until the connection ends.
    async fn run(mut self) {
        loop {
            let head = match self.next_head().await {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(status) => return self.refuse(status).await,
            };
            let start = Instant::now();
            let mut record = self.records.start(Kind::Http {
                version: stats::version_name(head.version).into(),
                method: stats::method_name(&head.method),
                path: head.path.clone(),
                status: 0,
                grpc_status: None,
            });
            let request = self.cbuf.split_to(head.len).freeze();
            let mut capture = Capture::start(self.capture, &request);
            let asked = (self.records).fault(fault::On::H1, head.method.as_str(), &head.path);
            let outcome = match asked.await {
                None => {
                    self.exchange(&head, &request, &mut record, &mut capture)
                        .await
                }
                Some(effect) => {
                    record.injected = Some(effect.to_string());
                    self.inject(effect, &head, &request, &mut record, &mut capture)
                        .await
                }
            };
            record.latency_us = stats::micros(start.elapsed());
            let after = self
                .conclude(&head, outcome, &mut record, &mut capture)
                .await;
            if let After::Tunnel = after {
                if let Some(up) = self.up.take() {
                    let done = (record, capture);
                    tunnel(self.client, self.cbuf, up, done, &self.records).await;
                }
                return;
            }
            self.records.record_captured(record, capture);
            match after {
                After::Next => {}
                After::Close => {
                    drop(self.up.take());
                    if let Some(late) = self.slow_close {
                        tokio::time::sleep(late).await;
                    }
                    linger(self.client).await;
                    return;
                }
                After::Gone | After::Tunnel => return,
            }
        }
    }

    /// The next request's head: None when the caller closed (or went quiet) between
    /// requests; the status to refuse it with when it is not one.
    async fn next_head(&mut self) -> Result<Option<RequestHead>, u16> {
        // The first request's head from the connection's start, a later one's from the end of
        // the previous exchange: a caller that sends nothing, or a head a byte at a time,
        // does not hold the connection (and its buffer) for ever.
        let wait = if self.cbuf.is_empty() {
            self.limits.idle_timeout
        } else {
            self.limits.head_timeout
        };
        let deadline = tokio::time::Instant::now() + wait;
        let read = loop {
            let read = read_head(&mut self.client, &mut self.cbuf, parse_request);
            tokio::select! {
                biased;
                read = tokio::time::timeout_at(deadline, read) => break read,
                // Another process serves now (a blue-green switch): the idle connection to
                // the old one closes, so that it drains.
                () = self.backend.changed(), if self.up.is_some() => self.up = None,
            }
        };
        match read {
            Err(_) if self.cbuf.is_empty() => Ok(None),
            Err(_) => Err(408),
            Ok(Ok(head)) => Ok(head),
            Ok(Err(HeadError::Closed)) => Ok(None),
            Ok(Err(HeadError::Bad(BadHead(status)))) => Err(status),
        }
    }

    /// The proxy's own refusal of a head (the caller's error, not the service's), recorded as
    /// a request too: what of its line could be read, and the status it got. The connection
    /// ends with it.
    async fn refuse(mut self, status: u16) {
        let start = Instant::now();
        let (method, path) = request_line(&self.cbuf);
        let mut record = self.records.start(Kind::Http {
            version: "HTTP/1.1".into(),
            method: method.into(),
            path,
            status,
            grpc_status: None,
        });
        record.bytes_in = self.cbuf.len() as u64;
        drop(self.up.take());
        let seen = self.cbuf.split().freeze();
        let mut capture = Capture::start(self.capture, &seen);
        let made = made_response(status, "", true, false);
        if let Some(c) = &mut capture {
            c.answer.made(&made);
        }
        self.records.hold().await;
        let answered = self.client.write_all(&made).await.is_ok();
        record.latency_us = stats::micros(start.elapsed());
        self.records.record_captured(record, capture);
        if answered {
            linger(self.client).await;
        }
    }

    /// A request a fault touched: held before it goes on (`latency`), answered here
    /// (`error`), its connection reset (`reset`), held unanswered until the caller leaves
    /// (`timeout`), its answer paced (`bandwidth`: head and body), or the connection's close,
    /// when it comes, made late (`slow_close`).
    async fn inject(
        &mut self,
        effect: fault::Effect,
        head: &RequestHead,
        request: &Bytes,
        record: &mut Record,
        capture: &mut Option<Capture>,
    ) -> Exchange {
        match effect {
            fault::Effect::Latency { ms, jitter_ms } => {
                let held = fault::hold(fault::delay(ms, jitter_ms));
                tokio::select! {
                    () = held => self.exchange(head, request, record, capture).await,
                    () = caller_left(&mut self.client, &mut self.cbuf) => Exchange::CallerGone,
                }
            }
            fault::Effect::Error { status, body, .. } => Exchange::Injected { status, body },
            fault::Effect::Reset => {
                self.client.reset();
                record.error = Some(ErrorKind::Reset);
                Exchange::CallerGone
            }
            fault::Effect::Timeout => {
                caller_left(&mut self.client, &mut self.cbuf).await;
                record.error = Some(ErrorKind::Timeout);
                Exchange::CallerGone
            }
            fault::Effect::Bandwidth { bytes_per_sec } => {
                self.pace = Some(bytes_per_sec);
                let outcome = self.exchange(head, request, record, capture).await;
                self.pace = None;
                outcome
            }
            fault::Effect::SlowClose { ms } => {
                self.slow_close = Some(Duration::from_millis(ms));
                self.exchange(head, request, record, capture).await
            }
            // Not asked about on a request (`fault::On::H1`): the request goes on.
            fault::Effect::Cut => self.exchange(head, request, record, capture).await,
        }
    }

    /// After an exchange: the caller's answer made here when it failed, and what becomes of
    /// the connection.
    async fn conclude(
        &mut self,
        head: &RequestHead,
        outcome: Exchange,
        record: &mut Record,
        capture: &mut Option<Capture>,
    ) -> After {
        let callee = self.records.callee();
        let (status, text) = match (&outcome, outcome.failure()) {
            (Exchange::Injected { status, body }, _) => {
                let said = format!("devstack: a fault set on {callee} answered {status}\n");
                (*status, body.clone().unwrap_or(said))
            }
            (_, Some((kind, status, text))) => {
                record.error = Some(kind);
                (status, format!("devstack: {callee} {text}\n"))
            }
            (_, None) => return Self::after(head, outcome, record),
        };
        record.set_status(status, None);
        // The rest of a request body that was not sent is not read: the connection ends
        // with this answer.
        let close = !head.keep_alive || head.framing != Framing::Empty;
        let head_only = head.method == hyper::Method::HEAD;
        let made = made_response(status, &text, close, head_only);
        if let Some(c) = capture {
            c.answer.made(&made);
        }
        self.records.hold().await;
        match self.client.write_all(&made).await {
            Err(_) => After::Gone,
            Ok(()) if close => After::Close,
            Ok(()) => After::Next,
        }
    }

    /// What becomes of the connection after an exchange the caller got its answer to (or
    /// left).
    fn after(head: &RequestHead, outcome: Exchange, record: &mut Record) -> After {
        match outcome {
            Exchange::Answered { close: false } if head.keep_alive => After::Next,
            Exchange::Answered { .. } | Exchange::AnsweredEarly => After::Close,
            Exchange::Upgraded => After::Tunnel,
            Exchange::CallerGone
            | Exchange::Failed(_)
            | Exchange::Garbled
            | Exchange::TooLarge
            | Exchange::Injected { .. } => {
                record.error = record.error.or(Some(ErrorKind::Reset));
                After::Gone
            }
        }
    }

    /// One request to the service and its response back, on the kept-alive backend
    /// connection (a new one when there is none, or when it broke before answering a request
    /// that can be sent again).
    async fn exchange(
        &mut self,
        head: &RequestHead,
        request: &Bytes,
        record: &mut Record,
        capture: &mut Option<Capture>,
    ) -> Exchange {
        // A request without a body whose method is idempotent can be sent again when the
        // service's connection breaks before it answers (the service was restarted under it),
        // as nginx does: a restart then looks like one slow request to the caller.
        let replayable = head.framing == Framing::Empty
            && !head.upgrade
            && matches!(
                head.method,
                hyper::Method::GET
                    | hyper::Method::HEAD
                    | hyper::Method::OPTIONS
                    | hyper::Method::TRACE
            );
        let mut replayed = false;
        for _ in 0..TRIES {
            let fresh = self.up.is_none();
            let upstream = match &mut self.up {
                Some(upstream) => upstream,
                None => {
                    let dialing = Instant::now();
                    let connected = tokio::select! {
                        biased;
                        connected = self.backend.dial() => connected,
                        // The caller left while the service was coming: nothing is sent for it.
                        () = caller_left(&mut self.client, &mut self.cbuf) => {
                            return Exchange::CallerGone;
                        }
                    };
                    if let Some(c) = capture {
                        c.connect = Some(dialing.elapsed());
                    }
                    match connected {
                        Ok(stream) => self.up.insert(Upstream::new(stream)),
                        Err(kind) => return Exchange::Failed(kind),
                    }
                }
            };
            // A kept-alive connection the service closed while idle (or that says something
            // unasked), or one to a process that serves no more (a blue-green switch: it
            // drains): the request goes on a new one rather than find out.
            if !fresh && (upstream.stream.closed_while_idle() || self.backend.moved()) {
                self.up = None;
                continue;
            }
            let written = match self.backend.authority() {
                None => upstream.stream.write_all(request).await,
                // A remote end is asked for by its own name, not the caller's 127.0.0.1:PORT.
                Some(host) => {
                    let head = message::with_host(&request[..], host);
                    upstream.stream.write_all(&head).await
                }
            };
            if written.is_err() {
                self.up = None;
                continue;
            }
            let (client, cbuf) = (&mut self.client, &mut self.cbuf);
            let ends = Ends {
                client,
                cbuf,
                upstream,
                pace: self.pace,
            };
            let result = send_body_and_answer(head, ends, record, capture, &self.records).await;
            match result {
                Ok(outcome) => {
                    // Kept for the next request only after a clean answer, with nothing more
                    // from the service (bytes past a response's end would be read as the next
                    // one's).
                    let clean = matches!(outcome, Exchange::Answered { close: false })
                        && upstream.buf.is_empty();
                    let upgraded = matches!(outcome, Exchange::Upgraded);
                    if !clean && !upgraded {
                        self.up = None;
                    }
                    return outcome;
                }
                Err(Unanswered) => {
                    self.up = None;
                    if !replayable || replayed {
                        return Exchange::Failed(ErrorKind::Reset);
                    }
                    replayed = true;
                }
            }
        }
        Exchange::Failed(ErrorKind::Reset)
    }
}

/// The method and target of a request line the proxy refused (as much as reads as one: `?`
/// where nothing does), for its record.
fn request_line(head: &[u8]) -> (String, String) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let word = |w: Option<&[u8]>, max: usize| {
        w.filter(|w| !w.is_empty() && w.len() <= max && w.iter().all(u8::is_ascii_graphic))
            .map(|w| String::from_utf8_lossy(w).into_owned())
    };
    let method = word(words.next(), 20).unwrap_or_else(|| "?".into());
    let path = word(words.next(), 2048).unwrap_or_else(|| "?".into());
    (method, stats::bounded_path(path))
}

/// Returns when the caller closes its connection (or it breaks), keeping what it sends
/// meanwhile (a pipelined request) in `cbuf`; never, once that holds a head's worth. A caller
/// that only shuts its sending side is taken to have left, as hyper and nginx take it.
async fn caller_left<R: AsyncRead + Unpin>(client: &mut R, cbuf: &mut BytesMut) {
    while cbuf.len() < MAX_HEAD {
        cbuf.reserve(READ_SIZE);
        if !matches!(client.read_buf(cbuf).await, Ok(n) if n > 0) {
            return;
        }
    }
    std::future::pending().await
}

/// Let a caller go after its last answer: the write side is closed first, then what it may
/// still send (the rest of a request not read whole, a pipelined request) is read for a while,
/// up to a bound, and dropped, so that the close doesn't reset the connection before the caller
/// has read the answer.
async fn linger<C: Stream>(mut client: C) {
    client.shutdown().await.or_say("the caller may have gone");
    let drain = async {
        let mut sink = [0u8; READ_SIZE];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    drop(tokio::time::timeout(LINGER, drain).await);
}

/// A response made by the proxy itself (an error), with `text` as its body; to a HEAD
/// (`head_only`) the same head without the body, which the caller would take for the next
/// response's start.
pub(super) fn made_response(status: u16, text: &str, close: bool, head_only: bool) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let connection = if close { "close" } else { "keep-alive" };
    let body = if head_only { "" } else { text };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: {connection}\r\n\r\n{body}",
        text.len()
    )
    .into_bytes()
}
