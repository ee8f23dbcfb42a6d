//! Edits of `devstack.toml` while its stack runs. The stack keeps running on the config it
//! started with; each edit is checked as `devstack check` would, and what it means is said in the
//! services' logs: an invalid file (where and why), or which services now differ from what runs
//! (restarting the stack applies them).

use crate::config::{self, ServiceId, Services};
use crate::ignored::Ignore;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

/// How long an edit must be quiet before the file is read (an editor's save is several events).
const QUIET: Duration = Duration::from_millis(200);

/// Watches while it lives.
pub struct ConfigWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `file`, the config the stack of `names` runs on, read as `running`. `say(services, text)`
/// is called on the watcher's thread for each edit that changes something (`services` empty: all).
pub fn start(
    file: &Path,
    names: Services<String>,
    say: impl Fn(Vec<ServiceId>, String) + Send + 'static,
) -> notify::Result<ConfigWatch> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let running = std::fs::read_to_string(&file).unwrap_or_default();
    let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let (tx, rx) = channel();
    // The folder, not the file: editors save by writing a new file and renaming it over.
    let mut watcher = notify::recommended_watcher(move |e| tx.send(e).or_say(super::LEFT))?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    let touches = {
        let file = file.clone();
        move |e: &notify::Result<notify::Event>| {
            e.as_ref()
                .is_ok_and(|e| e.paths.iter().any(|p| p.file_name() == file.file_name()))
        }
    };
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            let mut seen = running.clone();
            while let Ok(event) = rx.recv() {
                if !touches(&event) {
                    continue;
                }
                loop {
                    match rx.recv_timeout(QUIET) {
                        Ok(_) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let now = std::fs::read_to_string(&file).unwrap_or_default();
                if now == seen {
                    continue;
                }
                seen = now;
                let (services, text) = judge(&file, &running, &seen, &names);
                say(services, text);
            }
        })
        .map_err(notify::Error::io)?;
    Ok(ConfigWatch { _watcher: watcher })
}

/// What the stack keeps doing, whatever the edit.
const KEEP: &str = "the stack keeps running on the config it started with";

/// An edit that makes the file invalid: its first error, where, and how many more.
fn invalid(shown: &str, errors: &config::ConfigErrors) -> String {
    let first = errors.0.first();
    let at = first
        .and_then(|d| d.location.as_ref())
        .map_or(String::new(), |l| format!(":{}:{}", l.line, l.col));
    let why = first.map_or("invalid", |d| d.message.as_str());
    let more = match errors.0.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more; `devstack check` shows all)", n - 1),
    };
    format!("{shown}{at}: {why}{more}; {KEEP}")
}

/// What an edit means for the stack running `running`: the services to tell (empty: all) and
/// what to tell them.
pub fn judge(
    file: &Path,
    running: &str,
    now: &str,
    names: &Services<String>,
) -> (Vec<ServiceId>, String) {
    let shown = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    if let Err(errors) = config::parse(file, now, &|name| std::env::var(name).ok()) {
        return (Vec::new(), invalid(&shown, &errors));
    }
    let (Ok(old), Ok(new)) = (
        toml::from_str::<toml::Table>(running),
        toml::from_str::<toml::Table>(now),
    ) else {
        return (Vec::new(), format!("{shown} changed; {KEEP}"));
    };
    let section = |t: &toml::Table, key: &str| t.get(key).cloned();
    let service =
        |t: &toml::Table, name: &str| t.get("services").and_then(|s| s.get(name)).cloned();
    let new_names: BTreeSet<String> = new
        .get("services")
        .and_then(|s| s.as_table())
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    let added: Vec<&String> = new_names
        .iter()
        .filter(|n| !names.values().any(|m| m == *n))
        .collect();
    let removed: Vec<&String> = names.values().filter(|n| !new_names.contains(*n)).collect();
    let stack_wide = section(&old, "stack") != section(&new, "stack")
        || section(&old, "env") != section(&new, "env");
    let changed: Vec<ServiceId> = names
        .iter()
        .filter(|(_, n)| !removed.contains(n))
        .filter(|(_, n)| service(&old, n) != service(&new, n))
        .map(|(i, _)| i)
        .collect();
    let apply = "restart the stack to apply it";
    let list = |v: &[&String]| {
        v.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if stack_wide || !added.is_empty() || !removed.is_empty() {
        let mut what = Vec::new();
        if stack_wide {
            what.push("[stack] or [env] changed".to_string());
        }
        if !added.is_empty() {
            what.push(format!("adds {}", list(&added)));
        }
        if !removed.is_empty() {
            what.push(format!("removes {}", list(&removed)));
        }
        let changed_names: Vec<&String> = changed.iter().map(|&i| &names[i]).collect();
        if !changed_names.is_empty() {
            what.push(format!("changes {}", list(&changed_names)));
        }
        return (
            Vec::new(),
            format!("{shown}: {}; {KEEP}: {apply}", what.join(", ")),
        );
    }
    if changed.is_empty() {
        return (
            Vec::new(),
            format!("{shown} is valid and matches what runs"),
        );
    }
    (
        changed,
        format!("{shown}: this service's definition changed; {KEEP}: {apply}"),
    )
}

#[cfg(test)]
mod tests {
    use super::judge;
    use crate::config::{ServiceId, Services};
    use std::path::Path;

    const RUNNING: &str = "[services.api]\nrun = \"serve\"\n\n[services.web]\nrun = \"web\"\n";

    fn names() -> Services<String> {
        vec!["api".into(), "web".into()].into()
    }

    fn judged(now: &str) -> (Vec<ServiceId>, String) {
        judge(Path::new("/s/devstack.toml"), RUNNING, now, &names())
    }

    #[test]
    fn an_invalid_edit_says_where_and_why_to_every_service() {
        let (to, text) = judged("[services.api]\nrn = \"serve\"\n");
        assert!(to.is_empty());
        assert!(
            text.starts_with("devstack.toml:2:1: unknown key `rn`"),
            "{text}"
        );
        assert!(text.contains("keeps running on the config it started with"));
    }

    #[test]
    fn a_changed_service_is_told_alone() {
        let (to, text) = judged(&RUNNING.replace("\"web\"", "\"web --fast\""));
        assert_eq!(to, vec![ServiceId(1)]);
        assert!(text.contains("restart the stack to apply it"), "{text}");
    }

    #[test]
    fn added_and_removed_services_are_named_to_all() {
        let (to, text) = judged("[services.api]\nrun = \"serve\"\n[services.db]\nrun = \"db\"\n");
        assert!(to.is_empty());
        assert!(
            text.contains("adds `db`") && text.contains("removes `web`"),
            "{text}"
        );
    }

    #[test]
    fn a_comment_changes_nothing() {
        let (to, text) = judged(&format!("# a comment\n{RUNNING}"));
        assert!(to.is_empty());
        assert!(text.ends_with("matches what runs"), "{text}");
    }
}
