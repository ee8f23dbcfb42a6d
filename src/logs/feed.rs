//! One process's raw output on its way to the hub: `OutputFeed` splits and sanitises it into
//! lines on the PTY reader thread, feeds the typing mode's screen, watches for the `log` probe's
//! match and says `spawned pid N` ahead of the first line.

use super::{CONTINUED, LineSplitter, LogHub, LogLine, Stream, sanitize, strip_sgr};
use crate::config::ServiceId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// Turns one process's raw output into logged lines.
pub struct OutputFeed {
    hub: Arc<LogHub>,
    service: ServiceId,
    stream: Stream,
    splitter: LineSplitter,
    matcher: Option<Matcher>,
    /// Logged as `spawned pid N: <this>` before the first line of output.
    announce: Option<String>,
    /// While this is set (two run processes of the service live: a rollout), each line is
    /// marked `[pid N] `; the pid, once started.
    marks: Option<(Arc<AtomicBool>, i32)>,
}

/// Called once, on the first line the regex matches (the `log` health probe).
pub type Matcher = (regex::Regex, Box<dyn FnOnce() + Send>);

impl OutputFeed {
    pub fn new(hub: Arc<LogHub>, service: ServiceId, stream: Stream) -> Self {
        OutputFeed {
            hub,
            service,
            stream,
            splitter: LineSplitter::default(),
            matcher: None,
            announce: None,
            marks: None,
        }
    }

    /// Mark each line with the process's pid while `overlap` is set.
    pub fn with_pid_marks(mut self, overlap: Arc<AtomicBool>) -> Self {
        self.marks = Some((overlap, 0));
        self
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
        let mark = match &self.marks {
            Some((overlap, pid)) if overlap.load(Ordering::Relaxed) => {
                Some(format!("[pid {pid}] "))
            }
            _ => None,
        };
        let mut emit = |raw: &[u8], cut| {
            let mut line = make_line(service, stream, time, raw, cut);
            if let Some(mark) = &mark {
                line.text.insert_str(0, mark);
            }
            lines.push(line)
        };
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
        if let Some((_, mine)) = &mut self.marks {
            *mine = pid;
        }
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

fn make_line(
    service: ServiceId,
    stream: Stream,
    time: SystemTime,
    raw: &[u8],
    cut: bool,
) -> LogLine {
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
