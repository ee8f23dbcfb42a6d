//! The socket server: answers requests with the engine's views and commands.

use super::{Request, WireLine};
use crate::engine::ready::Verdict;
use crate::engine::{Command, Handle, ServiceView};
use crate::logs::LogHub;
use crate::statedir;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long an action may take to show its effect before the request gives up.
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);

/// What every connection needs.
pub struct Context {
    pub handle: Handle,
    pub logs: Arc<LogHub>,
    pub names: Vec<String>,
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
    Ok(Socket {
        listener,
        path: path.to_path_buf(),
    })
}

/// Accept connections until the task is dropped.
pub async fn serve(socket: Socket, ctx: Arc<Context>) {
    loop {
        match socket.listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, ctx.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn connection(stream: UnixStream, ctx: Arc<Context>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut reader)
            .take(MAX_REQUEST)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if !buf.ends_with(b"\n") && n as u64 == MAX_REQUEST {
            let _ = send(
                &mut write,
                &error(format!("request longer than {MAX_REQUEST} bytes")),
            )
            .await;
            return;
        }
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        let request = match serde_json::from_str::<Request>(text.trim()) {
            Ok(r) => r,
            Err(e) => {
                if send(&mut write, &error(format!("bad request: {e}")))
                    .await
                    .is_err()
                {
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
            } => logs(&ctx, &mut reader, &mut write, &services, lines, follow).await,
            Request::Subscribe => subscribe(&ctx, &mut reader, &mut write).await,
            other => {
                let answer = answer(&ctx, other).await;
                send(&mut write, &answer).await.is_ok()
            }
        };
        if !keep_going {
            return;
        }
    }
}

async fn send(w: &mut OwnedWriteHalf, value: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).expect("JSON values serialize");
    line.push(b'\n');
    w.write_all(&line).await
}

fn error(message: impl Into<String>) -> Value {
    json!({"ok": false, "error": message.into()})
}

fn index(ctx: &Context, name: &str) -> Result<usize, Value> {
    ctx.names.iter().position(|n| n == name).ok_or_else(|| {
        error(format!(
            "unknown service `{name}`; services are: {}",
            ctx.names.join(", ")
        ))
    })
}

async fn answer(ctx: &Context, request: Request) -> Value {
    let (service, wait, cmd): (&str, bool, fn(usize) -> Command) = match &request {
        Request::Ps => return json!({"ok": true, "services": *ctx.handle.views().borrow()}),
        Request::Traffic => {
            return json!({"ok": true, "edges": [], "note": "traffic capture is not built yet"});
        }
        Request::Watch { service, auto } => {
            return match index(ctx, service) {
                Ok(i) if ctx.handle.views().borrow()[i].auto_rebuild.is_none() => error(format!(
                    "{service} has no `watch` globs: nothing to rebuild on"
                )),
                Ok(i) => {
                    ctx.handle.apply(Command::SetAuto(i, *auto)).await;
                    json!({"ok": true, "service": ctx.handle.views().borrow()[i]})
                }
                Err(e) => e,
            };
        }
        Request::Down => {
            ctx.handle.send(Command::Shutdown);
            return json!({"ok": true});
        }
        Request::RestartAll { wait } => return restart_all(ctx, *wait).await,
        Request::Start { service, wait } => (service, *wait, Command::Start),
        Request::Stop { service, wait } => (service, *wait, Command::Stop),
        Request::Restart { service, wait } => (service, *wait, Command::Restart),
        Request::Rebuild { service, wait } => (service, *wait, Command::Rebuild),
        Request::Kill { service, wait } => (service, *wait, Command::Kill),
        Request::Logs { .. } | Request::Subscribe => unreachable!("streams are served apart"),
    };
    let i = match index(ctx, service) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let before = ctx.handle.views().borrow()[i].pid;
    if !ctx.handle.apply(cmd(i)).await {
        return error("the stack is shutting down");
    }
    if !wait {
        return json!({"ok": true});
    }
    let stopping = matches!(request, Request::Stop { .. } | Request::Kill { .. });
    let mut views = ctx.handle.views();
    let waited = tokio::time::timeout(ACTION_TIMEOUT, async {
        loop {
            let view = views.borrow_and_update()[i].clone();
            if let Some(outcome) = effect(&view, stopping, before) {
                return outcome;
            }
            if views.changed().await.is_err() {
                return Err("the stack stopped".to_string());
            }
        }
    })
    .await;
    match waited {
        Ok(Ok(view)) => json!({"ok": true, "service": view}),
        Ok(Err(e)) => error(format!("{service}: {e}")),
        Err(_) => error(format!(
            "{service}: no effect within {}s",
            ACTION_TIMEOUT.as_secs()
        )),
    }
}

/// Restart all; with `wait`, answer once every service that ran has a new process and the
/// stack is ready again (or failed).
async fn restart_all(ctx: &Context, wait: bool) -> Value {
    let before: Vec<Option<i32>> = ctx.handle.views().borrow().iter().map(|v| v.pid).collect();
    if !ctx.handle.apply(Command::RestartAll).await {
        return error("the stack is shutting down");
    }
    if !wait {
        return json!({"ok": true});
    }
    let mut views = ctx.handle.views();
    let waited = tokio::time::timeout(ACTION_TIMEOUT, async {
        loop {
            let now = views.borrow_and_update().clone();
            let renewed = now.iter().zip(&before).all(|(v, old)| {
                !v.wanted || old.is_none() || v.settled || (v.pid != *old && v.pid.is_some())
            });
            if renewed {
                match crate::engine::ready::verdict(&now) {
                    Verdict::Ready => return Ok(now),
                    Verdict::Failed { service, why } => return Err(format!("{service}: {why}")),
                    Verdict::Waiting => {}
                }
            }
            if views.changed().await.is_err() {
                return Err("the stack stopped".to_string());
            }
        }
    })
    .await;
    match waited {
        Ok(Ok(now)) => json!({"ok": true, "services": now}),
        Ok(Err(e)) => error(e),
        Err(_) => error(format!(
            "restart all: no effect within {}s",
            ACTION_TIMEOUT.as_secs()
        )),
    }
}

/// Has an action on this service taken effect? Some(Ok) once it rests where it was sent,
/// Some(Err) once it rests somewhere else, None while it is on its way.
/// `before`: the service's pid when the action was sent.
fn effect(
    view: &ServiceView,
    stopping: bool,
    before: Option<i32>,
) -> Option<Result<ServiceView, String>> {
    if stopping {
        // Done once the process it had is gone (someone may already have started a new one).
        let gone = view.pid.is_none() || (view.pid != before && view.state != "stopping");
        return (gone && !view.building && view.state != "stopping").then(|| Ok(view.clone()));
    }
    if view.building {
        return None;
    }
    if view.build_failed {
        return Some(Err(
            "build failed; the previous process keeps running".into()
        ));
    }
    match crate::engine::ready::verdict(std::slice::from_ref(view)) {
        Verdict::Ready => Some(Ok(view.clone())),
        Verdict::Failed { why, .. } => Some(Err(why)),
        Verdict::Waiting if view.settled => Some(Err(view.detail.clone())),
        Verdict::Waiting => None,
    }
}

/// Wait for the client to hang up (anything it sends while streaming is ignored).
async fn hung_up(reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>) {
    let mut sink = [0u8; 1024];
    loop {
        match reader.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn logs(
    ctx: &Context,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    w: &mut OwnedWriteHalf,
    services: &[String],
    lines: usize,
    follow: bool,
) -> bool {
    let wanted: Vec<usize> = if services.is_empty() {
        (0..ctx.names.len()).collect()
    } else {
        match services
            .iter()
            .map(|s| index(ctx, s))
            .collect::<Result<_, _>>()
        {
            Ok(w) => w,
            Err(e) => return send(w, &e).await.is_ok(),
        }
    };
    let (tail, mut rx) = ctx.logs.tail_and_follow(&wanted, lines);
    let tail: Vec<WireLine> = tail.iter().map(|l| WireLine::new(l, &ctx.names)).collect();
    if send(w, &json!({"ok": true, "lines": tail})).await.is_err() {
        return false;
    }
    if !follow {
        return true;
    }
    loop {
        tokio::select! {
            line = rx.recv() => {
                let msg = match line {
                    Ok(l) if wanted.contains(&l.service) => json!({"line": WireLine::new(&l, &ctx.names)}),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => json!({"missed": n}),
                    Err(RecvError::Closed) => return false,
                };
                if send(w, &msg).await.is_err() {
                    return false;
                }
            }
            _ = hung_up(reader) => return false,
        }
    }
}

/// A stream of state changes: `{"event":"state", "service": …}` with the service's view.
async fn subscribe(
    ctx: &Context,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    w: &mut OwnedWriteHalf,
) -> bool {
    let mut events = ctx.handle.events();
    let now = ctx.handle.views().borrow().clone();
    if send(w, &json!({"ok": true, "services": now}))
        .await
        .is_err()
    {
        return false;
    }
    loop {
        tokio::select! {
            event = events.recv() => {
                let msg = match event {
                    Ok(view) => json!({"event": "state", "service": view}),
                    Err(RecvError::Lagged(n)) => json!({"missed": n}),
                    Err(RecvError::Closed) => return false,
                };
                if send(w, &msg).await.is_err() {
                    return false;
                }
            }
            _ = hung_up(reader) => return false,
        }
    }
}
