//! HTTP/1.x through the proxy, relayed as bytes: each request and response head is parsed (with
//! `httparse`) for what the record needs and how its body is framed, and forwarded exactly as it
//! came, body bytes streamed through as they arrive (never held whole). One task per caller
//! connection, with its backend connection kept alive beside it; requests in order (keep-alive,
//! pipelining), a request body and its response both moving at once (a service may answer while
//! it reads) and the caller watched meanwhile (its leaving ends the exchange and frees the
//! service's connection), 1xx interim responses passed on, an `Upgrade` (WebSocket) tunnelled
//! after the 101 and counted in its request's record. The backend connection is kept for the
//! next request only after a clean answer with nothing more behind it.
//!
//! Hyper is not used here (it is for h2c, in `http`): its server and client connections parse
//! each head into a header map and write it out again, which cost the proxy a third more CPU per
//! request than nginx in `benches/proxy.sh`; relayed as bytes it uses less than nginx.

pub mod chunked;
pub mod message;

use super::proxy::Counted;
use super::stats::{self, ErrorKind, Kind, Record};
use super::{Conn, Recorder};
use bytes::{Buf, Bytes, BytesMut};
use message::{
    BadHead, Broke, Framing, HeadError, MAX_HEAD, READ_SIZE, RequestHead, opens_tunnel,
    parse_request, parse_response, read_head, relay_message,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often a request is tried on a new backend connection when the kept-alive one broke
/// before taking it (a bodiless idempotent request is sent again once when it broke before
/// answering).
const TRIES: usize = 3;
/// How long, and for how many bytes, a caller's unread request is drained before its
/// connection is dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// A kept-alive connection to the service, with what was read from it and not used yet.
struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
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
}

/// Relay a caller speaking HTTP/1.x (the bytes read while sniffing first) to the service.
pub(super) async fn relay(
    prefix: Vec<u8>,
    mut client: TcpStream,
    mut conn: Conn,
    server: Option<TcpStream>,
) {
    let mut cbuf = BytesMut::with_capacity(READ_SIZE.max(prefix.len()));
    cbuf.extend_from_slice(&prefix);
    let mut up: Option<Upstream> = server.map(|stream| Upstream {
        stream,
        buf: BytesMut::with_capacity(READ_SIZE),
    });
    loop {
        // The first request's head from the connection's start, a later one's from the end of
        // the previous exchange: a caller that sends nothing, or a head a byte at a time,
        // does not hold the connection (and its buffer) for ever.
        let wait = if cbuf.is_empty() {
            conn.limits.idle_timeout
        } else {
            conn.limits.head_timeout
        };
        let read = tokio::time::timeout(wait, read_head(&mut client, &mut cbuf, parse_request));
        let head = match read.await {
            Err(_) if cbuf.is_empty() => return,
            Err(_) => Err(HeadError::Bad(BadHead(408))),
            Ok(head) => head,
        };
        let head = match head {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Closed) => return,
            Err(HeadError::Bad(BadHead(status))) => {
                // The proxy's own refusal is a request too (the caller's error, not the
                // service's): what of its line could be read, and the status it got.
                let start = Instant::now();
                let (method, path) = request_line(&cbuf);
                let mut record = conn.records.start(Kind::Http {
                    version: "HTTP/1.1".into(),
                    method: method.into(),
                    path,
                    status,
                    grpc_status: None,
                });
                record.bytes_in = cbuf.len() as u64;
                drop(up.take());
                conn.records.hold().await;
                let answered = client
                    .write_all(&made_response(status, "", true, false))
                    .await
                    .is_ok();
                record.latency_us = stats::micros(start.elapsed());
                conn.records.record(record);
                if answered {
                    linger(client).await;
                }
                return;
            }
        };
        let start = Instant::now();
        let mut record = conn.records.start(Kind::Http {
            version: stats::version_name(head.version).into(),
            method: stats::method_name(&head.method),
            path: head.path.clone(),
            status: 0,
            grpc_status: None,
        });
        let request = cbuf.split_to(head.len).freeze();
        let outcome = exchange(
            &head,
            &request,
            &mut client,
            &mut cbuf,
            &mut up,
            &mut conn,
            &mut record,
        )
        .await;
        record.latency_us = stats::micros(start.elapsed());
        let after = if let Some((kind, status, text)) = outcome.failure() {
            record.set_status(status, None);
            record.error = Some(kind);
            // The rest of a request body that was not sent is not read: the connection ends
            // with this answer.
            let close = !head.keep_alive || head.framing != Framing::Empty;
            let text = format!("devstack: {} {text}\n", conn.records.callee());
            let head_only = head.method == hyper::Method::HEAD;
            conn.records.hold().await;
            match client
                .write_all(&made_response(status, &text, close, head_only))
                .await
            {
                Err(_) => After::Gone,
                Ok(()) if close => After::Close,
                Ok(()) => After::Next,
            }
        } else {
            match outcome {
                Exchange::Answered { close: false } if head.keep_alive => After::Next,
                Exchange::Answered { .. } | Exchange::AnsweredEarly => After::Close,
                Exchange::Upgraded => {
                    if let Some(up) = up.take() {
                        tunnel(client, cbuf, up, record, &conn).await;
                    }
                    return;
                }
                Exchange::CallerGone
                | Exchange::Failed(_)
                | Exchange::Garbled
                | Exchange::TooLarge => {
                    record.error = record.error.or(Some(ErrorKind::Reset));
                    After::Gone
                }
            }
        };
        conn.records.record(record);
        match after {
            After::Next => {}
            After::Close => {
                drop(up.take());
                linger(client).await;
                return;
            }
            After::Gone => return,
        }
    }
}

/// One request to the service and its response back, on the kept-alive backend connection (a
/// new one when there is none, or when it broke before answering a request that can be sent
/// again).
async fn exchange(
    head: &RequestHead,
    request: &Bytes,
    client: &mut TcpStream,
    cbuf: &mut BytesMut,
    up: &mut Option<Upstream>,
    conn: &mut Conn,
    record: &mut Record,
) -> Exchange {
    // A request without a body whose method is idempotent can be sent again when the service's
    // connection breaks before it answers (the service was restarted under it), as nginx does:
    // a restart then looks like one slow request to the caller.
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
        let fresh = up.is_none();
        let upstream = match up {
            Some(upstream) => upstream,
            None => {
                let connected = tokio::select! {
                    biased;
                    connected = conn.backend.connect() => connected,
                    // The caller left while the service was coming: nothing is sent for it.
                    () = caller_left(client, cbuf) => return Exchange::CallerGone,
                };
                match connected {
                    Ok(stream) => up.insert(Upstream {
                        stream,
                        buf: BytesMut::with_capacity(READ_SIZE),
                    }),
                    Err(kind) => return Exchange::Failed(kind),
                }
            }
        };
        // A kept-alive connection the service closed while idle (or that says something
        // unasked): the request goes on a new one rather than find out.
        if !fresh && closed_while_idle(&upstream.stream) {
            *up = None;
            continue;
        }
        if upstream.stream.write_all(request).await.is_err() {
            *up = None;
            continue;
        }
        let result =
            send_body_and_answer(head, client, cbuf, upstream, record, &conn.records).await;
        match result {
            Ok(outcome) => {
                // Kept for the next request only after a clean answer, with nothing more from
                // the service (bytes past a response's end would be read as the next one's).
                let clean = matches!(outcome, Exchange::Answered { close: false })
                    && upstream.buf.is_empty();
                let upgraded = matches!(outcome, Exchange::Upgraded);
                if !clean && !upgraded {
                    *up = None;
                }
                return outcome;
            }
            Err(Unanswered) => {
                *up = None;
                if !replayable || replayed {
                    return Exchange::Failed(ErrorKind::Reset);
                }
                replayed = true;
            }
        }
    }
    Exchange::Failed(ErrorKind::Reset)
}

/// The backend connection broke before a byte of the response came.
struct Unanswered;

/// After the request head went out: its body to the service and the response to the caller,
/// both at once.
async fn send_body_and_answer(
    head: &RequestHead,
    client: &mut TcpStream,
    cbuf: &mut BytesMut,
    upstream: &mut Upstream,
    record: &mut Record,
    records: &Recorder,
) -> Result<Exchange, Unanswered> {
    let (mut client_rx, mut client_tx) = client.split();
    let (mut backend_rx, mut backend_tx) = upstream.stream.split();
    // Counted as the bytes pass, read while both directions are still moving.
    let bytes_in = AtomicU64::new(0);
    let bytes_out = AtomicU64::new(0);
    // The two sides at once, dropped (with their borrows) once the exchange is over.
    let outcome = {
        let answer = answer(
            &head.method,
            &mut backend_rx,
            &mut upstream.buf,
            &mut client_tx,
            &bytes_out,
            record,
            records,
        );
        // The caller's side: the request body to the service, then a watch on the caller, whose
        // leaving ends the exchange (what it sends meanwhile, a pipelined request, is kept).
        let body_read = AtomicBool::new(head.framing == Framing::Empty);
        let caller = async {
            if head.framing != Framing::Empty {
                let sent = relay_message(
                    0,
                    head.framing,
                    cbuf,
                    &mut client_rx,
                    &mut backend_tx,
                    &bytes_in,
                );
                if let Err(broke) = sent.await {
                    return broke;
                }
                body_read.store(true, Ordering::Relaxed);
            }
            caller_left(&mut client_rx, cbuf).await;
            Broke::From
        };
        tokio::pin!(answer, caller);
        let mut backend_broke = false;
        loop {
            tokio::select! {
                // An answer that came whole is the caller's, even if it has left since.
                biased;
                outcome = &mut answer => break match outcome {
                    // Answered before the whole request was read (or sent): the rest can't be told
                    // from the next request.
                    // (An upgrade then is not followed: the tunnel would start in the body.)
                    Ok(Exchange::Answered { .. } | Exchange::Upgraded)
                        if !body_read.load(Ordering::Relaxed) =>
                    {
                        Ok(Exchange::AnsweredEarly)
                    }
                    outcome => outcome,
                },
                broke = &mut caller, if !backend_broke => match broke {
                    // The service stopped reading the body: its answer may still come.
                    Broke::To => backend_broke = true,
                    // The caller left, or broke off its request: it gets no more.
                    Broke::From => break Ok(Exchange::CallerGone),
                },
            }
        }
    };
    record.bytes_in = bytes_in.into_inner();
    record.bytes_out = bytes_out.into_inner();
    outcome
}

/// Read the response from the service and forward it: interim (1xx) heads, then the final
/// head and its body.
async fn answer<R, W>(
    method: &hyper::Method,
    from: &mut R,
    buf: &mut BytesMut,
    to: &mut W,
    payload: &AtomicU64,
    record: &mut Record,
    records: &Recorder,
) -> Result<Exchange, Unanswered>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut forwarded = false;
    loop {
        let head = match read_head(from, buf, |b| parse_response(b, method)).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Closed) if !forwarded => return Err(Unanswered),
            Err(HeadError::Bad(BadHead(message::TOO_LARGE))) => return Ok(Exchange::TooLarge),
            Err(HeadError::Bad(_)) => return Ok(Exchange::Garbled),
            Ok(None) | Err(_) => return Ok(Exchange::Failed(ErrorKind::Reset)),
        };
        record.set_status(head.status, head.grpc_status);
        records.hold().await;
        if opens_tunnel(method, head.status) {
            return match to.write_all(&buf[..head.len]).await {
                Ok(()) => {
                    buf.advance(head.len);
                    Ok(Exchange::Upgraded)
                }
                Err(_) => Ok(Exchange::CallerGone),
            };
        }
        forwarded = true;
        match relay_message(head.len, head.framing, buf, from, to, payload).await {
            // An interim (1xx) response: the final one follows.
            Ok(()) if head.status < 200 => {}
            Ok(()) => return Ok(Exchange::Answered { close: head.close }),
            Err(Broke::To) => return Ok(Exchange::CallerGone),
            Err(Broke::From) => {
                record.error = Some(ErrorKind::Reset);
                return Ok(Exchange::Answered { close: true });
            }
        }
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
async fn linger(mut client: TcpStream) {
    let _ = client.shutdown().await;
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
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Whether a kept-alive backend connection has been closed (or said something unasked).
fn closed_while_idle(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// After a 101: bytes both ways between the caller and the service (what either had sent past
/// the heads first), then the request's record.
async fn tunnel(
    client: TcpStream,
    cbuf: BytesMut,
    mut up: Upstream,
    mut record: Record,
    conn: &Conn,
) {
    let mut client = Counted::new(client);
    let early = async {
        up.stream.write_all(&cbuf).await?;
        client.write_all(&up.buf).await?;
        tokio::io::copy_bidirectional(&mut client, &mut up.stream).await
    };
    if early.await.is_err() {
        record.error = Some(ErrorKind::Reset);
    }
    record.bytes_in += cbuf.len() as u64 + client.read;
    record.bytes_out += client.written;
    conn.records.record(record);
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
