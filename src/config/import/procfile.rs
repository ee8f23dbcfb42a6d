//! A Procfile (foreman, honcho, Heroku): `name: command` lines.
//!
//! As foreman does: `.env` beside it is loaded into every process (`[stack] env_file`); every
//! process gets a port, 5000 + 100 × its place in the file (5000, 5100 …), whether or not its
//! command says `$PORT` (an app may read `PORT` in its code); `release` (Heroku's release
//! phase) is a one-shot task the others wait to complete, so its place gives no port.

use super::{Cond, Context, Dep, Stack, Svc, shell_for_devstack};

/// The line foreman reads: `^([A-Za-z0-9_-]+):\s*(.+)$`.
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let (name, command) = line.split_once(':')?;
    let command = command.trim();
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (name_ok && !command.is_empty()).then_some((name, command))
}

/// Whether every line that is not blank or a comment is a `name: command` line.
pub(super) fn looks_like(text: &str) -> bool {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .peekable();
    lines.peek().is_some() && lines.all(|l| parse_line(l).is_some())
}

pub(super) fn import(text: &str, cx: &Context) -> Stack {
    let mut stack = Stack::new("a Procfile", cx);
    if let Some((path, _)) = &cx.dotenv {
        stack.env_file = Some(path.clone());
        stack.env_file_notes.push(format!(
            "{path}: loaded into every process, as foreman and honcho do"
        ));
    }
    let mut pending_comments: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            // The file's own comments stay with the service below them.
            pending_comments.push(c.trim().to_string());
            continue;
        }
        let Some((name, command)) = parse_line(line) else {
            stack.warn(format!(
                "line {}: not a `name: command` line, left out: {line}",
                i + 1
            ));
            continue;
        };
        if stack.services.iter().any(|s| s.source_name == name) {
            stack.warn(format!(
                "line {}: `{name}` is defined twice; the first one is kept, left out: {line}",
                i + 1
            ));
            continue;
        }
        let mut svc = Svc::new(name);
        for c in pending_comments.drain(..) {
            svc.note(c);
        }
        let command = shell_for_devstack(command);
        if name == "release" {
            svc.note("Heroku's release phase: a one-shot task the other processes wait for");
            svc.build = Some(command);
        } else {
            svc.run = Some(command);
        }
        stack.services.push(svc);
    }
    for c in pending_comments {
        stack.notes.push(super::Note {
            text: c,
            warn: false,
        });
    }
    ports_as_foreman(&mut stack);
    release_first(&mut stack);
    if stack.services.is_empty() {
        stack.warn("no `name: command` line: nothing to run");
    }
    stack
}

/// Ports as foreman numbers them: by place in the file, a hundred apart.
fn ports_as_foreman(stack: &mut Stack) {
    for (place, svc) in stack.services.iter_mut().enumerate() {
        if svc.run.is_some() {
            svc.port = u16::try_from(5000 + 100 * place).ok();
        }
    }
    if stack.services.iter().any(|s| s.port.is_some()) {
        stack.notes.push(super::Note {
            text: "every process gets a port as foreman gives one (5000, 5100 … in the Procfile's order): devstack listens there and gives the process a port of its own in $PORT, which it listens on if it serves anything; one that never listens (a worker) runs all the same".into(),
            warn: false,
        });
    }
}

/// `release` (Heroku's release phase) is a one-shot task the others wait to complete.
fn release_first(stack: &mut Stack) {
    if stack.services.iter().any(|s| s.source_name == "release") {
        for svc in &mut stack.services {
            if svc.source_name != "release" {
                svc.deps.push(Dep {
                    name: "release".into(),
                    cond: Cond::Completed,
                    restart: false,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_foreman_reads_them() {
        assert_eq!(
            parse_line("web: bundle exec puma -p $PORT"),
            Some(("web", "bundle exec puma -p $PORT"))
        );
        assert_eq!(parse_line("web:"), None);
        assert_eq!(parse_line("my app: x"), None);
        assert!(looks_like("# c\n\nweb: x\nworker: y\n"));
        assert!(!looks_like("services:\n  web:\n    image: x\n"));
    }
}
