//! Service output: splitting a byte stream into lines, sanitising them, the bounded in-memory
//! buffers, the rotated log files under `.devstack/logs/`, and handing lines to the live view.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::broadcast;

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
    pub service: usize,
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

/// Receives every line as it is logged (the headless printer, the TUI).
pub trait LineTap: Send + Sync {
    fn lines(&self, lines: &[LogLine]);
}

/// A log file that is rotated to `.1`, `.2` … once it passes `max_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let file = crate::statedir::private_file()
            .create(true)
            .append(true)
            .open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            max_bytes,
            keep,
        })
    }

    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        if self.size >= self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = fs::rename(numbered(n), numbered(n + 1));
        }
        fs::rename(&self.path, numbered(1))?;
        let file = crate::statedir::private_file()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::with_capacity(64 * 1024, file);
        self.size = 0;
        Ok(())
    }
}

/// Size at which a service's log file is rotated, and how many rotated files are kept.
pub const LOG_FILE_MAX: u64 = 64 * 1024 * 1024;
pub const LOG_FILES_KEPT: usize = 3;
/// In-memory scrollback per service, and of all services merged, in bytes (the line counts
/// come from `[stack] scrollback`): whichever bound is reached first.
pub const BUFFER_BYTES: usize = 16 * 1024 * 1024;
pub const MERGED_BYTES: usize = 64 * 1024 * 1024;

/// A bounded buffer of recent lines that also counts every line it was ever given, so that a
/// reader can tell how many arrived since it last looked.
pub struct Ring {
    lines: VecDeque<Arc<LogLine>>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    total: u64,
}

impl Ring {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Ring {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
            total: 0,
        }
    }

    fn push(&mut self, line: Arc<LogLine>) {
        self.bytes += line.text.len();
        self.lines.push_back(line);
        self.total += 1;
        while self.lines.len() > self.max_lines
            || (self.bytes > self.max_bytes && self.lines.len() > 1)
        {
            let old = self.lines.pop_front().expect("not empty");
            self.bytes -= old.text.len();
        }
    }

    pub fn lines(&self) -> &VecDeque<Arc<LogLine>> {
        &self.lines
    }

    /// Lines ever pushed, including those since dropped.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn tail(&self, n: usize) -> impl Iterator<Item = &Arc<LogLine>> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n))
    }
}

/// A service's log file and buffer, locked apart so that readers of the buffer (the dashboard)
/// never wait on the disk.
struct ServiceLog {
    file: Mutex<Option<RotatingFile>>,
    ring: Mutex<Ring>,
}

/// Which buffer to read: one service's, or all merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Service(usize),
    All,
}

/// Every service's log: file, in-memory buffers, the live tap, and followers.
pub struct LogHub {
    services: Vec<ServiceLog>,
    merged: Mutex<Ring>,
    tap: Option<Arc<dyn LineTap>>,
    followers: broadcast::Sender<Arc<LogLine>>,
    /// A terminal emulator per service, fed its raw output while someone types into it.
    screens: Vec<Mutex<Option<vt100::Parser>>>,
}

/// Lines a follower may fall behind by before it is told it missed some.
const FOLLOW_BACKLOG: usize = 4096;

impl LogHub {
    /// Open `dir/<name>.log` for every service. A file that cannot be opened is reported on the
    /// service's log and skipped; the live view still gets every line.
    /// `scrollback`: lines kept in memory per service (all services merged keep five times as
    /// many).
    pub fn new(
        dir: &Path,
        names: &[String],
        tap: Option<Arc<dyn LineTap>>,
        scrollback: usize,
    ) -> Self {
        let _ = fs::create_dir_all(dir);
        let mut errors = Vec::new();
        let services = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let path = dir.join(format!("{name}.log"));
                let file = RotatingFile::open(path.clone(), LOG_FILE_MAX, LOG_FILES_KEPT)
                    .map_err(|e| errors.push((i, format!("cannot write {}: {e}", path.display()))))
                    .ok();
                ServiceLog {
                    file: Mutex::new(file),
                    ring: Mutex::new(Ring::new(scrollback, BUFFER_BYTES)),
                }
            })
            .collect();
        let hub = LogHub {
            services,
            merged: Mutex::new(Ring::new(scrollback * 5, MERGED_BYTES)),
            tap,
            followers: broadcast::channel(FOLLOW_BACKLOG).0,
            screens: names.iter().map(|_| Mutex::new(None)).collect(),
        };
        for (i, e) in errors {
            hub.system(i, e);
        }
        hub
    }

    /// Log a batch of lines of one service: file first, then the buffers, the live view and
    /// followers.
    pub fn push(&self, service: usize, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        // The file lock is held throughout, so the file, the live view and the buffers all get a
        // service's lines in one order.
        let mut file = self.services[service].file.lock().expect("log file lock");
        if let Some(file) = file.as_mut() {
            let stamp = humantime::format_rfc3339_millis(lines[0].time).to_string();
            let mut buf = String::new();
            for line in &lines {
                buf.clear();
                buf.push_str(&stamp);
                buf.push_str(match line.stream {
                    Stream::Out => " ",
                    Stream::Build => " [build] ",
                    Stream::System => " [devstack] ",
                });
                buf.push_str(&strip_sgr(&line.text));
                if file.write_line(&buf).is_err() {
                    break;
                }
            }
            let _ = file.flush();
        }
        if let Some(tap) = &self.tap {
            tap.lines(&lines);
        }
        let follow = self.followers.receiver_count() > 0;
        let mut ring = self.services[service].ring.lock().expect("log lock");
        let mut merged = self.merged.lock().expect("merged log lock");
        for line in lines {
            let line = Arc::new(line);
            if follow {
                let _ = self.followers.send(line.clone());
            }
            ring.push(line.clone());
            merged.push(line);
        }
    }

    /// One of devstack's own events about a service.
    pub fn system(&self, service: usize, text: impl AsRef<str>) {
        let time = SystemTime::now();
        let lines = text
            .as_ref()
            .lines()
            .map(|l| LogLine {
                service,
                stream: Stream::System,
                time,
                text: sanitize(l.as_bytes()),
            })
            .collect();
        self.push(service, lines);
    }

    /// Read a buffer in place (the TUI renders from here without copying it).
    pub fn read<T>(&self, source: Source, f: impl FnOnce(&Ring) -> T) -> T {
        match source {
            Source::Service(i) => f(&self.services[i].ring.lock().expect("log lock")),
            Source::All => f(&self.merged.lock().expect("merged log lock")),
        }
    }

    /// The last `n` lines of each of `services` (merged in time order), and every line logged
    /// after them: no line is in both, none falls between.
    pub fn tail_and_follow(
        &self,
        services: &[usize],
        n: usize,
    ) -> (Vec<Arc<LogLine>>, broadcast::Receiver<Arc<LogLine>>) {
        let mut sorted = services.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        // push() sends to followers under its service's lock, so holding these locks while
        // subscribing splits the stream cleanly.
        let guards: Vec<_> = sorted
            .iter()
            .map(|&i| self.services[i].ring.lock().expect("log lock"))
            .collect();
        let mut lines: Vec<Arc<LogLine>> = guards
            .iter()
            .flat_map(|ring| ring.tail(n).cloned())
            .collect();
        let rx = self.followers.subscribe();
        drop(guards);
        lines.sort_by_key(|l| l.time);
        let extra = lines.len().saturating_sub(n);
        lines.drain(..extra);
        (lines, rx)
    }

    /// Start emulating a service's terminal at this size, seeded with its recent lines, so that
    /// what it draws (prompts, REPLs, full-screen programs) shows as it would in a terminal.
    pub fn open_screen(&self, service: usize, rows: u16, cols: u16) {
        let mut parser = vt100::Parser::new(rows.max(1), cols.max(1), 0);
        for line in self.tail(service, rows as usize) {
            if line.stream == Stream::Out {
                parser.process(line.text.as_bytes());
                parser.process(b"\r\n");
            }
        }
        *self.screens[service].lock().expect("screen lock") = Some(parser);
    }

    pub fn close_screen(&self, service: usize) {
        *self.screens[service].lock().expect("screen lock") = None;
    }

    /// Read a service's emulated terminal, if it has one open.
    pub fn screen<T>(&self, service: usize, f: impl FnOnce(&vt100::Screen) -> T) -> Option<T> {
        self.screens[service]
            .lock()
            .expect("screen lock")
            .as_ref()
            .map(|p| f(p.screen()))
    }

    fn feed_screen(&self, service: usize, raw: &[u8]) {
        if let Some(parser) = self.screens[service].lock().expect("screen lock").as_mut() {
            parser.process(raw);
        }
    }

    /// The last `n` buffered lines of a service.
    pub fn tail(&self, service: usize, n: usize) -> Vec<Arc<LogLine>> {
        self.read(Source::Service(service), |ring| {
            ring.tail(n).cloned().collect()
        })
    }
}

/// Turns one process's raw output into logged lines.
pub struct OutputFeed {
    hub: Arc<LogHub>,
    service: usize,
    stream: Stream,
    splitter: LineSplitter,
    matcher: Option<Matcher>,
    /// Logged as `spawned pid N: <this>` before the first line of output.
    announce: Option<String>,
}

/// Called once, on the first line the regex matches (the `log` health probe).
pub type Matcher = (regex::Regex, Box<dyn FnOnce() + Send>);

impl OutputFeed {
    pub fn new(hub: Arc<LogHub>, service: usize, stream: Stream) -> Self {
        OutputFeed {
            hub,
            service,
            stream,
            splitter: LineSplitter::default(),
            matcher: None,
            announce: None,
        }
    }

    /// Say `spawned pid N: command` when the process starts, ahead of its output.
    pub fn with_announce(mut self, command: String) -> Self {
        self.announce = Some(command);
        self
    }

    pub fn with_matcher(mut self, matcher: Matcher) -> Self {
        self.matcher = Some(matcher);
        self
    }

    /// Split `chunk` into lines (or, at the end of the stream, flush the last partial line) and
    /// log them.
    fn take(&mut self, chunk: Option<&[u8]>) {
        let mut lines = Vec::new();
        let time = SystemTime::now();
        let (service, stream) = (self.service, self.stream);
        let mut emit = |raw: &[u8], cut| lines.push(make_line(service, stream, time, raw, cut));
        match chunk {
            Some(chunk) => {
                if self.stream == Stream::Out {
                    self.hub.feed_screen(self.service, chunk);
                }
                self.splitter.push(chunk, &mut emit)
            }
            None => self.splitter.finish(&mut emit),
        }
        if let Some((re, _)) = &self.matcher
            && lines.iter().any(|l| re.is_match(&strip_sgr(&l.text)))
        {
            let (_, found) = self.matcher.take().expect("checked above");
            found();
        }
        self.hub.push(self.service, lines);
    }
}

impl crate::process::OutputSink for OutputFeed {
    fn started(&mut self, pid: i32) {
        if let Some(command) = self.announce.take() {
            self.hub
                .system(self.service, format!("spawned pid {pid}: {command}"));
        }
    }

    fn chunk(&mut self, data: &[u8]) {
        self.take(Some(data));
    }

    fn end(&mut self) {
        self.take(None);
    }
}

fn make_line(service: usize, stream: Stream, time: SystemTime, raw: &[u8], cut: bool) -> LogLine {
    let mut text = sanitize(raw);
    if cut {
        text.push_str(CONTINUED);
    }
    LogLine {
        service,
        stream,
        time,
        text,
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

    #[test]
    fn the_ring_keeps_the_newest_lines_within_its_bounds_and_counts_all() {
        let line = |n: usize| {
            Arc::new(LogLine {
                service: 0,
                stream: Stream::Out,
                time: SystemTime::now(),
                text: "x".repeat(n),
            })
        };
        let mut ring = Ring::new(3, 1000);
        for _ in 0..5 {
            ring.push(line(10));
        }
        assert_eq!((ring.lines().len(), ring.total()), (3, 5));
        ring.push(line(995));
        assert_eq!(ring.lines().len(), 1, "the byte bound drops old lines too");
    }

    #[test]
    fn rotation_keeps_every_line_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let mut f = RotatingFile::open(path.clone(), 100, 5).unwrap();
        for i in 0..30 {
            f.write_line(&format!("line {i:02}")).unwrap();
        }
        f.flush().unwrap();
        let mut all = String::new();
        for n in (1..=5).rev() {
            all += &fs::read_to_string(format!("{}.{n}", path.display())).unwrap_or_default();
        }
        all += &fs::read_to_string(&path).unwrap();
        let expected: String = (0..30).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(all, expected);
    }
}
