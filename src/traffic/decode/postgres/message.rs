//! PostgreSQL messages framed in bounded memory, and read. Each side's messages are a type byte
//! and a length (the caller's first ones, until its startup message, a length alone); a message
//! is held only when its type is one the decoder reads, up to [`KEEP`] bytes (a 100 MB
//! `DataRow` or `CopyData` is counted, never held). The server's messages are read by
//! `postgres-protocol`, which reads untrusted bytes without panicking; it reads no caller's
//! message, and `pgwire`, which reads both sides, panics on a short one (`Buf::get_u16` and the
//! like): the few the decoder needs (startup, Query, Parse, Bind, Execute, Close, Describe) are
//! strings read here.

use crate::traffic::decode::KEEP;
use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};

/// The codes of the untyped requests that may open a connection.
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSS_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// The server refuses a startup packet longer than this.
pub const MAX_STARTUP: u32 = 10_000;
/// No message is longer than this (the server's own limit is 1 GB).
const MAX_MESSAGE: u32 = 1 << 30;

/// One message, as framed.
pub struct Msg<'a> {
    /// Its type byte (0 for an untyped one: a startup, SSL, GSS or cancel request).
    pub tag: u8,
    /// Its body, or the first [`KEEP`] bytes of it (empty when its type is not kept).
    pub body: &'a [u8],
    /// Its body's length, all of it.
    pub size: u64,
}

/// Not a PostgreSQL message.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad;

/// Frames one side's messages.
pub struct Framer {
    /// The next message has no type byte: the caller's, until its startup message.
    untyped: bool,
    /// Which types' bodies are kept.
    keep: fn(u8) -> bool,
    head: [u8; 5],
    head_len: usize,
    /// In a body: its type, and the bytes of it still to come.
    body: Option<(u8, u64)>,
    kept: Vec<u8>,
    keeping: bool,
    /// The body being read's length.
    size: u64,
}

impl Framer {
    /// The caller's side: untyped messages first.
    pub fn caller() -> Framer {
        Framer::new(true, |tag| {
            matches!(tag, 0 | b'Q' | b'P' | b'B' | b'E' | b'C' | b'D')
        })
    }

    /// The server's side.
    pub fn service() -> Framer {
        Framer::new(false, |tag| matches!(tag, b'E' | b'C' | b'Z'))
    }

    fn new(untyped: bool, keep: fn(u8) -> bool) -> Framer {
        Framer {
            untyped,
            keep,
            head: [0; 5],
            head_len: 0,
            body: None,
            kept: Vec::new(),
            keeping: false,
            size: 0,
        }
    }

    /// Whether a message has begun and not ended.
    pub fn mid_message(&self) -> bool {
        self.head_len > 0 || self.body.is_some()
    }

    /// Reads on from `bytes` (advancing it) to the end of the next message: Some once one
    /// ended, None once `bytes` is all read.
    pub fn next(&mut self, bytes: &mut &[u8]) -> Result<Option<Msg<'_>>, Bad> {
        loop {
            let Some((tag, left)) = self.body else {
                if !self.read_head(bytes)? {
                    return Ok(None);
                }
                continue;
            };
            let n = left.min(bytes.len() as u64) as usize;
            if self.keeping {
                let room = KEEP.saturating_sub(self.kept.len());
                self.kept.extend_from_slice(&bytes[..n.min(room)]);
            }
            *bytes = &bytes[n..];
            let left = left - n as u64;
            if left > 0 {
                self.body = Some((tag, left));
                return Ok(None);
            }
            self.body = None;
            if tag == 0 && code(&self.kept).is_some_and(|c| c >> 16 == 3) {
                self.untyped = false; // a startup message: typed messages from now on
            }
            return Ok(Some(Msg {
                tag,
                body: &self.kept,
                size: self.size,
            }));
        }
    }

    /// Reads a message's type and length. True: its body is next.
    fn read_head(&mut self, bytes: &mut &[u8]) -> Result<bool, Bad> {
        let want = if self.untyped { 4 } else { 5 };
        let n = (want - self.head_len).min(bytes.len());
        self.head[self.head_len..][..n].copy_from_slice(&bytes[..n]);
        self.head_len += n;
        *bytes = &bytes[n..];
        if self.head_len < want {
            return Ok(false);
        }
        self.head_len = 0;
        let (tag, len) = if self.untyped {
            (0, be32(&self.head[..4]))
        } else {
            (self.head[0], be32(&self.head[1..5]))
        };
        let fits = if tag == 0 {
            (8..=MAX_STARTUP).contains(&len)
        } else {
            (4..=MAX_MESSAGE).contains(&len)
        };
        if !fits {
            return Err(Bad);
        }
        self.kept.clear();
        self.keeping = (self.keep)(tag);
        self.size = u64::from(len - 4);
        self.body = Some((tag, self.size));
        Ok(true)
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The code an untyped message opens with: a protocol version or a request's code.
pub fn code(body: &[u8]) -> Option<u32> {
    Some(be32(body.get(..4)?))
}

/// The string `body` starts with (up to its NUL, advancing past it); a string cut short (its
/// message bigger than what was kept) is all that is left.
pub fn string<'a>(body: &mut &'a [u8]) -> &'a [u8] {
    match memchr::memchr(0, body) {
        Some(end) => {
            let s = &body[..end];
            *body = &body[end + 1..];
            s
        }
        None => std::mem::take(body),
    }
}

/// A startup message's parameters (after its version): `user`, `database`, ….
pub fn parameters(body: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut rest = body.get(4..).unwrap_or_default();
    let mut out = Vec::new();
    while !rest.is_empty() && out.len() < 64 {
        let name = string(&mut rest);
        if name.is_empty() {
            break;
        }
        out.push((name, string(&mut rest)));
    }
    out
}

/// A `Parse`'s parameter types, after its name and query (what is cut short is left out).
pub fn types(mut rest: &[u8]) -> Vec<u32> {
    let n = int16(&mut rest).unwrap_or(0).max(0) as usize;
    let types = rest.chunks_exact(4).take(n).map(be32);
    types.collect()
}

/// A `Bind`'s parameter formats, and its values (None: NULL).
pub type Bound = (Vec<i16>, Vec<Option<Vec<u8>>>);

/// A `Bind`'s parameter formats and values, after its portal's and statement's names (None: cut
/// short, or not a `Bind`).
pub fn bound(mut rest: &[u8]) -> Option<Bound> {
    let n = int16(&mut rest)?.max(0) as usize;
    let formats = (0..n).map(|_| int16(&mut rest)).collect::<Option<_>>()?;
    let n = int16(&mut rest)?.max(0) as usize;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        values.push(match usize::try_from(len) {
            Ok(len) => {
                let value = rest.get(..len)?.to_vec();
                rest = &rest[len..];
                Some(value)
            }
            Err(_) => None, // -1: NULL
        });
    }
    Some((formats, values))
}

fn int16(rest: &mut &[u8]) -> Option<i16> {
    let n = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    *rest = &rest[2..];
    Some(n)
}

/// An ErrorResponse's SQLSTATE and message.
pub fn error_fields(error: &ErrorResponseBody) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    let mut fields = error.fields();
    // A field cut short (a huge message) ends the walk: what came before stays.
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes());
        match field.type_() {
            b'C' => code = value.into_owned(),
            b'M' => message = value.into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// What the decoder reads of a server's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// An ErrorResponse: its SQLSTATE and message.
    Error {
        code: String,
        message: String,
    },
    /// A CommandComplete's tag.
    Complete(String),
    ReadyForQuery,
    /// Any other message (its type byte says which).
    Other,
}

/// A server's message read by `postgres-protocol` (its type byte and kept body); None: it is
/// not what its type says.
pub fn answer(tag: u8, body: &[u8]) -> Option<Answer> {
    if !matches!(tag, b'E' | b'C' | b'Z') {
        return Some(Answer::Other);
    }
    let mut buf = BytesMut::with_capacity(body.len() + 5);
    buf.put_u8(tag);
    buf.put_u32(u32::try_from(body.len() + 4).ok()?);
    buf.put_slice(body);
    Some(match Message::parse(&mut buf).ok()?? {
        Message::ErrorResponse(error) => {
            let (code, message) = error_fields(&error);
            Answer::Error { code, message }
        }
        Message::CommandComplete(done) => Answer::Complete(done.tag().ok()?.to_owned()),
        Message::ReadyForQuery(_) => Answer::ReadyForQuery,
        _ => Answer::Other,
    })
}

/// The untyped message `bytes` start with (an SSL, GSS or cancel request, or a startup), once
/// whole: its length, and whether it asks for encryption (answered `N`: the caller goes on in
/// the clear); one over `MAX_STARTUP` is taken whole as it is. For a fault that refuses the
/// connection itself, the service never asked.
pub fn opening(bytes: &[u8]) -> Option<(usize, bool)> {
    let len = code(bytes)?;
    let code = code(bytes.get(4..)?)?;
    if len > MAX_STARTUP {
        return Some((bytes.len(), false));
    }
    let len = len as usize;
    let encrypted = matches!(code, SSL_REQUEST | GSS_REQUEST);
    (bytes.len() >= len).then_some((len.max(8), encrypted))
}

/// A FATAL ErrorResponse with `sqlstate` and `text` (a connection refused at its startup).
pub fn fatal(sqlstate: &str, text: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate),
        (b'M', text),
    ] {
        fields.push(field);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer, bytes: &[u8], step: usize) -> Result<Vec<(u8, Vec<u8>)>, Bad> {
        let mut out = Vec::new();
        for mut piece in bytes.chunks(step) {
            while let Some(msg) = framer.next(&mut piece)? {
                out.push((msg.tag, msg.body.to_vec()));
            }
        }
        Ok(out)
    }

    #[test]
    fn messages_are_framed_in_any_chunking_and_kept_only_when_read() {
        let mut stream = vec![0, 0, 0, 8, 4, 210, 22, 47]; // SSLRequest
        stream.extend([0, 0, 0, 13, 0, 3, 0, 0, b'u', 0, b'a', 0, 0]); // startup
        stream.extend([b'p', 0, 0, 0, 7, b'p', b'w', 0]); // password: not kept
        stream.extend([b'Q', 0, 0, 0, 13]);
        stream.extend(b"SELECT 1\0");
        for step in 1..=stream.len() {
            let got = frames(&mut Framer::caller(), &stream, step).unwrap();
            assert_eq!(
                got,
                vec![
                    (0, vec![4, 210, 22, 47]),
                    (0, vec![0, 3, 0, 0, b'u', 0, b'a', 0, 0]),
                    (b'p', vec![]),
                    (b'Q', b"SELECT 1\0".to_vec()),
                ],
                "in pieces of {step}"
            );
        }
    }

    #[test]
    fn a_huge_message_is_counted_not_kept() {
        let mut framer = Framer::service();
        let mut head: &[u8] = &[b'D', 0x06, 0, 0, 4];
        assert!(framer.next(&mut head).unwrap().is_none());
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..95 {
            let mut piece = &chunk[..];
            assert!(framer.next(&mut piece).unwrap().is_none());
        }
        let last = [&chunk[..], &[b'Z', 0, 0, 0, 5, b'I']].concat();
        let mut end = &last[..];
        let row = framer.next(&mut end).unwrap().unwrap();
        assert_eq!((row.tag, row.body.len()), (b'D', 0));
        let ready = framer.next(&mut end).unwrap().unwrap();
        assert_eq!((ready.tag, ready.body), (b'Z', &b"I"[..]));
        assert!(framer.kept.capacity() < 1024);
    }

    #[test]
    fn bad_lengths_are_not_postgres() {
        assert_eq!(
            frames(&mut Framer::service(), &[b'Z', 0, 0, 0, 3], 1),
            Err(Bad)
        );
        assert_eq!(frames(&mut Framer::caller(), &[0, 0, 0x30, 0], 1), Err(Bad));
        assert_eq!(
            frames(&mut Framer::service(), &[b'D', 0x7f, 0, 0, 0], 1),
            Err(Bad)
        );
    }

    #[test]
    fn strings_and_answers_are_read() {
        let mut body: &[u8] = b"S_1\0SELECT $1\0\0\x01";
        assert_eq!(string(&mut body), b"S_1");
        assert_eq!(string(&mut body), b"SELECT $1");
        let mut cut: &[u8] = b"SELECT 'very long";
        assert_eq!(string(&mut cut), b"SELECT 'very long");
        assert_eq!(
            parameters(b"\0\x03\0\0user\0app\0database\0shop\0\0"),
            vec![(&b"user"[..], &b"app"[..]), (b"database", b"shop")]
        );
        assert_eq!(
            answer(b'E', b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0\0"),
            Some(Answer::Error {
                code: "42P01".into(),
                message: "relation \"x\" does not exist".into()
            })
        );
        assert_eq!(
            answer(b'E', b"C23505\0Mdup"),
            Some(Answer::Error {
                code: "23505".into(),
                message: String::new()
            }),
            "a field cut short"
        );
        assert_eq!(
            answer(b'C', b"INSERT 0 1\0"),
            Some(Answer::Complete("INSERT 0 1".into()))
        );
        assert_eq!(answer(b'C', b"INSERT"), None);
        assert_eq!(answer(b'Z', b"I"), Some(Answer::ReadyForQuery));
        assert_eq!(answer(b'Z', b""), None);
        assert_eq!(answer(b'T', b""), Some(Answer::Other));
    }
}
