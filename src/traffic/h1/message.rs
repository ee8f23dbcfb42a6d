//! HTTP/1 messages as they pass through the relay: a head parsed (with `httparse`) for what the
//! record needs and how its body ends, and a message forwarded as it came, its body streamed.

use super::chunked::{Chunked, Malformed};
use crate::traffic::capture::Kept;
use crate::traffic::stats;
use bytes::{Buf, BytesMut};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest head taken (request or response); a larger request gets 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a head may have (as hyper).
const MAX_HEADERS: usize = 100;
/// How much is read at a time.
pub(super) const READ_SIZE: usize = 16 * 1024;

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunked),
    /// When the sender closes (a response without length or chunking).
    UntilClose,
}

/// What a request head says.
pub struct RequestHead {
    pub len: usize,
    pub method: hyper::Method,
    pub path: String,
    pub version: hyper::Version,
    pub framing: Framing,
    pub keep_alive: bool,
    pub upgrade: bool,
}

/// What a response head says.
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub grpc_status: Option<u32>,
    pub framing: Framing,
    pub close: bool,
}

/// A head that could not be taken: the status to answer with.
#[derive(Debug)]
pub struct BadHead(pub u16);

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

/// The length of the head httparse found in `buffered` bytes (`parsed`), or None if more bytes
/// are needed. A head over `MAX_HEAD`, or with too many fields, is refused with `too_large`;
/// anything else httparse refuses with `bad`.
fn head_len(
    parsed: httparse::Result<usize>,
    buffered: usize,
    too_large: u16,
    bad: u16,
) -> Result<Option<usize>, BadHead> {
    match parsed {
        Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buffered > MAX_HEAD => Err(BadHead(too_large)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(BadHead(CROWDED)),
        Err(_) => Err(BadHead(bad)),
    }
}

/// More fields than `MAX_HEADERS`: parsed again with room for as many as fit in `MAX_HEAD`
/// (the limit is the head's size, as nginx's; the count only sizes the common case).
const CROWDED: u16 = 0;

/// `parse` with room for `MAX_HEADERS` fields, or, for a head with more, for any number.
fn roomy<'b, T>(
    buf: &[u8],
    parse: impl Fn(&mut [httparse::Header<'b>]) -> Result<T, BadHead>,
    too_large: u16,
) -> Result<T, BadHead> {
    let lines = memchr::memchr_iter(b'\n', &buf[..buf.len().min(MAX_HEAD)]).count() + 1;
    match parse(&mut [httparse::EMPTY_HEADER; MAX_HEADERS]) {
        // As many fields as the head has lines (not the most a head may hold: a crowded head
        // arriving in pieces is parsed again at each).
        Err(BadHead(CROWDED)) => match parse(&mut vec![httparse::EMPTY_HEADER; lines]) {
            Err(BadHead(CROWDED)) => Err(BadHead(too_large)),
            parsed => parsed,
        },
        parsed => parsed,
    }
}

/// A request head at the start of `buf`, or None if more bytes are needed.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, BadHead> {
    roomy(buf, |headers| parse_request_in(buf, headers), 431)
}

fn parse_request_in<'b>(
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<RequestHead>, BadHead> {
    let mut req = httparse::Request::new(headers);
    let Some(len) = head_len(req.parse(buf), buf.len(), 431, 400)? else {
        return Ok(None);
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
pub fn parse_response(buf: &[u8], method: &hyper::Method) -> Result<Option<ResponseHead>, BadHead> {
    roomy(
        buf,
        |headers| parse_response_in(buf, method, headers),
        TOO_LARGE,
    )
}

/// A response head over `MAX_HEAD` (refused: the caller gets a 502 naming the limit).
pub const TOO_LARGE: u16 = 431;

fn parse_response_in<'b>(
    buf: &'b [u8],
    method: &hyper::Method,
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<ResponseHead>, BadHead> {
    let mut resp = httparse::Response::new(headers);
    let Some(len) = head_len(resp.parse(buf), buf.len(), TOO_LARGE, 502)? else {
        return Ok(None);
    };
    let f = fields(resp.headers)?;
    let status = resp.code.unwrap_or(0);
    // httparse takes any three digits; below 100 is no status at all (and would otherwise pass
    // for an interim response, the final one waited for forever).
    if status < 100 {
        return Err(BadHead(502));
    }
    let framing = if *method == hyper::Method::HEAD
        || status < 200
        || status == 204
        || status == 304
        || opens_tunnel(method, status)
    {
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

/// Whether a response with `status` to a request with `method` makes the connection a tunnel
/// right after its head: a 101 (an upgrade), or a 2xx to CONNECT (RFC 9112 §6.3).
/// A request head (`head`: its bytes, blank line included) with its `Host` field's value made
/// `host` (added after the request line when it has none); every other byte as it came.
pub fn with_host(head: &[u8], host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + host.len());
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    let Some(request_line) = lines.next() else {
        return head.to_vec();
    };
    out.extend_from_slice(request_line);
    let mut found = false;
    for line in lines {
        let is_host = line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:");
        if is_host && !found {
            found = true;
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        } else if is_host {
            continue; // a second Host field: one is sent
        } else {
            if !found && (line == b"\r\n" || line == b"\n") {
                found = true;
                out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
            }
            out.extend_from_slice(line);
        }
    }
    out
}

pub fn opens_tunnel(method: &hyper::Method, status: u16) -> bool {
    status == 101 || (*method == hyper::Method::CONNECT && (200..300).contains(&status))
}

/// Which side of a relay failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Broke {
    /// Reading (the sender went away mid-message, or sent something malformed).
    From,
    /// Writing (the receiver went away).
    To,
}

impl Framing {
    /// Of `buf`'s bytes, how many belong to the body, how many of those are payload, and
    /// whether the body ends within them.
    pub fn take(&mut self, buf: &[u8]) -> Result<(usize, u64, bool), Malformed> {
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
/// bytes are added to `payload` as they pass, and its bytes (framing included) to `keep`.
pub(super) async fn relay_message<R, W>(
    head: usize,
    mut framing: Framing,
    buf: &mut BytesMut,
    (from, to): (&mut R, &mut W),
    payload: &AtomicU64,
    mut keep: Option<&mut Kept>,
) -> Result<(), Broke>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut pending = head;
    loop {
        let body_from = pending;
        let (used, data, done) = framing.take(&buf[pending..]).map_err(|_| Broke::From)?;
        pending += used;
        payload.fetch_add(data, Ordering::Relaxed);
        if let Some(keep) = keep.as_deref_mut() {
            keep.add(&buf[body_from..pending]);
        }
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
pub(super) async fn read_head<R, T>(
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
pub(super) enum HeadError {
    Bad(BadHead),
    /// Closed or broken in the middle of a head.
    Closed,
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
    fn a_remote_end_gets_its_own_name_as_host() {
        let head = b"GET /a HTTP/1.1\r\nhost: 127.0.0.1:7300\r\naccept: */*\r\n\r\n";
        assert_eq!(
            with_host(head, "billing.example.com"),
            b"GET /a HTTP/1.1\r\nHost: billing.example.com\r\naccept: */*\r\n\r\n"
        );
        let none = b"GET / HTTP/1.0\r\naccept: */*\r\n\r\n";
        assert_eq!(
            with_host(none, "x:8443"),
            b"GET / HTTP/1.0\r\naccept: */*\r\nHost: x:8443\r\n\r\n"
        );
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
