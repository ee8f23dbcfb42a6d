//! Commands that talk to a stack running elsewhere, through its control socket: `ps`, `start`,
//! `stop`, `restart`, `rebuild`, `kill`, `logs`, `down`, and `up -d`, which starts one. The
//! parts: finding the stack (`locate.rs`), acting on it (`act.rs`), its logs (`logs.rs`), waiting
//! until it is ready (`ready.rs`), starting one in the background (`detach.rs`); here, what they
//! share (saying why a request failed, printing tables) and `ps`.

mod act;
mod detach;
mod locate;
mod logs;
mod ready;

pub use act::{Action, act, act_on, down, restart_all, use_end, use_on, watch};
pub use detach::detach;
pub use locate::{Running, find, home, locate, not_running};
pub use logs::{logs, logs_from_files};
pub use ready::await_ready;

use super::note;
use devstack::control::client;
use devstack::engine::ServiceView;
use devstack::ignored::Ignore;
use devstack::statedir::StateDir;
use serde_json::json;
use std::process::ExitCode;
use unicode_width::UnicodeWidthStr;

/// A line on stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(super) fn out(line: &str) {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").or_say("stdout is closed (`| head`)");
}

/// Why a request failed, in words.
pub(super) fn describe(state: &StateDir, e: &client::Error) -> String {
    match e {
        client::Error::NoHello => {
            let pid = state
                .running_pid()
                .map_or(String::new(), |pid| format!(" (stack pid {pid})"));
            format!("{e}{pid}")
        }
        _ => e.to_string(),
    }
}

/// Say why a request failed; the exit code for it.
pub(super) fn fail(state: &StateDir, e: client::Error) -> ExitCode {
    note(&format!("error: {}", describe(state, &e)));
    match e {
        // Naming a service (or a fault scenario) the stack doesn't have is bad usage, as for
        // `up`, `ci` and `run --faults`.
        client::Error::Stack(error)
            if error.starts_with("unknown service") || error.starts_with("no fault scenario") =>
        {
            ExitCode::from(2)
        }
        _ => ExitCode::FAILURE,
    }
}

/// Rows (the first one the header) printed in columns, each as wide as its widest cell.
pub(super) fn table<R: AsRef<[String]>>(rows: &[R]) {
    for line in table_lines(rows) {
        out(&line);
    }
}

/// Rows (the first one the header) in columns, each as wide as its widest cell.
pub(super) fn table_lines<R: AsRef<[String]>>(rows: &[R]) -> Vec<String> {
    let columns = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.as_ref()[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .as_ref()
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// `-` for what is not there.
pub(super) fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

pub fn ps(mut stack: Running, json_out: bool) -> ExitCode {
    let services = match stack.ask(|c| c.ps()) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if json_out {
        out(&ps_json(&services));
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![
        [
            "NAME", "STATE", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS",
        ]
        .map(String::from),
    ];
    // A long state (a blocked service says why, and what its dependency is doing) would make
    // the column as wide: it is cut there and said whole below the table.
    const STATE_WIDTH: usize = 40;
    for s in &services {
        rows.push([
            s.name.clone(),
            devstack::format::ellipsize(&s.detail, STATE_WIDTH).into_owned(),
            or_dash(s.health),
            or_dash(s.pid),
            or_dash(s.port),
            or_dash(s.uptime_secs().map(devstack::format::uptime)),
            s.restarts.to_string(),
        ]);
    }
    table(&rows);
    for s in &services {
        if s.detail.width() > STATE_WIDTH {
            out(&format!("{}: {}", s.name, s.detail));
        }
    }
    for s in &services {
        if let Some(lost) = &s.log_lost {
            let (name, file, lines) = (&s.name, &lost.file, lost.lines);
            out(&match &lost.error {
                Some(e) => format!(
                    "{name}: log file {file}: {e}; {lines} lines not written (kept in memory only)"
                ),
                None => format!(
                    "{name}: {lines} lines are missing from log file {file} (it failed and works again)"
                ),
            });
        }
    }
    let volumes: Vec<String> = services
        .iter()
        .flat_map(|s| s.volumes.iter().map(move |v| format!("{v} ({})", s.name)))
        .collect();
    if !volumes.is_empty() {
        out(&format!(
            "volumes kept (`devstack down --volumes` removes them): {}",
            volumes.join(", ")
        ));
    }
    ExitCode::SUCCESS
}

/// `ps --json`: `{"services":[...]}`, pretty, with each view's keys sorted, as it has always
/// been printed. Numbers are read back from the views' JSON text, so that a `cpu_percent` of
/// `0.4` stays `0.4` (a JSON value would widen the `f32` to `0.4000000059604645`).
pub(super) fn ps_json(services: &[ServiceView]) -> String {
    let text = serde_json::to_string(&devstack::control::wire::services(services))
        .expect("views are JSON");
    let mut services: serde_json::Value = serde_json::from_str(&text).expect("JSON reads back");
    services.sort_all_objects();
    serde_json::to_string_pretty(&json!({ "services": services })).expect("JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use devstack::engine::{HealthState, State};

    #[test]
    fn ps_json_sorts_keys_and_keeps_numbers_short() {
        let view = ServiceView {
            name: "api".into(),
            state: State::Running,
            health: Some(HealthState::Healthy),
            health_error: None,
            ready: true,
            wanted: true,
            auto_rebuild: None,
            spawns: 1,
            building: false,
            build_failed: false,
            cpu_percent: Some(0.4),
            mem_bytes: Some(12),
            crash_loop: false,
            settled: false,
            detail: "running".into(),
            pid: Some(7),
            port: None,
            private_port: None,
            next_pid: None,
            draining_pid: None,
            rollout_failed: None,
            image: None,
            remote: None,
            volumes: Vec::new(),
            restarts: 0,
            since: Some(tokio::time::Instant::now() - std::time::Duration::from_secs(3)),
            log_lost: None,
        };
        let text = ps_json(&[view]);
        assert!(text.contains(r#""cpu_percent": 0.4,"#), "{text}");
        assert!(text.contains(r#""state": "running","#), "{text}");
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("      \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 20, "{keys:?}");
    }
}
