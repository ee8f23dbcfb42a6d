//! The requests answered in one reply: `hello`, `ps`, `traffic`, `watch`, `down`, terminal input
//! and size, and the actions (`start`, `stop`, `restart`, `rebuild`, `kill`, restart all), which
//! with `wait` answer once the engine's completion ticket (`Handle::ticket`) is resolved; and
//! `ready`, which waits on `Handle::ready` for the services named; the faults' requests are
//! answered by `faults.rs`.

use super::streams::traffic;
use super::{Context, done, error, faults, index};
use crate::control::{Answer, End, PROTOCOL, Readiness, Request, Response, Waiting, wire};
use crate::engine::ready::not_ready;
use crate::engine::{
    Command, Failure, FailureKind, LINES_SHOWN, ServiceId, ServiceView, TicketOutcome,
};
use std::time::{Duration, Instant};

/// How long an action may take to show its effect before the request gives up.
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);

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

pub(super) async fn answer(ctx: &Context, request: Request) -> Response {
    let (service, wait, cmd): (&str, bool, fn(ServiceId) -> Command) = match &request {
        Request::Hello { version } => return hello(*version),
        Request::Ps => {
            let services = wire::services(ctx.handle.views().borrow().as_slice());
            return done(Answer::Services { services });
        }
        Request::Traffic { recent, .. } => return done(traffic(ctx, *recent)),
        Request::Exchange { id } => return exchange(ctx, *id),
        Request::Replay { id, request } => return replay(ctx, *id, request.as_deref()).await,
        Request::Exchanges { services, recent } => return exchanges(ctx, services, *recent),
        Request::FaultAdd { fault } => return faults::add(ctx, fault),
        Request::Faults => return faults::list(ctx),
        Request::FaultRm { id } => return faults::remove(ctx, *id),
        Request::FaultClear => return faults::clear(ctx),
        Request::FaultApply { name } => return faults::apply(ctx, name),
        Request::Watch { service, auto } => {
            return match index(ctx, service) {
                Ok(id) if ctx.handle.views().borrow()[id].auto_rebuild.is_none() => error(format!(
                    "{service} has no `watch` globs: nothing to rebuild on"
                )),
                Ok(id) => {
                    let auto = *auto;
                    ctx.handle
                        .apply(Command::SetAuto { service: id, auto })
                        .await;
                    let service = Box::new((&ctx.handle.views().borrow()[id]).into());
                    done(Answer::Service { service })
                }
                Err(e) => error(e),
            };
        }
        Request::Use { service, to, wait } => {
            let remote = *to == End::Remote;
            return match index(ctx, service) {
                Err(e) => error(e),
                Ok(i) => match ctx.cannot_use[i][usize::from(remote)] {
                    Some(why) => error(format!("{service} {why}")),
                    None => act(ctx, service, Command::Use { service: i, remote }, *wait).await,
                },
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
            return to_terminal(ctx, service, |service| Command::Resize {
                service,
                rows,
                cols,
            });
        }
        Request::RestartAll { wait } => return act(ctx, "", Command::RestartAll, *wait).await,
        Request::Ready {
            services,
            timeout_ms,
        } => return ready(ctx, services, Duration::from_millis(*timeout_ms)).await,
        Request::Start { service, wait } => (service, *wait, |service| Command::Start { service }),
        Request::Stop { service, wait } => (service, *wait, |service| Command::Stop { service }),
        Request::Restart { service, wait } => {
            (service, *wait, |service| Command::Restart { service })
        }
        Request::Rebuild { service, wait } => {
            (service, *wait, |service| Command::Rebuild { service })
        }
        Request::Kill { service, wait } => (service, *wait, |service| Command::Kill { service }),
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
        Ok(Some(TicketOutcome::Done(services))) if what.is_empty() => done(Answer::Services {
            services: wire::services(&services),
        }),
        Ok(Some(TicketOutcome::Done(mut views))) => match views.pop() {
            Some(view) => done(Answer::Service {
                service: Box::new((&view).into()),
            }),
            None => done(Answer::Done {}),
        },
        Ok(Some(TicketOutcome::Failed(failure))) => {
            let lines = match failure.kind {
                FailureKind::Update { .. } => failure_lines(ctx, &failure).await,
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
    tokio::task::spawn_blocking(move || failure.lines(&logs, LINES_SHOWN))
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
                let i = index(ctx, &service);
                let logs = ctx.logs.clone();
                let lines = tokio::task::spawn_blocking(move || {
                    i.map(|i| logs.tail_text(i, LINES_SHOWN))
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

/// `service`, which must be running (it has a terminal).
fn up(ctx: &Context, service: &str) -> Result<ServiceId, String> {
    let id = index(ctx, service)?;
    let views = ctx.handle.views();
    let view = &views.borrow()[id];
    if !view.state.is_up() || view.pid.is_none() {
        return Err(format!(
            "{service} is not running ({}): nothing to type into",
            view.detail
        ));
    }
    Ok(id)
}

/// Send a command to a running service's terminal (`resize`).
fn to_terminal(ctx: &Context, service: &str, cmd: impl FnOnce(ServiceId) -> Command) -> Response {
    match up(ctx, service) {
        Ok(i) => {
            ctx.handle.send(cmd(i));
            done(Answer::Done {})
        }
        Err(e) => error(e),
    }
}

/// One kept exchange, or why there is none.
fn exchange(ctx: &Context, id: u64) -> Response {
    let Some(stats) = &ctx.traffic else {
        return error("no service is proxied here: no exchange is kept");
    };
    match stats.inspect(id) {
        Some(exchange) => done(Answer::Exchange {
            exchange: Box::new(exchange),
        }),
        None if id > stats.last_id() => error(format!(
            "no request #{id} yet: the last is #{}",
            stats.last_id()
        )),
        None => error(format!(
            "request #{id} is not kept: it was TCP, its service keeps no exchanges \
             (`capture = false`), or newer ones took its place"
        )),
    }
}

/// Send a kept request (or a decoded command or query that reads) again through its
/// service's proxy.
async fn replay(ctx: &Context, id: u64, edited: Option<&str>) -> Response {
    let Some(stats) = &ctx.traffic else {
        return error("no service is proxied here: nothing to replay");
    };
    let views = ctx.handle.views().borrow().clone();
    let port_of = |name: &str| views.values().find(|v| v.name == name).and_then(|v| v.port);
    match crate::traffic::replay::replay(stats, id, port_of, edited).await {
        Ok(replayed) => done(Answer::Replayed {
            replayed: Box::new(replayed),
        }),
        Err(e) => error(format!("request #{id}: {e}")),
    }
}

/// The last `recent` kept exchanges of `services` (all when empty).
fn exchanges(ctx: &Context, services: &[String], recent: usize) -> Response {
    if let Some(unknown) = services
        .iter()
        .find(|s| !ctx.names.values().any(|n| n == *s))
    {
        return error(index(ctx, unknown).err().unwrap_or_default());
    }
    done(Answer::Exchanges {
        exchanges: ctx
            .traffic
            .as_ref()
            .map(|stats| stats.inspect_recent(services, recent))
            .unwrap_or_default(),
    })
}
