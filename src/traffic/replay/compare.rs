//! A replay's answer beside the original's, as `traffic replay` prints it and the dashboard's
//! inspector shows it: the status, the fields that differ and whether the body does (HTTP); or
//! the outcome, the errors when they differ, then the answer (a Redis reply, Postgres rows).

use super::{Answered, Replayed};
use crate::config::diag::printable;
use crate::traffic::capture::view::{Inspected, Response, field};
use crate::traffic::stats::Decoded;

/// Fields that differ on every answer, or say how the connection goes: not worth a line.
const EVERY_TIME: [&str; 4] = ["date", "content-length", "connection", "keep-alive"];

/// The replay's answer beside the original's.
pub fn compared(original: &Inspected, replayed: &Replayed) -> Vec<String> {
    let took = crate::format::latency(replayed.took_us);
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
    // Compared as they read (two gzips of one text may differ by their header's time).
    let (a, b) = (was.body.content(), now.body.content());
    lines.push(match (a == b, was.body.cut) {
        (true, _) => format!("body: the same ({})", crate::format::bytes(b.len() as u64)),
        (false, true) if b.starts_with(&a) => {
            "body: the same as far as the original was kept".into()
        }
        (false, true) => "body: differs from what was kept of the original".into(),
        (false, false) => format!(
            "body: differs ({} then, {} now)",
            crate::format::bytes(a.len() as u64),
            crate::format::bytes(b.len() as u64)
        ),
    });
    lines
}
