//! A compose file (`docker-compose.yml`, `compose.yaml`): services with a command become
//! processes on this machine; container images devstack can't run become commented blocks with
//! the usual local command.
//!
//! `service` translates a service's keys one by one, each by a function of its own: here the
//! command and its folder, `depends_on` and the lifecycle keys; well-known images in
//! `images.rs`, `environment` and `env_file` in `env.rs`, `ports` in `ports.rs`, `healthcheck`
//! in `health.rs`, `develop.watch` in `watch.rs`.

mod container;
mod env;
mod health;
mod images;
mod ports;
mod watch;

use super::{
    Cond, Context, Dep, Stack, Svc, SyntaxError, command_line, duration, open_yaml, signal_name,
    yaml_text as text,
};
use serde_norway::{Mapping, Value};
use std::collections::HashSet;

pub(super) use images::programs;

/// A command in compose's string (split as a shell would, without running one) or list form.
fn argv(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => shlex::split(s).or_else(|| Some(vec![s.clone()])),
        Value::Sequence(items) => items.iter().map(text).collect(),
        _ => None,
    }
}

/// The keys of a service this importer reads; the others are listed as not translated.
const READ: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "depends_on",
    "healthcheck",
    "ports",
    "expose",
    "develop",
    "restart",
    "stop_signal",
    "stop_grace_period",
    "profiles",
    "working_dir",
];

pub(super) fn import(src: &str, cx: &Context) -> Result<Stack, SyntaxError> {
    let (mut stack, top) = open_yaml(
        src,
        cx,
        "a compose file",
        "services",
        "compose read it for `${VAR}` in the file; devstack also loads it into every service",
    )?;
    let Some(top) = &top else {
        return Ok(stack);
    };
    for (k, v) in top {
        let Some(k) = k.as_str() else { continue };
        match k {
            "services" => {}
            "name" => {
                if let Some(n) = v.as_str() {
                    // A label: nothing in it may drive the terminal.
                    stack.name = n.chars().filter(|c| !c.is_control()).collect();
                }
            }
            "version" => stack.notes.push(super::Note {
                text: "version: compose ignores it too".into(),
                warn: false,
            }),
            k if k.starts_with("x-") => stack.notes.push(super::Note {
                text: format!("{k}: an extension field (its anchors are applied where used)"),
                warn: false,
            }),
            "volumes" if container::engine(cx).is_some() => stack.notes.push(super::Note {
                text: "volumes: each named volume is made when first used, named `<stack>_<name>`, and kept until `devstack down --volumes`".into(),
                warn: false,
            }),
            other => stack.warn(format!(
                "top-level `{other}` is not translated: devstack runs processes on this machine, not containers"
            )),
        }
    }
    let empty = Mapping::new();
    let services = top
        .get("services")
        .and_then(Value::as_mapping)
        .unwrap_or(&empty);
    let names: HashSet<&str> = services.keys().filter_map(Value::as_str).collect();
    for (name, def) in services {
        let Some(name) = name.as_str() else { continue };
        let empty = Mapping::new();
        let def = def.as_mapping().unwrap_or(&empty);
        let svc = service(name, def, cx, &names, &mut stack);
        stack.services.push(svc);
    }
    if stack.services.is_empty() {
        stack.warn("no services: nothing to run");
    }
    Ok(stack)
}

/// One service: each key translated in turn (the order its notes are written in).
fn service(
    name: &str,
    def: &Mapping,
    cx: &Context,
    names: &HashSet<&str>,
    stack: &mut Stack,
) -> Svc {
    let mut svc = Svc::new(name);
    let get = |k: &str| def.get(k);
    let image = get("image").and_then(text);
    if let Some(b) = get("build") {
        build(&mut svc, b);
    }
    if let Some(w) = get("working_dir").and_then(text) {
        working_dir(&mut svc, &w);
    }
    let words = command_words(&mut svc, def);
    let local = image
        .as_deref()
        .and_then(images::known)
        .filter(|_| get("build").is_none());
    let ports = ports::Ports::new(get("ports"));
    // An image without a build runs in a container when an engine is here; else a well-known
    // server's program installed here (`redis-server` on the PATH) runs as a native process.
    let engine = container::engine(cx).filter(|_| get("build").is_none());
    let contained = image.as_deref().zip(engine);
    let native = contained.is_none() && local.is_some_and(|k| images::installed(k, cx));
    match (contained, local) {
        (Some((image, engine)), _) => {
            container::in_container(&mut svc, image, engine, &words, ports.container, local);
        }
        (None, Some(k)) => {
            let image = image.as_deref().unwrap_or_default();
            images::run_locally(&mut svc, k, image, ports.container, native, &words, cx);
        }
        (None, None) => command(&mut svc, image.as_deref(), get("build").is_some(), &words),
    }
    if let Some(v) = get("volumes").filter(|_| contained.is_some()) {
        container::volumes(&mut svc, v);
    }
    if let Some(v) = get("environment") {
        env::environment(&mut svc, v, cx, names);
    }
    if let Some(v) = get("env_file") {
        env::env_file(&mut svc, v, cx, stack);
    }
    ports.translate(&mut svc, native || contained.is_some());
    if get("expose").is_some() {
        svc.note("expose: ports opened to other containers; here every port is on 127.0.0.1");
    }
    if let Some(d) = get("depends_on") {
        depends_on(&mut svc, d);
    }
    if let Some(Value::Mapping(h)) = get("healthcheck")
        && !svc.commented
        && !native
    {
        health::healthcheck(&mut svc, h, contained.is_some());
    }
    if let Some(rules) = get("develop")
        .and_then(|d| d.get("watch"))
        .and_then(Value::as_sequence)
        && !svc.commented
    {
        for rule in rules {
            watch::watch_rule(&mut svc, rule);
        }
    }
    lifecycle(&mut svc, def);
    unread(&mut svc, def);
    svc
}

/// `build`: devstack runs processes; the context is where the process runs.
fn build(svc: &mut Svc, b: &Value) {
    let (context, dockerfile) = match b {
        Value::Mapping(m) => (
            m.get("context")
                .and_then(text)
                .unwrap_or_else(|| ".".into()),
            m.get("dockerfile").and_then(text),
        ),
        other => (text(other).unwrap_or_else(|| ".".into()), None),
    };
    let dockerfile = dockerfile.unwrap_or_else(|| "Dockerfile".into());
    if context.contains("://") || context.starts_with("git@") {
        svc.warn(format!(
            "build: the context {context} is remote: devstack runs the command in this folder"
        ));
    } else {
        let c = context.trim_start_matches("./").trim_end_matches('/');
        if !c.is_empty() && c != "." {
            svc.cwd = Some(c.to_string());
        }
        svc.note(format!(
            "build: an image from {context} ({dockerfile}); devstack runs the process in that folder. To build before each start, put its build step (`npm ci`, `cargo build` …) in `build`"
        ));
    }
}

/// `working_dir`: a folder here, unless it is a path in the container.
fn working_dir(svc: &mut Svc, w: &str) {
    if w.starts_with('/') {
        svc.note(format!(
            "working_dir {w} is a path in the container; here the process runs in {}",
            svc.cwd.as_deref().unwrap_or("this folder")
        ));
    } else {
        svc.cwd = Some(w.trim_start_matches("./").to_string());
    }
}

/// The command's words: `entrypoint`, then `command`.
fn command_words(svc: &mut Svc, def: &Mapping) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for key in ["entrypoint", "command"] {
        if let Some(v) = def.get(key) {
            match argv(v) {
                Some(a) => words.extend(a),
                None => svc.warn(format!("{key} is neither a string nor a list: left out")),
            }
        }
    }
    words
}

/// The service's `run` when it is not a well-known image: its command, or (without one) a
/// commented-out block to write it in.
fn command(svc: &mut Svc, image: Option<&str>, has_build: bool, words: &[String]) {
    if words.is_empty() {
        svc.commented = true;
        let from = match (image, has_build) {
            (_, true) => "its Dockerfile's CMD".to_string(),
            (Some(i), false) => format!("image {i}'s command"),
            (None, false) => "nothing".to_string(),
        };
        svc.warn(format!(
            "no command: it runs {from}, which devstack can't know; the block below is commented out until you write its `run`"
        ));
        svc.run = Some("TODO: the command that runs this service".into());
    } else {
        if let (Some(i), false) = (image, has_build) {
            svc.note(format!(
                "image {i}: its command runs on this machine here, with what is installed here"
            ));
        }
        svc.run = Some(command_line(words));
    }
}

/// `depends_on`: a list of names (started), or a mapping with compose's conditions.
fn depends_on(svc: &mut Svc, v: &Value) {
    match v {
        Value::Sequence(items) => {
            for d in items.iter().filter_map(text) {
                svc.deps.push(Dep {
                    name: d,
                    cond: Cond::Started,
                    restart: false,
                });
            }
        }
        Value::Mapping(m) => {
            for (d, spec) in m {
                let Some(d) = d.as_str() else { continue };
                let condition = spec.get("condition").and_then(text);
                let cond = match condition.as_deref() {
                    None | Some("service_started") => Cond::Started,
                    Some("service_healthy") => Cond::Healthy,
                    Some("service_completed_successfully") => Cond::Completed,
                    Some(other) => {
                        svc.warn(format!(
                            "depends_on {d}: condition {other} is unknown; it waits for {d} to start"
                        ));
                        Cond::Started
                    }
                };
                if spec.get("required") == Some(&Value::Bool(false)) {
                    svc.note(format!(
                        "depends_on {d}: required: false has no counterpart; devstack waits for it"
                    ));
                }
                svc.deps.push(Dep {
                    name: d.to_string(),
                    cond,
                    restart: spec.get("restart") == Some(&Value::Bool(true)),
                });
            }
        }
        _ => {}
    }
}

/// `restart`, `stop_signal`, `stop_grace_period` and `profiles`.
fn lifecycle(svc: &mut Svc, def: &Mapping) {
    let name = svc.source_name.clone();
    let get = |k: &str| def.get(k);
    if let Some(r) = get("restart").and_then(text) {
        svc.restart = restart(svc, &r);
    }
    if let Some(s) = get("stop_signal").and_then(text) {
        match signal_name(&s) {
            Some(n) => svc.stop_signal = Some(n),
            None => svc.warn(format!("stop_signal {s} is unknown: left at TERM")),
        }
    }
    if let Some(g) = get("stop_grace_period").and_then(text) {
        match duration(&g) {
            Some(d) => svc.grace = Some(d),
            None => svc.warn(format!("stop_grace_period {g} is not a duration: left out")),
        }
    }
    if let Some(p) = get("profiles").and_then(Value::as_sequence) {
        let p: Vec<String> = p.iter().filter_map(text).collect();
        svc.autostart = Some(false);
        svc.note(format!(
            "profiles {}: compose starts it only when asked; here it starts with `devstack up {name}` or `s` in the dashboard",
            p.join(", ")
        ));
    }
}

/// A `restart` policy as devstack's (None: unknown, left at its default).
fn restart(svc: &mut Svc, r: &str) -> Option<&'static str> {
    match r {
        "no" => Some("no"),
        "always" => Some("always"),
        "unless-stopped" => {
            svc.note("restart: unless-stopped → always (a service stopped by hand stays stopped)");
            Some("always")
        }
        r if r.starts_with("on-failure") => {
            if let Some(n) = r.strip_prefix("on-failure:") {
                svc.warn(format!(
                    "restart: at most {n} retries has no counterpart; devstack retries with backoff (1s … 30s)"
                ));
            }
            Some("on-failure")
        }
        other => {
            svc.warn(format!("restart: `{other}` is unknown; left at on-failure"));
            None
        }
    }
}

/// The keys not in `READ`, said in one warning.
fn unread(svc: &mut Svc, def: &Mapping) {
    let unread: Vec<&str> = def
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| !READ.contains(k))
        // An image service's volumes are its own (`container::volumes`).
        .filter(|k| !(*k == "volumes" && svc.image.is_some()))
        .collect();
    if !unread.is_empty() {
        svc.warn(format!(
            "not translated (container settings): {}",
            unread.join(", ")
        ));
    }
}
