//! Commands that talk to a stack running elsewhere, through its control socket: `ps`, `start`,
//! `stop`, `restart`, `rebuild`, `kill`, `logs`, `down`, and `up -d`, which starts one.

use super::note;
use devstack::config::{self, Config};
use devstack::control::client::{self, Client};
use devstack::control::{LineStream, Message, Request, WireLine};
use devstack::engine::ServiceView;
use devstack::headless::Printer;
use devstack::logs::{self, LineTap, LogLine, Stream};
use devstack::statedir::{self, StateDir};
use serde_json::json;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Copy)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Rebuild,
    Kill,
}

/// A line on stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(super) fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A stack that answers on its control socket, and a connection to it.
pub struct Running {
    pub(super) state: StateDir,
    pub(super) client: Client,
    /// The folder whose `.devstack/` the stack answers in.
    folder: PathBuf,
}

impl Running {
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Where to connect to the stack again.
    pub fn socket(&self) -> PathBuf {
        self.state.socket_address()
    }

    pub fn pid(&self) -> Option<u32> {
        self.state.running_pid()
    }
}

fn connect(state: &StateDir) -> Option<Client> {
    Client::connect(&state.socket_address()).ok()
}

/// The running stack a command means, found without reading its config (which may have been
/// edited into an error, or deleted, while the stack runs): with `-f PATH`, the one in PATH's
/// folder; otherwise the nearest folder, from here up, whose `.devstack/` has a stack answering,
/// stopping at the nearest folder with a `devstack.toml` (the stack `up` would start here).
/// None when that stack is not running; an error (said) when it speaks another protocol.
pub fn find(file: Option<&Path>) -> Result<Option<Running>, ExitCode> {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let folders: Vec<PathBuf> = match file {
        Some(f) => {
            let f = std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf());
            vec![f.parent().map_or(here, Path::to_path_buf)]
        }
        None => here.ancestors().map(Path::to_path_buf).collect(),
    };
    for folder in folders {
        let state = StateDir::new(&folder);
        if let Some(mut client) = connect(&state) {
            // Always first, so that a stack of another devstack version says so clearly.
            if let Err(e) = client.hello() {
                return Err(fail(&state, e));
            }
            return Ok(Some(Running {
                state,
                client,
                folder,
            }));
        }
        if folder.join(config::FILE_NAME).is_file() {
            return Ok(None);
        }
    }
    Ok(None)
}

pub fn not_running(cfg: &Config) -> ExitCode {
    note(&format!(
        "no stack is running in {} (start one with `devstack up`, or `devstack up -d` in the background)",
        cfg.root.display()
    ));
    ExitCode::FAILURE
}

/// Say why a request failed; the exit code for it.
pub(super) fn fail(state: &StateDir, e: client::Error) -> ExitCode {
    match &e {
        client::Error::NoHello => {
            let pid = state
                .running_pid()
                .map_or(String::new(), |pid| format!(" (stack pid {pid})"));
            note(&format!("error: {e}{pid}"));
        }
        _ => note(&format!("error: {e}")),
    }
    match e {
        // Naming a service the stack doesn't have is bad usage, as for `up` and `ci`.
        client::Error::Stack(error) if error.starts_with("unknown service") => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

impl Running {
    /// Ask the stack; the answer, or its error said.
    pub(super) fn ask<T>(
        &mut self,
        request: impl FnOnce(&mut Client) -> Result<T, client::Error>,
    ) -> Result<T, ExitCode> {
        request(&mut self.client).map_err(|e| fail(&self.state, e))
    }
}

/// Rows (the first one the header) printed in columns, each as wide as its widest cell.
pub(super) fn table<R: AsRef<[String]>>(rows: &[R]) {
    let columns = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.as_ref()[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out(cells.join("  ").trim_end());
    }
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
    for s in &services {
        rows.push([
            s.name.clone(),
            s.detail.clone(),
            or_dash(s.health),
            or_dash(s.pid),
            or_dash(s.port),
            or_dash(s.uptime_secs.map(devstack::engine::uptime)),
            s.restarts.to_string(),
        ]);
    }
    table(&rows);
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
    ExitCode::SUCCESS
}

/// `ps --json`: `{"services":[...]}`, pretty, with each view's keys sorted, as it has always
/// been printed. Numbers are read back from the views' JSON text, so that a `cpu_percent` of
/// `0.4` stays `0.4` (a JSON value would widen the `f32` to `0.4000000059604645`).
fn ps_json(services: &[ServiceView]) -> String {
    let text = serde_json::to_string(services).expect("views are JSON");
    let services: serde_json::Value = serde_json::from_str(&text).expect("JSON reads back");
    serde_json::to_string_pretty(&json!({ "services": services })).expect("JSON")
}

pub fn act(mut stack: Running, action: Action, services: &[String]) -> ExitCode {
    for name in services {
        let (service, wait) = (name.clone(), true);
        let (request, done) = match action {
            Action::Start => (Request::Start { service, wait }, "started"),
            Action::Stop => (Request::Stop { service, wait }, "stopped"),
            Action::Restart => (Request::Restart { service, wait }, "restarted"),
            Action::Rebuild => (Request::Rebuild { service, wait }, "rebuilt"),
            Action::Kill => (Request::Kill { service, wait }, "killed"),
        };
        let sent = now_rfc3339();
        match stack.ask(|c| c.act(&request)) {
            Ok(view) => match view {
                Some(ServiceView {
                    pid: Some(pid),
                    detail,
                    ..
                }) => out(&format!("{name}: {done} (pid {pid}, {detail})")),
                Some(view) => out(&format!("{name}: {done} ({})", view.detail)),
                None => out(&format!("{name}: {done}")),
            },
            Err(code) => {
                if let Action::Rebuild = action {
                    show_build_output(&mut stack.client, name, &sent);
                }
                return code;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Now, as the socket writes log line times (RFC 3339 with milliseconds, UTC), which sort as text.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Build output lines shown when a rebuild fails.
const BUILD_LINES_SHOWN: usize = 30;
/// Log lines asked for to find them among what the old process keeps printing.
const BUILD_LINES_SEARCHED: usize = 5000;

/// The last lines a service's build printed since `since`, on stderr: a failed `rebuild` shows
/// why it failed, as the build's output would in a terminal.
fn show_build_output(client: &mut Client, service: &str, since: &str) {
    let Ok(lines) = client.logs(&[service.to_string()], BUILD_LINES_SEARCHED, false) else {
        return;
    };
    let build: Vec<&WireLine> = lines
        .iter()
        .filter(|l| l.stream == LineStream::Build && l.time.as_str() >= since)
        .collect();
    let shown = &build[build.len().saturating_sub(BUILD_LINES_SHOWN)..];
    if shown.is_empty() {
        return;
    }
    note(&format!(
        "last {} lines of the build of `{service}`:",
        shown.len()
    ));
    for line in shown {
        eprintln!("  {service} | {}", line.text);
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

/// Start `devstack up --headless` in the background, in a session of its own, and return once
/// its control socket answers; with `wait` (a timeout), once every service is ready.
pub fn detach(cfg: &Config, services: &[String], wait: Option<Duration>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let state = StateDir::new(&cfg.root);
    if connect(&state).is_some() {
        let pid = state
            .running_pid()
            .map_or(String::new(), |pid| format!(" (pid {pid})"));
        note(&format!(
            "a stack is already running here{pid}; `devstack ps` shows it, `devstack down` stops it"
        ));
        return ExitCode::FAILURE;
    }
    if let Err(e) = state.create() {
        note(&e);
        return ExitCode::FAILURE;
    }
    let log_path = state.detached_log();
    let open = || {
        statedir::private_file()
            .create(true)
            .append(true)
            .open(&log_path)
    };
    let (Ok(out), Ok(err)) = (open(), open()) else {
        note(&format!("cannot write {}", log_path.display()));
        return ExitCode::FAILURE;
    };
    let start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("devstack"));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("-f")
        .arg(&cfg.file)
        .args(super::debuglog::args())
        .args(["up", "--headless", "--stay"])
        .args(services)
        .current_dir(&cfg.root)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            note(&format!("cannot start devstack in the background: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if connect(&state).is_some() {
            note(&format!(
                "stack started in the background (pid {}); output in {}; `devstack ps`, `devstack logs -f`, `devstack down`",
                child.id(),
                log_path.display()
            ));
            return match wait {
                Some(timeout) => wait_ready(&state, timeout),
                None => ExitCode::SUCCESS,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                let _ = f.seek(SeekFrom::Start(start));
                let _ = f.read_to_string(&mut text);
            }
            note(&format!(
                "the background stack exited ({status}):\n{}",
                text.trim_end()
            ));
            return ExitCode::FAILURE;
        }
        if Instant::now() > deadline {
            note(&format!(
                "the background stack (pid {}) did not answer within 60s; see {}",
                child.id(),
                log_path.display()
            ));
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `up -d --wait`: follow the views (`subscribe`) until every service is ready, as `ci` judges
/// (`engine::ready::verdict`); a failure, a timeout or a stop is said, with the last lines of
/// the services concerned, and exits 1. The stack keeps running either way.
fn wait_ready(state: &StateDir, timeout: Duration) -> ExitCode {
    use devstack::engine::ready::{Verdict, not_ready, verdict};
    let started = Instant::now();
    let deadline = started + timeout;
    let Some(mut client) = connect(state) else {
        note("the stack stopped before it was ready");
        return ExitCode::FAILURE;
    };
    if let Err(e) = client.hello() {
        return fail(state, e);
    }
    let mut views = match client.call(&Request::Subscribe) {
        Ok(devstack::control::Answer::Services { services }) => services,
        Ok(_) => {
            return fail(
                state,
                client::Error::Garbled("not an answer to `subscribe`".into()),
            );
        }
        Err(e) => return fail(state, e),
    };
    let wanted: Vec<bool> = views.iter().map(|v| v.wanted).collect();
    let kept = "the stack keeps running: `devstack logs`, `devstack down`";
    loop {
        if let Some(v) = super::stack::unwanted(&wanted, &views) {
            note(&format!(
                "`{}` was stopped before the stack was ready ({})",
                v.name, v.detail
            ));
            return ExitCode::FAILURE;
        }
        match verdict(&views) {
            Verdict::Ready => {
                note(&format!(
                    "every service is ready (took {})",
                    devstack::engine::secs(started.elapsed())
                ));
                return ExitCode::SUCCESS;
            }
            Verdict::Failed { service, why } => {
                note(&format!("`{service}` failed: {why}"));
                show_remote_tail(state, &service);
                note(kept);
                return ExitCode::FAILURE;
            }
            Verdict::Waiting => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out = left.is_zero()
            || client.set_timeout(Some(left)).is_err()
            || match client.next_message() {
                Ok(Some(Message::Event { service, .. })) => {
                    if let Some(v) = views.iter_mut().find(|v| v.name == service.name) {
                        *v = service;
                    }
                    false
                }
                Ok(Some(Message::Missed { .. })) => {
                    if let Some(now) = connect(state).and_then(|mut c| c.ps().ok()) {
                        views = now;
                    }
                    false
                }
                Ok(Some(_)) => false,
                Err(client::Error::Lost(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    true
                }
                Ok(None) | Err(_) => {
                    note("the stack stopped before it was ready");
                    return ExitCode::FAILURE;
                }
            };
        if timed_out {
            note(&format!(
                "not ready after {}:",
                devstack::engine::secs(timeout)
            ));
            let waiting = not_ready(&views);
            for (name, what) in &waiting {
                note(&format!("  `{name}` is {what}"));
            }
            for (name, _) in &waiting {
                show_remote_tail(state, name);
            }
            note(kept);
            return ExitCode::FAILURE;
        }
    }
}

/// The last lines a service of the running stack logged, on stderr.
fn show_remote_tail(state: &StateDir, service: &str) {
    let Some(mut client) = connect(state) else {
        return;
    };
    if client.hello().is_err() {
        return;
    }
    let tail = [service.to_string()];
    if let Ok(lines) = client.logs(&tail, super::stack::TAIL_SHOWN, false) {
        let texts: Vec<String> = lines.into_iter().map(|l| l.text).collect();
        super::show_lines(service, &texts);
    }
}

/// `logs` against a running stack: its service names come from the stack (its config may have
/// changed since it started).
pub fn logs(
    mut stack: Running,
    services: &[String],
    lines: usize,
    follow: bool,
    color: bool,
) -> ExitCode {
    let names: Vec<String> = match stack.ask(|c| c.ps()) {
        Ok(views) => views.into_iter().map(|v| v.name).collect(),
        Err(code) => return code,
    };
    let printer = Printer::new(&names, color);
    logs_live(stack, &names, &printer, services, lines, follow)
}

/// `logs` when no stack runs: from the log files of the services in the config.
pub fn logs_from_files(
    cfg: &Config,
    services: &[String],
    lines: usize,
    follow: bool,
    color: bool,
) -> ExitCode {
    let names: Vec<String> = cfg.services.iter().map(|s| s.name.clone()).collect();
    for s in services {
        if !names.contains(s) {
            note(&format!(
                "error: unknown service `{s}`; services are: {}",
                names.join(", ")
            ));
            return ExitCode::from(2);
        }
    }
    let printer = Printer::new(&names, color);
    read_files(cfg, &names, &printer, services, lines, follow)
}

fn print_line(printer: &Printer, names: &[String], wire: &WireLine) {
    let Some(service) = names.iter().position(|n| *n == wire.service) else {
        return;
    };
    printer.lines(&[LogLine {
        service,
        stream: Stream::from(wire.stream),
        time: SystemTime::now(),
        text: wire.text.clone(),
    }]);
}

fn logs_live(
    mut stack: Running,
    names: &[String],
    printer: &Printer,
    services: &[String],
    lines: usize,
    follow: bool,
) -> ExitCode {
    let tail = match stack.ask(|c| c.logs(services, lines, follow)) {
        Ok(tail) => tail,
        Err(code) => return code,
    };
    for line in &tail {
        print_line(printer, names, line);
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    loop {
        match stack.client.next_message() {
            Ok(Some(Message::Line { line })) => print_line(printer, names, &line),
            Ok(Some(Message::Missed { missed })) => note(&format!(
                "({} went by too fast to show; the log files have them)",
                devstack::plural(missed as usize, "line")
            )),
            Ok(Some(Message::End(end))) => {
                let error = match end {
                    devstack::control::Response::Error { error } => client::Error::Stack(error),
                    _ => client::Error::Garbled("the stream ended without a reason".into()),
                };
                return fail(&stack.state, error);
            }
            // Not asked for on this stream.
            Ok(Some(Message::Event { .. } | Message::Call { .. })) => {}
            // The stack stopped: so does the follow.
            Ok(None) | Err(client::Error::Lost(_)) => return ExitCode::SUCCESS,
            Err(e) => return fail(&stack.state, e),
        }
    }
}

fn read_files(
    cfg: &Config,
    names: &[String],
    printer: &Printer,
    services: &[String],
    lines: usize,
    follow: bool,
) -> ExitCode {
    let dir = StateDir::new(&cfg.root).logs();
    let wanted: Vec<usize> = if services.is_empty() {
        (0..names.len()).collect()
    } else {
        services
            .iter()
            .filter_map(|s| names.iter().position(|n| n == s))
            .collect()
    };
    // Where each file ends now: following prints what is appended after.
    let mut offsets: Vec<(usize, PathBuf, u64)> = wanted
        .iter()
        .map(|&i| {
            let path = logs::log_path(&dir, &names[i]);
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            (i, path, len)
        })
        .collect();
    for line in logs::read_files(&dir, names, &wanted, lines) {
        printer.lines(std::slice::from_ref(&line));
    }
    // Following files: poll for what is appended (a rotated file starts over).
    if !follow {
        return ExitCode::SUCCESS;
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for (service, path, offset) in &mut offsets {
            let Ok(mut file) = std::fs::File::open(&*path) else {
                continue;
            };
            let len = file.metadata().map_or(0, |m| m.len());
            if len < *offset {
                *offset = 0;
            }
            if len == *offset || file.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut reader = std::io::BufReader::new(file);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                *offset += line.len() as u64;
                let text = line.trim_end_matches('\n');
                if let Some(parsed) = logs::parse_file_line(*service, text) {
                    printer.lines(&[parsed]);
                }
                line.clear();
            }
        }
    }
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
            restarts: 0,
            since: None,
            uptime_secs: Some(3),
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
