//! `devstack init --from FILE`: other formats translated into `devstack.toml` text.
//!
//! Each importer is a pure function of the file's text (and the `.env` beside it) into a
//! [`Stack`], which [`Stack::finish`] checks against devstack's rules (names, dependencies on
//! services that were not translated, one-shot tasks) and renders. What cannot be translated
//! becomes a `#` comment next to its service and a [`Warning`]: nothing is dropped silently.
//!
//! One file per format (`procfile.rs`, `compose/`, `pcompose.rs`, the YAML ones read through
//! `yaml.rs`), what they share for commands and values (`dollars.rs`: `$` references and shell
//! quoting; `own_port.rs`: a check of the service's own port made direct), and the two steps of
//! `finish`: `settle.rs` (valid for devstack) and `render.rs` (the TOML text).

mod compose;
mod dollars;
mod own_port;
mod pcompose;
mod procfile;
mod render;
mod settle;
mod yaml;

use dollars::{command_line, env_value, shell_for_devstack, unescape_dollars};
use std::collections::BTreeSet;
use std::path::Path;
use yaml::{open_yaml, yaml_text};

/// The formats `init --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Procfile,
    Compose,
    ProcessCompose,
}

/// File names that are translated when found beside no `devstack.toml`, in the order looked for.
pub const KNOWN_FILES: [&str; 8] = [
    "Procfile",
    "Procfile.dev",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
    "process-compose.yaml",
    "process-compose.yml",
];

/// A file in `dir` that `devstack init --from` can translate.
pub fn find_importable(dir: &Path) -> Option<&'static str> {
    KNOWN_FILES.into_iter().find(|f| dir.join(f).is_file())
}

/// What the importers know besides the file's text.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// The stack's name (the folder's), unless the file names it.
    pub name: String,
    /// The `.env` beside the file, if any: its path as the new config names it, and its text.
    pub dotenv: Option<(String, String)>,
    /// The file's folder as the new config names it (relative to its folder, or absolute);
    /// empty when the file is beside the new config.
    pub base: String,
    /// The names of the variables set where `init` runs (devstack reads them when it starts).
    pub environment: BTreeSet<String>,
    /// The programs of `programs()` found on the PATH where `init` runs: a server image whose
    /// program is installed becomes a service that runs it, not a commented block.
    pub installed: BTreeSet<String>,
}

/// The programs the importers would run in place of a container image, for the caller to look
/// for on the PATH (`Context::installed`).
pub fn programs() -> Vec<&'static str> {
    compose::programs()
}

impl Context {
    /// Whether the `.env` beside the file defines `var`.
    fn dotenv_defines(&self, var: &str) -> bool {
        self.dotenv.as_ref().is_some_and(|(_, text)| {
            dotenvy::from_read_iter(text.as_bytes())
                .flatten()
                .any(|(k, _)| k == var)
        })
    }
}

/// Something that was not translated as it was: the service it is about (by its name in the
/// source), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub service: Option<String>,
    pub message: String,
}

/// A YAML file that does not parse: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The format of `path`, from its name, else from its content.
pub fn detect(path: &Path, text: &str) -> Option<Format> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.starts_with("procfile") {
        return Some(Format::Procfile);
    }
    if name.contains("process-compose") {
        return Some(Format::ProcessCompose);
    }
    if name.contains("compose") && (name.ends_with(".yml") || name.ends_with(".yaml")) {
        return Some(Format::Compose);
    }
    if let Ok(serde_norway::Value::Mapping(m)) = serde_norway::from_str(text) {
        if m.contains_key("processes") {
            return Some(Format::ProcessCompose);
        }
        if m.contains_key("services") {
            return Some(Format::Compose);
        }
    }
    procfile::looks_like(text).then_some(Format::Procfile)
}

/// Translate `text` in `format` into the text of a `devstack.toml`, and what was lost.
pub fn translate(
    format: Format,
    text: &str,
    cx: &Context,
) -> Result<(String, Vec<Warning>), SyntaxError> {
    let stack = match format {
        Format::Procfile => procfile::import(text, cx),
        Format::Compose => compose::import(text, cx)?,
        Format::ProcessCompose => pcompose::import(text, cx)?,
    };
    let mut stack = stack;
    if !cx.base.is_empty() {
        // Paths in the file are relative to its folder; in devstack.toml, to devstack.toml's.
        for svc in &mut stack.services {
            svc.cwd = Some(rebase(&cx.base, svc.cwd.as_deref().unwrap_or("")));
        }
    }
    Ok(stack.finish())
}

/// `path`, relative to the file's folder, as the new config names it.
fn rebase(base: &str, path: &str) -> String {
    let path = path.trim_start_matches("./");
    if base.is_empty() || path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() || path == "." {
        base.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

/// The stack being written.
#[derive(Debug, Default)]
struct Stack {
    /// Where it comes from, for the header: `a Procfile`, `a compose file`.
    source: &'static str,
    name: String,
    env_file: Option<String>,
    /// Comments about the `env_file`.
    env_file_notes: Vec<String>,
    env: Vec<(String, String)>,
    /// Comments and warnings about the file as a whole.
    notes: Vec<Note>,
    services: Vec<Svc>,
}

/// A comment in the output; `warn` ones are also warnings.
#[derive(Debug, Clone)]
struct Note {
    text: String,
    warn: bool,
}

/// What a dependent waits for (devstack's conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    Started,
    Healthy,
    Completed,
}

impl Cond {
    fn name(self) -> &'static str {
        match self {
            Cond::Started => "started",
            Cond::Healthy => "healthy",
            Cond::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone)]
struct Dep {
    /// The service's name in the source.
    name: String,
    cond: Cond,
    restart: bool,
}

/// A health probe: its kind (`http`, `tcp`, `cmd`, `log`) and value, and its timings.
#[derive(Debug, Clone, Default)]
struct Health {
    kind: &'static str,
    value: String,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
    start_period: Option<String>,
    /// Run inside the service's container (`exec = true`).
    exec: bool,
}

/// One service, as it will be written.
#[derive(Debug, Default)]
struct Svc {
    /// Its name in the source (dependencies name it so); sanitised when written.
    source_name: String,
    name: String,
    /// Not runnable as a process (a container image): written as a commented block.
    commented: bool,
    notes: Vec<Note>,
    build: Option<String>,
    run: Option<String>,
    /// Run from this image through a container engine.
    image: Option<String>,
    /// An image service's volumes, as written.
    volumes: Vec<String>,
    cwd: Option<String>,
    port: Option<u16>,
    proxy: Option<bool>,
    env: Vec<(String, String)>,
    deps: Vec<Dep>,
    watch: Vec<String>,
    ignore: Vec<String>,
    restart: Option<&'static str>,
    autostart: Option<bool>,
    stop_signal: Option<String>,
    grace: Option<String>,
    health: Option<Health>,
}

impl Svc {
    fn new(name: &str) -> Svc {
        Svc {
            source_name: name.to_string(),
            name: name.to_string(),
            ..Svc::default()
        }
    }

    /// A comment above the service.
    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(Note {
            text: text.into(),
            warn: false,
        });
    }

    /// A comment above the service that is also a warning: something not translated.
    fn warn(&mut self, text: impl Into<String>) {
        self.notes.push(Note {
            text: text.into(),
            warn: true,
        });
    }
}

impl Stack {
    fn new(source: &'static str, cx: &Context) -> Stack {
        Stack {
            source,
            name: cx.name.clone(),
            ..Stack::default()
        }
    }

    fn warn(&mut self, text: impl Into<String>) {
        self.notes.push(Note {
            text: text.into(),
            warn: true,
        });
    }

    /// Make the services valid for devstack, then write them.
    fn finish(mut self) -> (String, Vec<Warning>) {
        self.sanitise_names();
        self.settle_deps();
        self.settle_ports();
        self.render()
    }
}

/// A duration devstack reads (`"10s"`, `"1m30s"`), or None.
fn duration(text: &str) -> Option<String> {
    let t = text.trim();
    humantime::parse_duration(t).ok().map(|_| t.to_string())
}

/// Seconds as a devstack duration.
fn seconds(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}s", n as u64)
    } else {
        format!("{}ms", (n * 1000.0).round() as u64)
    }
}

/// A signal name devstack reads for `stop_signal` (`TERM`), from a name or number.
fn signal_name(text: &str) -> Option<String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .ok()
            .map(|s| s.as_str().trim_start_matches("SIG").to_string());
    }
    let upper = t.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s.as_str().trim_start_matches("SIG").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_name("15").as_deref(), Some("TERM"));
        assert_eq!(signal_name("SIGINT").as_deref(), Some("INT"));
        assert_eq!(signal_name("quit").as_deref(), Some("QUIT"));
        assert_eq!(signal_name("SIGNOPE"), None);
    }
}
