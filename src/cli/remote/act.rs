//! Acting on the running stack: `start`, `stop`, `restart`, `rebuild`, `kill` (each waiting until
//! the stack says it took effect, `act_on`, which MCP's tools call too), `restart --all`,
//! `watch` and `down`, which waits until the socket stops answering.

use super::locate::{Running, connect};
use super::{fail, out};
use crate::cli::{note, service_lines};
use devstack::control::client;
use devstack::control::{End, Request};
use devstack::engine::ServiceView;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Rebuild,
    Kill,
}

pub fn act(mut stack: Running, action: Action, services: &[String]) -> ExitCode {
    for name in services {
        match act_on(&mut stack, action, name) {
            Ok(done) => out(&done),
            Err(failed) => {
                let code = fail(&stack.state, failed.error);
                if !failed.build.is_empty() {
                    note(&format!(
                        "last {} lines of the build of `{name}`:",
                        failed.build.len()
                    ));
                    service_lines(name, &failed.build);
                }
                return code;
            }
        }
    }
    ExitCode::SUCCESS
}

/// An action that failed: why, and for a rebuild, the last lines its build printed.
pub struct Failed {
    pub error: client::Error,
    pub build: Vec<String>,
}

/// Act on one service and wait until it took effect (`start` and `restart` until it is ready,
/// `stop` and `kill` until it is gone, `rebuild` until the new build runs): what happened, in
/// a line (`api: restarted (pid 42, running)`).
pub fn act_on(stack: &mut Running, action: Action, name: &str) -> Result<String, Failed> {
    let (service, wait) = (name.to_string(), true);
    let (request, done) = match action {
        Action::Start => (Request::Start { service, wait }, "started"),
        Action::Stop => (Request::Stop { service, wait }, "stopped"),
        Action::Restart => (Request::Restart { service, wait }, "restarted"),
        Action::Rebuild => (Request::Rebuild { service, wait }, "rebuilt"),
        Action::Kill => (Request::Kill { service, wait }, "killed"),
    };
    match stack.client.act(&request) {
        Ok(Some(ServiceView {
            pid: Some(pid),
            detail,
            ..
        })) => Ok(format!("{name}: {done} (pid {pid}, {detail})")),
        Ok(Some(view)) => Ok(format!("{name}: {done} ({})", view.detail)),
        Ok(None) => Ok(format!("{name}: {done}")),
        // A rebuild whose build failed: the stack sends that build's last lines.
        Err(client::Error::Failed { error, lines }) => Err(Failed {
            error: client::Error::Stack(error),
            build: lines,
        }),
        Err(error) => Err(Failed {
            error,
            build: Vec::new(),
        }),
    }
}

/// `restart --all`: every service in dependency order; waits until the stack is ready again.
pub fn restart_all(mut stack: Running) -> ExitCode {
    match stack.ask(|c| c.call(&Request::RestartAll { wait: true })) {
        Ok(_) => {
            out("restarted every service");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub fn watch(mut stack: Running, service: &str, auto: bool) -> ExitCode {
    let request = Request::Watch {
        service: service.to_string(),
        auto,
    };
    match stack.ask(|c| c.call(&request)) {
        Ok(_) => {
            out(&format!(
                "{service}: rebuild on change {}",
                if auto { "on" } else { "off" }
            ));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `use`: a service served by its remote end or its local process, waited for until it is ready
/// so; the line saying which (`users: served by its remote end https://…`).
pub fn use_on(stack: &mut Running, service: &str, remote: bool) -> Result<String, client::Error> {
    let to = if remote { End::Remote } else { End::Local };
    let request = Request::Use {
        service: service.to_string(),
        to,
        wait: true,
    };
    Ok(match stack.client.act(&request)? {
        Some(view) => match (&view.remote, view.pid) {
            (Some(url), _) => format!("{service}: served by its remote end {url}"),
            (None, Some(pid)) => format!("{service}: served by its local process (pid {pid})"),
            (None, None) => format!("{service}: local ({})", view.detail),
        },
        None => format!("{service}: switched"),
    })
}

pub fn use_end(mut stack: Running, service: &str, remote: bool) -> ExitCode {
    match use_on(&mut stack, service, remote) {
        Ok(line) => {
            out(&line);
            ExitCode::SUCCESS
        }
        Err(error) => fail(&stack.state, error),
    }
}

pub fn down(mut stack: Running) -> ExitCode {
    if let Err(code) = stack.ask(|c| c.call(&Request::Down)) {
        return code;
    }
    // The stack is down once its socket stops answering.
    let deadline = Instant::now() + Duration::from_secs(600);
    while connect(&stack.state).is_some() {
        if Instant::now() > deadline {
            note("the stack is still stopping after 10 minutes");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    note("stack stopped");
    ExitCode::SUCCESS
}
