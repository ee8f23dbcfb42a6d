//! `devstack traffic replay ID [--edit]`: a kept request sent again through the proxy (the
//! stack does it: `replay` on the socket), optionally edited in `$EDITOR` first, and its answer
//! shown beside the original's: the status, the fields that differ, and whether the body does.
//! A kept Redis command or PostgreSQL query that reads is replayed as it was (no `--edit`): its
//! outcome beside the original's, then its answer (the value, or the rows).

use super::note;
use super::remote::{Running, out};
use devstack::config::diag::printable;
use devstack::traffic::capture::view::{Inspected, Response, field};
use devstack::traffic::replay::{Answered, NO_EDIT, Replayed};
use devstack::traffic::stats::Decoded;
use std::process::ExitCode;

/// Fields that differ on every answer, or say how the connection goes: not worth a line.
const EVERY_TIME: [&str; 4] = ["date", "content-length", "connection", "keep-alive"];

pub fn replay(mut stack: Running, id: u64, edit: bool, json: bool) -> ExitCode {
    let original = match stack.ask(|c| c.exchange(id)) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let edited = match edit {
        true => match edited(&original) {
            Ok(text) => Some(text),
            Err(why) => {
                note(&format!("devstack: {why}"));
                return ExitCode::FAILURE;
            }
        },
        false => None,
    };
    let replayed = match stack.ask(|c| c.replay(id, edited)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if json {
        out(&serde_json::to_string_pretty(&replayed).expect("JSON"));
    } else {
        for line in compared(&original, &replayed) {
            out(&line);
        }
    }
    match replayed.error {
        Some(_) => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    }
}

/// The request as text, edited in `$VISUAL`/`$EDITOR` (vi when neither is set).
fn edited(original: &Inspected) -> Result<String, String> {
    if original.decoded.is_some() {
        return Err(NO_EDIT.into());
    }
    let r = &original.request;
    let Some(body) = r
        .body
        .text
        .as_deref()
        .or(r.body.base64.is_none().then_some(""))
    else {
        return Err("its body is binary: it can't be edited as text (replay it as it is)".into());
    };
    let mut text = format!("{} {} {}\n", r.method, r.path, r.version);
    for (name, value) in &r.headers {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push('\n');
    text.push_str(body);
    let file = std::env::temp_dir().join(format!(
        "devstack-replay-{}-{id}.http",
        std::process::id(),
        id = original.id
    ));
    std::fs::write(&file, &text).map_err(|e| format!("can't write {}: {e}", file.display()))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&file)
        .status();
    let read = std::fs::read_to_string(&file);
    std::fs::remove_file(&file).ok();
    match status {
        Ok(s) if s.success() => read.map_err(|e| format!("can't read the edited request: {e}")),
        Ok(s) => Err(format!("{editor} exited with {s}: nothing was sent")),
        Err(e) => Err(format!("can't run {editor}: {e}")),
    }
}

/// The replay's answer beside the original's.
pub(super) fn compared(original: &Inspected, replayed: &Replayed) -> Vec<String> {
    let took = devstack::format::latency(replayed.took_us);
    let name = replayed
        .id
        .map_or_else(|| "replay".to_string(), |id| format!("#{id}"));
    if let (Some((_, was)), Some(now)) = (&original.decoded, &replayed.decoded) {
        return decoded(original, was, now, &name, &took);
    }
    let Some(now) = &replayed.response else {
        let why = replayed.error.as_deref().unwrap_or("no answer");
        return vec![format!(
            "{name} replay → {}: {}",
            original.callee,
            printable(why)
        )];
    };
    let mut lines = vec![format!(
        "{name} replay → {}  {} {}  {took}  (#{}: {})",
        original.callee,
        now.status,
        now.reason,
        original.id,
        original
            .response
            .as_ref()
            .map_or("no answer".into(), |r| format!("{} {}", r.status, r.reason))
    )];
    if let Some(was) = &original.response {
        lines.extend(differences(was, now));
    }
    lines
}

/// A decoded replay: its outcome beside the original's, the errors when they differ, then the
/// answer.
fn decoded(
    original: &Inspected,
    was: &Decoded,
    now: &Answered,
    name: &str,
    took: &str,
) -> Vec<String> {
    let outcome = match (&now.failure, &now.outcome) {
        (Some(_), _) => "error",
        (None, Some(outcome)) => outcome.as_str(),
        (None, None) => "answered",
    };
    let mut lines = vec![
        printable(&format!(
            "{name} replay → {}  {}  {outcome}  {took}  (#{}: {})",
            original.callee, was.command, original.id, was.outcome
        ))
        .into_owned(),
    ];
    if was.failure != now.failure {
        if let Some(e) = &was.failure {
            lines.push(printable(&format!("- error {e}")).into_owned());
        }
        if let Some(e) = &now.failure {
            lines.push(printable(&format!("+ error {e}")).into_owned());
        }
    }
    let answer = now.lines.iter().map(|l| format!("  {}", printable(l)));
    lines.extend(answer);
    lines
}

fn differences(was: &Response, now: &Response) -> Vec<String> {
    let mut lines = Vec::new();
    if was.status != now.status {
        lines.push(format!("- status {} {}", was.status, was.reason));
        lines.push(format!("+ status {} {}", now.status, now.reason));
    }
    let mut names: Vec<String> = was
        .headers
        .iter()
        .chain(&now.headers)
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !EVERY_TIME.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (a, b) = (field(&was.headers, &name), field(&now.headers, &name));
        if a != b {
            if let Some(a) = a {
                lines.push(printable(&format!("- {name}: {a}")).into_owned());
            }
            if let Some(b) = b {
                lines.push(printable(&format!("+ {name}: {b}")).into_owned());
            }
        }
    }
    let (a, b) = (was.body.bytes(), now.body.bytes());
    lines.push(match (a == b, was.body.cut) {
        (true, _) => format!(
            "body: the same ({})",
            devstack::format::bytes(b.len() as u64)
        ),
        (false, true) if b.starts_with(&a) => {
            "body: the same as far as the original was kept".into()
        }
        (false, true) => "body: differs from what was kept of the original".into(),
        (false, false) => format!(
            "body: differs ({} then, {} now)",
            devstack::format::bytes(a.len() as u64),
            devstack::format::bytes(b.len() as u64)
        ),
    });
    lines
}
