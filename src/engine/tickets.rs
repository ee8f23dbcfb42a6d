//! Completion tickets: a command sent with a ticket is answered by the engine itself once it has
//! taken effect (`Done`) or cannot (`Failed`), judged after each message against the engine's own
//! state (which run process a service has, whether its build failed) and `ready::verdict`, the
//! one definition of ready and failed that the dashboard, the socket, `ci`, `run`, `--wait` and
//! MCP share. Whoever waits bounds the wait; a ticket nobody waits for any more is dropped.

use super::ready::{Verdict, verdict};
use super::{Engine, ServiceId, ServiceView, Services};
use std::time::SystemTime;
use tokio::sync::oneshot;

/// How a ticket ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The command took effect: the views of the services it concerns.
    Done(Vec<ServiceView>),
    Failed(Failure),
}

/// Why a ticket failed, and which lines tell more.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub service: ServiceId,
    pub name: String,
    pub why: String,
    pub kind: FailureKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// It settled without being ready, or crash-loops: its last lines say why.
    Failed,
    /// A build, or a rollout's new process, failed while the previous process kept serving:
    /// the lines logged since the command say why.
    Update { since: SystemTime },
    /// It was stopped (or is not meant to be up) while someone waited for it to be ready.
    Unwanted,
}

/// What a ticket waits for.
#[derive(Debug, Clone)]
pub(super) enum Goal {
    /// `i` ready; with `after`, by a run process started after that many (a restart's new one).
    Ready { i: ServiceId, after: Option<u64> },
    /// The process `i` had (`had`, a process id) gone, and nothing of it stopping or building.
    Gone { i: ServiceId, had: Option<u64> },
    /// `i` served by its remote end (`remote`) or its local process, and ready (or, not
    /// wanted, with nothing of it running here).
    Using { i: ServiceId, remote: bool },
    /// Restart all: each service that ran has a new process (`spawns` as they were), and the
    /// stack is ready.
    Renewed {
        spawns: Services<u64>,
        ran: Services<bool>,
    },
    /// The services `only` (every wanted one when empty) ready; `wanted`: what was wanted when
    /// asked (a service unwanted since fails the wait).
    Stack {
        only: Vec<ServiceId>,
        wanted: Services<bool>,
    },
}

pub(super) struct Ticket {
    goal: Goal,
    /// When it was asked (the lines of a build that fails are those logged since).
    asked: SystemTime,
    reply: oneshot::Sender<Outcome>,
}

impl Engine {
    /// The goal of a command applied now (judged against the state before it is applied).
    pub(super) fn goal(&self, cmd: &super::Command) -> Option<Goal> {
        use super::Command::*;
        Some(match *cmd {
            Start { service } => Goal::Ready {
                i: service,
                after: None,
            },
            Restart { service } | Rebuild { service } => Goal::Ready {
                i: service,
                after: Some(self.svcs[service].spawns),
            },
            Stop { service } | Kill { service } => Goal::Gone {
                i: service,
                had: self.svcs[service].serving.proc().map(|p| p.id),
            },
            Use { service, remote } => Goal::Using { i: service, remote },
            RestartAll => Goal::Renewed {
                spawns: self.svcs.map(|s| s.spawns),
                ran: self.svcs.map(|s| s.serving.proc().is_some()),
            },
            _ => return None,
        })
    }

    pub(super) fn stack_goal(&self, only: Vec<ServiceId>) -> Goal {
        Goal::Stack {
            only,
            wanted: self.svcs.map(|s| s.want_up),
        }
    }

    /// Note a ticket; `asked`: when its command was received, before it was applied (what a
    /// build it starts prints comes after).
    pub(super) fn add_ticket(
        &mut self,
        goal: Goal,
        asked: SystemTime,
        reply: oneshot::Sender<Outcome>,
    ) {
        self.tickets.push(Ticket { goal, asked, reply });
    }

    /// Answer each ticket whose goal is reached or out of reach (after a publish: the views are
    /// current); forget those nobody waits for.
    pub(super) fn resolve_tickets(&mut self) {
        if self.tickets.is_empty() {
            return;
        }
        let views = self.views.borrow().clone();
        let tickets = std::mem::take(&mut self.tickets);
        for ticket in tickets {
            if ticket.reply.is_closed() {
                continue;
            }
            match self.judge(&ticket, &views) {
                Some(outcome) => drop(ticket.reply.send(outcome)),
                None => self.tickets.push(ticket),
            }
        }
    }

    fn judge(&self, ticket: &Ticket, views: &Services<ServiceView>) -> Option<Outcome> {
        let failed = |i: ServiceId, why: String, kind| {
            Some(Outcome::Failed(Failure {
                service: i,
                name: views[i].name.clone(),
                why,
                kind,
            }))
        };
        match &ticket.goal {
            Goal::Ready { i, after } => {
                let (i, view) = (*i, &views[*i]);
                if view.building || view.next_pid.is_some() {
                    return None;
                }
                if view.build_failed {
                    let why = "build failed; the previous process keeps running".to_string();
                    let since = ticket.asked;
                    return failed(i, why, FailureKind::Update { since });
                }
                let fresh = after.is_none_or(|n| self.svcs[i].spawns > n);
                if let Some(why) = view.rollout_failed.as_ref().filter(|_| !fresh) {
                    let why = format!("the new process {why}; the previous one keeps serving");
                    let since = ticket.asked;
                    return failed(i, why, FailureKind::Update { since });
                }
                match verdict(std::slice::from_ref(view)) {
                    Verdict::Ready if fresh => Some(Outcome::Done(vec![view.clone()])),
                    Verdict::Failed { why, .. } => failed(i, why, FailureKind::Failed),
                    _ if view.settled && fresh => {
                        failed(i, view.detail.clone(), FailureKind::Failed)
                    }
                    _ => None,
                }
            }
            Goal::Gone { i, had } => {
                let svc = &self.svcs[*i];
                let gone = svc
                    .serving
                    .proc()
                    .is_none_or(|p| Some(p.id) != *had && !svc.serving.is_stopping());
                (gone && svc.coming.is_none()).then(|| Outcome::Done(vec![views[*i].clone()]))
            }
            Goal::Using { i, remote } => {
                let (i, view) = (*i, &views[*i]);
                if view.remote.is_some() != *remote {
                    return None; // the local process is still on its way out
                }
                if !view.wanted {
                    return self.svcs[i]
                        .idle()
                        .then(|| Outcome::Done(vec![view.clone()]));
                }
                match verdict(std::slice::from_ref(view)) {
                    Verdict::Ready => Some(Outcome::Done(vec![view.clone()])),
                    Verdict::Failed { why, .. } => failed(i, why, FailureKind::Failed),
                    _ if view.settled => failed(i, view.detail.clone(), FailureKind::Failed),
                    _ => None,
                }
            }
            Goal::Renewed { spawns, ran } => {
                let renewed = views.iter().all(|(i, v)| {
                    !v.wanted || !ran[i] || v.settled || (self.svcs[i].spawns > spawns[i])
                });
                if !renewed {
                    return None;
                }
                self.stack_outcome(views, |_| true)
            }
            Goal::Stack { only, wanted } => {
                let chosen = |i: ServiceId| only.is_empty() || only.contains(&i);
                // A service meant to be up no more (stopped, or the stack stopping) will never
                // be ready, nor one asked for that isn't meant to be up.
                let unwanted = views
                    .iter()
                    .find(|(i, v)| chosen(*i) && !v.wanted && (wanted[*i] || !only.is_empty()));
                if let Some((i, v)) = unwanted {
                    return failed(i, v.detail.clone(), FailureKind::Unwanted);
                }
                self.stack_outcome(views, chosen)
            }
        }
    }

    /// Done or failed by `ready::verdict` over the chosen services; None while it waits.
    fn stack_outcome(
        &self,
        views: &Services<ServiceView>,
        chosen: impl Fn(ServiceId) -> bool,
    ) -> Option<Outcome> {
        let mine: Vec<ServiceView> = views
            .iter()
            .filter(|(i, _)| chosen(*i))
            .map(|(_, v)| v.clone())
            .collect();
        match verdict(&mine) {
            Verdict::Ready => Some(Outcome::Done(mine)),
            Verdict::Failed { service, why } => {
                let i = views.find(|v| v.name == service)?;
                Some(Outcome::Failed(Failure {
                    service: i,
                    name: service,
                    why,
                    kind: FailureKind::Failed,
                }))
            }
            Verdict::Waiting => None,
        }
    }
}

impl Failure {
    /// The lines that tell why (at most `n`): a failed build's since the command, or else the
    /// service's last. Reading waits for lines still being written (a second at most): call it
    /// off the engine's thread.
    pub fn lines(&self, logs: &crate::logs::LogHub, n: usize) -> Vec<String> {
        use crate::logs::{Stream, strip_sgr};
        match self.kind {
            FailureKind::Update { since } => {
                let build: Vec<String> = logs
                    .tail(self.service, BUILD_LINES_SEARCHED)
                    .iter()
                    .filter(|l| l.stream == Stream::Build && l.time >= since)
                    .map(|l| strip_sgr(&l.text).into_owned())
                    .collect();
                build[build.len().saturating_sub(n)..].to_vec()
            }
            FailureKind::Failed | FailureKind::Unwanted => logs.tail_text(self.service, n),
        }
    }
}

/// Lines shown of a service that failed (as `ci` shows them), or of a build that failed.
pub const LINES_SHOWN: usize = 30;

/// Log lines looked through to find a build's among what the old process keeps printing.
const BUILD_LINES_SEARCHED: usize = 5000;
