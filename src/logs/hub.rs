//! The `LogHub`, where every line is logged: a service's lines go to its log file first, then
//! to its buffer and the merged one, the live tap and the followers, in the order they were
//! logged. A queue per service says who writes: a service's output is written by its PTY reader,
//! which waits for the disk; devstack's own lines are written by whoever writes that service's
//! lines next, or by its writer thread, and never wait.

use super::LogLine;
use super::file::{FileLog, LogLoss, log_path};
use super::lines::system_line;
use super::ring::{BUFFER_BYTES, MERGED_BYTES, Ring};
use super::screen::Screen;
use crate::config::{ServiceId, Services};
use crate::ignored::Ignore;
use crate::sync::{Locked, Unpoisoned};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Receives every line as it is logged (the headless printer, the TUI).
pub trait LineTap: Send + Sync {
    fn lines(&self, lines: &[LogLine]);
}

/// A service's log file and buffer, locked apart so that readers of the buffer (the dashboard)
/// never wait on the disk.
pub(super) struct ServiceLog {
    pub(super) file: Mutex<FileLog>,
    pub(super) ring: Mutex<Ring>,
    /// What `ps` shows of lines the file could not take (kept apart, so asking never waits on
    /// the disk).
    loss: Mutex<Option<LogLoss>>,
    /// Batches on their way to the service's writer thread.
    queue: Queue,
}

/// Every service's log: file, in-memory buffers, the live tap, and followers.
///
/// A service's output (`push`, on its PTY reader thread) is written by the thread that logs it,
/// which waits for the disk: the back-pressure that slows a flood down to what the disk takes,
/// never dropping a line. devstack's own lines (`system`, the engine's) are only queued and never
/// wait: whoever writes next for that service writes them, in order, and a writer thread of the
/// service's (started with its first such line) does when nobody else is writing.
pub struct LogHub {
    pub(super) sink: Arc<Sink>,
    /// A terminal emulator per service, fed its raw output while someone types into it.
    pub(super) screens: Services<Screen>,
}

/// What a batch of lines goes to, shared with the writer threads.
pub(super) struct Sink {
    pub(super) services: Services<ServiceLog>,
    pub(super) merged: Mutex<Ring>,
    tap: Option<Arc<dyn LineTap>>,
    pub(super) followers: broadcast::Sender<Arc<LogLine>>,
    /// Told when a service's loss changes (its file failed, or works again).
    losses: tokio::sync::Notify,
}

/// Lines a follower may fall behind by before it is told it missed some.
const FOLLOW_BACKLOG: usize = 4096;

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
        self.state.locked()
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
        service: ServiceId,
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
    fn writer(&self, service: ServiceId) {
        let queue = &self.services[service].queue;
        let mut q = queue.lock();
        loop {
            if q.batches.is_empty() || q.writing {
                if q.closed && q.batches.is_empty() {
                    return;
                }
                q = queue.work.wait(q).unpoisoned();
                continue;
            }
            q.writing = true;
            q = self.drain(service, q);
        }
    }

    /// Log a batch of lines of one service: file first, then the buffers, the live view and
    /// followers.
    fn write(&self, service: ServiceId, lines: Vec<LogLine>) {
        let file = self.services[service].file.locked();
        self.write_with(service, lines, file);
    }

    /// `write`, with the service's file lock already taken.
    fn write_with(
        &self,
        service: ServiceId,
        mut lines: Vec<LogLine>,
        mut file: MutexGuard<FileLog>,
    ) {
        let log = &self.services[service];
        // The file lock is held throughout, so the file, the live view and the buffers all get a
        // service's lines in one order.
        file.write(service, &mut lines);
        let loss = file.loss();
        let mut shown = log.loss.locked();
        if loss != *shown {
            *shown = loss;
            self.losses.notify_one();
        }
        drop(shown);
        if let Some(tap) = &self.tap {
            tap.lines(&lines);
        }
        let follow = self.followers.receiver_count() > 0;
        let mut ring = log.ring.locked();
        let mut merged = self.merged.locked();
        for line in lines {
            let line = Arc::new(line);
            if follow {
                self.followers
                    .send(line.clone())
                    .or_say("the last follower may have left since they were counted");
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
        for log in self.sink.services.values() {
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
        names: &Services<String>,
        tap: Option<Arc<dyn LineTap>>,
        scrollback: usize,
    ) -> Self {
        fs::create_dir_all(dir).or_say("each file that cannot be made is said in its log");
        let services = names.map(|name| ServiceLog {
            file: Mutex::new(FileLog::new(log_path(dir, name))),
            ring: Mutex::new(Ring::new(scrollback, BUFFER_BYTES)),
            loss: Mutex::new(None),
            queue: Queue::default(),
        });
        LogHub {
            sink: Arc::new(Sink {
                services,
                merged: Mutex::new(Ring::new(scrollback * 5, MERGED_BYTES)),
                tap,
                followers: broadcast::channel(FOLLOW_BACKLOG).0,
                losses: tokio::sync::Notify::new(),
            }),
            screens: names.map(|_| Mutex::new(None)),
        }
    }

    /// Log a batch of a service's output: file first, then the buffers, the live view and
    /// followers. Returns once they are written, waiting on the disk (and for whoever writes
    /// the service's lines now): not for the engine's thread, which has `system`.
    pub fn push(&self, service: ServiceId, lines: Vec<LogLine>) {
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
                q = queue.progress.wait(q).unpoisoned();
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
    pub fn system(&self, service: ServiceId, text: impl AsRef<str>) {
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
        if let Some(file) = self.sink.services[service].file.try_locked() {
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
                .name(format!("log-{}", service.index()))
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
    pub(super) fn settle(&self, services: &[ServiceId], limit: Duration) {
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
                q = queue.progress.wait_timeout(q, left).unpoisoned().0;
                q.waiting -= 1;
            }
        }
    }

    /// Wait (at most `limit`) until every line logged so far is written: before the process
    /// ends, so that the files and the terminal get the last lines.
    pub fn flush(&self, limit: Duration) {
        let all: Vec<ServiceId> = self.sink.services.ids().collect();
        self.settle(&all, limit);
    }

    /// Ready once a service's [`loss`](Self::loss) has changed since the last wait (for one
    /// waiter: the engine, which shows it).
    pub async fn loss_changed(&self) {
        self.sink.losses.notified().await
    }

    /// Lines of this run that did not reach the service's log file, if any.
    pub fn loss(&self, service: ServiceId) -> Option<LogLoss> {
        self.sink.services[service].loss.locked().clone()
    }
}
