//! `devstack traffic replay ID [--edit]`: a kept request sent again through the proxy (the
//! stack does it: `replay` on the socket), optionally edited in `$EDITOR` first, and its answer
//! shown beside the original's: the status, the fields that differ, and whether the body does.
//! A kept Redis command or PostgreSQL query that reads is replayed as it was (no `--edit`): its
//! outcome beside the original's, then its answer (the value, or the rows).

use super::note;
use super::remote::{Running, out};
use devstack::traffic::capture::view::Inspected;
use devstack::traffic::replay::NO_EDIT;
use devstack::traffic::replay::compare::compared;
use std::process::ExitCode;

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
