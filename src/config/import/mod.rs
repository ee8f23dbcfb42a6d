//! `devstack init --from FILE`: other formats translated into `devstack.toml` text.
//!
//! Each importer is a pure function of the file's text (and the `.env` beside it) into a
//! [`Stack`], which [`Stack::finish`] checks against devstack's rules (names, dependencies on
//! services that were not translated, one-shot tasks) and renders. What cannot be translated
//! becomes a `#` comment next to its service and a [`Warning`]: nothing is dropped silently.

mod compose;
mod own_port;
mod pcompose;
mod procfile;

use crate::config::diag::printable;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

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

/// How a YAML importer starts: the file's top mapping (None, said as a warning, when the file is
/// not one: `key` names what it should hold), and the stack, whose `env_file` is the `.env` beside
/// the file, with `dotenv` saying who reads it.
fn open_yaml(
    src: &str,
    cx: &Context,
    source: &'static str,
    key: &str,
    dotenv: &str,
) -> Result<(Stack, Option<serde_norway::Mapping>), SyntaxError> {
    let mut stack = Stack::new(source, cx);
    let serde_norway::Value::Mapping(top) = parse_yaml(src)? else {
        stack.warn(format!(
            "the file is not a mapping with `{key}`: nothing to translate"
        ));
        return Ok((stack, None));
    };
    if let Some((path, _)) = &cx.dotenv {
        stack.env_file = Some(path.clone());
        stack.env_file_notes.push(format!("{path}: {dotenv}"));
    }
    Ok((stack, Some(top)))
}

/// A YAML scalar as text (numbers and booleans too).
fn yaml_text(v: &serde_norway::Value) -> Option<String> {
    use serde_norway::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parse YAML into a value with merge keys (`<<: *base`) applied; a syntax error with its place.
fn parse_yaml(text: &str) -> Result<serde_norway::Value, SyntaxError> {
    let mut value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        // The position is said by the caller, as FILE:LINE:COL.
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        SyntaxError {
            line,
            column,
            message,
        }
    })?;
    let _ = value.apply_merge();
    Ok(value)
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

    /// Names devstack accepts (letters, digits, `-`, `_`; not `external`/`unknown`), unique.
    fn sanitise_names(&mut self) {
        let valid = |n: &str| {
            !n.is_empty()
                && !matches!(n, "external" | "unknown")
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        // Valid names keep theirs; the others are changed around them.
        let mut taken: BTreeSet<String> = self
            .services
            .iter()
            .map(|s| s.source_name.clone())
            .filter(|n| valid(n))
            .collect();
        for svc in &mut self.services {
            if valid(&svc.source_name) {
                continue;
            }
            let mut name: String = svc
                .source_name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            if name.is_empty() {
                name = "service".into();
            }
            if matches!(name.as_str(), "external" | "unknown") {
                name.push_str("-svc");
            }
            let base = name.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(name.clone());
            if name != svc.source_name {
                svc.warn(format!(
                    "renamed `{}` to `{name}`: a devstack service name has letters, digits, `-` and `_`{}",
                    svc.source_name,
                    if matches!(base.as_str(), "external-svc" | "unknown-svc") {
                        " (and `external`/`unknown` name callers in the traffic views)"
                    } else {
                        ""
                    }
                ));
            }
            svc.name = name;
        }
    }

    /// Dependencies devstack accepts: on services that are written (not commented out), on a
    /// probe for `healthy`, on a one-shot task for `completed` (a service others wait to complete
    /// becomes one: its command is its `build`).
    fn settle_deps(&mut self) {
        let by_name: BTreeMap<String, usize> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.source_name.clone(), i))
            .collect();
        // Services others wait to complete become one-shot tasks.
        let mut tasks = BTreeSet::new();
        for svc in &self.services {
            for d in &svc.deps {
                if d.cond == Cond::Completed
                    && let Some(&j) = by_name.get(&d.name)
                {
                    tasks.insert(j);
                }
            }
        }
        for &j in &tasks {
            let t = &mut self.services[j];
            if t.commented || t.run.is_none() {
                continue;
            }
            if t.build.is_none() {
                t.build = t.run.take();
                t.note("a one-shot task: others wait for it to complete (exit 0)");
                if t.health.take().is_some() {
                    t.warn("its health probe is dropped: a one-shot task has none");
                }
                if t.port.take().is_some() {
                    t.proxy = None;
                    t.warn("its port is dropped: a one-shot task has none");
                }
                t.watch.clear();
                t.ignore.clear();
                t.restart = None;
            }
        }
        let facts: Vec<(String, bool, bool, bool)> = self
            .services
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.commented,
                    s.health.is_some(),
                    s.run.is_none() && s.build.is_some(),
                )
            })
            .collect();
        for svc in &mut self.services {
            let deps = std::mem::take(&mut svc.deps);
            for mut d in deps {
                let Some(&j) = by_name.get(&d.name) else {
                    svc.warn(format!(
                        "depends on `{}`, which the file does not define: dropped",
                        d.name
                    ));
                    continue;
                };
                let (target, commented, probe, task) = &facts[j];
                if j == by_name[&svc.source_name] {
                    svc.warn(format!("depends on itself (`{}`): dropped", d.name));
                    continue;
                }
                if *commented {
                    svc.warn(format!(
                        "depends on `{target}` ({}), which is commented out in this file: start it yourself, or uncomment it and add it back to depends_on",
                        d.cond.name()
                    ));
                    continue;
                }
                if d.cond == Cond::Healthy && !probe {
                    svc.warn(format!(
                        "waited for `{target}` to be healthy, but it has no health probe here: it waits for it to start"
                    ));
                    d.cond = Cond::Started;
                }
                if d.cond == Cond::Completed && !task {
                    svc.warn(format!(
                        "waited for `{target}` to complete, but it keeps running here: it waits for it to start"
                    ));
                    d.cond = Cond::Started;
                }
                d.name = target.clone();
                svc.deps.push(d);
            }
        }
    }

    /// Each port used once.
    fn settle_ports(&mut self) {
        let mut seen: BTreeMap<u16, String> = BTreeMap::new();
        for svc in &mut self.services {
            let Some(p) = svc.port else { continue };
            if let Some(first) = seen.get(&p) {
                let first = first.clone();
                svc.warn(format!(
                    "port {p} is `{first}`'s already: this service has none here"
                ));
                svc.port = None;
                svc.proxy = None;
            } else if !svc.commented {
                seen.insert(p, svc.name.clone());
            }
        }
    }

    fn render(&self) -> (String, Vec<Warning>) {
        let mut warnings = Vec::new();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Translated from {} by `devstack init --from`.\n# What could not be translated is in `#` comments beside its service.\n# `devstack check` validates this file; `devstack` starts the stack.\n",
            self.source
        );
        for n in &self.notes {
            comment(&mut out, "", &n.text);
            if n.warn {
                warnings.push(Warning {
                    service: None,
                    message: n.text.clone(),
                });
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out.push_str("[stack]\n");
        let _ = writeln!(out, "name = {}", string(&self.name));
        if let Some(f) = &self.env_file {
            for n in &self.env_file_notes {
                comment(&mut out, "", n);
            }
            let _ = writeln!(out, "env_file = {}", string(f));
        }
        if !self.env.is_empty() {
            out.push_str("\n[env]\n");
            for (k, v) in &self.env {
                let _ = writeln!(out, "{} = {}", key(k), string(v));
            }
        }
        for svc in &self.services {
            out.push('\n');
            for n in &svc.notes {
                comment(&mut out, "", &n.text);
                if n.warn {
                    warnings.push(Warning {
                        service: Some(svc.source_name.clone()),
                        message: n.text.clone(),
                    });
                }
            }
            let mut block = String::new();
            write_service(&mut block, svc);
            if svc.commented {
                for line in block.lines() {
                    let _ = writeln!(out, "# {line}");
                }
            } else {
                out.push_str(&block);
            }
        }
        (out, warnings)
    }
}

fn write_service(out: &mut String, svc: &Svc) {
    let _ = writeln!(out, "[services.{}]", key(&svc.name));
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(out, "{k} = {v}");
    };
    if let Some(b) = &svc.build {
        kv("build", string(b));
    }
    if let Some(r) = &svc.run {
        kv("run", string(r));
    }
    if let Some(c) = &svc.cwd {
        kv("cwd", string(c));
    }
    if let Some(p) = svc.port {
        kv("port", p.to_string());
    }
    if let Some(p) = svc.proxy {
        kv("proxy", p.to_string());
    }
    if !svc.deps.is_empty() {
        let items: Vec<String> = svc
            .deps
            .iter()
            .map(|d| {
                if d.restart {
                    format!(
                        "{} = {{ condition = \"{}\", restart = true }}",
                        key(&d.name),
                        d.cond.name()
                    )
                } else {
                    format!("{} = \"{}\"", key(&d.name), d.cond.name())
                }
            })
            .collect();
        kv("depends_on", format!("{{ {} }}", items.join(", ")));
    }
    if !svc.watch.is_empty() {
        kv("watch", list(&svc.watch));
    }
    if !svc.ignore.is_empty() {
        kv("ignore", list(&svc.ignore));
    }
    if let Some(r) = svc.restart {
        kv("restart", string(r));
    }
    if let Some(a) = svc.autostart {
        kv("autostart", a.to_string());
    }
    if let Some(s) = &svc.stop_signal {
        kv("stop_signal", string(s));
    }
    if let Some(g) = &svc.grace {
        kv("grace", string(g));
    }
    if !svc.env.is_empty() {
        let _ = writeln!(out, "[services.{}.env]", key(&svc.name));
        for (k, v) in &svc.env {
            let _ = writeln!(out, "{} = {}", key(k), string(v));
        }
    }
    if let Some(h) = &svc.health {
        let _ = writeln!(out, "[services.{}.health]", key(&svc.name));
        if h.kind == "tcp" {
            let _ = writeln!(out, "tcp = true");
        } else {
            let _ = writeln!(out, "{} = {}", h.kind, string(&h.value));
        }
        if let Some(i) = &h.interval {
            let _ = writeln!(out, "interval = {}", string(i));
        }
        if let Some(t) = &h.timeout {
            let _ = writeln!(out, "timeout = {}", string(t));
        }
        if let Some(r) = h.retries {
            let _ = writeln!(out, "retries = {r}");
        }
        if let Some(s) = &h.start_period {
            let _ = writeln!(out, "start_period = {}", string(s));
        }
    }
}

/// `# text`, one line per line of text, nothing in it that could leave the comment.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}# {}", printable(line));
    }
}

/// A TOML string.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        string(k)
    }
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| string(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A command for `sh -c` as devstack reads it: `${` is written `$${`, so that the shell, not
/// devstack, expands `${VAR}` (as the source's runner did).
/// (`${PORT}` is left to devstack, which gives the same port.)
fn shell_for_devstack(cmd: &str) -> String {
    cmd.replace("${", "$${").replace("$${PORT}", "${PORT}")
}

/// A piece of a string with `$` references, as compose and process-compose read them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    /// `${NAME}`, `${NAME:-default}`, `$NAME`: the name, the default if any, and the text.
    Var {
        name: String,
        default: Option<String>,
        raw: String,
    },
}

/// Split `text` into literal text and `$` references (`$$` is a literal `$`).
fn segments(text: &str) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("$$") {
            lit.push('$');
            rest = after;
        } else if let Some(body) = at.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let inner = &body[..end];
            let cut = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(cut);
            let default = op
                .strip_prefix(":-")
                .or_else(|| op.strip_prefix('-'))
                .map(str::to_string);
            if !lit.is_empty() {
                out.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            out.push(Seg::Var {
                name: name.to_string(),
                default,
                raw: format!("${{{inner}}}"),
            });
            rest = &body[end + 1..];
        } else {
            let name_len = at[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(at.len() - 1);
            let name = &at[1..1 + name_len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                lit.push('$');
                rest = &at[1..];
            } else {
                if !lit.is_empty() {
                    out.push(Seg::Lit(std::mem::take(&mut lit)));
                }
                out.push(Seg::Var {
                    name: name.to_string(),
                    default: None,
                    raw: format!("${name}"),
                });
                rest = &at[1 + name_len..];
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Seg::Lit(lit));
    }
    out
}

/// An environment value for devstack, which expands `${NAME}` itself and stops on an undefined
/// one: a variable the `.env` beside the file defines (devstack's `env_file`) stays `${NAME}`;
/// another takes its default, or nothing (as compose substitutes), with a warning.
fn env_value(cx: &Context, svc: &mut Svc, key: &str, text: &str) -> String {
    let mut out = String::new();
    for seg in segments(text) {
        match seg {
            Seg::Lit(l) => out.push_str(&l.replace("${", "$${")),
            Seg::Var { name, default, raw } => {
                if cx.dotenv_defines(&name) || name == "PORT" {
                    out.push_str(&format!("${{{name}}}"));
                } else if default.is_none() && cx.environment.contains(&name) {
                    svc.note(format!(
                        "{key}: `{raw}` is read from devstack's environment when it starts (it is set here now)"
                    ));
                    out.push_str(&format!("${{{name}}}"));
                } else if let Some(d) = default {
                    svc.note(format!(
                        "{key}: `{raw}` is written as its default; set {key} in devstack's env to change it"
                    ));
                    out.push_str(&d.replace("${", "$${"));
                } else {
                    svc.warn(format!(
                        "{key}: `{raw}` is defined in no .env beside the file, so it is written empty (compose substitutes an empty string); set it here, or in .env as `${{{name}}}`"
                    ));
                }
            }
        }
    }
    out
}

/// One shell word that keeps `$VAR` references live: single quotes when there are none,
/// double quotes around them otherwise.
fn shell_word(arg: &str) -> String {
    let segs = segments(arg);
    if !segs.iter().any(|s| matches!(s, Seg::Var { .. })) {
        let plain: String = segs
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => l.as_str(),
                Seg::Var { raw, .. } => raw.as_str(),
            })
            .collect();
        return shlex::try_quote(&plain)
            .map(|c| c.into_owned())
            .unwrap_or(plain);
    }
    let mut out = String::from("\"");
    for s in segs {
        match s {
            Seg::Lit(l) => {
                for c in l.chars() {
                    if matches!(c, '"' | '\\' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Seg::Var { raw, .. } => out.push_str(&raw),
        }
    }
    out.push('"');
    out
}

/// A command line (exec form: program and arguments) as one `sh -c` string for devstack;
/// `sh -c SCRIPT` is the script itself.
fn command_line(argv: &[String]) -> String {
    if argv.len() == 3 && matches!(argv[0].as_str(), "sh" | "/bin/sh") && argv[1] == "-c" {
        return shell_for_devstack(&unescape_dollars(&argv[2]));
    }
    let words: Vec<String> = argv.iter().map(|a| shell_word(a)).collect();
    shell_for_devstack(&words.join(" "))
}

/// A shell script from compose, where `$$` is a literal `$`.
fn unescape_dollars(script: &str) -> String {
    script.replace("$$", "$")
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
    fn names_are_sanitised_and_unique() {
        let mut s = Stack::new("a test", &Context::default());
        for n in ["web.app", "web-app", "external", ""] {
            let mut svc = Svc::new(n);
            svc.run = Some("true".into());
            s.services.push(svc);
        }
        s.sanitise_names();
        let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web-app-2", "web-app", "external-svc", "service"]);
    }

    #[test]
    fn comments_cannot_break_out() {
        let mut out = String::new();
        comment(&mut out, "", "a\nb\u{1b}]0;x");
        assert_eq!(out, "# a\n# b\\u{1b}]0;x\n");
    }

    #[test]
    fn dollar_references_as_compose_reads_them() {
        assert_eq!(
            segments("a$$b${X:-d}$Y $1"),
            vec![
                Seg::Lit("a$b".into()),
                Seg::Var {
                    name: "X".into(),
                    default: Some("d".into()),
                    raw: "${X:-d}".into()
                },
                Seg::Var {
                    name: "Y".into(),
                    default: None,
                    raw: "$Y".into()
                },
                Seg::Lit(" $1".into()),
            ]
        );
    }

    #[test]
    fn commands_are_quoted_for_sh_and_devstack() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&argv(&["echo", "a b", "it's"])),
            r#"echo 'a b' "it's""#
        );
        assert_eq!(
            command_line(&argv(&["serve", "--port=${PORT}", "--x=$X\"q"])),
            r#"serve "--port=${PORT}" "--x=$X\"q""#
        );
        assert_eq!(
            command_line(&argv(&["sh", "-c", "echo $${HOME} && run"])),
            "echo $${HOME} && run"
        );
        assert_eq!(command_line(&argv(&["echo", "${A}"])), r#"echo "$${A}""#);
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_name("15").as_deref(), Some("TERM"));
        assert_eq!(signal_name("SIGINT").as_deref(), Some("INT"));
        assert_eq!(signal_name("quit").as_deref(), Some("QUIT"));
        assert_eq!(signal_name("SIGNOPE"), None);
    }
}
