//! `devstack init`: a commented starter `devstack.toml` (or one translated from a Procfile,
//! compose file or process-compose file with `--from`), and `.devstack/` in `.gitignore`.

use super::{note, to_stderr};
use devstack::config::diag::printable;
use devstack::config::import;
use std::path::Path;
use std::process::ExitCode;

/// The starter config; `{name}` becomes the folder's name.
const STARTER: &str = include_str!("starter.toml");
/// What `.gitignore` gets: the folder devstack keeps its logs, socket and records in.
const IGNORED: &str = ".devstack/";

/// Write the starter config at `file`, or `from` translated (its folder's `.gitignore` gets
/// `.devstack/`).
pub fn init(file: &Path, force: bool, from: Option<&Path>) -> ExitCode {
    let dir = file.parent().unwrap_or(Path::new("."));
    // Checked before anything is written: a link would have init write wherever it points.
    for path in [file.to_path_buf(), dir.join(".gitignore")] {
        if let Some(target) = link_target(&path) {
            note(&format!(
                "error: {} is a symbolic link (to {}); devstack init does not write through links, even with --force: remove the link, or write the file yourself",
                printable(&path.display().to_string()),
                printable(&target.display().to_string()),
            ));
            return ExitCode::from(2);
        }
    }
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
    let text = match from {
        None => STARTER.replace("{name}", &name),
        Some(from) => match translate(from, dir, name) {
            Ok(text) => text,
            Err(code) => return code,
        },
    };
    if let Err(e) = write_no_follow(file, &text) {
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

/// Is `program` an executable file in a folder of the PATH?
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| devstack::config::container::on_path(program, &path))
}

/// The config translated from `from`; its warnings on stderr.
fn translate(from: &Path, dir: &Path, name: String) -> Result<String, ExitCode> {
    let shown = printable(&from.display().to_string()).into_owned();
    let text = std::fs::read_to_string(from).map_err(|e| {
        note(&format!("error: can't read {shown}: {e}"));
        ExitCode::from(2)
    })?;
    let Some(format) = import::detect(from, &text) else {
        note(&format!(
            "error: {shown} is not a Procfile, a compose file or a process-compose file (name it Procfile, compose.yaml or process-compose.yaml)"
        ));
        return Err(ExitCode::from(2));
    };
    // The `.env` beside the file, as the new config names it.
    let from_dir = from.parent().unwrap_or(Path::new("."));
    let from_dir = std::path::absolute(from_dir).unwrap_or_else(|_| from_dir.to_path_buf());
    let dotenv_path = from_dir.join(".env");
    let dotenv = std::fs::read_to_string(&dotenv_path).ok().map(|text| {
        let named = match dotenv_path.strip_prefix(dir) {
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => dotenv_path.to_string_lossy().into_owned(),
        };
        (named, text)
    });
    let base = match from_dir.strip_prefix(dir) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => from_dir.to_string_lossy().into_owned(),
    };
    let environment = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    let installed = import::programs()
        .into_iter()
        .filter(|p| on_path(p))
        .map(String::from)
        .collect();
    let cx = import::Context {
        name,
        dotenv,
        base,
        environment,
        installed,
    };
    let (toml, warnings) = import::translate(format, &text, &cx).map_err(|e| {
        to_stderr(&format!(
            "{shown}:{}:{}: {}",
            e.line,
            e.column,
            printable(&e.message)
        ));
        ExitCode::from(2)
    })?;
    let file_name = from
        .file_name()
        .map(|n| printable(&n.to_string_lossy()).into_owned())
        .unwrap_or_else(|| shown.clone());
    for w in &warnings {
        let about = match &w.service {
            Some(s) => format!("service {}: ", printable(s)),
            None => String::new(),
        };
        to_stderr(&format!(
            "warning: {file_name}: {about}{}",
            printable(&w.message)
        ));
    }
    Ok(toml)
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
    write_no_follow(&path, &new)?;
    Ok(true)
}

/// Where `path` points, when it is a symbolic link (dangling or not).
fn link_target(path: &Path) -> Option<std::path::PathBuf> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_symlink()
        .then(|| std::fs::read_link(path).unwrap_or_default())
}

/// Replace the file's text, failing (ELOOP) when it became a link after it was checked.
fn write_no_follow(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(text.as_bytes())
}
