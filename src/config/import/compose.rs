//! A compose file (`docker-compose.yml`, `compose.yaml`): services with a command become
//! processes on this machine; container images devstack can't run become commented blocks with
//! the usual local command.

use super::own_port::{http_check, to_own_port};
use super::{
    Cond, Context, Dep, Health, Stack, Svc, SyntaxError, command_line, duration, env_value,
    open_yaml, shell_for_devstack, signal_name, unescape_dollars, yaml_text as text,
};
use serde_norway::{Mapping, Value};
use std::collections::HashSet;

/// Images of well-known servers: the name, the command that runs one locally (`{port}`: its
/// port), its usual port, a health check, and what to do first.
struct Known {
    names: &'static [&'static str],
    run: &'static str,
    port: u16,
    health: Option<&'static str>,
    first: Option<&'static str>,
    /// The folder `first` makes: it runs while that does not exist.
    data: Option<&'static str>,
}

const KNOWN: &[Known] = &[
    Known {
        names: &["postgres", "postgis", "timescaledb", "pgvector"],
        run: "postgres -D .data/postgres -p {port} -k /tmp",
        port: 5432,
        health: Some("pg_isready -h 127.0.0.1 -p {port}"),
        first: Some("initdb -D .data/postgres"),
        data: Some(".data/postgres"),
    },
    Known {
        names: &["redis", "redis-stack-server", "valkey", "keydb"],
        run: "redis-server --port {port}",
        port: 6379,
        health: Some("redis-cli -p {port} ping"),
        first: None,
        data: None,
    },
    Known {
        names: &["mysql", "mariadb", "percona"],
        run: "mysqld --datadir=.data/mysql --port={port}",
        port: 3306,
        health: Some("mysqladmin ping -h 127.0.0.1 -P {port}"),
        first: Some("mysqld --initialize-insecure --datadir=.data/mysql"),
        data: Some(".data/mysql"),
    },
    Known {
        names: &["mongo", "mongodb"],
        run: "mongod --dbpath .data/mongo --port {port}",
        port: 27017,
        health: None,
        first: Some("mkdir -p .data/mongo"),
        data: Some(".data/mongo"),
    },
    Known {
        names: &["rabbitmq"],
        run: "rabbitmq-server",
        port: 5672,
        health: Some("rabbitmq-diagnostics -q ping"),
        first: None,
        data: None,
    },
    Known {
        names: &["memcached"],
        run: "memcached -p {port}",
        port: 11211,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["nginx"],
        run: "nginx -p . -c nginx.conf -g 'daemon off;'",
        port: 80,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["elasticsearch", "opensearch"],
        run: "elasticsearch",
        port: 9200,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["minio"],
        run: "minio server .data/minio --address 127.0.0.1:{port}",
        port: 9000,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["mailpit", "mailhog"],
        run: "mailpit",
        port: 8025,
        health: None,
        first: None,
        data: None,
    },
];

/// `docker.io/library/postgres:16-alpine` → `postgres`.
fn image_base(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// The first word of each command a well-known image becomes: what must be installed.
fn program(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or(command)
}

pub(super) fn programs() -> Vec<&'static str> {
    let mut all: Vec<&str> = KNOWN
        .iter()
        .flat_map(|k| [Some(k.run), k.first, k.health].into_iter().flatten())
        .map(program)
        .collect();
    all.sort();
    all.dedup();
    all
}

fn known(image: &str) -> Option<&'static Known> {
    let base = image_base(image);
    KNOWN.iter().find(|k| k.names.contains(&base))
}

/// A command in compose's string (split as a shell would, without running one) or list form.
fn argv(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => shlex::split(s).or_else(|| Some(vec![s.clone()])),
        Value::Sequence(items) => items.iter().map(text).collect(),
        _ => None,
    }
}

/// The other services' host names in a value (`postgres://db:5432`, `REDIS_HOST=redis`) →
/// 127.0.0.1: the whole value, or a host after `/` or `@` that ends at `:`, `/` or the end.
/// One pass over the value, names looked up in a set (a regex per name made 500 services
/// take most of a minute).
fn local_hosts(value: &str, names: &HashSet<&str>, own: &str) -> Option<String> {
    let other = |host: &str| host != own && names.contains(host);
    if other(value) {
        return Some("127.0.0.1".into());
    }
    let mut out = String::with_capacity(value.len());
    let mut copied = 0;
    // Each piece between `:` and `/` delimiters; `start` is where it begins in `value`.
    let mut start = 0;
    for piece in value.split([':', '/']) {
        let end = start + piece.len();
        // A name has no `@`: only the part after the last `@` of a piece can be a host, or the
        // whole piece when it follows a `/`.
        let host_at = match piece.rfind('@') {
            Some(at) => Some(start + at + 1),
            None => (start > 0 && value.as_bytes()[start - 1] == b'/').then_some(start),
        };
        if let Some(h) = host_at
            && other(&value[h..end])
        {
            out.push_str(&value[copied..h]);
            out.push_str("127.0.0.1");
            copied = end;
        }
        start = end + 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

/// The protocol of a `ports` entry other than TCP (`53:53/udp`, `protocol: udp`), if any.
fn not_tcp(v: &Value) -> Option<String> {
    let protocol = match v {
        Value::Mapping(m) => m.get("protocol").and_then(text)?,
        other => text(other)?.rsplit_once('/')?.1.to_string(),
    };
    (!protocol.eq_ignore_ascii_case("tcp")).then_some(protocol)
}

/// A `ports` entry: (container port, published host port).
fn first_port(v: &Value) -> Option<(u16, Option<u16>)> {
    match v {
        Value::Mapping(m) => {
            let target = m.get("target").and_then(text)?.parse().ok()?;
            let published = m
                .get("published")
                .and_then(text)
                .and_then(|p| p.parse().ok());
            Some((target, published))
        }
        other => {
            let s = text(other)?;
            let s = s.split('/').next().unwrap_or(&s);
            let parts: Vec<&str> = s.rsplitn(3, ':').collect();
            let single = |p: &str| p.split('-').next().and_then(|p| p.parse::<u16>().ok());
            let target = single(parts[0])?;
            let published = parts.get(1).and_then(|p| single(p));
            Some((target, published))
        }
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

    // build: devstack runs processes; the context is where the process runs.
    let mut cwd: Option<String> = None;
    if let Some(b) = get("build") {
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
                cwd = Some(c.to_string());
            }
            svc.note(format!(
                "build: an image from {context} ({dockerfile}); devstack runs the process in that folder. To build before each start, put its build step (`npm ci`, `cargo build` …) in `build`"
            ));
        }
    }
    svc.cwd = cwd.clone();
    if let Some(w) = get("working_dir").and_then(text) {
        if w.starts_with('/') {
            svc.note(format!(
                "working_dir {w} is a path in the container; here the process runs in {}",
                cwd.as_deref().unwrap_or("this folder")
            ));
        } else {
            svc.cwd = Some(w.trim_start_matches("./").to_string());
        }
    }

    // The command: entrypoint, then command.
    let mut words: Vec<String> = Vec::new();
    for key in ["entrypoint", "command"] {
        if let Some(v) = get(key) {
            match argv(v) {
                Some(a) => words.extend(a),
                None => svc.warn(format!("{key} is neither a string nor a list: left out")),
            }
        }
    }
    let local = image
        .as_deref()
        .and_then(known)
        .filter(|_| get("build").is_none());
    // devstack's proxy forwards TCP: a UDP port is not one it can stand in front of.
    let (other_ports, ports): (Vec<&Value>, Vec<&Value>) = get("ports")
        .and_then(Value::as_sequence)
        .map(|p| p.iter().partition(|p| not_tcp(p).is_some()))
        .unwrap_or_default();
    let container_port = ports.first().copied().and_then(first_port);
    // Its program installed here (`redis-server` on the PATH): it runs, as a native process.
    let native = local.is_some_and(|k| {
        [Some(k.run), k.first]
            .into_iter()
            .flatten()
            .all(|c| cx.installed.contains(program(c)))
    });
    if let Some(k) = local {
        let image = image.as_deref().unwrap_or_default();
        let port = container_port.map_or(k.port, |(t, _)| t);
        if native {
            svc.note(format!(
                "image {image} runs in a container; here `{}`, installed on this machine, runs in its place",
                program(k.run)
            ));
        } else {
            svc.commented = true;
            svc.warn(format!(
                "image {image} runs in a container; devstack runs processes: the block below, commented out, runs it on this machine (uncomment it once `{}` is installed)",
                program(k.run)
            ));
        }
        match (k.first, native) {
            (Some(first), false) => svc.note(format!("first, once: {first}")),
            (Some(first), true) => svc.note(format!(
                "`{first}` runs first, while {} does not exist",
                k.data.unwrap_or("its data folder")
            )),
            (None, _) => {}
        }
        if !words.is_empty() {
            svc.note(format!("its compose command was: {}", command_line(&words)));
        }
        let run = k.run.replace("{port}", &port.to_string());
        svc.run = Some(match (k.first, k.data, native) {
            (Some(first), Some(data), true) => format!("test -d {data} || {first} && exec {run}"),
            _ => run,
        });
        svc.port = Some(port);
        svc.proxy = Some(false);
        match k.health {
            // Running here without its client (`redis-cli`): a connection tells it is up.
            Some(h) if native && !cx.installed.contains(program(h)) => {
                svc.health = Some(Health {
                    kind: "tcp",
                    value: "true".into(),
                    ..Health::default()
                });
            }
            Some(h) => {
                svc.health = Some(Health {
                    kind: "cmd",
                    value: h.replace("{port}", &port.to_string()),
                    ..Health::default()
                });
            }
            None => {}
        }
    } else if words.is_empty() {
        svc.commented = true;
        let from = match (&image, get("build")) {
            (_, Some(_)) => "its Dockerfile's CMD".to_string(),
            (Some(i), None) => format!("image {i}'s command"),
            (None, None) => "nothing".to_string(),
        };
        svc.warn(format!(
            "no command: it runs {from}, which devstack can't know; the block below is commented out until you write its `run`"
        ));
        svc.run = Some("TODO: the command that runs this service".into());
    } else {
        if let (Some(i), None) = (&image, get("build")) {
            svc.note(format!(
                "image {i}: its command runs on this machine here, with what is installed here"
            ));
        }
        svc.run = Some(command_line(&words));
    }

    // Environment.
    let mut env: Vec<(String, Option<String>)> = Vec::new();
    match get("environment") {
        Some(Value::Sequence(items)) => {
            for item in items.iter().filter_map(text) {
                match item.split_once('=') {
                    Some((k, v)) => env.push((k.to_string(), Some(v.to_string()))),
                    None => env.push((item, None)),
                }
            }
        }
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    env.push((k.to_string(), text(v)));
                }
            }
        }
        _ => {}
    }
    let mut localised = false;
    for (k, v) in env {
        let Some(v) = v else {
            svc.note(format!(
                "{k}: taken from the environment devstack runs in (services inherit it)"
            ));
            continue;
        };
        if k == "PORT" && !svc.commented {
            svc.note(format!(
                "PORT={v} is left out: devstack gives each service its PORT"
            ));
            continue;
        }
        let mut value = env_value(cx, &mut svc, &k, &v);
        if let Some(l) = local_hosts(&value, names, name) {
            value = l;
            localised = true;
        }
        svc.env.push((k, value));
    }
    if localised {
        svc.note("the other services' host names are 127.0.0.1 here: they all run on this machine");
    }

    // env_file: devstack has one, for the whole stack.
    let files: Vec<String> = match get("env_file") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::Mapping(m) => m.get("path").and_then(text),
                other => text(other),
            })
            .collect(),
        Some(other) => text(other).into_iter().collect(),
        None => Vec::new(),
    };
    for f in files {
        let f = super::rebase(&cx.base, &f);
        match &stack.env_file {
            None => {
                stack.env_file = Some(f.clone());
                stack.env_file_notes.push(format!(
                    "{f}: the env_file of `{name}`; devstack loads it into every service"
                ));
            }
            Some(s) if *s == f => {}
            Some(s) => svc.warn(format!(
                "env_file {f} is not loaded: devstack has one env_file for the whole stack ({s}); copy its variables into [services.{name}.env]"
            )),
        }
    }

    // Ports.
    if let Some((target, published)) = container_port.filter(|_| !svc.commented && !native) {
        let reads_port = svc
            .run
            .as_deref()
            .is_some_and(|r| r.contains("$PORT") || r.contains("${PORT}"))
            || svc.notes.iter().any(|n| n.text.starts_with("PORT="));
        svc.port = Some(target);
        if !reads_port {
            svc.proxy = Some(false);
            svc.note(format!(
                "it binds port {target} itself, as in its container; to see its traffic in devstack, make it listen on $PORT and remove `proxy = false`"
            ));
        }
        if let Some(p) = published.filter(|p| *p != target) {
            svc.warn(format!(
                "ports: published on host port {p}, but outside a container nothing maps ports: it is reached on {target}"
            ));
        }
    }
    if let Some(first) = ports.first().copied().and_then(text)
        && first.contains('-')
        && !svc.commented
    {
        svc.warn(format!(
            "ports {first}: a range; devstack knows one port per service, the first"
        ));
    }
    let shown = |p: &&Value| text(p).unwrap_or_else(|| "(a long-form port)".into());
    if ports.len() > 1 {
        let rest: Vec<String> = ports[1..].iter().map(shown).collect();
        svc.warn(format!(
            "ports {}: devstack knows one port per service; the process still binds what it binds",
            rest.join(", ")
        ));
    }
    for p in &other_ports {
        let protocol = not_tcp(p).unwrap_or_default();
        svc.warn(format!(
            "ports {}: {protocol}, and devstack's proxy forwards TCP only: left out (the process binds it itself)",
            shown(p)
        ));
    }
    if get("expose").is_some() {
        svc.note("expose: ports opened to other containers; here every port is on 127.0.0.1");
    }

    // depends_on.
    match get("depends_on") {
        Some(Value::Sequence(items)) => {
            for d in items.iter().filter_map(text) {
                svc.deps.push(Dep {
                    name: d,
                    cond: Cond::Started,
                    restart: false,
                });
            }
        }
        Some(Value::Mapping(m)) => {
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

    // healthcheck → a cmd probe.
    if let Some(Value::Mapping(h)) = get("healthcheck")
        && !svc.commented
        && !native
    {
        health(&mut svc, h);
    }

    // develop.watch.
    if let Some(rules) = get("develop")
        .and_then(|d| d.get("watch"))
        .and_then(Value::as_sequence)
        && !svc.commented
    {
        for rule in rules {
            watch_rule(&mut svc, rule);
        }
    }

    // restart, stop, profiles.
    if let Some(r) = get("restart").and_then(text) {
        svc.restart = match r.as_str() {
            "no" => Some("no"),
            "always" => Some("always"),
            "unless-stopped" => {
                svc.note(
                    "restart: unless-stopped → always (a service stopped by hand stays stopped)",
                );
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
        };
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

    let unread: Vec<&str> = def
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| !READ.contains(k))
        .collect();
    if !unread.is_empty() {
        svc.warn(format!(
            "not translated (container settings): {}",
            unread.join(", ")
        ));
    }
    svc
}

fn health(svc: &mut Svc, h: &Mapping) {
    if h.get("disable") == Some(&Value::Bool(true)) {
        svc.note("healthcheck disabled");
        return;
    }
    let cmd = match h.get("test") {
        Some(Value::String(s)) => Some(shell_for_devstack(&unescape_dollars(s))),
        Some(Value::Sequence(items)) => {
            let items: Vec<String> = items.iter().filter_map(text).collect();
            match items.first().map(String::as_str) {
                Some("NONE") => {
                    svc.note("healthcheck: NONE (the image's check is turned off)");
                    return;
                }
                Some("CMD") if items.len() > 1 => Some(command_line(&items[1..])),
                Some("CMD-SHELL") if items.len() == 2 => {
                    Some(shell_for_devstack(&unescape_dollars(&items[1])))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some(mut cmd) = cmd else {
        svc.warn("healthcheck: no test devstack can run (CMD, CMD-SHELL or a string): left out");
        return;
    };
    let mut probe = Health {
        kind: "cmd",
        ..Health::default()
    };
    // A check of the service's own port would go through devstack's proxy (the port the service
    // listens on here is $PORT) and show as `external` traffic: it probes the service directly.
    if let Some(port) = svc.port.filter(|_| svc.proxy != Some(false)) {
        if let Some(path) = http_check(&cmd, port) {
            svc.note(format!(
                "healthcheck `{cmd}` → an http probe of {path} (devstack probes the service's own port, not through the proxy)"
            ));
            probe.kind = "http";
            cmd = path;
        } else if let Some(direct) = to_own_port(&cmd, port) {
            svc.note(format!(
                "healthcheck: port {port} → ${{PORT}}, the port the service listens on here (through the proxy, the checks would show as traffic)"
            ));
            cmd = direct;
        }
    }
    probe.value = cmd;
    for (key, slot) in [
        ("interval", &mut probe.interval),
        ("timeout", &mut probe.timeout),
        ("start_period", &mut probe.start_period),
    ] {
        if let Some(v) = h.get(key).and_then(text) {
            match duration(&v) {
                Some(d) => *slot = Some(d),
                None => svc.warn(format!("healthcheck {key} {v} is not a duration: left out")),
            }
        }
    }
    if let Some(r) = h.get("retries").and_then(Value::as_u64) {
        probe.retries = u32::try_from(r).ok();
    }
    if h.get("start_interval").is_some() {
        svc.note(
            "healthcheck start_interval: devstack probes every 200 ms until the first success",
        );
    }
    svc.health = Some(probe);
}

/// A `develop.watch` rule: `rebuild` and `sync+restart` restart the process on a change (with
/// its `build` first); `sync` needs nothing here (the process reads the files in place).
fn watch_rule(svc: &mut Svc, rule: &Value) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_ports() {
        assert_eq!(
            image_base("docker.io/library/postgres:16-alpine"),
            "postgres"
        );
        assert_eq!(image_base("bitnami/redis@sha256:abc"), "redis");
        assert_eq!(
            first_port(&Value::String("127.0.0.1:8080:80/tcp".into())),
            Some((80, Some(8080)))
        );
        assert_eq!(
            first_port(&Value::String("3000".into())),
            Some((3000, None))
        );
    }

    #[test]
    fn host_names_become_local() {
        let names: HashSet<&str> = ["db", "redis", "api"].into_iter().collect();
        let local = |v: &str| local_hosts(v, &names, "api");
        assert_eq!(
            local("postgres://app:pw@db:5432/app").as_deref(),
            Some("postgres://app:pw@127.0.0.1:5432/app")
        );
        assert_eq!(local("redis").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            local("redis://redis/0,http://db").as_deref(),
            Some("redis://127.0.0.1/0,http://127.0.0.1")
        );
        assert_eq!(
            local("amqp://u:p@redis:1//db/x").as_deref(),
            Some("amqp://u:p@127.0.0.1:1//127.0.0.1/x")
        );
        assert_eq!(local("dbx://nothing"), None);
        assert_eq!(local("db:5432"), None, "no `/` or `@` before it");
        assert_eq!(local("http://api:80"), None, "its own name is left");
        assert_eq!(local("http://db@x:1"), None);
    }
}
