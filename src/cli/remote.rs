//! Commands that talk to a stack running elsewhere, through its control socket: `ps`, `start`,
//! `stop`, `restart`, `rebuild`, `kill`, `logs`, `down`, and `up -d`, which starts one.

use super::note;
use devstack::config::{self, Config};
use devstack::control::client::Client;
use devstack::control::{Request, WireLine};
use devstack::headless::Printer;
use devstack::logs::{self, LineTap, LogLine, Stream};
use devstack::statedir::{self, StateDir};
use serde_json::{Value, json};
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
fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A stack that answers on its control socket, and a connection to it.
pub struct Running {
    state: StateDir,
    client: Client,
}

fn connect(state: &StateDir) -> Option<Client> {
    Client::connect(&state.socket_address()).ok()
}

/// The running stack a command means, found without reading its config (which may have been
/// edited into an error, or deleted, while the stack runs): with `-f PATH`, the one in PATH's
/// folder; otherwise the nearest folder, from here up, whose `.devstack/` has a stack answering,
/// stopping at the nearest folder with a `devstack.toml` (the stack `up` would start here).
/// None when that stack is not running.
pub fn find(file: Option<&Path>) -> Option<Running> {
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
        if let Some(client) = connect(&state) {
            return Some(Running { state, client });
        }
        if folder.join(config::FILE_NAME).is_file() {
            return None;
        }
    }
    None
}

pub fn not_running(cfg: &Config) -> ExitCode {
    note(&format!(
        "no stack is running in {} (start one with `devstack up`, or `devstack up -d` in the background)",
        cfg.root.display()
    ));
    ExitCode::FAILURE
}

/// The answer, or its error printed.
fn ok(answer: std::io::Result<Value>) -> Result<Value, ExitCode> {
    match answer {
        Ok(v) if v["ok"] == json!(true) => Ok(v),
        Ok(v) => {
            let error = v["error"].as_str().unwrap_or("unknown error");
            note(&format!("error: {error}"));
            // Naming a service the stack doesn't have is bad usage, as for `up` and `ci`.
            Err(if error.starts_with("unknown service") {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            note(&format!("error: lost the connection to the stack: {e}"));
            Err(ExitCode::FAILURE)
        }
    }
}

pub fn ps(mut stack: Running, json_out: bool) -> ExitCode {
    let answer = match ok(stack.client.request(&Request::Ps)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let services = answer["services"].as_array().cloned().unwrap_or_default();
    if json_out {
        out(&serde_json::to_string_pretty(&json!({ "services": services })).expect("JSON"));
        return ExitCode::SUCCESS;
    }
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![
        [
            "NAME", "STATE", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS",
        ]
        .map(String::from),
    ];
    for s in &services {
        let uptime = s["uptime_secs"]
            .as_u64()
            .map_or("-".to_string(), devstack::engine::uptime);
        rows.push([
            text(&s["name"]),
            text(&s["detail"]),
            text(&s["health"]),
            text(&s["pid"]),
            text(&s["port"]),
            uptime,
            text(&s["restarts"]),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out(cells.join("  ").trim_end());
    }
    for s in &services {
        let lost = &s["log_lost"];
        if lost.is_object() {
            let lines = lost["lines"].as_u64().unwrap_or(0);
            let file = lost["file"].as_str().unwrap_or("its log file");
            out(&match lost["error"].as_str() {
                Some(e) => format!(
                    "{}: log file {file}: {e}; {lines} lines not written (kept in memory only)",
                    text(&s["name"])
                ),
                None => format!(
                    "{}: {lines} lines are missing from log file {file} (it failed and works again)",
                    text(&s["name"])
                ),
            });
        }
    }
    ExitCode::SUCCESS
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
        match ok(stack.client.request(&request)) {
            Ok(answer) => {
                let view = &answer["service"];
                match view["pid"].as_i64() {
                    Some(pid) => out(&format!(
                        "{name}: {done} (pid {pid}, {})",
                        view["detail"].as_str().unwrap_or("")
                    )),
                    None => out(&format!(
                        "{name}: {done} ({})",
                        view["detail"].as_str().unwrap_or("")
                    )),
                }
            }
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
    let request = Request::Logs {
        services: vec![service.to_string()],
        lines: BUILD_LINES_SEARCHED,
        follow: false,
    };
    let Ok(answer) = client.request(&request) else {
        return;
    };
    let lines: Vec<WireLine> = serde_json::from_value(answer["lines"].clone()).unwrap_or_default();
    let build: Vec<&WireLine> = lines
        .iter()
        .filter(|l| l.stream == "build" && l.time.as_str() >= since)
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
    match ok(stack.client.request(&Request::RestartAll { wait: true })) {
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
    match ok(stack.client.request(&request)) {
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
    if let Err(code) = ok(stack.client.request(&Request::Down)) {
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
/// its control socket answers.
pub fn detach(cfg: &Config, services: &[String]) -> ExitCode {
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
            return ExitCode::SUCCESS;
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

/// `logs` against a running stack: its service names come from the stack (its config may have
/// changed since it started).
pub fn logs(
    mut stack: Running,
    services: &[String],
    lines: usize,
    follow: bool,
    color: bool,
) -> ExitCode {
    let answer = match ok(stack.client.request(&Request::Ps)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let names: Vec<String> = answer["services"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let printer = Printer::new(&names, color);
    logs_live(stack.client, &names, &printer, services, lines, follow)
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
    let stream = match wire.stream.as_str() {
        "build" => Stream::Build,
        "devstack" => Stream::System,
        _ => Stream::Out,
    };
    printer.lines(&[LogLine {
        service,
        stream,
        time: SystemTime::now(),
        text: wire.text.clone(),
    }]);
}

fn logs_live(
    mut client: Client,
    names: &[String],
    printer: &Printer,
    services: &[String],
    lines: usize,
    follow: bool,
) -> ExitCode {
    let request = Request::Logs {
        services: services.to_vec(),
        lines,
        follow,
    };
    let answer = match ok(client.request(&request)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let tail: Vec<WireLine> = serde_json::from_value(answer["lines"].clone()).unwrap_or_default();
    for line in &tail {
        print_line(printer, names, line);
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    while let Ok(Some(msg)) = client.next_message() {
        if let Ok(line) = serde_json::from_value::<WireLine>(msg["line"].clone()) {
            print_line(printer, names, &line);
        } else if let Some(n) = msg["missed"].as_u64() {
            note(&format!(
                "({} went by too fast to show; the log files have them)",
                devstack::plural(n as usize, "line")
            ));
        } else if let Some(e) = msg["error"].as_str() {
            note(&format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
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
