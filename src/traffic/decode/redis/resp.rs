//! Where RESP frames end, in bounded memory. `redis-protocol` reads a frame only once all of it
//! is in one buffer (a 100 MB bulk string would be held whole, and a deeply nested one recursed
//! into): this scanner walks the frame's structure as its bytes come (type byte and line, blob
//! lengths, element counts, RESP3's streamed strings and aggregates, attributes), keeps its
//! first [`KEEP`] bytes, counts the rest, and notes where its first top-level elements lie, for
//! the crate to read those (`value`).

use crate::traffic::decode::KEEP;
use redis_protocol::resp3::decode::complete::decode_range;
use redis_protocol::resp3::types::RangeFrame;

/// Frames nested deeper than this are not read (Redis' own replies nest a few levels).
const MAX_DEPTH: usize = 32;
/// A line (a simple string, an error, an inline command) longer than this is not RESP (Redis
/// refuses inline commands over 64 KiB too).
const MAX_LINE: usize = KEEP;
/// How many top-level elements of a frame are located (a command's name, subcommand, keys).
pub const PARTS: usize = 8;
/// The bytes of a line kept to read its number.
const HEAD: usize = 24;
/// The count of a streamed string or aggregate (RESP3's `$?`, `*?`).
pub const STREAMED: i64 = i64::MIN;

/// One whole frame, as scanned.
pub struct Frame<'a> {
    /// Its bytes, or its first [`KEEP`] bytes when it is bigger.
    pub bytes: &'a [u8],
    /// Whether `bytes` is all of it.
    pub whole: bool,
    /// All its bytes.
    pub size: u64,
    /// Its first byte (`*`, `$`, `+`, …), or 0 for an inline command (a line of words).
    pub kind: u8,
    /// The number of its first line: a blob's length, an aggregate's count (-1: RESP2's nil,
    /// [`STREAMED`]: RESP3's `?`), an integer; None for other lines.
    pub count: Option<i64>,
    /// Where its first top-level elements lie in `bytes` (those whose bytes are all kept).
    pub parts: &'a [(usize, usize)],
}

impl Frame<'_> {
    /// The `i`th top-level element, read by `redis-protocol` (None: not kept, or not RESP).
    pub fn part(&self, i: usize) -> Option<RangeFrame> {
        let &(start, end) = self.parts.get(i)?;
        value(&self.bytes[start..end]).map(|v| shift(v, start))
    }

    /// The `i`th top-level element's bytes if it is a string (bulk or simple).
    pub fn part_bytes(&self, i: usize) -> Option<&[u8]> {
        let &(start, end) = self.parts.get(i)?;
        string(&self.bytes[start..end])
    }
}

/// A whole frame (or element) read by `redis-protocol`, its ranges into `bytes`. RESP2's nils
/// (`$-1`, `*-1`) are `Null` (the crate's RESP3 reader takes `-1` for a streamed length).
pub fn value(bytes: &[u8]) -> Option<RangeFrame> {
    if bytes.starts_with(b"$-1\r\n") || bytes.starts_with(b"*-1\r\n") {
        return Some(RangeFrame::Null);
    }
    decode_range(bytes).ok().flatten().map(|(frame, _)| frame)
}

/// The bytes of a string element (blob, simple or verbatim).
pub fn string(bytes: &[u8]) -> Option<&[u8]> {
    match value(bytes)? {
        RangeFrame::BlobString { data, .. }
        | RangeFrame::SimpleString { data, .. }
        | RangeFrame::VerbatimString { data, .. } => bytes.get(data.0..data.1),
        _ => None,
    }
}

/// `frame`'s top-level range moved by `by` bytes (an element read apart from its frame).
fn shift(frame: RangeFrame, by: usize) -> RangeFrame {
    let at = |(a, b): (usize, usize)| (a + by, b + by);
    match frame {
        RangeFrame::BlobString { data, attributes } => RangeFrame::BlobString {
            data: at(data),
            attributes,
        },
        RangeFrame::SimpleString { data, attributes } => RangeFrame::SimpleString {
            data: at(data),
            attributes,
        },
        RangeFrame::SimpleError { data, attributes } => RangeFrame::SimpleError {
            data: at(data),
            attributes,
        },
        RangeFrame::BlobError { data, attributes } => RangeFrame::BlobError {
            data: at(data),
            attributes,
        },
        other => other,
    }
}

/// The bytes were not RESP.
#[derive(Debug, PartialEq, Eq)]
pub struct NotResp;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A frame's (or element's) type byte and line.
    Frame,
    /// A streamed string's `;N` line.
    Chunk,
}

#[derive(Clone, Copy)]
enum Need {
    Line(Line),
    /// `left` bytes of a blob (its trailing CRLF included), then an element is done, or the
    /// next chunk of a streamed string is due.
    Bytes {
        left: u64,
        chunk: bool,
    },
}

/// Scans frames one after the other (one side of a connection).
pub struct Scanner {
    /// A frame not starting with `*` is an inline command (the caller's side).
    inline: bool,
    need: Need,
    /// Open aggregates: elements left in each (None: streamed, ends with `.`).
    stack: Vec<Option<u64>>,
    kept: Vec<u8>,
    size: u64,
    /// The first bytes of the line being read, and its length so far.
    head: [u8; HEAD],
    line_len: usize,
    /// The top-level kind and number.
    kind: u8,
    count: Option<i64>,
    parts: Vec<(usize, usize)>,
    part_start: u64,
    /// The last frame was handed out: the next byte starts a new one.
    fresh: bool,
}

impl Scanner {
    /// A scanner of replies (`inline` false) or of commands (`inline`: a line not starting with
    /// `*` is a command of words).
    pub fn new(inline: bool) -> Scanner {
        Scanner {
            inline,
            need: Need::Line(Line::Frame),
            stack: Vec::new(),
            kept: Vec::new(),
            size: 0,
            head: [0; HEAD],
            line_len: 0,
            kind: 0,
            count: None,
            parts: Vec::new(),
            part_start: 0,
            fresh: true,
        }
    }

    /// The bytes it holds (its buffer's capacity).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.kept.capacity()
    }

    /// Whether a frame has begun and not ended.
    pub fn mid_frame(&self) -> bool {
        !self.fresh && self.size > 0
    }

    /// Reads on from `bytes` (advancing it) to the end of the next frame: Some(frame) once one
    /// ended, None once `bytes` is all read.
    pub fn next(&mut self, bytes: &mut &[u8]) -> Result<Option<Frame<'_>>, NotResp> {
        if self.fresh && !bytes.is_empty() {
            self.start();
        }
        while !bytes.is_empty() {
            let done = match self.need {
                Need::Bytes { left, chunk } => {
                    let n = left.min(bytes.len() as u64) as usize;
                    self.keep(&bytes[..n]);
                    *bytes = &bytes[n..];
                    let left = left - n as u64;
                    self.need = Need::Bytes { left, chunk };
                    match (left, chunk) {
                        (0, true) => {
                            self.need = Need::Line(Line::Chunk);
                            false
                        }
                        (0, false) => self.element_done(),
                        _ => false,
                    }
                }
                Need::Line(line) => self.read_line(bytes, line)?,
            };
            if done {
                self.fresh = true;
                return Ok(Some(Frame {
                    bytes: &self.kept,
                    whole: self.size <= KEEP as u64,
                    size: self.size,
                    kind: self.kind,
                    count: self.count,
                    parts: &self.parts,
                }));
            }
        }
        Ok(None)
    }

    fn start(&mut self) {
        self.fresh = false;
        self.kept.clear();
        self.parts.clear();
        self.size = 0;
        self.kind = 0;
        self.count = None;
        self.need = Need::Line(Line::Frame);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = KEEP.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.size += bytes.len() as u64;
    }

    /// Reads a line's bytes from `bytes`; at its end, what it says. True: the frame ended.
    fn read_line(&mut self, bytes: &mut &[u8], line: Line) -> Result<bool, NotResp> {
        if self.line_len == 0 && self.stack.len() == 1 && line == Line::Frame {
            self.part_start = self.size;
        }
        let end = memchr::memchr(b'\n', bytes);
        let take = end.map_or(bytes.len(), |i| i + 1);
        let room = HEAD.saturating_sub(self.line_len);
        let n = take.min(room);
        self.head[self.line_len.min(HEAD)..][..n].copy_from_slice(&bytes[..n]);
        self.line_len += take;
        self.keep(&bytes[..take]);
        *bytes = &bytes[take..];
        if self.line_len > MAX_LINE {
            return Err(NotResp);
        }
        if end.is_none() {
            return Ok(false);
        }
        let len = self.line_len;
        self.line_len = 0;
        match line {
            Line::Frame => self.frame_line(len),
            Line::Chunk => self.chunk_line(len),
        }
    }

    /// The number a line (of `len` bytes, its newline included) writes after its type byte.
    fn number(&self, len: usize) -> Option<i64> {
        let text = self.head.get(1..len.checked_sub(1)?)?;
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text == b"?" {
            return Some(STREAMED);
        }
        let n: i64 = std::str::from_utf8(text).ok()?.parse().ok()?;
        (n != STREAMED).then_some(n)
    }

    fn frame_line(&mut self, len: usize) -> Result<bool, NotResp> {
        let kind = self.head[0];
        let top = self.stack.is_empty();
        if top && self.inline && kind != b'*' {
            // An inline command: a line of words (an empty one is no command, skipped).
            self.kind = 0;
            return Ok(true);
        }
        let number = self.number(len);
        if top {
            self.kind = kind;
            self.count = number;
        }
        match kind {
            b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => Ok(self.element_done()),
            b'$' | b'!' | b'=' => match number {
                Some(STREAMED) if kind == b'$' => {
                    self.need = Need::Line(Line::Chunk);
                    Ok(false)
                }
                Some(-1) if kind == b'$' => Ok(self.element_done()),
                Some(n) if n >= 0 => {
                    self.need = Need::Bytes {
                        left: n as u64 + 2,
                        chunk: false,
                    };
                    Ok(false)
                }
                _ => Err(NotResp),
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => self.aggregate(kind, number),
            b'.' => match self.stack.last() {
                Some(None) => {
                    self.stack.pop();
                    Ok(self.element_done())
                }
                _ => Err(NotResp),
            },
            _ => Err(NotResp),
        }
    }

    fn aggregate(&mut self, kind: u8, number: Option<i64>) -> Result<bool, NotResp> {
        let elements = match number {
            Some(STREAMED) if kind != b'|' && kind != b'>' => None,
            Some(-1) if kind == b'*' => return Ok(self.element_done()),
            Some(0) if kind != b'|' => return Ok(self.element_done()),
            Some(n) if n >= 0 => {
                let n = n as u64;
                Some(match kind {
                    // A map's pairs; an attribute's pairs and then the frame it is about.
                    b'%' => n.saturating_mul(2),
                    b'|' => n.saturating_mul(2).saturating_add(1),
                    _ => n,
                })
            }
            _ => return Err(NotResp),
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(NotResp);
        }
        self.stack.push(elements);
        self.need = Need::Line(Line::Frame);
        Ok(false)
    }

    fn chunk_line(&mut self, len: usize) -> Result<bool, NotResp> {
        if self.head[0] != b';' {
            return Err(NotResp);
        }
        match self.number(len) {
            Some(0) => Ok(self.element_done()),
            Some(n) if n > 0 => {
                self.need = Need::Bytes {
                    left: n as u64 + 2,
                    chunk: true,
                };
                Ok(false)
            }
            _ => Err(NotResp),
        }
    }

    /// An element ended: the aggregates it ends are done too. True: the frame ended.
    fn element_done(&mut self) -> bool {
        self.need = Need::Line(Line::Frame);
        loop {
            if self.stack.len() == 1 && self.parts.len() < PARTS && self.size <= KEEP as u64 {
                self.parts
                    .push((self.part_start as usize, self.size as usize));
            }
            match self.stack.last_mut() {
                None => return true,
                Some(None) => return false,
                Some(Some(left)) => {
                    *left -= 1;
                    if *left > 0 {
                        return false;
                    }
                    self.stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as the tests see it: kind, count, whole, size, how many parts.
    type Scanned = (u8, Option<i64>, bool, u64, usize);

    /// Every frame in `bytes`, fed in pieces of `step` bytes.
    fn scan(inline: bool, bytes: &[u8], step: usize) -> Result<Vec<Scanned>, NotResp> {
        let mut scanner = Scanner::new(inline);
        let mut out = Vec::new();
        for mut piece in bytes.chunks(step) {
            while let Some(f) = scanner.next(&mut piece)? {
                out.push((f.kind, f.count, f.whole, f.size, f.parts.len()));
            }
        }
        Ok(out)
    }

    #[test]
    fn frames_end_where_they_end_in_any_chunking() {
        let stream = b"+OK\r\n$5\r\nhello\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n$-1\r\n*-1\r\n%1\r\n+k\r\n,1.5\r\n|1\r\n+a\r\n+b\r\n#t\r\n$?\r\n;2\r\nab\r\n;0\r\n*?\r\n:1\r\n.\r\n>2\r\n+a\r\n_\r\n*0\r\n";
        let want = vec![
            (b'+', None, true, 5, 0),
            (b'$', Some(5), true, 11, 0),
            (b'*', Some(2), true, 19, 2),
            (b'$', Some(-1), true, 5, 0),
            (b'*', Some(-1), true, 5, 0),
            (b'%', Some(1), true, 14, 2),
            (b'|', Some(1), true, 16, 3),
            (b'$', Some(STREAMED), true, 16, 0),
            (b'*', Some(STREAMED), true, 11, 1),
            (b'>', Some(2), true, 11, 2),
            (b'*', Some(0), true, 4, 0),
        ];
        for step in 1..=stream.len() {
            assert_eq!(
                scan(false, stream, step).unwrap(),
                want,
                "in pieces of {step}"
            );
        }
    }

    #[test]
    fn a_huge_bulk_is_counted_not_kept() {
        let mut scanner = Scanner::new(false);
        let mut head: &[u8] = b"*2\r\n$3\r\nSET\r\n$100000000\r\n";
        assert!(scanner.next(&mut head).unwrap().is_none());
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..95 {
            let mut piece = &chunk[..];
            assert!(scanner.next(&mut piece).unwrap().is_none());
        }
        let rest = vec![b'x'; 100_000_000 - 95 * (1 << 20)];
        let mut piece = &rest[..];
        assert!(scanner.next(&mut piece).unwrap().is_none());
        let mut end: &[u8] = b"\r\n+OK\r\n";
        let frame = scanner.next(&mut end).unwrap().unwrap();
        assert!(!frame.whole);
        assert_eq!(frame.bytes.len(), KEEP);
        assert_eq!(frame.size, 100_000_000 + 27);
        assert_eq!(frame.part_bytes(0), Some(&b"SET"[..]));
        assert_eq!(frame.parts.len(), 1);
        assert!(scanner.kept.capacity() <= 2 * KEEP);
        let next = scanner.next(&mut end).unwrap().unwrap();
        assert_eq!(next.kind, b'+');
    }

    #[test]
    fn inline_commands_are_lines() {
        assert_eq!(
            scan(true, b"PING\r\nset a b\n*1\r\n$4\r\nPING\r\n", 3).unwrap(),
            vec![
                (0, None, true, 6, 0),
                (0, None, true, 8, 0),
                (b'*', Some(1), true, 14, 1)
            ]
        );
    }

    #[test]
    fn garbage_and_abuse_are_not_resp() {
        for bad in [
            &b"hello\r\n"[..],
            b"$abc\r\n",
            b"$-5\r\n",
            b"*-2\r\n",
            b".\r\n",
            b"$?\r\nxx\r\n",
        ] {
            assert_eq!(scan(false, bad, 1), Err(NotResp), "{bad:?}");
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(scan(false, &deep, 7), Err(NotResp));
        let long = vec![b'+'; MAX_LINE + 2];
        assert_eq!(scan(false, &long, 4096), Err(NotResp));
    }

    #[test]
    fn parts_are_read_by_the_crate() {
        let mut scanner = Scanner::new(true);
        let mut bytes: &[u8] = b"*3\r\n$3\r\nGET\r\n$7\r\nuser:42\r\n:5\r\n";
        let frame = scanner.next(&mut bytes).unwrap().unwrap();
        assert_eq!(frame.part_bytes(0), Some(&b"GET"[..]));
        assert_eq!(frame.part_bytes(1), Some(&b"user:42"[..]));
        assert!(matches!(
            frame.part(2),
            Some(RangeFrame::Number { data: 5, .. })
        ));
        assert!(frame.part(3).is_none());
        assert!(matches!(value(b"$-1\r\n"), Some(RangeFrame::Null)));
    }
}
