//! Service output: splitting a byte stream into lines, sanitising them, the bounded in-memory
//! buffers, the rotated log files under `.devstack/logs/`, and handing lines to the live view.

use serde::Serialize;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
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

/// The line format of the log files: `TIME [build] text`, `TIME [devstack] text` or `TIME text`,
/// TIME in RFC 3339 with milliseconds (`stamp`, formatted once per batch by the caller), colour
/// codes stripped. `parse_file_line` reads it back.
fn format_file_line(stamp: &str, line: &LogLine, out: &mut String) {
    out.push_str(stamp);
    out.push_str(match line.stream {
        Stream::Out => " ",
        Stream::Build => " [build] ",
        Stream::System => " [devstack] ",
    });
    out.push_str(&strip_sgr(&line.text));
}

/// A line of a log file as `format_file_line` wrote it; None when it does not start with a time.
pub fn parse_file_line(service: usize, line: &str) -> Option<LogLine> {
    let (time, rest) = line.split_once(' ')?;
    let time = humantime::parse_rfc3339(time).ok()?;
    let (stream, text) = if let Some(t) = rest.strip_prefix("[build] ") {
        (Stream::Build, t)
    } else if let Some(t) = rest.strip_prefix("[devstack] ") {
        (Stream::System, t)
    } else {
        (Stream::Out, rest)
    };
    Some(LogLine {
        service,
        stream,
        time,
        // The file may have been written by someone else.
        text: sanitize(text.as_bytes()),
    })
}

/// A service's log file: `dir/<name>.log`.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// The `n`th rotated file of `path`: `<path>.n`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// Bytes queued before they are written even if the batch goes on.
const PENDING_MAX: usize = 64 * 1024;

/// A log file that is rotated to `.1`, `.2` … once it passes `max_bytes`. It only ever holds
/// whole lines: a write that fails (a full disk) is cut back off.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    size: u64,
    /// Lines queued by `write_line` and not yet written, and how many.
    pending: Vec<u8>,
    pending_lines: u64,
    /// Lines written since the file was opened.
    written: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let mut file = crate::statedir::private_file()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut size = file.metadata()?.len();
        // A run that died mid-line left half a line: end it, so that ours start on their own.
        if size > 0 {
            use std::os::unix::fs::FileExt;
            let mut last = [0u8];
            file.read_exact_at(&mut last, size - 1)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        Ok(RotatingFile {
            path,
            file,
            size,
            pending: Vec::new(),
            pending_lines: 0,
            written: 0,
            max_bytes,
            keep,
        })
    }

    /// Queue a line; `flush` writes the queue (so does a long queue, or a rotation).
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        if self.size + self.pending.len() as u64 >= self.max_bytes {
            self.flush()?;
            self.rotate()?;
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.pending_lines += 1;
        if self.pending.len() >= PENDING_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the queued lines. If that fails, none of them stays: the file is cut back to where
    /// it was and the queue is dropped.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = (&self.file).write_all(&self.pending);
        match result {
            Ok(()) => {
                self.size += self.pending.len() as u64;
                self.written += self.pending_lines;
            }
            Err(_) => {
                let _ = self.file.set_len(self.size);
            }
        }
        self.pending.clear();
        self.pending_lines = 0;
        if self.pending.capacity() > 4 * PENDING_MAX {
            self.pending.shrink_to(PENDING_MAX);
        }
        result
    }

    fn rotate(&mut self) -> io::Result<()> {
        let _ = fs::remove_file(numbered(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let _ = fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1));
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = crate::statedir::private_file()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
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

    pub fn push(&mut self, line: Arc<LogLine>) {
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

/// How often a log file that failed (a full disk) is tried again while lines keep coming.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Lines that did not reach a service's log file, as `ps` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogLoss {
    pub file: String,
    /// Lines of this run that are not in the file (the buffers still have the recent ones).
    pub lines: u64,
    /// Why the file can't be written now; None once it can again.
    pub error: Option<String>,
}

/// A service's log file, and what became of the lines it could not take.
struct FileLog {
    path: PathBuf,
    /// None until opened, and after a failure until it is tried again.
    file: Option<RotatingFile>,
    /// Why the file can't be written; lines go to the buffers only until the next try.
    error: Option<String>,
    retry_at: Instant,
    /// The error is a full disk.
    full: bool,
    /// Lines this run could not write: in all, and since the file last worked.
    lost: u64,
    lost_now: u64,
    /// Lines logged so far (each line's number is its place in this count), and the numbers of
    /// those that are not in the file: reading back, this tells which of the file's last lines the
    /// buffer holds.
    seq: u64,
    gaps: VecDeque<Range<u64>>,
}

impl FileLog {
    fn new(path: PathBuf) -> Self {
        FileLog {
            path,
            file: None,
            error: None,
            retry_at: Instant::now(),
            full: false,
            lost: 0,
            lost_now: 0,
            seq: 0,
            gaps: VecDeque::new(),
        }
    }

    /// Write a batch of lines, or count it lost while the file can't be written (trying again at
    /// most once every `RETRY_EVERY`, so that a full disk costs nothing per line). When the file
    /// fails, or works again, a line saying so is added to `lines`.
    fn write(&mut self, service: usize, lines: &mut Vec<LogLine>) {
        let start = self.seq;
        let retry = self.error.is_some();
        if retry {
            let now = Instant::now();
            let wait = now < self.retry_at;
            // A disk that was full is tried once it has room again, not as soon as a line fits
            // in the last block of the file (which would say "full" and "writable" in turns).
            if wait || (self.full && !has_room(&self.path)) {
                if !wait {
                    self.retry_at = now + RETRY_EVERY;
                }
                self.skip(lines.len());
                return;
            }
            let text = format!("log file writable again; {} lines were lost", self.lost_now);
            lines.insert(0, system_line(service, &text));
        }
        let (done, failed) = self.commit(lines);
        if retry {
            if done == 0 {
                lines.remove(0);
                self.retry_at = Instant::now() + RETRY_EVERY;
                self.skip(lines.len());
                return;
            }
            self.error = None;
            self.lost_now = 0;
        }
        if let Some(e) = failed {
            self.lose(lines.len() - done);
            let why = describe(&e);
            self.full = e.raw_os_error() == Some(libc::ENOSPC);
            let until = match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => "space returns",
                _ => "it can be written again",
            };
            lines.push(system_line(
                service,
                &format!(
                    "log file {}: {why}; lines are kept in memory only until {until}",
                    self.path.display()
                ),
            ));
            self.error = Some(why);
            self.retry_at = Instant::now() + RETRY_EVERY;
        }
        self.gap(start + done as u64..start + lines.len() as u64);
        self.seq += lines.len() as u64;
    }

    /// Write these lines to the file (opening it if needed): how many are in it, and the error
    /// that stopped the rest.
    fn commit(&mut self, lines: &[LogLine]) -> (usize, Option<io::Error>) {
        if lines.is_empty() {
            return (0, None);
        }
        let file = match self.file.take() {
            Some(f) => self.file.insert(f),
            None => match RotatingFile::open(self.path.clone(), LOG_FILE_MAX, LOG_FILES_KEPT) {
                Ok(f) => self.file.insert(f),
                Err(e) => return (0, Some(e)),
            },
        };
        let before = file.written;
        let mut stamp = (
            lines[0].time,
            humantime::format_rfc3339_millis(lines[0].time).to_string(),
        );
        let mut buf = String::new();
        let result = lines
            .iter()
            .try_for_each(|line| {
                if line.time != stamp.0 {
                    stamp = (
                        line.time,
                        humantime::format_rfc3339_millis(line.time).to_string(),
                    );
                }
                buf.clear();
                format_file_line(&stamp.1, line, &mut buf);
                file.write_line(&buf)
            })
            .and_then(|()| file.flush());
        let done = (file.written - before) as usize;
        match result {
            Ok(()) => (done, None),
            Err(e) => {
                // Opened afresh on the next try (a failed rotation may have left it renamed).
                self.file = None;
                (done, Some(e))
            }
        }
    }

    /// A batch the file does not get, while it can't be written.
    fn skip(&mut self, lines: usize) {
        self.lose(lines);
        self.gap(self.seq..self.seq + lines as u64);
        self.seq += lines as u64;
    }

    fn lose(&mut self, lines: usize) {
        self.lost += lines as u64;
        self.lost_now += lines as u64;
    }

    fn gap(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        match self.gaps.back_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.gaps.push_back(range),
        }
    }

    /// Forget the gaps before line `oldest` (the buffer no longer holds them).
    fn prune(&mut self, oldest: u64) {
        while self.gaps.front().is_some_and(|g| g.end <= oldest) {
            self.gaps.pop_front();
        }
    }

    /// How many of the lines numbered `from` onwards are in the file.
    fn written_since(&self, from: u64) -> u64 {
        let missing: u64 = self
            .gaps
            .iter()
            .map(|g| g.end.min(self.seq).saturating_sub(g.start.max(from)))
            .sum();
        (self.seq - from) - missing
    }

    fn loss(&self) -> Option<LogLoss> {
        (self.lost > 0 || self.error.is_some()).then(|| LogLoss {
            file: self.path.display().to_string(),
            lines: self.lost,
            error: self.error.clone(),
        })
    }
}

/// Room on a full disk before its log files are tried again.
const ROOM_TO_RETRY: u64 = 64 * 1024;

/// Whether the disk holding `path` has room again (yes when that can't be told).
#[allow(clippy::unnecessary_cast)] // the statvfs field types differ between platforms
fn has_room(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    nix::sys::statvfs::statvfs(dir)
        .ok()
        .is_none_or(|s| s.blocks_available() as u64 * s.fragment_size() as u64 >= ROOM_TO_RETRY)
}

/// An OS error as its short description ("No space left on device").
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

fn system_line(service: usize, text: &str) -> LogLine {
    LogLine {
        service,
        stream: Stream::System,
        time: SystemTime::now(),
        text: sanitize(text.as_bytes()),
    }
}

/// A service's log files, oldest first (`.3`, `.2`, `.1`, then the current one), opened now, with
/// their lengths now.
fn open_files(path: &Path) -> Vec<(File, u64)> {
    (0..=LOG_FILES_KEPT)
        .rev()
        .map(|n| {
            if n == 0 {
                path.to_path_buf()
            } else {
                numbered(path, n)
            }
        })
        .filter_map(|p| {
            let file = File::open(p).ok()?;
            let len = file.metadata().ok()?.len();
            Some((file, len))
        })
        .collect()
}

/// Lines read back from a service's log files, oldest first.
pub struct FileLines {
    service: usize,
    /// What is left to read: files with the byte range to read of each.
    ranges: VecDeque<(File, Range<u64>)>,
    reader: Option<BufReader<io::Take<File>>>,
    /// Lines left to give.
    left: u64,
    /// For a line without a time (a file someone else wrote to): the time of the one before.
    last_time: SystemTime,
    buf: Vec<u8>,
}

/// Longest file line read back whole (a line devstack wrote is at most `MAX_LINE` and a prefix).
const FILE_LINE_MAX: usize = MAX_LINE + 256;

impl FileLines {
    /// The last `count` lines of `files` that come before their last `skip` lines.
    /// Reads the files backwards, a chunk at a time, only as far as it must.
    fn last(service: usize, files: Vec<(File, u64)>, skip: u64, count: u64) -> FileLines {
        use std::os::unix::fs::FileExt;
        let mut lines = FileLines {
            service,
            ranges: VecDeque::new(),
            reader: None,
            left: 0,
            last_time: SystemTime::UNIX_EPOCH,
            buf: Vec::new(),
        };
        if count == 0 {
            return lines;
        }
        // Walk the starts of lines from the end; `end` is where the skipped lines begin, `start`
        // where the wanted ones do (each as (file, offset)).
        let mut seen = 0u64;
        let mut end = files.len().checked_sub(1).map(|last| (last, files[last].1));
        let mut start = None;
        let mut chunk = vec![0u8; 64 * 1024];
        'files: for (f, (file, len)) in files.iter().enumerate().rev() {
            let mut hi = *len;
            let mut line_start = |at: u64| {
                seen += 1;
                if seen == skip {
                    end = Some((f, at));
                }
                if seen == skip + count {
                    start = Some((f, at));
                }
                start.is_some()
            };
            while hi > 0 {
                let lo = hi.saturating_sub(chunk.len() as u64);
                let piece = &mut chunk[..(hi - lo) as usize];
                if file.read_exact_at(piece, lo).is_err() {
                    break;
                }
                for i in memchr::memrchr_iter(b'\n', piece) {
                    let at = lo + i as u64 + 1;
                    if at < *len && line_start(at) {
                        break 'files;
                    }
                }
                hi = lo;
            }
            if *len > 0 && line_start(0) {
                break;
            }
        }
        if seen <= skip {
            return lines;
        }
        let (start, end) = (
            start.unwrap_or_else(|| (files.iter().position(|(_, len)| *len > 0).unwrap_or(0), 0)),
            end.expect("set once a line is seen"),
        );
        lines.left = (seen - skip).min(count);
        for (f, (file, len)) in files.into_iter().enumerate() {
            if f < start.0 || f > end.0 {
                continue;
            }
            let from = if f == start.0 { start.1 } else { 0 };
            let to = if f == end.0 { end.1 } else { len };
            if from < to {
                lines.ranges.push_back((file, from..to));
            }
        }
        lines
    }

    fn len(&self) -> u64 {
        self.left
    }
}

impl Iterator for FileLines {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        while self.left > 0 {
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    let (mut file, range) = self.ranges.pop_front()?;
                    if file.seek(SeekFrom::Start(range.start)).is_err() {
                        continue;
                    }
                    self.reader
                        .insert(BufReader::new(file.take(range.end - range.start)))
                }
            };
            self.buf.clear();
            match read_line_capped(reader, &mut self.buf, FILE_LINE_MAX) {
                Ok(0) | Err(_) => {
                    self.reader = None;
                    continue;
                }
                Ok(_) => {}
            }
            self.left -= 1;
            while let [rest @ .., b'\n' | b'\r'] = self.buf.as_slice() {
                let n = rest.len();
                self.buf.truncate(n);
            }
            let text = String::from_utf8_lossy(&self.buf);
            let line = parse_file_line(self.service, &text).unwrap_or_else(|| LogLine {
                service: self.service,
                stream: Stream::Out,
                time: self.last_time,
                text: sanitize(text.as_bytes()),
            });
            self.last_time = line.time;
            return Some(line);
        }
        None
    }
}

/// Read up to and with the next `\n`, keeping at most `cap` bytes of it: the bytes consumed.
fn read_line_capped(r: &mut impl BufRead, out: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok(total);
        }
        let (used, ended) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let keep = used.min(cap.saturating_sub(out.len()));
        out.extend_from_slice(&available[..keep]);
        r.consume(used);
        total += used;
        if ended {
            return Ok(total);
        }
    }
}

/// The last lines of some services, merged in time order: for each service, what its buffer
/// holds and, before that, what its log files hold. Read lazily, so that sending it takes little
/// memory however many lines are asked for.
pub struct Tail {
    parts: Vec<TailPart>,
    /// Lines to pass over first (each service gave up to `n`; the merge keeps the last `n`).
    skip: u64,
}

struct TailPart {
    files: FileLines,
    buffered: std::vec::IntoIter<Arc<LogLine>>,
    head: Option<Arc<LogLine>>,
}

impl TailPart {
    fn advance(&mut self) {
        self.head = self
            .files
            .next()
            .map(Arc::new)
            .or_else(|| self.buffered.next());
    }
}

impl Tail {
    fn new(parts: Vec<(FileLines, Vec<Arc<LogLine>>)>, n: usize) -> Tail {
        let total: u64 = parts
            .iter()
            .map(|(files, buffered)| files.len() + buffered.len() as u64)
            .sum();
        let parts = parts
            .into_iter()
            .map(|(files, buffered)| {
                let mut part = TailPart {
                    files,
                    buffered: buffered.into_iter(),
                    head: None,
                };
                part.advance();
                part
            })
            .collect();
        Tail {
            parts,
            skip: total.saturating_sub(n as u64),
        }
    }
}

impl Iterator for Tail {
    type Item = Arc<LogLine>;

    fn next(&mut self) -> Option<Arc<LogLine>> {
        loop {
            let mut first: Option<(usize, SystemTime)> = None;
            for (i, part) in self.parts.iter().enumerate() {
                if let Some(line) = &part.head
                    && first.is_none_or(|(_, t)| line.time < t)
                {
                    first = Some((i, line.time));
                }
            }
            let part = &mut self.parts[first?.0];
            let line = part.head.take().expect("picked for its head");
            part.advance();
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            return Some(line);
        }
    }
}

/// The last `n` lines of these services from their log files alone (no stack is running), merged
/// in time order; rotated files included.
pub fn read_files(dir: &Path, names: &[String], services: &[usize], n: usize) -> Tail {
    let parts = services
        .iter()
        .map(|&i| {
            let files = open_files(&log_path(dir, &names[i]));
            (FileLines::last(i, files, 0, n as u64), Vec::new())
        })
        .collect();
    Tail::new(parts, n)
}

/// A service's log file and buffer, locked apart so that readers of the buffer (the dashboard)
/// never wait on the disk.
struct ServiceLog {
    file: Mutex<FileLog>,
    ring: Mutex<Ring>,
    /// What `ps` shows of lines the file could not take (kept apart, so asking never waits on
    /// the disk).
    loss: Mutex<Option<LogLoss>>,
    /// Batches on their way to the service's writer thread.
    queue: Queue,
}

/// Which buffer to read: one service's, or all merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Service(usize),
    All,
}

/// Every service's log: file, in-memory buffers, the live tap, and followers.
///
/// A service's output (`push`, on its PTY reader thread) is written by the thread that logs it,
/// which waits for the disk: the back-pressure that slows a flood down to what the disk takes,
/// never dropping a line. devstack's own lines (`system`, the engine's) are only queued and never
/// wait: whoever writes next for that service writes them, in order, and a writer thread of the
/// service's (started with its first such line) does when nobody else is writing.
pub struct LogHub {
    sink: Arc<Sink>,
    /// A terminal emulator per service, fed its raw output while someone types into it.
    screens: Vec<Mutex<Option<vt100::Parser>>>,
}

/// What a batch of lines goes to, shared with the writer threads.
struct Sink {
    services: Vec<ServiceLog>,
    merged: Mutex<Ring>,
    tap: Option<Arc<dyn LineTap>>,
    followers: broadcast::Sender<Arc<LogLine>>,
    /// Told when a service's loss changes (its file failed, or works again).
    losses: tokio::sync::Notify,
}

/// Lines a follower may fall behind by before it is told it missed some.
const FOLLOW_BACKLOG: usize = 4096;
/// How long reading a tail waits for the lines logged before it to be written.
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// A service's queue: batches in the order they were logged, and who writes them.
#[derive(Default)]
struct Queue {
    state: Mutex<Queued>,
    /// The writer thread waits here for lines nobody else writes.
    work: Condvar,
    /// Those who logged lines wait here for them to be written.
    progress: Condvar,
}

#[derive(Default)]
struct Queued {
    batches: Vec<Vec<LogLine>>,
    /// Batches queued, and written, so far.
    queued: u64,
    written: u64,
    /// Someone writes the queue now (one at a time, which keeps the order).
    writing: bool,
    /// Threads waiting on `progress` (nobody to wake, no system call).
    waiting: usize,
    /// The writer thread was started (true), or could not be (false).
    writer: Option<bool>,
    /// The hub is gone: the writer thread ends once the queue is empty.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Queued> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every batch queued, as one.
fn take_all(q: &mut Queued) -> Vec<LogLine> {
    let mut batches = std::mem::take(&mut q.batches).into_iter();
    let mut lines = batches.next().unwrap_or_default();
    for batch in batches {
        lines.extend(batch);
    }
    lines
}

impl Sink {
    /// Write what `service` has queued until the queue is empty (the caller is the writer: it
    /// took `writing`).
    fn drain<'a>(
        &'a self,
        service: usize,
        mut q: MutexGuard<'a, Queued>,
    ) -> MutexGuard<'a, Queued> {
        let queue = &self.services[service].queue;
        while !q.batches.is_empty() {
            let taken = q.queued;
            let lines = take_all(&mut q);
            drop(q);
            self.write(service, lines);
            q = queue.lock();
            q.written = taken;
            if q.waiting > 0 {
                queue.progress.notify_all();
            }
        }
        q.writing = false;
        q
    }

    /// The writer thread of `service`: writes devstack's lines when nobody else is writing.
    fn writer(&self, service: usize) {
        let queue = &self.services[service].queue;
        let mut q = queue.lock();
        loop {
            if q.batches.is_empty() || q.writing {
                if q.closed && q.batches.is_empty() {
                    return;
                }
                q = queue.work.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            q.writing = true;
            q = self.drain(service, q);
        }
    }

    /// Log a batch of lines of one service: file first, then the buffers, the live view and
    /// followers.
    fn write(&self, service: usize, lines: Vec<LogLine>) {
        let file = self.services[service].file.lock().expect("log file lock");
        self.write_with(service, lines, file);
    }

    /// `write`, with the service's file lock already taken.
    fn write_with(&self, service: usize, mut lines: Vec<LogLine>, mut file: MutexGuard<FileLog>) {
        let log = &self.services[service];
        // The file lock is held throughout, so the file, the live view and the buffers all get a
        // service's lines in one order.
        file.write(service, &mut lines);
        let loss = file.loss();
        let mut shown = log.loss.lock().expect("loss lock");
        if loss != *shown {
            *shown = loss;
            self.losses.notify_one();
        }
        drop(shown);
        if let Some(tap) = &self.tap {
            tap.lines(&lines);
        }
        let follow = self.followers.receiver_count() > 0;
        let mut ring = log.ring.lock().expect("log lock");
        let mut merged = self.merged.lock().expect("merged log lock");
        for line in lines {
            let line = Arc::new(line);
            if follow {
                let _ = self.followers.send(line.clone());
            }
            ring.push(line.clone());
            merged.push(line);
        }
        let oldest = file.seq - ring.lines().len() as u64;
        file.prune(oldest);
    }
}

impl Drop for LogHub {
    fn drop(&mut self) {
        // The writers end once they have written what is queued.
        for log in &self.sink.services {
            log.queue.lock().closed = true;
            log.queue.work.notify_all();
        }
    }
}

impl LogHub {
    /// Log every service to `dir/<name>.log`. A file that cannot be written is reported on the
    /// service's log and tried again as lines come; the live view and the buffers still get every
    /// line.
    /// `scrollback`: lines kept in memory per service (all services merged keep five times as
    /// many).
    pub fn new(
        dir: &Path,
        names: &[String],
        tap: Option<Arc<dyn LineTap>>,
        scrollback: usize,
    ) -> Self {
        let _ = fs::create_dir_all(dir);
        let services = names
            .iter()
            .map(|name| ServiceLog {
                file: Mutex::new(FileLog::new(log_path(dir, name))),
                ring: Mutex::new(Ring::new(scrollback, BUFFER_BYTES)),
                loss: Mutex::new(None),
                queue: Queue::default(),
            })
            .collect();
        LogHub {
            sink: Arc::new(Sink {
                services,
                merged: Mutex::new(Ring::new(scrollback * 5, MERGED_BYTES)),
                tap,
                followers: broadcast::channel(FOLLOW_BACKLOG).0,
                losses: tokio::sync::Notify::new(),
            }),
            screens: names.iter().map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Log a batch of a service's output: file first, then the buffers, the live view and
    /// followers. Returns once they are written, waiting on the disk (and for whoever writes
    /// the service's lines now): not for the engine's thread, which has `system`.
    pub fn push(&self, service: usize, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        let queue = &self.sink.services[service].queue;
        let mut q = queue.lock();
        q.batches.push(lines);
        q.queued += 1;
        let mine = q.queued;
        while q.written < mine {
            if q.writing {
                q.waiting += 1;
                q = queue.progress.wait(q).unwrap_or_else(|e| e.into_inner());
                q.waiting -= 1;
            } else {
                q.writing = true;
                q = self.sink.drain(service, q);
            }
        }
    }

    /// One of devstack's own events about a service. Never waits for a busy file: written here
    /// when nobody is writing the service's log, otherwise by whoever writes its lines next, or
    /// its writer thread.
    pub fn system(&self, service: usize, text: impl AsRef<str>) {
        let lines: Vec<LogLine> = text
            .as_ref()
            .lines()
            .map(|l| system_line(service, l))
            .collect();
        if lines.is_empty() {
            return;
        }
        let queue = &self.sink.services[service].queue;
        let mut q = queue.lock();
        q.batches.push(lines);
        q.queued += 1;
        if q.writing {
            return; // written with what is being written now
        }
        // Nobody is writing this service's log: written here and now, so that what the engine
        // says about different services shows in the order it was said. (Only when the file is
        // busy, as under a flood or on a stuck disk, does the line wait in the queue.)
        if let Ok(file) = self.sink.services[service].file.try_lock() {
            let taken = q.queued;
            let lines = take_all(&mut q);
            q.writing = true;
            drop(q);
            self.sink.write_with(service, lines, file);
            let mut q = queue.lock();
            q.written = q.written.max(taken);
            if q.waiting > 0 {
                queue.progress.notify_all();
            }
            drop(self.sink.drain(service, q));
            return;
        }
        if q.writer.is_none() {
            let sink = self.sink.clone();
            let started = std::thread::Builder::new()
                .name(format!("log-{service}"))
                .spawn(move || sink.writer(service));
            q.writer = Some(started.is_ok());
        }
        if q.writer == Some(true) {
            queue.work.notify_one();
        } else {
            // No thread to write it: written here, as before there were any.
            q.writing = true;
            drop(self.sink.drain(service, q));
        }
    }

    /// Wait (at most `limit`) until the lines of `services` logged so far are written.
    fn settle(&self, services: &[usize], limit: Duration) {
        let deadline = Instant::now() + limit;
        for &i in services {
            let queue = &self.sink.services[i].queue;
            let mut q = queue.lock();
            let target = q.queued;
            while q.written < target {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                q.waiting += 1;
                q = queue
                    .progress
                    .wait_timeout(q, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                q.waiting -= 1;
            }
        }
    }

    /// Wait (at most `limit`) until every line logged so far is written: before the process
    /// ends, so that the files and the terminal get the last lines.
    pub fn flush(&self, limit: Duration) {
        let all: Vec<usize> = (0..self.sink.services.len()).collect();
        self.settle(&all, limit);
    }

    /// Ready once a service's [`loss`](Self::loss) has changed since the last wait (for one
    /// waiter: the engine, which shows it).
    pub async fn loss_changed(&self) {
        self.sink.losses.notified().await
    }

    /// Lines of this run that did not reach the service's log file, if any.
    pub fn loss(&self, service: usize) -> Option<LogLoss> {
        self.sink.services[service]
            .loss
            .lock()
            .expect("loss lock")
            .clone()
    }

    /// Read a buffer in place (the TUI renders from here without copying it).
    pub fn read<T>(&self, source: Source, f: impl FnOnce(&Ring) -> T) -> T {
        match source {
            Source::Service(i) => f(&self.sink.services[i].ring.lock().expect("log lock")),
            Source::All => f(&self.sink.merged.lock().expect("merged log lock")),
        }
    }

    /// The last `n` lines of each of `services` (merged in time order; from the log files, rotated
    /// ones included, where the buffer holds fewer), and every line logged after them: no line is
    /// in both, none falls between.
    pub fn tail_and_follow(
        &self,
        services: &[usize],
        n: usize,
    ) -> (Tail, broadcast::Receiver<Arc<LogLine>>) {
        let mut sorted = services.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        // What was logged before this is in the buffers (unless the disk is stuck).
        self.settle(&sorted, SETTLE_WAIT);
        // A writer writes the file, then sends to followers, under its service's file lock:
        // holding these locks while subscribing splits the stream cleanly, and the files hold
        // exactly the lines written before.
        let files: Vec<_> = sorted
            .iter()
            .map(|&i| self.sink.services[i].file.lock().expect("log file lock"))
            .collect();
        let rings: Vec<_> = sorted
            .iter()
            .map(|&i| self.sink.services[i].ring.lock().expect("log lock"))
            .collect();
        let found: Vec<_> = files
            .iter()
            .zip(&rings)
            .map(|(file, ring)| {
                let buffered: Vec<Arc<LogLine>> = ring.tail(n).cloned().collect();
                let held = ring.lines().len();
                // The buffer's lines that are in the file are its last ones; the file's lines
                // before those are older than anything buffered.
                let skip = file.written_since(file.seq - held as u64);
                let more = n.saturating_sub(held) as u64;
                let opened = if more > 0 {
                    open_files(&file.path)
                } else {
                    Vec::new()
                };
                (opened, skip, more, buffered)
            })
            .collect();
        let rx = self.sink.followers.subscribe();
        drop(rings);
        drop(files);
        let parts = sorted
            .iter()
            .zip(found)
            .map(|(&i, (opened, skip, more, buffered))| {
                (FileLines::last(i, opened, skip, more), buffered)
            })
            .collect();
        (Tail::new(parts, n), rx)
    }

    /// Start emulating a service's terminal at this size, seeded with its recent lines, so that
    /// what it draws (prompts, REPLs, full-screen programs) shows as it would in a terminal.
    pub fn open_screen(&self, service: usize, rows: u16, cols: u16) {
        let mut parser = vt100::Parser::new(rows.max(1), cols.max(1), 0);
        for line in self.buffered(service, rows as usize) {
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

    /// The last `n` buffered lines of a service, with those logged before this (devstack's own
    /// are written by another thread: waits for them, `SETTLE_WAIT` at most).
    pub fn tail(&self, service: usize, n: usize) -> Vec<Arc<LogLine>> {
        self.settle(&[service], SETTLE_WAIT);
        self.buffered(service, n)
    }

    fn buffered(&self, service: usize, n: usize) -> Vec<Arc<LogLine>> {
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

    fn file_with(path: &Path, lines: impl Iterator<Item = String>) {
        let mut f = RotatingFile::open(path.to_path_buf(), 200, LOG_FILES_KEPT).unwrap();
        for l in lines {
            f.write_line(&l).unwrap();
        }
        f.flush().unwrap();
    }

    fn stamped(i: usize) -> String {
        format!("2024-01-01T00:00:{i:02}.000Z line {i:02}")
    }

    fn texts(lines: impl Iterator<Item = LogLine>) -> Vec<String> {
        lines.map(|l| l.text).collect()
    }

    #[test]
    fn reading_back_takes_the_lines_before_the_skipped_ones_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        // 7 lines a file: `.3` holds 0-6, `.2` 7-13, `.1` 14-20, the current file 21-23.
        file_with(&path, (0..24).map(stamped));
        assert!(numbered(&path, 3).exists(), "the lines span rotated files");
        let want = |from: usize, to: usize| -> Vec<String> {
            (from..to).map(|i| format!("line {i:02}")).collect()
        };
        let read = |skip, count| texts(FileLines::last(0, open_files(&path), skip, count));
        assert_eq!(read(3, 5), want(16, 21));
        assert_eq!(read(2, 5), want(17, 22));
        assert_eq!(read(0, 4), want(20, 24));
        assert_eq!(read(3, 100), want(0, 21));
        assert_eq!(read(0, 100), want(0, 24));
        assert_eq!(read(24, 5), Vec::<String>::new());
        assert_eq!(read(30, 5), Vec::<String>::new());
        let first = FileLines::last(0, open_files(&path), 23, 1).next().unwrap();
        assert_eq!(
            first.time,
            humantime::parse_rfc3339("2024-01-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn a_cut_off_last_line_is_read_back_and_the_next_run_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        fs::write(
            &path,
            format!(
                "{}\n{}\n{}",
                stamped(1),
                stamped(2),
                "2024-01-01T00:00:03.000Z cut"
            ),
        )
        .unwrap();
        let read = || texts(FileLines::last(0, open_files(&path), 0, 10));
        assert_eq!(read(), ["line 01", "line 02", "cut"]);
        file_with(&path, std::iter::once(stamped(4)));
        assert_eq!(read(), ["line 01", "line 02", "cut", "line 04"]);
    }

    #[test]
    fn a_file_that_fails_counts_what_it_lost_says_so_once_and_says_when_it_works_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("not yet");
        let mut log = FileLog::new(sub.join("s.log"));
        let batch = |n: usize| -> Vec<LogLine> {
            (0..n)
                .map(|i| LogLine {
                    service: 0,
                    stream: Stream::Out,
                    time: SystemTime::now(),
                    text: format!("l{i}"),
                })
                .collect()
        };
        let mut lines = batch(3);
        log.write(0, &mut lines);
        assert_eq!(lines.len(), 4, "a notice follows the lines");
        assert!(lines[3].text.contains("No such file or directory; lines are kept in memory only until it can be written again"), "{}", lines[3].text);
        assert_eq!((log.lost, log.seq), (3, 4));
        let mut lines = batch(2);
        log.write(0, &mut lines);
        assert_eq!(lines.len(), 2, "said once; not tried again at once");
        assert_eq!(log.loss().unwrap().lines, 5);
        fs::create_dir(&sub).unwrap();
        log.retry_at = Instant::now();
        let mut lines = batch(2);
        log.write(0, &mut lines);
        assert_eq!(lines[0].text, "log file writable again; 5 lines were lost");
        assert_eq!(lines.len(), 3);
        let loss = log.loss().unwrap();
        assert_eq!((loss.lines, loss.error), (5, None));
        // Of the 9 lines logged, the last 3 are in the file.
        assert_eq!(
            (log.seq, log.written_since(0), log.written_since(7)),
            (9, 3, 2)
        );
        log.prune(6);
        assert_eq!(log.written_since(6), 3);
        let read = texts(FileLines::last(0, open_files(&log.path), 0, 10));
        assert_eq!(
            read,
            ["log file writable again; 5 lines were lost", "l0", "l1"]
        );
    }

    #[test]
    fn a_tail_merges_services_in_time_order_and_keeps_the_last_n() {
        let at = |s: usize, secs: u64| {
            Arc::new(LogLine {
                service: s,
                stream: Stream::Out,
                time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                text: format!("{s}@{secs}"),
            })
        };
        let none = || FileLines::last(0, Vec::new(), 0, 0);
        let parts = vec![
            (none(), vec![at(0, 1), at(0, 4), at(0, 5)]),
            (none(), vec![at(1, 2), at(1, 3), at(1, 5)]),
        ];
        let got: Vec<String> = Tail::new(parts, 4).map(|l| l.text.clone()).collect();
        assert_eq!(got, ["1@3", "0@4", "0@5", "1@5"]);
    }
}
