//! The socket server: answers requests with the engine's views and commands. One task per
//! connection reads a request line at a time and serves it; the parts:
//! - `socket.rs`: binding the socket, accepting connections;
//! - `slots.rs`: the connection slots (`MAX_CONNECTIONS`, `MAX_STREAMS`), the idle evicted first;
//! - `actions.rs`: the requests answered in one reply; actions on their completion tickets;
//!   `ready`;
//! - `faults.rs`: the faults set on the stack's edges (`fault_add`, `faults`, `fault_rm`,
//!   `fault_clear`, `fault_apply`);
//! - `streams.rs`: `logs`, `subscribe`, `traffic` with `follow`, and `Out`, the bounded writer
//!   every reply goes through.

mod actions;
mod faults;
mod slots;
mod socket;
mod streams;

pub use slots::{MAX_CONNECTIONS, MAX_STREAMS};
pub use socket::{Socket, bind, serve};
pub use streams::STALL;

use super::{Answer, Request, Response};
use crate::engine::{Handle, ServiceId, Services};
use crate::ignored::Ignore;
use crate::logs::LogHub;
use crate::traffic::Stats;
use slots::Slot;
use std::sync::Arc;
use streams::{Out, Wanted};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// What every connection needs.
pub struct Context {
    pub handle: Handle,
    pub logs: Arc<LogHub>,
    pub names: Services<String>,
    /// Which services the proxy stands in front of (a fault can be set only on those).
    pub proxied: Services<bool>,
    /// What the traffic proxy records (None: no service is proxied).
    pub traffic: Option<Arc<Stats>>,
    /// The fault scenarios of the stack's `devstack.toml` (`fault_apply`).
    pub scenarios: crate::config::scenarios::Scenarios,
    /// Why `use` can't switch each service to its local process (`[0]`) or its remote end
    /// (`[1]`), if it can't (`config::Service::cannot_use`).
    pub cannot_use: Services<[Option<&'static str>; 2]>,
}

async fn connection(stream: UnixStream, ctx: Arc<Context>, slot: Slot) {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut out = Out::new(write);
    let mut buf = Vec::new();
    loop {
        let request = match next_request(&mut reader, &mut out, &slot, &mut buf).await {
            Next::Request(request) => request,
            Next::Again => continue,
            Next::End => return,
        };
        if !serve_request(&ctx, &mut reader, &mut out, &slot, request).await {
            return;
        }
    }
}

/// What came next on a connection.
enum Next {
    Request(Request),
    /// Nothing to serve (an empty line, or a bad request, answered): read the next.
    Again,
    /// The connection is over.
    End,
}

/// Read the next request line (the slot idle meanwhile) and parse it; a bad one is answered
/// with why.
async fn next_request(
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    slot: &Slot,
    buf: &mut Vec<u8>,
) -> Next {
    buf.clear();
    slot.idle(true);
    let mut limited = (&mut *reader).take(MAX_REQUEST);
    let read = tokio::select! {
        read = limited.read_until(b'\n', buf) => read,
        _ = slot.close.notified() => {
            out.send(&error("closed to make room for a new connection (too many open)"))
                .await
                .or_say("the client may have left already");
            return Next::End;
        }
    };
    slot.idle(false);
    let n = match read {
        Ok(n) => n,
        Err(_) => return Next::End,
    };
    if n == 0 {
        return Next::End;
    }
    if !buf.ends_with(b"\n") && n as u64 == MAX_REQUEST {
        out.send(&error(format!("request longer than {MAX_REQUEST} bytes")))
            .await
            .or_say("the client may have left already");
        return Next::End;
    }
    match Request::parse(buf) {
        None => Next::Again,
        Some(Ok(r)) => {
            match &r {
                // What is typed into a service (a password, maybe) stays out of the log.
                Request::Input { service, text } => {
                    tracing::debug!(%service, bytes = text.len(), "socket request: input")
                }
                r => tracing::debug!(request = ?r, "socket request"),
            }
            Next::Request(r)
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "bad socket request");
            if out.send(&error(e)).await.is_err() {
                return Next::End;
            }
            Next::Again
        }
    }
}

/// Serve one request: a stream until it ends, or a reply. False when the connection is over.
async fn serve_request(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    out: &mut Out,
    slot: &Slot,
    request: Request,
) -> bool {
    match request {
        Request::Logs {
            services,
            lines,
            follow,
            color,
        } => {
            let follow = follow.then_some(slot);
            let wanted = Wanted {
                services: &services,
                lines,
                color,
            };
            streams::logs(ctx, reader, out, wanted, follow).await
        }
        Request::Subscribe { all, traffic } => match slot.stream() {
            Ok(()) => streams::subscribe(ctx, reader, out, all, traffic).await,
            Err(e) => out.send(&error(e)).await.is_ok(),
        },
        Request::Traffic {
            recent,
            follow: true,
        } => match slot.stream() {
            Ok(()) => streams::follow_traffic(ctx, reader, out, recent).await,
            Err(e) => out.send(&error(e)).await.is_ok(),
        },
        other => {
            let answer = actions::answer(ctx, other).await;
            out.send(&answer).await.is_ok()
        }
    }
}

fn error(message: impl Into<String>) -> Response {
    Response::error(message)
}

fn done(answer: Answer) -> Response {
    Response::Ok(answer)
}

/// The service called `name`, or the error naming the services there are.
fn index(ctx: &Context, name: &str) -> Result<ServiceId, String> {
    ctx.names.find(|n| n == name).ok_or_else(|| {
        format!(
            "unknown service `{name}`; services are: {}",
            ctx.names.as_slice().join(", ")
        )
    })
}
