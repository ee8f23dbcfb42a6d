//! The socket server: answers requests with the engine's views and commands.

use super::{Answer, Event, Message, PROTOCOL, Readiness, Request, Response, Waiting, WireLine};
use crate::engine::ready::not_ready;
use crate::engine::{Change, Command, Failure, FailureKind, Handle, ServiceView, TicketOutcome};
use crate::logs::{LogHub, LogLine, Tail, strip_sgr};
use crate::statedir;
use crate::traffic::stats::Already;
use crate::traffic::{Record, Snapshot, Stats};
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::{self, Receiver};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// Lines shown of a service that failed (as `ci` shows), or of a build that failed.
const FAILURE_LINES: usize = 30;
/// How long an action may take to show its effect before the request gives up.
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections served at once. Past it, the connection idle the longest (waiting for a request)
/// is closed to make room; when every one is busy (streaming), the newcomer is refused.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections that may stream at once; the other slots are kept for requests (`ps` answers even
/// when every stream is taken).
pub const MAX_STREAMS: usize = MAX_CONNECTIONS - 16;
/// A client that takes none of what it is sent for this long is dropped.
pub const STALL: Duration = Duration::from_secs(10);
/// Bytes a connection gathers before writing them: with the message being added, the most it
/// holds.
const CHUNK: usize = 32 * 1024;
/// Follow messages gathered into one write at most.
const BATCH: usize = 256;

/// What every connection needs.
pub struct Context {
    pub handle: Handle,
    pub logs: Arc<LogHub>,
    pub names: Vec<String>,
    /// What the traffic proxy records (None: no service is proxied).
    pub traffic: Option<Arc<Stats>>,
}

/// The bound socket; removes its file when dropped.
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Ok(bound) = std::fs::read_link(&self.path) {
            let _ = std::fs::remove_file(bound);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind the socket at `path`, replacing a stale one (the caller holds the folder's lock, so no
/// live stack owns it), readable and writable by the owner only. `path` is in a private folder,
/// so the socket is never reachable by others before its mode is set. When `path` is too long
/// for a socket address, the socket is bound at a short path in a private folder
/// ([`statedir::short_socket`]) and `path` becomes a symlink to it, which clients follow.
pub fn bind(path: &Path) -> std::io::Result<Socket> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(old) = std::fs::read_link(path)
        && std::fs::symlink_metadata(&old).is_ok_and(|m| m.file_type().is_socket())
    {
        let _ = std::fs::remove_file(old);
    }
    let _ = std::fs::remove_file(path);
    let at = if statedir::fits_socket_address(path) {
        path.to_path_buf()
    } else {
        let short = statedir::short_socket(path)?;
        let _ = std::fs::remove_file(&short);
        short
    };
    let listener = UnixListener::bind(&at)?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600))?;
    if at != path
        && let Err(e) = std::os::unix::fs::symlink(&at, path)
    {
        let _ = std::fs::remove_file(&at);
        return Err(e);
    }
    tracing::info!(socket = %at.display(), "control socket listening");
    Ok(Socket {
        listener,
        path: path.to_path_buf(),
    })
}

/// Accept connections until the task is dropped.
pub async fn serve(socket: Socket, ctx: Arc<Context>) {
    let slots = Arc::new(Slots::default());
    loop {
        match socket.listener.accept().await {
            Ok((stream, _)) => match slots.admit() {
                Some(slot) => {
                    tokio::spawn(connection(stream, ctx.clone(), slot));
                }
                None => {
                    // A new socket's buffer is empty: this neither blocks nor fails for room.
                    let refusal = error(format!(
                        "too many connections: {MAX_CONNECTIONS} are open and busy"
                    ));
                    let _ = stream.try_write(&line(&refusal));
                }
            },
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The open connections, so that there are never more than `MAX_CONNECTIONS` (each costs a file
/// descriptor, and devstack has a limited number).
#[derive(Default)]
struct Slots {
    inner: Mutex<SlotsInner>,
    next: AtomicU64,
}

#[derive(Default)]
struct SlotsInner {
    open: HashMap<u64, SlotState>,
    /// Connections streaming (`logs` with `follow`, `subscribe`): at most `MAX_STREAMS`, so that
    /// a few slots always serve requests.
    streams: usize,
}

struct SlotState {
    /// Waiting for a request since then; None while serving one.
    idle_since: Option<Instant>,
    streaming: bool,
    close: Arc<Notify>,
}

/// A connection's place among the open ones; given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    close: Arc<Notify>,
}

impl Slots {
    /// A place for a new connection: a free one, or the one of the connection idle the longest,
    /// which is told to close. None when every connection is busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.inner.lock().expect("slots lock");
        if inner.open.len() >= MAX_CONNECTIONS {
            let oldest = inner
                .open
                .iter()
                .filter_map(|(id, s)| Some((*id, s.idle_since?)))
                .min_by_key(|(_, since)| *since)?
                .0;
            let evicted = inner.open.remove(&oldest).expect("found above");
            evicted.close.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        inner.open.insert(
            id,
            SlotState {
                // It has sent no request yet (its task may not even have run).
                idle_since: Some(Instant::now()),
                streaming: false,
                close: close.clone(),
            },
        );
        Some(Slot {
            slots: self.clone(),
            id,
            close,
        })
    }
}

impl Slot {
    fn idle(&self, idle: bool) {
        let mut inner = self.slots.inner.lock().expect("slots lock");
        if let Some(s) = inner.open.get_mut(&self.id) {
            s.idle_since = idle.then(Instant::now);
        }
    }

    /// Make this connection a stream, if there is room for one more.
    fn stream(&self) -> Result<(), String> {
        let mut inner = self.slots.inner.lock().expect("slots lock");
        if inner.streams >= MAX_STREAMS {
            return Err(format!(
                "too many streams: {MAX_STREAMS} connections follow logs or subscribe; close some"
            ));
        }
        if let Some(s) = inner.open.get_mut(&self.id)
            && !s.streaming
        {
            s.streaming = true;
            inner.streams += 1;
        }
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.inner.lock().expect("slots lock");
        if inner.open.remove(&self.id).is_some_and(|s| s.streaming) {
            inner.streams -= 1;
        }
    }
}

async fn connection(stream: UnixStream, ctx: Arc<Context>, slot: Slot) {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut out = Out::new(write);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        slot.idle(true);
        let mut limited = (&mut reader).take(MAX_REQUEST);
        let read = tokio::select! {
            read = limited.read_until(b'\n', &mut buf) => read,
            _ = slot.close.notified() => {
                let _ = out.send(&error("closed to make room for a new connection (too many open)")).await;
                return;
            }
        };
        slot.idle(false);
        let n = match read {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if !buf.ends_with(b"\n") && n as u64 == MAX_REQUEST {
            let _ = out
                .send(&error(format!("request longer than {MAX_REQUEST} bytes")))
                .await;
            return;
        }
        let request = match Request::parse(&buf) {
            None => continue,
            Some(Ok(r)) => {
                match &r {
                    // What is typed into a service (a password, maybe) stays out of the log.
                    Request::Input { service, text } => {
                        tracing::debug!(%service, bytes = text.len(), "socket request: input")
                    }
                    r => tracing::debug!(request = ?r, "socket request"),
                }
                r
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "bad socket request");
                if out.send(&error(e)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let keep_going = match request {
            Request::Logs {
                services,
                lines,
                follow,
                color,
            } => {
                let follow = follow.then_some(&slot);
                let wanted = Wanted {
                    services: &services,
                    lines,
                    color,
                };
                logs(&ctx, &mut reader, &mut out, wanted, follow).await
            }
            Request::Subscribe { all } => match slot.stream() {
                Ok(()) => subscribe(&ctx, &mut reader, &mut out, all).await,
                Err(e) => out.send(&error(e)).await.is_ok(),
            },
            Request::Traffic {
                recent,
                follow: true,
            } => match slot.stream() {
                Ok(()) => follow_traffic(&ctx, &mut reader, &mut out, recent).await,
                Err(e) => out.send(&error(e)).await.is_ok(),
            },
            other => {
                let answer = answer(&ctx, other).await;
                out.send(&answer).await.is_ok()
            }
        };
        if !keep_going {
            return;
        }
    }
}

/// A connection's writing side. Messages gather in a buffer of about `CHUNK` bytes and go out
/// when it is full or the reply is complete; a client that takes nothing for `STALL` is dropped
/// (the write fails), so that a client that stops reading holds neither memory nor its slot.
struct Out {
    w: OwnedWriteHalf,
    buf: Vec<u8>,
    /// What went out last ended a message (a note can follow without breaking one).
    at_boundary: bool,
}

impl Out {
    fn new(w: OwnedWriteHalf) -> Self {
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
    async fn send(&mut self, message: &impl Serialize) -> io::Result<()> {
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
                        let _ = self.w.try_write(&line(&note));
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
fn line(message: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn error(message: impl Into<String>) -> Response {
    Response::error(message)
}

fn done(answer: Answer) -> Response {
    Response::Ok(answer)
}

/// A service's index, or the error naming the services there are.
fn index(ctx: &Context, name: &str) -> Result<usize, String> {
    ctx.names.iter().position(|n| n == name).ok_or_else(|| {
        format!(
            "unknown service `{name}`; services are: {}",
            ctx.names.join(", ")
        )
    })
}

/// `hello`: the stack's version when the client speaks the same protocol.
fn hello(version: u32) -> Response {
    if version == PROTOCOL {
        done(Answer::Hello {
            version: PROTOCOL,
            devstack: env!("CARGO_PKG_VERSION").to_string(),
        })
    } else {
        error(format!(
            "this stack speaks protocol {PROTOCOL}; this devstack speaks {version}: use the same devstack version (stack pid {})",
            std::process::id()
        ))
    }
}

async fn answer(ctx: &Context, request: Request) -> Response {
    let (service, wait, cmd): (&str, bool, fn(usize) -> Command) = match &request {
        Request::Hello { version } => return hello(*version),
        Request::Ps => {
            let services = ctx.handle.views().borrow().clone();
            return done(Answer::Services { services });
        }
        Request::Traffic { recent, .. } => return done(traffic(ctx, *recent).0),
        Request::Watch { service, auto } => {
            return match index(ctx, service) {
                Ok(i) if ctx.handle.views().borrow()[i].auto_rebuild.is_none() => error(format!(
                    "{service} has no `watch` globs: nothing to rebuild on"
                )),
                Ok(i) => {
                    ctx.handle.apply(Command::SetAuto(i, *auto)).await;
                    let service = ctx.handle.views().borrow()[i].clone();
                    done(Answer::Service { service })
                }
                Err(e) => error(e),
            };
        }
        Request::Down => {
            ctx.handle.send(Command::Shutdown);
            return done(Answer::Done {});
        }
        Request::Input { service, text } => {
            let i = match up(ctx, service) {
                Ok(i) => i,
                Err(e) => return error(e),
            };
            // Answered once the bytes are queued for the service, or refused: a client typing
            // into a service that doesn't read hears so instead of filling devstack's memory.
            return match ctx.handle.input(i, text.clone().into_bytes()).await {
                Ok(()) => done(Answer::Done {}),
                Err(e) => error(format!("{service}: input not sent: {e}")),
            };
        }
        Request::Resize {
            service,
            rows,
            cols,
        } => {
            let (rows, cols) = ((*rows).max(1), (*cols).max(1));
            return to_terminal(ctx, service, |i| Command::Resize(i, rows, cols));
        }
        Request::RestartAll { wait } => return act(ctx, "", Command::RestartAll, *wait).await,
        Request::Ready {
            services,
            timeout_ms,
        } => return ready(ctx, services, Duration::from_millis(*timeout_ms)).await,
        Request::Start { service, wait } => (service, *wait, Command::Start),
        Request::Stop { service, wait } => (service, *wait, Command::Stop),
        Request::Restart { service, wait } => (service, *wait, Command::Restart),
        Request::Rebuild { service, wait } => (service, *wait, Command::Rebuild),
        Request::Kill { service, wait } => (service, *wait, Command::Kill),
        Request::Logs { .. } | Request::Subscribe { .. } => {
            unreachable!("streams are served apart")
        }
    };
    let i = match index(ctx, service) {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    act(ctx, service, cmd(i), wait).await
}

/// Apply an action; with `wait`, answer once the engine says it took effect (the service's
/// view) or cannot (why, with the output of a build that failed).
async fn act(ctx: &Context, what: &str, cmd: Command, wait: bool) -> Response {
    let gone = || error("the stack is shutting down");
    if !wait {
        return if ctx.handle.apply(cmd).await {
            done(Answer::Done {})
        } else {
            gone()
        };
    }
    let Some(ticket) = ctx.handle.ticket(cmd) else {
        return gone();
    };
    match tokio::time::timeout(ACTION_TIMEOUT, ticket.wait()).await {
        // Restart all (no service named) answers with every view.
        Ok(Some(TicketOutcome::Done(services))) if what.is_empty() => {
            done(Answer::Services { services })
        }
        Ok(Some(TicketOutcome::Done(mut views))) => match views.pop() {
            Some(service) => done(Answer::Service { service }),
            None => done(Answer::Done {}),
        },
        Ok(Some(TicketOutcome::Failed(failure))) => {
            let lines = match failure.kind {
                FailureKind::Build { .. } => failure_lines(ctx, &failure).await,
                _ => Vec::new(),
            };
            let error = match what {
                "" => format!("{}: {}", failure.name, failure.why),
                service => format!("{service}: {}", failure.why),
            };
            Response::Error { error, lines }
        }
        Ok(None) => error(format!("{}: the stack stopped", or_all(what))),
        Err(_) => error(format!(
            "{}: no effect within {}s",
            or_all(what),
            ACTION_TIMEOUT.as_secs()
        )),
    }
}

/// What an action was on, for its errors: a service, or (none named) every service.
fn or_all(what: &str) -> &str {
    if what.is_empty() { "restart all" } else { what }
}

/// The last lines that tell why `failure` happened, read off the engine's thread (reading waits
/// for lines still being written).
async fn failure_lines(ctx: &Context, failure: &Failure) -> Vec<String> {
    let (logs, failure) = (ctx.logs.clone(), failure.clone());
    tokio::task::spawn_blocking(move || failure.lines(&logs, FAILURE_LINES))
        .await
        .unwrap_or_default()
}

/// `ready`: wait until the services named (every wanted one when none) are ready, as `ci`
/// judges, one fails or is stopped, or the time runs out.
async fn ready(ctx: &Context, services: &[String], timeout: Duration) -> Response {
    let only = match services.iter().map(|s| index(ctx, s)).collect() {
        Ok(only) => only,
        Err(e) => return error(e),
    };
    let started = Instant::now();
    let Some(ticket) = ctx.handle.ready(only) else {
        return done(Answer::Readiness {
            readiness: Readiness::Stopped,
        });
    };
    let readiness = match tokio::time::timeout(timeout, ticket.wait()).await {
        Ok(Some(TicketOutcome::Done(_))) => Readiness::Ready {
            took_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        },
        Ok(Some(TicketOutcome::Failed(failure))) => match failure.kind {
            FailureKind::Unwanted => Readiness::Unwanted {
                service: failure.name,
                detail: failure.why,
            },
            _ => Readiness::Failed {
                lines: failure_lines(ctx, &failure).await,
                service: failure.name,
                why: failure.why,
            },
        },
        Ok(None) => Readiness::Stopped,
        Err(_) => {
            let views = ctx.handle.views().borrow().clone();
            let chosen: Vec<ServiceView> = views
                .into_iter()
                .filter(|v| services.is_empty() || services.contains(&v.name))
                .collect();
            let mut waiting = Vec::new();
            for (service, what) in not_ready(&chosen) {
                let i = ctx.names.iter().position(|n| *n == service);
                let logs = ctx.logs.clone();
                let lines = tokio::task::spawn_blocking(move || {
                    i.map(|i| {
                        logs.tail(i, FAILURE_LINES)
                            .iter()
                            .map(|l| strip_sgr(&l.text).into_owned())
                            .collect()
                    })
                    .unwrap_or_default()
                })
                .await
                .unwrap_or_default();
                waiting.push(Waiting {
                    service,
                    what,
                    lines,
                });
            }
            Readiness::TimedOut { waiting }
        }
    };
    done(Answer::Readiness { readiness })
}

/// The index of `service`, which must be running (it has a terminal).
fn up(ctx: &Context, service: &str) -> Result<usize, String> {
    let i = index(ctx, service)?;
    let views = ctx.handle.views();
    let view = &views.borrow()[i];
    if !view.state.is_up() || view.pid.is_none() {
        return Err(format!(
            "{service} is not running ({}): nothing to type into",
            view.detail
        ));
    }
    Ok(i)
}

/// Send a command to a running service's terminal (`resize`).
fn to_terminal(ctx: &Context, service: &str, cmd: impl FnOnce(usize) -> Command) -> Response {
    match up(ctx, service) {
        Ok(i) => {
            ctx.handle.send(cmd(i));
            done(Answer::Done {})
        }
        Err(e) => error(e),
    }
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
struct Wanted<'a> {
    services: &'a [String],
    lines: usize,
    color: bool,
}

/// The last `lines` lines; with `follow` (the connection's slot), every line after them.
async fn logs(
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
    let wanted: Vec<usize> = if services.is_empty() {
        (0..ctx.names.len()).collect()
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
    stream(reader, out, rx, |line: Arc<LogLine>| {
        wanted.contains(&line.service).then(|| Message::Line {
            line: WireLine::with_color(&line, &ctx.names, color),
        })
    })
    .await
}

/// `Response::Ok(Answer::Lines)`, `{"ok":true,"lines":[...]}`, written as it is read (the tail
/// may reach into the log files) rather than gathered whole.
async fn send_tail(ctx: &Context, out: &mut Out, tail: Tail, color: bool) -> io::Result<()> {
    out.raw(br#"{"ok":true,"lines":["#).await?;
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

/// Send what `rx` receives (as `message` makes it, if it does) until the client hangs up or
/// stops reading; `{"missed":N}` when it fell so far behind that lines went by.
async fn stream<T: Clone>(
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    mut rx: Receiver<T>,
    message: impl Fn(T) -> Option<Message>,
) -> bool {
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = hung_up(reader) => return false,
        };
        // Gather what is already there into one write.
        let mut next = Some(first);
        let mut gathered = 0;
        while let Some(received) = next.take() {
            let msg = match received {
                Ok(item) => message(item),
                Err(RecvError::Lagged(n)) => Some(Message::Missed { missed: n }),
                Err(RecvError::Closed) => {
                    let _ = out.flush().await;
                    return false;
                }
            };
            if let Some(msg) = msg
                && out.queue(&msg).await.is_err()
            {
                return false;
            }
            gathered += 1;
            if gathered < BATCH {
                next = match rx.try_recv() {
                    Ok(item) => Some(Ok(item)),
                    Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                    Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                    Err(TryRecvError::Empty) => None,
                };
            }
        }
        if out.flush().await.is_err() {
            return false;
        }
    }
}

/// The traffic answer: the edge table and the last `recent` requests (those records too).
fn traffic(ctx: &Context, recent: usize) -> (Answer, Vec<Arc<Record>>) {
    let Some(stats) = &ctx.traffic else {
        let empty = Answer::Traffic {
            traffic: Snapshot::default(),
            recent: Vec::new(),
        };
        return (empty, Vec::new());
    };
    let all = stats.recent();
    let last = all[all.len().saturating_sub(recent)..].to_vec();
    let answer = Answer::Traffic {
        traffic: stats.snapshot(),
        recent: last.iter().map(|r| Record::clone(r)).collect(),
    };
    (answer, last)
}

/// `traffic` with `follow`: the answer, then every request as it ends.
async fn follow_traffic(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    recent: usize,
) -> bool {
    // Subscribed before the answer is made: nothing ends unseen in between (what ended in
    // between is in both, and is skipped in the stream).
    let calls = ctx.traffic.as_ref().map(|s| s.subscribe());
    let (answer, sent) = traffic(ctx, recent);
    if out.send(&done(answer)).await.is_err() {
        return false;
    }
    let already = Already::new(&sent);
    match calls {
        Some(calls) => {
            stream(reader, out, calls, |call| {
                (!already.has(&call)).then(|| Message::Call {
                    call: Record::clone(&call),
                })
            })
            .await
        }
        // Nothing is proxied: nothing will come; wait for the client to hang up.
        None => {
            hung_up(reader).await;
            false
        }
    }
}

/// A stream of state changes: `{"event":"state", "service": …}` with the service's view.
async fn subscribe(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    all: bool,
) -> bool {
    let events: broadcast::Receiver<Change> = ctx.handle.events();
    let now = ctx.handle.views().borrow().clone();
    if out
        .send(&done(Answer::Services { services: now }))
        .await
        .is_err()
    {
        return false;
    }
    stream(reader, out, events, |change| {
        let event = match change.state {
            true => Event::State,
            false if all => Event::Update,
            false => return None,
        };
        Some(Message::Event {
            event,
            service: change.view,
        })
    })
    .await
}
