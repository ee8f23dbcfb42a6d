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

use super::Conn;
use super::chunked::{Chunked, Malformed};
use super::proxy::Counted;
use super::stats::{self, ErrorKind, Kind, Record};
use bytes::{Buf, Bytes, BytesMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest head taken (request or response); a larger request gets 431.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a head may have (as hyper).
const MAX_HEADERS: usize = 100;
/// How much is read at a time.
const READ_SIZE: usize = 16 * 1024;
/// How often a request is tried on a new backend connection when the kept-alive one broke
/// before taking it (a bodiless idempotent request is sent again once when it broke before
/// answering).
const TRIES: usize = 3;
/// How long, and for how many bytes, a caller's unread request is drained before its
/// connection is dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunked),
    /// When the sender closes (a response without length or chunking).
    UntilClose,
}

/// What a request head says.
struct RequestHead {
    len: usize,
    method: hyper::Method,
    path: String,
    version: hyper::Version,
    framing: Framing,
    keep_alive: bool,
    upgrade: bool,
}

/// What a response head says.
struct ResponseHead {
    len: usize,
    status: u16,
    grpc_status: Option<u32>,
    framing: Framing,
    close: bool,
}

/// A head that could not be taken: the status to answer with.
#[derive(Debug)]
struct BadHead(u16);

/// The header fields a proxy acts on.
#[derive(Default)]
struct Fields {
    length: Option<u64>,
    chunked: bool,
    other_coding: bool,
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    grpc_status: Option<u32>,
}

fn fields(headers: &[httparse::Header<'_>]) -> Result<Fields, BadHead> {
    let mut f = Fields::default();
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // Digits only (no sign, no other white space than the field's own): the service
            // must read the same length, as the head goes to it unchanged.
            let digits = h.value.trim_ascii();
            let n = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or(BadHead(400))?;
            if f.length.is_some_and(|l| l != n) {
                return Err(BadHead(400));
            }
            f.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding says how the body ends.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            f.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            f.other_coding = !f.chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                f.close |= token.eq_ignore_ascii_case(b"close");
                f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            f.upgrade = true;
        } else if name.eq_ignore_ascii_case("grpc-status") {
            f.grpc_status = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
    }
    Ok(f)
}

fn http_version(minor: Option<u8>) -> hyper::Version {
    match minor {
        Some(0) => hyper::Version::HTTP_10,
        _ => hyper::Version::HTTP_11,
    }
}

/// A request head at the start of `buf`, or None if more bytes are needed.
fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, BadHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(BadHead(431)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadHead(431)),
        Err(_) => return Err(BadHead(400)),
    };
    let f = fields(req.headers)?;
    let version = http_version(req.version);
    // A body whose end the service might find elsewhere than the proxy (a coding but chunked,
    // or both a length and chunking, which it may read by the length) is refused, as nginx does
    // for the first.
    let framing = if f.other_coding || (f.chunked && f.length.is_some()) {
        return Err(BadHead(400));
    } else if f.chunked {
        Framing::Chunked(Chunked::default())
    } else {
        match f.length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let method = hyper::Method::from_bytes(req.method.unwrap_or("GET").as_bytes())
        .map_err(|_| BadHead(400))?;
    Ok(Some(RequestHead {
        len,
        method,
        path: stats::bounded_path(req.path.unwrap_or("/").to_string()),
        version,
        framing,
        // HTTP/1.0 has no chunking: such a request's framing can't be trusted past its end.
        keep_alive: match version {
            hyper::Version::HTTP_10 => f.keep_alive && !f.chunked,
            _ => !f.close,
        },
        upgrade: f.upgrade,
    }))
}

/// A response head at the start of `buf` answering a request with `method`, or None if more
/// bytes are needed.
fn parse_response(buf: &[u8], method: &hyper::Method) -> Result<Option<ResponseHead>, BadHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(BadHead(502)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadHead(502)),
    };
    let f = fields(resp.headers)?;
    let status = resp.code.unwrap_or(0);
    let framing =
        if *method == hyper::Method::HEAD || status < 200 || status == 204 || status == 304 {
            Framing::Empty
        } else if f.chunked {
            Framing::Chunked(Chunked::default())
        } else if f.other_coding {
            Framing::UntilClose
        } else {
            match f.length {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        };
    let close = f.close
        || framing == Framing::UntilClose
        || (http_version(resp.version) == hyper::Version::HTTP_10 && (!f.keep_alive || f.chunked));
    Ok(Some(ResponseHead {
        len,
        status,
        grpc_status: f.grpc_status,
        framing,
        close,
    }))
}

/// Which side of a relay failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broke {
    /// Reading (the sender went away mid-message, or sent something malformed).
    From,
    /// Writing (the receiver went away).
    To,
}

impl Framing {
    /// Of `buf`'s bytes, how many belong to the body, how many of those are payload, and
    /// whether the body ends within them.
    fn take(&mut self, buf: &[u8]) -> Result<(usize, u64, bool), Malformed> {
        Ok(match self {
            Framing::Empty => (0, 0, true),
            Framing::Length(left) => {
                let n = (*left).min(buf.len() as u64);
                *left -= n;
                (n as usize, n, *left == 0)
            }
            Framing::Chunked(c) => {
                let fed = c.feed(buf)?;
                (fed.used, fed.payload, fed.done)
            }
            Framing::UntilClose => (buf.len(), buf.len() as u64, false),
        })
    }
}

/// Forward a message whose head is the first `head` bytes of `buf` (read from `from`), then its
/// body framed by `framing`, to `to`. Bytes after the body stay in `buf`; the body's payload
/// bytes are added to `payload` as they pass.
async fn relay_message<R, W>(
    head: usize,
    mut framing: Framing,
    buf: &mut BytesMut,
    from: &mut R,
    to: &mut W,
    payload: &AtomicU64,
) -> Result<(), Broke>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut pending = head;
    loop {
        let (used, data, done) = framing.take(&buf[pending..]).map_err(|_| Broke::From)?;
        pending += used;
        payload.fetch_add(data, Ordering::Relaxed);
        if pending > 0 {
            to.write_all(&buf[..pending]).await.map_err(|_| Broke::To)?;
            buf.advance(pending);
            pending = 0;
        }
        if done {
            return Ok(());
        }
        buf.reserve(READ_SIZE);
        match from.read_buf(buf).await {
            Ok(0) if framing == Framing::UntilClose => return Ok(()),
            Ok(0) | Err(_) => return Err(Broke::From),
            Ok(_) => {}
        }
    }
}

/// Read into `buf` from `from` until `parse` finds a whole head. None: `from` closed before a
/// byte of it came.
async fn read_head<R, T>(
    from: &mut R,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> Result<Option<T>, BadHead>,
) -> Result<Option<T>, HeadError>
where
    R: AsyncRead + Unpin,
{
    loop {
        if !buf.is_empty()
            && let Some(head) = parse(buf).map_err(HeadError::Bad)?
        {
            return Ok(Some(head));
        }
        buf.reserve(READ_SIZE);
        match from.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(_) => {}
        }
    }
}

#[derive(Debug)]
enum HeadError {
    Bad(BadHead),
    /// Closed or broken in the middle of a head.
    Closed,
}

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
    /// The caller went away (or broke its request): nothing more to say to it.
    CallerGone,
}

impl Exchange {
    /// For an exchange that failed: its error, and the status and words of the answer made for
    /// the caller.
    fn failure(&self) -> Option<(ErrorKind, u16, &'static str)> {
        Some(match self {
            Exchange::Failed(ErrorKind::Timeout) => {
                (ErrorKind::Timeout, 503, "did not come up in time")
            }
            Exchange::Failed(ErrorKind::Refused) => {
                (ErrorKind::Refused, 502, "refused the connection")
            }
            Exchange::Failed(ErrorKind::Reset) => (
                ErrorKind::Reset,
                502,
                "closed the connection without answering",
            ),
            Exchange::Garbled => (
                ErrorKind::Reset,
                502,
                "answered with something that is not HTTP/1",
            ),
            _ => return None,
        })
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
pub async fn relay(prefix: Vec<u8>, mut client: TcpStream, mut conn: Conn) {
    let mut cbuf = BytesMut::with_capacity(READ_SIZE.max(prefix.len()));
    cbuf.extend_from_slice(&prefix);
    let mut up: Option<Upstream> = None;
    loop {
        let head = match read_head(&mut client, &mut cbuf, parse_request).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Closed) => return,
            Err(HeadError::Bad(BadHead(status))) => {
                drop(up.take());
                if client
                    .write_all(&made_response(status, "", true))
                    .await
                    .is_ok()
                {
                    linger(client).await;
                }
                return;
            }
        };
        let start = Instant::now();
        let mut record = Record::now(
            conn.caller.clone(),
            &conn.callee,
            Kind::Http {
                version: stats::version_name(head.version).into(),
                method: stats::method_name(&head.method),
                path: head.path.clone(),
                status: 0,
                grpc_status: None,
            },
        );
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
            set_status(&mut record, status, None);
            record.error = Some(kind);
            // The rest of a request body that was not sent is not read: the connection ends
            // with this answer.
            let close = !head.keep_alive || head.framing != Framing::Empty;
            let text = format!("devstack: {} {text}\n", conn.callee);
            match client.write_all(&made_response(status, &text, close)).await {
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
                Exchange::CallerGone | Exchange::Failed(_) | Exchange::Garbled => {
                    record.error = record.error.or(Some(ErrorKind::Reset));
                    After::Gone
                }
            }
        };
        conn.stats.record(record);
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
        let result = send_body_and_answer(head, client, cbuf, upstream, record).await;
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
            Err(HeadError::Bad(_)) => return Ok(Exchange::Garbled),
            Ok(None) | Err(_) => return Ok(Exchange::Failed(ErrorKind::Reset)),
        };
        set_status(record, head.status, head.grpc_status);
        if head.status == 101 {
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
    conn.stats.record(record);
}

fn set_status(record: &mut Record, code: u16, grpc: Option<u32>) {
    if let Kind::Http {
        status,
        grpc_status,
        ..
    } = &mut record.kind
    {
        *status = code;
        if grpc.is_some() {
            *grpc_status = grpc;
        }
    }
}

/// A response made by the proxy itself (an error), with `text` as its body.
fn made_response(status: u16, text: &str, close: bool) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: {connection}\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes made of pieces of HTTP/1 heads: a start line (or none), then fields and junk in
    /// any order.
    fn head_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        const STARTS: &[&str] = &[
            "GET /a HTTP/1.1\r\n",
            "POST /a HTTP/1.0\r\n",
            "HEAD / HTTP/1.1\r\n",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.0 204 No Content\r\n",
            "HTTP/1.1 101 Switching\r\n",
            "",
        ];
        const PIECES: &[&str] = &[
            "Content-Length: 12\r\n",
            "Content-Length: 0\r\n",
            "Content-Length: +1\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Connection: close\r\n",
            "Connection: keep-alive\r\n",
            "Upgrade: ws\r\n",
            "grpc-status: 3\r\n",
            "X: y\r\n",
            "\r\n",
            "\r\n",
            "\n",
            ": ",
            " ",
            "\0",
            "\u{e9}",
            "GET ",
        ];
        (
            proptest::sample::select(STARTS),
            proptest::collection::vec(proptest::sample::select(PIECES), 0..12),
        )
            .prop_map(|(start, pieces)| (start.to_string() + &pieces.concat()).into_bytes())
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// The relay decides on the bytes it has: a head found whole in a prefix is the same
        /// head however many bytes follow, and a refused one stays refused.
        #[test]
        fn a_head_once_told_stays_told_as_bytes_come(bytes in head_bytes()) {
            let framing = |r: Result<Option<RequestHead>, BadHead>| {
                r.map(|h| h.map(|h| (h.len, h.framing, h.keep_alive)))
                    .map_err(|BadHead(s)| s)
            };
            let status = |r: Result<Option<ResponseHead>, BadHead>| {
                r.map(|h| h.map(|h| (h.len, h.status, h.framing, h.close)))
                    .map_err(|BadHead(s)| s)
            };
            let (whole_req, whole_resp) = (
                framing(parse_request(&bytes)),
                status(parse_response(&bytes, &hyper::Method::GET)),
            );
            for end in 0..bytes.len() {
                match framing(parse_request(&bytes[..end])) {
                    Ok(None) => {}
                    told => proptest::prop_assert_eq!(&told, &whole_req, "at {}", end),
                }
                match status(parse_response(&bytes[..end], &hyper::Method::GET)) {
                    Ok(None) => {}
                    told => proptest::prop_assert_eq!(&told, &whole_resp, "at {}", end),
                }
            }
        }
    }

    #[test]
    fn request_heads_say_how_their_bodies_end() {
        let head = |s: &str| parse_request(s.as_bytes()).map(|h| h.map(|h| h.framing));
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap(),
            Some(Framing::Empty)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap(),
            Some(Framing::Length(12))
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap(),
            Some(Framing::Chunked(Chunked::default()))
        );
        assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /\x01 HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(BadHead(400))), "{bad:?}");
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(head(&huge), Err(BadHead(431))));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_field() {
        let ka = |s: &str| parse_request(s.as_bytes()).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn response_heads_say_how_their_bodies_end() {
        let get = hyper::Method::GET;
        let head = |s: &str, m: &hyper::Method| {
            parse_response(s.as_bytes(), m)
                .unwrap()
                .map(|h| (h.framing, h.close))
        };
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", &get),
            Some((Framing::Length(5), false))
        );
        assert_eq!(
            head(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                &hyper::Method::HEAD
            ),
            Some((Framing::Empty, false))
        );
        assert_eq!(
            head(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                &get
            ),
            Some((Framing::Empty, false))
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\n\r\n", &get),
            Some((Framing::UntilClose, true))
        );
        assert_eq!(
            head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &get),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            head(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
                &get
            ),
            Some((Framing::Chunked(Chunked::default()), true))
        );
        assert_eq!(
            head(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                &get
            ),
            Some((Framing::Chunked(Chunked::default()), true))
        );
    }
}
