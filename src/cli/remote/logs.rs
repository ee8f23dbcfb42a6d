//! `logs`: from the running stack (a tail, then with `-f` each line as the stack sends it), or,
//! when none runs, from the log files of the services in the config (with `-f`, polled for what
//! is appended).

use super::fail;
use super::locate::Running;
use crate::cli::note;
use devstack::config::{Config, ServiceId, Services};
use devstack::control::client;
use devstack::control::{Message, WireLine};
use devstack::headless::Printer;
use devstack::logs::{self, LineTap, LogLine, Stream};
use devstack::statedir::StateDir;
use std::io::{BufRead, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

pub fn logs(
    mut stack: Running,
    services: &[String],
    lines: usize,
    follow: bool,
    color: bool,
) -> ExitCode {
    let names: Services<String> = match stack.ask(|c| c.ps()) {
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
    let names = cfg.names();
    for s in services {
        if cfg.id_of(s).is_none() {
            note(&format!(
                "error: unknown service `{s}`; services are: {}",
                names.as_slice().join(", ")
            ));
            return ExitCode::from(2);
        }
    }
    let printer = Printer::new(&names, color);
    read_files(cfg, &names, &printer, services, lines, follow)
}

fn print_line(printer: &Printer, names: &Services<String>, wire: &WireLine) {
    let Some(service) = names.find(|n| *n == wire.service) else {
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
    names: &Services<String>,
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
                devstack::format::plural(missed as usize, "line")
            )),
            Ok(Some(Message::End(end))) => {
                let error = match end {
                    devstack::control::Response::Error { error, .. } => client::Error::Stack(error),
                    _ => client::Error::Garbled("the stream ended without a reason".into()),
                };
                return fail(&stack.state, error);
            }
            // Not asked for on this stream.
            Ok(Some(Message::Event { .. } | Message::Call { .. } | Message::Table { .. })) => {}
            // The stack stopped: so does the follow.
            Ok(None) | Err(client::Error::Lost(_)) => return ExitCode::SUCCESS,
            Err(e) => return fail(&stack.state, e),
        }
    }
}

fn read_files(
    cfg: &Config,
    names: &Services<String>,
    printer: &Printer,
    services: &[String],
    lines: usize,
    follow: bool,
) -> ExitCode {
    let dir = StateDir::new(&cfg.root).logs();
    let wanted: Vec<ServiceId> = if services.is_empty() {
        names.ids().collect()
    } else {
        services.iter().filter_map(|s| cfg.id_of(s)).collect()
    };
    // Where each file ends now: following prints what is appended after.
    let mut offsets: Vec<(ServiceId, PathBuf, u64)> = wanted
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
