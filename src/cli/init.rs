//! `devstack init`: a commented starter `devstack.toml`, and `.devstack/` in `.gitignore`.

use super::note;
use std::path::Path;
use std::process::ExitCode;

/// The starter config; `{name}` becomes the folder's name.
const STARTER: &str = include_str!("starter.toml");
/// What `.gitignore` gets: the folder devstack keeps its logs, socket and records in.
const IGNORED: &str = ".devstack/";

/// Write the starter config at `file` (its folder's `.gitignore` gets `.devstack/`).
pub fn init(file: &Path, force: bool) -> ExitCode {
    let dir = file.parent().unwrap_or(Path::new("."));
    if file.exists() && !force {
        note(&format!(
            "error: {} exists already; `devstack init --force` replaces it",
            file.display()
        ));
        return ExitCode::from(2);
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], ""))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "stack".into());
    if let Err(e) = std::fs::write(file, STARTER.replace("{name}", &name)) {
        note(&format!("error: can't write {}: {e}", file.display()));
        return ExitCode::FAILURE;
    }
    note(&format!("wrote {}", file.display()));
    match ignore_state_dir(dir) {
        Ok(true) => note(&format!("added {IGNORED} to .gitignore")),
        Ok(false) => {}
        Err(e) => note(&format!("could not add {IGNORED} to .gitignore: {e}")),
    }
    note("next: edit it, `devstack check` to validate, `devstack` to start");
    ExitCode::SUCCESS
}

/// Add `.devstack/` to the folder's `.gitignore` unless it is there; whether it was added.
fn ignore_state_dir(dir: &Path) -> std::io::Result<bool> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let listed = text
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, ".devstack" | ".devstack/" | "/.devstack" | "/.devstack/"));
    if listed {
        return Ok(false);
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(IGNORED);
    new.push('\n');
    std::fs::write(&path, new)?;
    Ok(true)
}
