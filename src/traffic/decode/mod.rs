//! Passive decoders of the two protocols most stacks have behind their services, for the
//! proxy's TCP relay: Redis (RESP2, RESP3 and inline commands, `redis`) and PostgreSQL
//! (`postgres`). A decoder is fed what each side of one connection sent, in order, in any
//! chunking, and hands back [`Exchange`]s: a command and its reply, a query and its result. It
//! never touches the connection: bytes it cannot read make it stop ([`State::GaveUp`]), and the
//! connection is shown as plain TCP from then on.
//!
//! How the relay uses one:
//!
//! ```text
//! let Some(mut decoder) = decode::detect(&first) else { plain TCP };
//! decoder.caller_sent(&first, at);        // detect only looked at the bytes
//! // each read, fed *before* it is written on (so a reply is never fed before its command):
//! decoder.caller_sent(&bytes, Instant::now());   // or service_sent
//! for exchange in decoder.take() { record it }
//! if decoder.state() != State::Decoding { drop it: the rest is plain TCP }
//! // once the connection closed:
//! decoder.end(Instant::now()); decoder.take();   // what had no answer, said so
//! ```
//!
//! Bounds, whatever the peers send: a frame or message is held up to [`KEEP`] bytes (a bigger
//! one is read on by counting its bytes: a 100 MB value costs no memory), at most
//! [`MAX_PENDING`] commands or queries wait for their answers (past that the decoder gives up),
//! and every text an exchange carries is cut to a few hundred characters. No input makes a
//! decoder panic (`fuzz/` feeds them garbage).
//!
//! - `redis`: commands matched to replies: pipelining, pub/sub, MULTI/EXEC, RESP3 pushes;
//!   `redis::resp`: where RESP frames end, in bounded memory (`redis-protocol` reads what is
//!   inside); `redis::command`: a command's name and first key.
//! - `resend`: what is kept of an exchange to send it again (`traffic replay`), when asked.
//! - `postgres`: the startup, SSL/GSS requests, simple and extended queries, COPY, errors;
//!   `postgres::message`: messages framed in bounded memory (the server's read with
//!   `postgres-protocol`, the caller's few by hand); `postgres::sql`: a query normalised for
//!   grouping (literals as `?`, whitespace collapsed).

mod postgres;
mod redis;
pub mod resend;
#[cfg(test)]
mod script;

pub use postgres::Postgres;
pub use postgres::{error_fields, fatal, normalize, opening, plain};
pub use redis::{Ended, Frames as RedisFrames, Redis};
pub use resend::Resend;

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A frame or message is held up to this many bytes; the rest of a bigger one is counted.
pub const KEEP: usize = 64 * 1024;
/// At most this many commands or queries wait for their answers; past it the decoder gives up.
pub const MAX_PENDING: usize = 4096;
/// What was asked, and its group, are cut to this many characters.
pub const MAX_TEXT: usize = 200;
/// An error's text is cut to this many characters.
pub const MAX_ERROR: usize = 300;

/// The protocol a decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Redis,
    Postgres,
}

/// One decoded exchange: a command and its reply, or a query and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub protocol: Protocol,
    /// What was asked, as the live tail shows it: `GET user:42`, `SELECT * FROM users WHERE
    /// id = $1` (one line, cut to [`MAX_TEXT`]). Redis: the command's name and its first key
    /// (no argument of `AUTH` or `HELLO`'s credentials, ever); Postgres: the query as sent.
    pub request: String,
    /// What it is grouped by in per-edge stats: the command's name (`GET`, `CLIENT SETNAME`),
    /// or the normalised query ([`normalize`]: literals as `?`, `$n` kept, whitespace collapsed).
    pub group: String,
    /// What came back: `OK`, `bulk 12B`, `nil`, `array 3`, `integer 1`, `error`, `3 rows`,
    /// `INSERT 0 1`, `ready`, `encrypted`, `no reply` …
    pub outcome: String,
    /// The error's text when the answer is one: `ERR unknown command …` (Redis), `SQLSTATE
    /// 42P01: relation "x" does not exist` (Postgres). Cut to [`MAX_ERROR`].
    pub error: Option<String>,
    /// When the first byte of the command or query came.
    pub started: Instant,
    /// From then until the last byte of its answer.
    pub latency: Duration,
    /// What is needed to send it again, once the decoder was told to [`Decoder::keep`] it.
    pub resend: Option<Arc<Resend>>,
}

/// Where a decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reading on.
    Decoding,
    /// The connection went encrypted (Postgres' SSL or GSS request accepted): nothing more to read.
    Encrypted,
    /// Bytes it could not read, or more waiting commands than it keeps: the connection stays
    /// plain TCP.
    GaveUp,
}

/// A passive decoder of one connection: fed what each side sent, in order, in any chunking;
/// never fails the connection.
pub trait Decoder: Send {
    /// The protocol it reads.
    fn protocol(&self) -> Protocol;
    /// Bytes the caller sent, read at `at`. Feed them before writing them on to the service.
    fn caller_sent(&mut self, bytes: &[u8], at: Instant);
    /// Bytes the service sent, read at `at`. Feed them before writing them on to the caller.
    fn service_sent(&mut self, bytes: &[u8], at: Instant);
    /// The connection closed at `at`: what still waited for its answer is told as such
    /// (outcome `no reply`, with an error when one had come).
    fn end(&mut self, at: Instant);
    /// The exchanges completed since the last call, oldest first.
    fn take(&mut self) -> Vec<Exchange>;
    /// Decoding, or stopped (and why): once stopped, feeding it does nothing.
    fn state(&self) -> State;
    /// Keep what a replay needs of each exchange from now on ([`Exchange::resend`]): a command
    /// or query of up to `cap` bytes (and at most [`KEEP`]); a bigger one is kept as cut.
    fn keep(&mut self, cap: usize);
}

/// A decoder for a connection whose caller's first bytes are `first`, if they look like Redis
/// (a RESP array, or an inline command such as `PING`) or Postgres (an SSL, GSS or cancel
/// request, or a startup message: its first 8 bytes are needed); None: plain TCP. It only
/// looks: feed `first` to [`Decoder::caller_sent`] too.
pub fn detect(first: &[u8]) -> Option<Box<dyn Decoder>> {
    if postgres::looks_like(first) {
        Some(Box::new(Postgres::new()))
    } else if redis::looks_like(first) {
        Some(Box::new(Redis::new()))
    } else {
        None
    }
}

/// `bytes` as one line of text of at most `max` characters: invalid UTF-8 and control
/// characters escaped as `\xNN` (as `redis-cli` shows them), cut with `…`.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max && bytes.iter().all(|b| (b' '..=b'~').contains(b)) {
        return String::from_utf8_lossy(bytes).into_owned(); // the usual key: nothing to escape
    }
    let mut out = Bounded::new(max);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let fits = if c.is_control() {
                out.push(&format!("\\x{:02x}", c as u32 & 0xff))
            } else {
                out.push(c.encode_utf8(&mut [0; 4]))
            };
            if !fits {
                return out.out;
            }
        }
        for b in chunk.invalid() {
            if !out.push(&format!("\\x{b:02x}")) {
                return out.out;
            }
        }
    }
    out.out
}

/// `text` on one line of at most `max` characters: each run of whitespace one space, other
/// control characters dropped, cut with `…`.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let plain = |b: &u8| (b'!'..=b'~').contains(b);
    let bytes = text.as_bytes();
    let single_spaces = !bytes.windows(2).any(|w| w == b"  ");
    if bytes.len() <= max
        && single_spaces
        && bytes.first().is_none_or(plain)
        && bytes.last().is_none_or(plain)
        && bytes.iter().all(|b| *b == b' ' || plain(b))
    {
        return text.to_owned(); // already one plain line
    }
    let mut out = Bounded::new(max);
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
        } else if !c.is_control() {
            if std::mem::take(&mut space) && !out.push(" ") {
                break;
            }
            if !out.push(c.encode_utf8(&mut [0; 4])) {
                break;
            }
        }
    }
    out.out
}

/// A text growing up to `max` characters, then cut with `…` (within the `max`).
struct Bounded {
    out: String,
    chars: usize,
    max: usize,
    /// The longest `out` has been that leaves room for the `…`.
    mark: usize,
}

impl Bounded {
    fn new(max: usize) -> Bounded {
        Bounded {
            out: String::new(),
            chars: 0,
            max,
            mark: 0,
        }
    }

    /// Adds `piece` (a character, or an escape) if it fits; else cuts the text (false).
    fn push(&mut self, piece: &str) -> bool {
        let n = piece.chars().count();
        if self.chars + n > self.max {
            self.out.truncate(self.mark);
            self.out.truncate(self.out.trim_end().len());
            self.out.push('…');
            return false;
        }
        self.out.push_str(piece);
        self.chars += n;
        if self.chars < self.max {
            self.mark = self.out.len();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_redis_and_postgres_and_nothing_else() {
        assert_eq!(
            detect(b"*1\r\n$4\r\nPING\r\n").map(|d| d.protocol()),
            Some(Protocol::Redis)
        );
        assert_eq!(
            detect(b"PING\r\n").map(|d| d.protocol()),
            Some(Protocol::Redis)
        );
        assert_eq!(
            detect(b"get k\r\n").map(|d| d.protocol()),
            Some(Protocol::Redis)
        );
        let ssl = [0, 0, 0, 8, 4, 210, 22, 47];
        assert_eq!(detect(&ssl).map(|d| d.protocol()), Some(Protocol::Postgres));
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0app\0\0");
        let len = startup.len() as u8;
        startup[3] = len;
        assert_eq!(
            detect(&startup).map(|d| d.protocol()),
            Some(Protocol::Postgres)
        );
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x16\x03\x01\x02\x00",
            b"",
            b"*",
            b"hello world\r\n",
            &ssl[..7],
        ] {
            assert!(detect(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn texts_are_one_bounded_line() {
        assert_eq!(printable(b"user:42", 20), "user:42");
        assert_eq!(printable(b"a\r\nb\x00\xff", 20), "a\\x0d\\x0ab\\x00\\xff");
        assert_eq!(printable("é".repeat(10).as_bytes(), 4), "ééé…");
        assert_eq!(printable(b"abcd", 4), "abcd");
        assert_eq!(printable(b"abcde", 4), "abc…");
        assert_eq!(one_line("  SELECT *\n\t FROM  t  ", 50), "SELECT * FROM t");
        assert_eq!(one_line("SELECT 1234567", 8), "SELECT…");
        assert_eq!(one_line("SELECT 1", 8), "SELECT 1");
        assert_eq!(one_line(" a  b ", 8), "a b");
    }
}
