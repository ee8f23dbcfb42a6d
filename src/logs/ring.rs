//! The bounded in-memory buffers of recent lines (a service's, and all services' merged): a
//! `Ring` keeps the newest lines within a count and a size, and counts every line it was given.

use super::LogLine;
use std::collections::VecDeque;
use std::sync::Arc;

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

    pub(super) fn tail(&self, n: usize) -> impl Iterator<Item = &Arc<LogLine>> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;
    use std::time::SystemTime;

    #[test]
    fn the_ring_keeps_the_newest_lines_within_its_bounds_and_counts_all() {
        let line = |n: usize| {
            Arc::new(LogLine {
                service: crate::config::ServiceId(0),
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
}
