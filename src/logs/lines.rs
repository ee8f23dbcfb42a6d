//! What a line of output is (`LogLine`, from one `Stream`), and how raw bytes become one:
//! `LineSplitter` cuts a byte stream at line ends (an endless line into marked pieces),
//! `sanitize` makes a line safe to show (only SGR colours survive), `strip_sgr` drops those too.

use crate::config::ServiceId;
use std::time::SystemTime;

/// Longest line kept whole; longer ones are cut here and the pieces marked.
pub const MAX_LINE: usize = 64 * 1024;
/// Marker at the end of a piece of a line that was cut at `MAX_LINE`.
pub const CONTINUED: &str = " ⏎";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// What the running service printed.
    Out,
    /// What its build step printed.
    Build,
    /// devstack's own events about the service.
    System,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub service: ServiceId,
    pub stream: Stream,
    pub time: SystemTime,
    /// Printable text; the only escape sequences left are SGR colours (`ESC [ ... m`).
    pub text: String,
}

/// Splits a byte stream into lines: `\n` ends a line, `\r\n` too, and a line longer than `MAX_LINE`
/// is cut into marked pieces so that one endless line cannot grow memory without bound.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            let (line, rest) = (&chunk[..nl], &chunk[nl + 1..]);
            if self.partial.is_empty() && line.len() <= MAX_LINE {
                emit(line, false);
            } else {
                self.partial.extend_from_slice(line);
                self.drain_long(emit);
                emit(&self.partial, false);
                self.partial.clear();
            }
            chunk = rest;
        }
        self.partial.extend_from_slice(chunk);
        self.drain_long(emit);
    }

    /// Emit whatever is left (the stream ended without a final newline).
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            emit(&self.partial, false);
            self.partial.clear();
        }
    }

    fn drain_long(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        let mut start = 0;
        while self.partial.len() - start > MAX_LINE {
            let mut cut = start + MAX_LINE;
            // Don't split a UTF-8 character.
            while cut > start + MAX_LINE - 4 && (self.partial[cut] & 0b1100_0000) == 0b1000_0000 {
                cut -= 1;
            }
            emit(&self.partial[start..cut], true);
            start = cut;
        }
        self.partial.drain(..start);
    }
}

/// Make one raw line safe to show: invalid UTF-8 becomes U+FFFD, SGR colours are kept, every other
/// control sequence (titles, OSC 52 clipboard writes, cursor moves, screen clears) is dropped.
/// A carriage return starts the line over, as a terminal would show it.
pub fn sanitize(raw: &[u8]) -> String {
    let mut raw = raw;
    while let [rest @ .., b'\r'] = raw {
        raw = rest;
    }
    if raw.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t') {
        // Plain ASCII: nothing to interpret.
        return String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8");
    }
    let mut out = Sanitizer {
        text: String::with_capacity(raw.len()),
    };
    let mut parser = vte::Parser::new();
    parser.advance(&mut out, raw);
    out.text
}

struct Sanitizer {
    text: String,
}

impl vte::Perform for Sanitizer {
    fn print(&mut self, c: char) {
        // DEL, and C1 controls, which some terminals take as escape introducers.
        if !c.is_control() {
            self.text.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\t' => self.text.push('\t'),
            b'\r' => self.text.clear(),
            // Backspace is dropped, not applied: erasing could take apart a kept colour code and
            // let the characters after it rebuild another escape sequence.
            _ => {}
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &vte::Params,
        intermediates: &[u8],
        ignore: bool,
        action: char,
    ) {
        if action != 'm' || ignore || !intermediates.is_empty() {
            return;
        }
        self.text.push_str("\x1b[");
        for (i, param) in params.iter().enumerate() {
            if i > 0 {
                self.text.push(';');
            }
            for (j, sub) in param.iter().enumerate() {
                if j > 0 {
                    self.text.push(':');
                }
                self.text.push_str(&sub.to_string());
            }
        }
        self.text.push('m');
    }
}

/// Remove the SGR sequences `sanitize` keeps.
pub fn strip_sgr(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\x1b') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = match rest.find('m') {
            Some(end) => &rest[end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out.into()
}

/// One of devstack's own lines about a service, said now.
pub(super) fn system_line(service: ServiceId, text: &str) -> LogLine {
    LogLine {
        service,
        stream: Stream::System,
        time: SystemTime::now(),
        text: sanitize(text.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l, cut| out.push((l.to_vec(), cut)));
        }
        s.finish(&mut |l, cut| out.push((l.to_vec(), cut)));
        out
    }

    #[test]
    fn lines_join_across_chunks_and_crlf_is_one_ending() {
        let lines = split(&[b"hel", b"lo\r\nwor", b"ld\n", b"tail"]);
        let text: Vec<String> = lines.iter().map(|(l, _)| sanitize(l)).collect();
        assert_eq!(text, ["hello", "world", "tail"]);
    }

    #[test]
    fn an_endless_line_is_cut_into_marked_pieces() {
        let big = vec![b'a'; MAX_LINE * 3 + 10];
        let lines = split(&[&big, b"\n"]);
        assert_eq!(lines.len(), 4);
        assert!(
            lines[..3]
                .iter()
                .all(|(l, cut)| *cut && l.len() == MAX_LINE)
        );
        assert_eq!(lines[3], (vec![b'a'; 10], false));
    }

    #[test]
    fn a_cut_never_splits_a_utf8_character() {
        let mut big = vec![b'a'; MAX_LINE - 1];
        big.extend_from_slice("é".as_bytes());
        big.extend_from_slice(b"zz");
        let lines = split(&[&big]);
        assert!(std::str::from_utf8(&lines[0].0).is_ok());
        assert_eq!(lines[0].0.len(), MAX_LINE - 1);
    }

    #[test]
    fn keeps_colours_drops_other_sequences() {
        let raw = b"\x1b]0;title\x07\x1b]52;c;aGVsbG8=\x07\x1b[2J\x1b[1;31mred\x1b[0m \x1b[10;5Hok";
        assert_eq!(sanitize(raw), "\x1b[1;31mred\x1b[0m ok");
        assert_eq!(strip_sgr(&sanitize(raw)), "red ok");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_carriage_return_restarts_the_line() {
        assert_eq!(sanitize(b"ab\xffcd"), "ab\u{fffd}cd");
        assert_eq!(sanitize(b"10%\r50%\r100%"), "100%");
        // Backspaces must not unpick a kept colour code into a live sequence.
        assert_eq!(sanitize(b"\x1b[0m\x08\x082J"), "\x1b[0m2J");
        assert_eq!(sanitize(b"\x1b[0m\x08\x08\x08[?1049h"), "\x1b[0m[?1049h");
        assert_eq!(
            sanitize(b"bell\x07 nul\x00 del\x7f c1\xc2\x9b"),
            "bell nul del c1"
        );
    }
}
