//! Waiting until the running stack is ready, as `ci` judges (`engine::ready::verdict`, in the
//! stack, on its `ready` request): `await_ready`, which MCP's `wait_ready` calls too, and
//! `up -d --wait`'s words for each outcome.

use super::fail;
use super::locate::connect;
use crate::cli::{note, show_lines};
use devstack::control::Readiness;
use devstack::control::client;
use devstack::statedir::StateDir;
use std::process::ExitCode;
use std::time::Duration;

/// `up -d --wait`: wait until every service is ready, as `ci` judges; a failure, a timeout or
/// a stop is said, with the last lines of the services concerned, and exits 1. The stack keeps
/// running either way.
pub(super) fn wait_ready(state: &StateDir, timeout: Duration, only: &[String]) -> ExitCode {
    let kept = "the stack keeps running: `devstack logs`, `devstack down`";
    match await_ready(state, timeout, only) {
        Err(e) => fail(state, e),
        Ok(Readiness::Ready { took_ms }) => {
            note(&format!(
                "every service is ready (took {})",
                devstack::format::secs(Duration::from_millis(took_ms))
            ));
            ExitCode::SUCCESS
        }
        Ok(Readiness::Stopped) => {
            note("the stack stopped before it was ready");
            ExitCode::FAILURE
        }
        Ok(Readiness::Unwanted { service, detail }) => {
            note(&format!(
                "`{service}` was stopped before the stack was ready ({detail})"
            ));
            ExitCode::FAILURE
        }
        Ok(Readiness::Failed {
            service,
            why,
            lines,
        }) => {
            note(&format!("`{service}` failed: {why}"));
            show_lines(&service, &lines);
            note(kept);
            ExitCode::FAILURE
        }
        Ok(Readiness::TimedOut { waiting }) => {
            note(&format!(
                "not ready after {}:",
                devstack::format::secs(timeout)
            ));
            for w in &waiting {
                note(&format!("  `{}` is {}", w.service, w.what));
            }
            for w in &waiting {
                show_lines(&w.service, &w.lines);
            }
            note(kept);
            ExitCode::FAILURE
        }
    }
}

/// Wait until every wanted service is ready, as `ci` judges (`engine::ready::verdict`, in the
/// stack), or only the services of `only` when it names some (an error names one the stack
/// doesn't have).
pub fn await_ready(
    state: &StateDir,
    timeout: Duration,
    only: &[String],
) -> Result<Readiness, client::Error> {
    let Some(mut client) = connect(state) else {
        return Ok(Readiness::Stopped);
    };
    client.hello()?;
    client.ready(only, timeout)
}
