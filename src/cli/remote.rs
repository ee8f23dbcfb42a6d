//! Commands that talk to a stack running elsewhere, through its control socket: `ps`, `start`,
//! `stop`, `restart`, `rebuild`, `kill`, `logs`, `down`, and `up -d`, which starts one.

use super::note;
use devstack::config::{self, Config};
use devstack::control::client::{self, Client};
use devstack::control::{Message, Readiness, Request, WireLine};
use devstack::engine::ServiceView;
use devstack::headless::Printer;
use devstack::logs::{self, LineTap, LogLine, Stream};
use devstack::statedir::{self, StateDir};
use serde_json::json;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use unicode_width::UnicodeWidthStr;

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
    locate(file).map_err(|refusal| {
        note(&format!("error: {refusal}"));
        ExitCode::FAILURE
    })
}

/// [`find`], saying nothing: the error is why the stack found can't be spoken to (another
/// protocol), in words.
pub fn locate(file: Option<&Path>) -> Result<Option<Running>, String> {
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
                return Err(describe(&state, &e));
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

/// The folder a stack would run in for the commands here (when none runs, to say where): with
/// `-f PATH`, PATH's folder; otherwise the nearest folder, from here up, with a
/// `devstack.toml`, or here.
pub fn home(file: Option<&Path>) -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match file {
        Some(f) => {
            let f = std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf());
            f.parent().map_or(here, Path::to_path_buf)
        }
        None => config::find(&here)
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or(here),
    }
}

pub fn not_running(cfg: &Config) -> ExitCode {
    note(&format!(
        "no stack is running in {} (start one with `devstack up`, or `devstack up -d` in the background)",
        cfg.root.display()
    ));
    ExitCode::FAILURE
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
            devstack::ellipsize(&s.detail, STATE_WIDTH).into_owned(),
            or_dash(s.health),
            or_dash(s.pid),
            or_dash(s.port),
            or_dash(s.uptime_secs().map(devstack::engine::uptime)),
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
    ExitCode::SUCCESS
}

/// `ps --json`: `{"services":[...]}`, pretty, with each view's keys sorted, as it has always
/// been printed. Numbers are read back from the views' JSON text, so that a `cpu_percent` of
/// `0.4` stays `0.4` (a JSON value would widen the `f32` to `0.4000000059604645`).
pub(super) fn ps_json(services: &[ServiceView]) -> String {
    let text = serde_json::to_string(services).expect("views are JSON");
    let services: serde_json::Value = serde_json::from_str(&text).expect("JSON reads back");
    serde_json::to_string_pretty(&json!({ "services": services })).expect("JSON")
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
                    for line in &failed.build {
                        eprintln!("  {name} | {line}");
                    }
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
        // `--wait` is what a script runs before its tests, once or twice: like compose's, it
        // waits for the stack that runs rather than failing.
        if let Some(timeout) = wait {
            note(&format!(
                "a stack is already running here{pid}; waiting for it to be ready"
            ));
            return wait_ready(&state, timeout, services);
        }
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
                Some(timeout) => wait_ready(&state, timeout, &[]),
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

/// `up -d --wait`: wait until every service is ready, as `ci` judges; a failure, a timeout or
/// a stop is said, with the last lines of the services concerned, and exits 1. The stack keeps
/// running either way.
fn wait_ready(state: &StateDir, timeout: Duration, only: &[String]) -> ExitCode {
    let kept = "the stack keeps running: `devstack logs`, `devstack down`";
    match await_ready(state, timeout, only) {
        Err(e) => fail(state, e),
        Ok(Readiness::Ready { took_ms }) => {
            note(&format!(
                "every service is ready (took {})",
                devstack::engine::secs(Duration::from_millis(took_ms))
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
            super::show_lines(&service, &lines);
            note(kept);
            ExitCode::FAILURE
        }
        Ok(Readiness::TimedOut { waiting }) => {
            note(&format!(
                "not ready after {}:",
                devstack::engine::secs(timeout)
            ));
            for w in &waiting {
                note(&format!("  `{}` is {}", w.service, w.what));
            }
            for w in &waiting {
                super::show_lines(&w.service, &w.lines);
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
                    devstack::control::Response::Error { error, .. } => client::Error::Stack(error),
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
