//! Commands that talk to a stack running elsewhere, through its control socket: `ps`, `start`,
//! `stop`, `restart`, `rebuild`, `kill`, `logs`, `down`, and `up -d`, which starts one.

use super::note;
use devstack::config::Config;
use devstack::control::client::Client;
use devstack::control::{Request, WireLine};
use devstack::headless::Printer;
use devstack::logs::{self, LineTap, LogLine, Stream};
use devstack::statedir::StateDir;
use serde_json::{Value, json};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::PathBuf;
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

fn connect(cfg: &Config) -> Option<Client> {
    Client::connect(&StateDir::new(&cfg.root).socket()).ok()
}

fn not_running(cfg: &Config) -> ExitCode {
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
            note(&format!(
                "error: {}",
                v["error"].as_str().unwrap_or("unknown error")
            ));
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            note(&format!("error: lost the connection to the stack: {e}"));
            Err(ExitCode::FAILURE)
        }
    }
}

pub fn ps(cfg: &Config, json_out: bool) -> ExitCode {
    let Some(mut client) = connect(cfg) else {
        return not_running(cfg);
    };
    let answer = match ok(client.request(&Request::Ps)) {
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
        let uptime = s["uptime_secs"].as_u64().map_or("-".to_string(), |n| {
            humantime::format_duration(Duration::from_secs(n))
                .to_string()
                .replace(' ', "")
        });
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

pub fn act(cfg: &Config, action: Action, services: &[String]) -> ExitCode {
    let Some(mut client) = connect(cfg) else {
        return not_running(cfg);
    };
    for name in services {
        let (service, wait) = (name.clone(), true);
        let (request, done) = match action {
            Action::Start => (Request::Start { service, wait }, "started"),
            Action::Stop => (Request::Stop { service, wait }, "stopped"),
            Action::Restart => (Request::Restart { service, wait }, "restarted"),
            Action::Rebuild => (Request::Rebuild { service, wait }, "rebuilt"),
            Action::Kill => (Request::Kill { service, wait }, "killed"),
        };
        match ok(client.request(&request)) {
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
            Err(code) => return code,
        }
    }
    ExitCode::SUCCESS
}

pub fn watch(cfg: &Config, service: &str, auto: bool) -> ExitCode {
    let Some(mut client) = connect(cfg) else {
        return not_running(cfg);
    };
    let request = Request::Watch {
        service: service.to_string(),
        auto,
    };
    match ok(client.request(&request)) {
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

pub fn down(cfg: &Config) -> ExitCode {
    let Some(mut client) = connect(cfg) else {
        note("nothing is running here");
        return ExitCode::SUCCESS;
    };
    if let Err(code) = ok(client.request(&Request::Down)) {
        return code;
    }
    // The stack is down once its socket stops answering.
    let deadline = Instant::now() + Duration::from_secs(600);
    while connect(cfg).is_some() {
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
    if connect(cfg).is_some() {
        note("a stack is already running here; `devstack ps` shows it");
        return ExitCode::FAILURE;
    }
    let state = StateDir::new(&cfg.root);
    let _ = std::fs::create_dir_all(state.logs());
    let log_path = state.detached_log();
    let open = || {
        std::fs::OpenOptions::new()
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
        if connect(cfg).is_some() {
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
                "the background stack did not answer within 60s; see {}",
                log_path.display()
            ));
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn logs(
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
            return ExitCode::FAILURE;
        }
    }
    let printer = Printer::new(&names, color);
    match connect(cfg) {
        Some(client) => logs_live(client, &names, &printer, services, lines, follow),
        None => logs_from_files(cfg, &names, &printer, services, lines, follow),
    }
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
                "({n} lines went by too fast to show; the log files have them)"
            ));
        } else if let Some(e) = msg["error"].as_str() {
            note(&format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn logs_from_files(
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
