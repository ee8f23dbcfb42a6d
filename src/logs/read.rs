//! Reading lines back: the last lines of a service's log files, rotated ones included, read
//! backwards only as far as needed (`FileLines`); a `Tail` merging services in time order, lazily;
//! and the hub's readers: a buffer in place, a tail, and a tail with every line logged after it
//! (`LogHub::tail_and_follow`, the followers' start).

use super::file::{LOG_FILES_KEPT, log_path, numbered, parse_file_line};
use super::{LogHub, LogLine, MAX_LINE, Ring, Stream, sanitize};
use crate::config::{ServiceId, Services};
use crate::sync::Locked;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// How long reading a tail waits for the lines logged before it to be written.
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// Which buffer to read: one service's, or all merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Service(ServiceId),
    All,
}

/// A service's log files, oldest first (`.3`, `.2`, `.1`, then the current one), opened now, with
/// their lengths now.
pub(super) fn open_files(path: &Path) -> Vec<(File, u64)> {
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
    service: ServiceId,
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
    pub(super) fn last(
        service: ServiceId,
        files: Vec<(File, u64)>,
        skip: u64,
        count: u64,
    ) -> FileLines {
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
pub fn read_files(dir: &Path, names: &Services<String>, services: &[ServiceId], n: usize) -> Tail {
    let parts = services
        .iter()
        .map(|&i| {
            let files = open_files(&log_path(dir, &names[i]));
            (FileLines::last(i, files, 0, n as u64), Vec::new())
        })
        .collect();
    Tail::new(parts, n)
}

impl LogHub {
    /// Read a buffer in place (the TUI renders from here without copying it).
    pub fn read<T>(&self, source: Source, f: impl FnOnce(&Ring) -> T) -> T {
        match source {
            Source::Service(i) => f(&self.sink.services[i].ring.locked()),
            Source::All => f(&self.sink.merged.locked()),
        }
    }

    /// The last `n` lines of each of `services` (merged in time order; from the log files, rotated
    /// ones included, where the buffer holds fewer), and every line logged after them: no line is
    /// in both, none falls between.
    pub fn tail_and_follow(
        &self,
        services: &[ServiceId],
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
            .map(|&i| self.sink.services[i].file.locked())
            .collect();
        let rings: Vec<_> = sorted
            .iter()
            .map(|&i| self.sink.services[i].ring.locked())
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

    /// The last `n` buffered lines of a service, with those logged before this (devstack's own
    /// are written by another thread: waits for them, `SETTLE_WAIT` at most).
    pub fn tail(&self, service: ServiceId, n: usize) -> Vec<Arc<LogLine>> {
        self.settle(&[service], SETTLE_WAIT);
        self.buffered(service, n)
    }

    /// The last `n` lines of a service as plain text (colours stripped), as a failure shows
    /// them; waits as `tail` does.
    pub fn tail_text(&self, service: ServiceId, n: usize) -> Vec<String> {
        self.tail(service, n)
            .iter()
            .map(|l| super::strip_sgr(&l.text).into_owned())
            .collect()
    }

    pub(super) fn buffered(&self, service: ServiceId, n: usize) -> Vec<Arc<LogLine>> {
        self.read(Source::Service(service), |ring| {
            ring.tail(n).cloned().collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::RotatingFile;
    use std::fs;

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
        let read = |skip, count| {
            texts(FileLines::last(
                ServiceId(0),
                open_files(&path),
                skip,
                count,
            ))
        };
        assert_eq!(read(3, 5), want(16, 21));
        assert_eq!(read(2, 5), want(17, 22));
        assert_eq!(read(0, 4), want(20, 24));
        assert_eq!(read(3, 100), want(0, 21));
        assert_eq!(read(0, 100), want(0, 24));
        assert_eq!(read(24, 5), Vec::<String>::new());
        assert_eq!(read(30, 5), Vec::<String>::new());
        let first = FileLines::last(ServiceId(0), open_files(&path), 23, 1)
            .next()
            .unwrap();
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
        let read = || texts(FileLines::last(ServiceId(0), open_files(&path), 0, 10));
        assert_eq!(read(), ["line 01", "line 02", "cut"]);
        file_with(&path, std::iter::once(stamped(4)));
        assert_eq!(read(), ["line 01", "line 02", "cut", "line 04"]);
    }

    #[test]
    fn a_tail_merges_services_in_time_order_and_keeps_the_last_n() {
        let at = |s: usize, secs: u64| {
            Arc::new(LogLine {
                service: ServiceId(s),
                stream: Stream::Out,
                time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                text: format!("{s}@{secs}"),
            })
        };
        let none = || FileLines::last(ServiceId(0), Vec::new(), 0, 0);
        let parts = vec![
            (none(), vec![at(0, 1), at(0, 4), at(0, 5)]),
            (none(), vec![at(1, 2), at(1, 3), at(1, 5)]),
        ];
        let got: Vec<String> = Tail::new(parts, 4).map(|l| l.text.clone()).collect();
        assert_eq!(got, ["1@3", "0@4", "0@5", "1@5"]);
    }
}
