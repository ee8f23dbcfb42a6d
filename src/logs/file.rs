//! A service's log file under `.devstack/logs/`: the line format (`parse_file_line` reads it
//! back), the `RotatingFile` that holds only whole lines and rotates to `.1`, `.2` …, and the
//! `FileLog` that writes a service's batches to it and keeps count of the lines it could not take
//! (a full disk: `LogLoss`), trying again now and then.

use super::lines::{LogLine, Stream, sanitize, strip_sgr, system_line};
use crate::config::ServiceId;
use crate::ignored::Ignore;
use serde::Serialize;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
pub fn parse_file_line(service: ServiceId, line: &str) -> Option<LogLine> {
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
pub(super) fn numbered(path: &Path, n: usize) -> PathBuf {
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
                self.file
                    .set_len(self.size)
                    .or_say("a file that takes nothing may keep part of a line, as it is failing");
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
        fs::remove_file(numbered(&self.path, self.keep))
            .or_say("the oldest rotated file may not be there yet");
        for n in (1..self.keep).rev() {
            fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1))
                .or_say("a rotated file may not be there yet");
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
pub(super) struct FileLog {
    pub(super) path: PathBuf,
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
    pub(super) seq: u64,
    gaps: VecDeque<Range<u64>>,
}

impl FileLog {
    pub(super) fn new(path: PathBuf) -> Self {
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
    pub(super) fn write(&mut self, service: ServiceId, lines: &mut Vec<LogLine>) {
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
        let mut stamp = (lines[0].time, crate::format::stamp(lines[0].time));
        let mut buf = String::new();
        let result = lines
            .iter()
            .try_for_each(|line| {
                if line.time != stamp.0 {
                    stamp = (line.time, crate::format::stamp(line.time));
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
    pub(super) fn prune(&mut self, oldest: u64) {
        while self.gaps.front().is_some_and(|g| g.end <= oldest) {
            self.gaps.pop_front();
        }
    }

    /// How many of the lines numbered `from` onwards are in the file.
    pub(super) fn written_since(&self, from: u64) -> u64 {
        let missing: u64 = self
            .gaps
            .iter()
            .map(|g| g.end.min(self.seq).saturating_sub(g.start.max(from)))
            .sum();
        (self.seq - from) - missing
    }

    pub(super) fn loss(&self) -> Option<LogLoss> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::read::{FileLines, open_files};
    use std::time::SystemTime;

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

    #[test]
    fn a_file_that_fails_counts_what_it_lost_says_so_once_and_says_when_it_works_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("not yet");
        let mut log = FileLog::new(sub.join("s.log"));
        let batch = |n: usize| -> Vec<LogLine> {
            (0..n)
                .map(|i| LogLine {
                    service: ServiceId(0),
                    stream: Stream::Out,
                    time: SystemTime::now(),
                    text: format!("l{i}"),
                })
                .collect()
        };
        let mut lines = batch(3);
        log.write(ServiceId(0), &mut lines);
        assert_eq!(lines.len(), 4, "a notice follows the lines");
        assert!(lines[3].text.contains("No such file or directory; lines are kept in memory only until it can be written again"), "{}", lines[3].text);
        assert_eq!((log.lost, log.seq), (3, 4));
        let mut lines = batch(2);
        log.write(ServiceId(0), &mut lines);
        assert_eq!(lines.len(), 2, "said once; not tried again at once");
        assert_eq!(log.loss().unwrap().lines, 5);
        fs::create_dir(&sub).unwrap();
        log.retry_at = Instant::now();
        let mut lines = batch(2);
        log.write(ServiceId(0), &mut lines);
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
        let read: Vec<String> = FileLines::last(ServiceId(0), open_files(&log.path), 0, 10)
            .map(|l| l.text)
            .collect();
        assert_eq!(
            read,
            ["log file writable again; 5 lines were lost", "l0", "l1"]
        );
    }
}
