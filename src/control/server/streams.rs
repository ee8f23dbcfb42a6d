//! What a connection writes, and its streams. `Out` is the bounded writer every reply goes
//! through (about `CHUNK` bytes gathered, a client that takes nothing for `STALL` dropped);
//! the streams are `logs` (a tail written as it is read, then with `follow` every line),
//! `subscribe` (the views, then each change) and `traffic` with `follow` (the answer, then each
//! request as it ends), sent in batches until the client hangs up or stops reading.

use super::slots::Slot;
use super::{Context, done, error, index};
use crate::control::{Answer, Event, Message, WireLine, wire};
use crate::engine::{Change, ServiceId};
use crate::ignored::Ignore;
use crate::logs::{LogLine, Tail};
use crate::traffic::{Record, Snapshot, Stats};
use serde::Serialize;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::{self, Receiver};

/// A client that takes none of what it is sent for this long is dropped.
pub const STALL: Duration = Duration::from_secs(10);
/// Bytes a connection gathers before writing them: with the message being added, the most it
/// holds.
const CHUNK: usize = 32 * 1024;
/// Follow messages gathered into one write at most.
const BATCH: usize = 256;

/// A connection's writing side. Messages gather in a buffer of about `CHUNK` bytes and go out
/// when it is full or the reply is complete; a client that takes nothing for `STALL` is dropped
/// (the write fails), so that a client that stops reading holds neither memory nor its slot.
pub(super) struct Out {
    w: OwnedWriteHalf,
    buf: Vec<u8>,
    /// What went out last ended a message (a note can follow without breaking one).
    at_boundary: bool,
}

impl Out {
    pub(super) fn new(w: OwnedWriteHalf) -> Self {
        Out {
            w,
            buf: Vec::with_capacity(CHUNK),
            at_boundary: true,
        }
    }

    /// Add a whole message.
    async fn queue(&mut self, message: &impl Serialize) -> io::Result<()> {
        self.part(message).await?;
        self.raw(b"\n").await
    }

    /// Add part of a message: a JSON value.
    async fn part(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.buf, value).map_err(io::Error::other)?;
        self.flush_if_full().await
    }

    /// Add part of a message: bytes as they are.
    async fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.flush_if_full().await
    }

    async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    /// Send one message now.
    pub(super) async fn send(&mut self, message: &impl Serialize) -> io::Result<()> {
        self.queue(message).await?;
        self.flush().await
    }

    async fn flush(&mut self) -> io::Result<()> {
        let mut sent = 0;
        while sent < self.buf.len() {
            match tokio::time::timeout(STALL, self.w.write(&self.buf[sent..])).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => sent += n,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    // Try to say why (its buffer is most likely full, but it may have room).
                    let boundary = match sent {
                        0 => self.at_boundary,
                        n => self.buf[n - 1] == b'\n',
                    };
                    if boundary {
                        let note = error(format!(
                            "dropped: took nothing of what it was sent for {}s",
                            STALL.as_secs()
                        ));
                        self.w
                            .try_write(&line(&note))
                            .or_say("a client that takes nothing may not take this either");
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ));
                }
            }
        }
        if let Some(&last) = self.buf.last() {
            self.at_boundary = last == b'\n';
        }
        self.buf.clear();
        // One long line may have grown it.
        if self.buf.capacity() > 4 * CHUNK {
            self.buf.shrink_to(CHUNK);
        }
        Ok(())
    }
}

/// A message as one line, for a write that can't wait.
pub(super) fn line(message: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Wait for the client to hang up (anything it sends while streaming is ignored).
async fn hung_up(reader: &mut BufReader<OwnedReadHalf>) {
    let mut sink = [0u8; 1024];
    loop {
        match reader.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// What a `logs` request asks for.
pub(super) struct Wanted<'a> {
    pub(super) services: &'a [String],
    pub(super) lines: usize,
    pub(super) color: bool,
}

/// The last `lines` lines; with `follow` (the connection's slot), every line after them.
pub(super) async fn logs(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    asked: Wanted<'_>,
    follow: Option<&Slot>,
) -> bool {
    let Wanted {
        services,
        lines,
        color,
    } = asked;
    let wanted: Vec<ServiceId> = if services.is_empty() {
        ctx.names.ids().collect()
    } else {
        match services
            .iter()
            .map(|s| index(ctx, s))
            .collect::<Result<_, _>>()
        {
            Ok(w) => w,
            Err(e) => return out.send(&error(e)).await.is_ok(),
        }
    };
    if let Some(slot) = follow
        && let Err(e) = slot.stream()
    {
        return out.send(&error(e)).await.is_ok();
    }
    // Off this thread: it waits for the service's log file, which a stuck disk can hold up.
    let (logs, which) = (ctx.logs.clone(), wanted.clone());
    let Ok((tail, rx)) =
        tokio::task::spawn_blocking(move || logs.tail_and_follow(&which, lines)).await
    else {
        return false;
    };
    if send_tail(ctx, out, tail, color).await.is_err() {
        return false;
    }
    if follow.is_none() {
        return true;
    }
    let lines = Mapped::new(rx, |line: Arc<LogLine>| {
        wanted.contains(&line.service).then(|| Message::Line {
            line: WireLine::with_color(&line, &ctx.names, color),
        })
    });
    stream(reader, out, lines).await
}

/// `Response::Ok(Answer::Lines)`, `{"ok":true,"answer":"lines","lines":[...]}`, written as it is read (the tail
/// may reach into the log files) rather than gathered whole.
async fn send_tail(ctx: &Context, out: &mut Out, tail: Tail, color: bool) -> io::Result<()> {
    out.raw(br#"{"ok":true,"answer":"lines","lines":["#).await?;
    for (i, line) in tail.enumerate() {
        if i > 0 {
            out.raw(b",").await?;
        }
        out.part(&WireLine::with_color(&line, &ctx.names, color))
            .await?;
    }
    out.raw(b"]}\n").await?;
    out.flush().await
}

/// What one pull from a stream's source gave.
enum Pulled {
    /// Boxed: a message is large beside the others, which are many.
    Send(Box<Message>),
    /// Something not for this client (a line of another service, a change it did not ask for).
    Skip,
    /// Nothing there yet (`ready` only).
    Empty,
    /// The source ended: so does the stream.
    Closed,
}

/// Where a stream's messages come from.
trait Source {
    /// The next message, waiting for it.
    async fn next(&mut self) -> Pulled;
    /// One that is already there, without waiting.
    fn ready(&mut self) -> Pulled;
}

/// A broadcast channel's items as messages; a client that fell behind is told with
/// `{"missed":N}` (or not, when `quiet_lag`: a table that follows says where things are).
struct Mapped<T, F> {
    rx: Receiver<T>,
    message: F,
    quiet_lag: bool,
}

impl<T: Clone, F: FnMut(T) -> Option<Message>> Mapped<T, F> {
    fn new(rx: Receiver<T>, message: F) -> Self {
        Mapped {
            rx,
            message,
            quiet_lag: false,
        }
    }

    fn pulled(&mut self, received: Result<T, RecvError>) -> Pulled {
        match received {
            Ok(item) => (self.message)(item).map_or(Pulled::Skip, |m| Pulled::Send(Box::new(m))),
            Err(RecvError::Lagged(_)) if self.quiet_lag => Pulled::Skip,
            Err(RecvError::Lagged(n)) => Pulled::Send(Box::new(Message::Missed { missed: n })),
            Err(RecvError::Closed) => Pulled::Closed,
        }
    }
}

impl<T: Clone, F: FnMut(T) -> Option<Message>> Source for Mapped<T, F> {
    async fn next(&mut self) -> Pulled {
        let received = self.rx.recv().await;
        self.pulled(received)
    }

    fn ready(&mut self) -> Pulled {
        let received = match self.rx.try_recv() {
            Ok(item) => Ok(item),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => return Pulled::Empty,
        };
        self.pulled(received)
    }
}

/// Send what `source` gives until the client hangs up or stops reading, or the source ends.
async fn stream(
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    mut source: impl Source,
) -> bool {
    loop {
        let first = tokio::select! {
            first = source.next() => first,
            _ = hung_up(reader) => return false,
        };
        // Gather what is already there into one write.
        let mut next = first;
        let mut gathered = 0;
        loop {
            match next {
                Pulled::Send(msg) => {
                    if out.queue(&msg).await.is_err() {
                        return false;
                    }
                }
                Pulled::Skip => {}
                Pulled::Empty => break,
                Pulled::Closed => {
                    out.flush().await.or_say("the client may have left already");
                    return false;
                }
            }
            gathered += 1;
            if gathered >= BATCH {
                break;
            }
            next = source.ready();
        }
        if out.flush().await.is_err() {
            return false;
        }
    }
}

/// The traffic answer: the edge table and the last `recent` requests.
pub(super) fn traffic(ctx: &Context, recent: usize) -> Answer {
    match &ctx.traffic {
        Some(stats) => {
            let all = stats.recent();
            traffic_answer(stats, &all[all.len().saturating_sub(recent)..])
        }
        None => Answer::Traffic {
            traffic: wire::Traffic::default(),
            recent: Vec::new(),
        },
    }
}

fn traffic_answer(stats: &Stats, last: &[Arc<Record>]) -> Answer {
    Answer::Traffic {
        traffic: (&stats.snapshot()).into(),
        recent: last.iter().map(|r| wire::Call::from(&**r)).collect(),
    }
}

/// `traffic` with `follow`: the answer, then every request as it ends (none in both, none
/// between: `Stats::recent_and_follow`).
pub(super) async fn follow_traffic(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    recent: usize,
) -> bool {
    let Some(stats) = &ctx.traffic else {
        if out.send(&done(traffic(ctx, recent))).await.is_err() {
            return false;
        }
        // Nothing is proxied: nothing will come; wait for the client to hang up.
        hung_up(reader).await;
        return false;
    };
    let (last, calls) = stats.recent_and_follow(recent);
    if out.send(&done(traffic_answer(stats, &last))).await.is_err() {
        return false;
    }
    stream(reader, out, Mapped::new(calls, call_message)).await
}

fn call_message(call: Arc<Record>) -> Option<Message> {
    Some(Message::Call {
        call: wire::Call::from(&*call),
    })
}

/// A stream of state changes: `{"event":"state", "service": …}` with the service's view; with
/// `traffic`, also the proxy's: its last `traffic` requests and then each as it ends
/// (`{"call":…}`), and the edge table (`{"table":…}`) at once and then whenever it changed, looked
/// at every `TABLE_EVERY` (a quiet stack sends none).
pub(super) async fn subscribe(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    all: bool,
    traffic: Option<usize>,
) -> bool {
    let events: broadcast::Receiver<Change> = ctx.handle.events();
    let now = ctx.handle.views().borrow().clone();
    if out
        .send(&done(Answer::Services {
            services: wire::services(now.as_slice()),
        }))
        .await
        .is_err()
    {
        return false;
    }
    let changes = Mapped::new(events, move |change: Change| {
        let event = match change.state {
            true => Event::State,
            false if all => Event::Update,
            false => return None,
        };
        Some(Message::Event {
            event,
            service: (&change.view).into(),
        })
    });
    let (Some(recent), Some(stats)) = (traffic, &ctx.traffic) else {
        return stream(reader, out, changes).await;
    };
    let (last, calls) = stats.recent_and_follow(recent);
    let table = stats.snapshot();
    if out
        .queue(&Message::Table {
            table: (&table).into(),
        })
        .await
        .is_err()
    {
        return false;
    }
    for call in last {
        if out.queue(&call_message(call)).await.is_err() {
            return false;
        }
    }
    let mut calls = Mapped::new(calls, call_message);
    calls.quiet_lag = true;
    let mut tick = tokio::time::interval(TABLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let both = WithTraffic {
        changes,
        calls,
        stats,
        table,
        tick,
    };
    stream(reader, out, both).await
}

/// How often a `subscribe` with `traffic` looks whether the edge table changed.
const TABLE_EVERY: Duration = Duration::from_secs(1);

/// A `subscribe` with `traffic`: changes of the views, requests as they end, and the table.
struct WithTraffic<'s, C, R> {
    changes: C,
    calls: R,
    stats: &'s Stats,
    /// The table as last sent.
    table: Snapshot,
    tick: tokio::time::Interval,
}

impl<C: Source, R: Source> Source for WithTraffic<'_, C, R> {
    async fn next(&mut self) -> Pulled {
        tokio::select! {
            pulled = self.changes.next() => pulled,
            pulled = self.calls.next() => match pulled {
                // The proxy is gone with the stack; the views say so.
                Pulled::Closed => Pulled::Skip,
                other => other,
            },
            _ = self.tick.tick() => {
                let now = self.stats.snapshot();
                if now == self.table {
                    return Pulled::Skip;
                }
                let message = Message::Table { table: (&now).into() };
                self.table = now;
                Pulled::Send(Box::new(message))
            }
        }
    }

    fn ready(&mut self) -> Pulled {
        match self.changes.ready() {
            Pulled::Empty => match self.calls.ready() {
                Pulled::Closed => Pulled::Empty,
                other => other,
            },
            other => other,
        }
    }
}
