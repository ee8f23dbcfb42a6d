//! `develop.watch`: compose's rules for a change in a folder as devstack's `watch` and `ignore`
//! globs, relative to the service's folder.

use super::super::Svc;
use super::text;
use serde_norway::Value;

/// A `develop.watch` rule: `rebuild` and `sync+restart` restart the process on a change (with
/// its `build` first); `sync` needs nothing here (the process reads the files in place).
pub(super) fn watch_rule(svc: &mut Svc, rule: &Value) {
    let Some(path) = rule.get("path").and_then(text) else {
        return;
    };
    let action = rule.get("action").and_then(text).unwrap_or_default();
    let mut p = path
        .trim_start_matches("./")
        .trim_end_matches('/')
        .to_string();
    if let Some(cwd) = &svc.cwd {
        if p == *cwd {
            p = String::new();
        } else if let Some(rest) = p.strip_prefix(&format!("{cwd}/")) {
            p = rest.to_string();
        } else {
            svc.warn(format!(
                "develop.watch {path} is outside its folder ({cwd}): not watched"
            ));
            return;
        }
    }
    if p == "." {
        p.clear();
    }
    match action.as_str() {
        "sync" => {
            svc.note(format!(
                "develop.watch {path} (sync): the process reads these files in place, nothing to copy or restart"
            ));
            return;
        }
        "rebuild" | "sync+restart" => {}
        other => {
            svc.warn(format!(
                "develop.watch {path}: action {other} has no counterpart; a change restarts the process"
            ));
        }
    }
    let is_file = p.rsplit('/').next().is_some_and(|last| last.contains('.'));
    let glob = if p.is_empty() {
        "**".to_string()
    } else if is_file {
        p.clone()
    } else {
        format!("{p}/**")
    };
    if !svc.watch.contains(&glob) {
        svc.watch.push(glob);
    }
    svc.note(format!(
        "develop.watch {path} ({action}): watched; a change {}restarts it",
        if action == "rebuild" {
            "runs its build (if any) and "
        } else {
            ""
        }
    ));
    if let Some(ignores) = rule.get("ignore").and_then(Value::as_sequence) {
        for i in ignores.iter().filter_map(text) {
            let i = i.trim_start_matches("./");
            let mut g = if p.is_empty() || is_file {
                i.to_string()
            } else {
                format!("{p}/{i}")
            };
            if g.ends_with('/') {
                g.push_str("**");
            }
            if !svc.ignore.contains(&g) {
                svc.ignore.push(g);
            }
        }
    }
}
