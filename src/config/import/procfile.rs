//! A Procfile (foreman, honcho, Heroku): `name: command` lines.
//!
//! As foreman does: `.env` beside it is loaded into every process (`[stack] env_file`); `web`
//! gets port 5000 and each other process that uses `$PORT` the next hundred (5100, 5200 …);
//! `release` (Heroku's release phase) is a one-shot task the others wait to complete.

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

/// Whether a command reads the port it is given.
fn uses_port(command: &str) -> bool {
    command.contains("$PORT") || command.contains("${PORT}")
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
    // Ports: web first, then the others that read $PORT, in file order.
    let mut next = 5000u16;
    let order: Vec<usize> = (0..stack.services.len())
        .filter(|&i| stack.services[i].source_name == "web")
        .chain((0..stack.services.len()).filter(|&i| {
            let s = &stack.services[i];
            s.source_name != "web" && s.run.as_deref().is_some_and(uses_port)
        }))
        .collect();
    for i in order {
        let svc = &mut stack.services[i];
        svc.port = Some(next);
        if svc.source_name == "web" && !svc.run.as_deref().is_some_and(uses_port) {
            svc.note(
                "web gets port 5000 as with foreman; devstack listens there and gives the process a port of its own in $PORT, which it must listen on",
            );
        }
        next = next.saturating_add(100);
    }
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
    if stack.services.is_empty() {
        stack.warn("no `name: command` line: nothing to run");
    }
    stack
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
