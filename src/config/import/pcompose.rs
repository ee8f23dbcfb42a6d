//! A process-compose file (`process-compose.yaml`): processes, their probes, availability and
//! shutdown, as its documentation describes them.

use super::{
    Cond, Context, Dep, Health, Note, Stack, Svc, SyntaxError, env_value, open_yaml, seconds,
    shell_for_devstack, signal_name, yaml_text as text,
};
use serde_norway::{Mapping, Value};

/// The keys of a process this importer reads; the others are listed as not translated.
const READ: &[&str] = &[
    "command",
    "working_dir",
    "environment",
    "depends_on",
    "readiness_probe",
    "liveness_probe",
    "ready_log_line",
    "availability",
    "shutdown",
    "is_daemon",
    "disabled",
    "description",
    "is_tty",
];

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `environment`: a list of `KEY=VALUE` (or a map).
fn environment(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(text)
            .filter_map(|i| {
                i.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
        Some(Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), text(v).unwrap_or_default())))
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn import(src: &str, cx: &Context) -> Result<Stack, SyntaxError> {
    let (mut stack, top) = open_yaml(
        src,
        cx,
        "a process-compose file",
        "processes",
        "process-compose loads it; so does devstack, into every service",
    )?;
    let Some(top) = &top else {
        return Ok(stack);
    };
    for (k, v) in top {
        let Some(k) = k.as_str() else { continue };
        match k {
            "processes" => {}
            "version" => stack.notes.push(Note {
                text: format!("version {}", text(v).unwrap_or_default()),
                warn: false,
            }),
            "environment" => {
                // The global environment: the stack's [env].
                let mut holder = Svc::new("");
                for (key, value) in environment(Some(v)) {
                    let value = env_value(cx, &mut holder, &key, &value);
                    stack.env.push((key, value));
                }
                stack.notes.extend(holder.notes);
            }
            other => stack.warn(format!(
                "top-level `{other}` is not translated (devstack keeps its logs in .devstack/logs)"
            )),
        }
    }
    if src.contains("{{") {
        stack.warn("Go templates ({{.VAR}}) are not expanded: write their values in the commands");
    }
    let empty = Mapping::new();
    let processes = top
        .get("processes")
        .and_then(Value::as_mapping)
        .unwrap_or(&empty);
    for (name, def) in processes {
        let Some(name) = name.as_str() else { continue };
        let empty = Mapping::new();
        let def = def.as_mapping().unwrap_or(&empty);
        stack.services.push(process(name, def, cx));
    }
    if stack.services.is_empty() {
        stack.warn("no processes: nothing to run");
    }
    Ok(stack)
}

/// One process: each key translated in turn (the order its notes are written in).
fn process(name: &str, def: &Mapping, cx: &Context) -> Svc {
    let mut svc = Svc::new(name);
    let get = |k: &str| def.get(k);
    if let Some(d) = get("description").and_then(text) {
        svc.note(d);
    }
    match get("command").and_then(text) {
        Some(c) => svc.run = Some(shell_for_devstack(&c)),
        None => {
            svc.commented = true;
            svc.warn("no command: the block below is commented out until you write its `run`");
            svc.run = Some("TODO: the command that runs this process".into());
        }
    }
    if let Some(w) = get("working_dir").and_then(text) {
        svc.cwd = Some(w.trim_start_matches("./").to_string()).filter(|w| !w.is_empty());
    }
    process_environment(&mut svc, get("environment"), cx);
    if let Some(Value::Mapping(m)) = get("depends_on") {
        depends_on(&mut svc, m);
    }
    probes(&mut svc, def);
    availability(&mut svc, get("availability").and_then(Value::as_mapping));
    if let Some(s) = get("shutdown").and_then(Value::as_mapping) {
        shutdown(&mut svc, s);
    }
    flags(&mut svc, def, name);
    let unread: Vec<&str> = def
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| !READ.contains(k))
        .collect();
    if !unread.is_empty() {
        svc.warn(format!("not translated: {}", unread.join(", ")));
    }
    svc
}

/// `environment`: the process's variables; its `PORT` is its port.
fn process_environment(svc: &mut Svc, v: Option<&Value>, cx: &Context) {
    for (k, v) in environment(v) {
        if k == "PORT" {
            svc.port = v.parse().ok();
            svc.note(format!(
                "PORT={v}: its port; devstack listens there and gives the process a PORT of its own"
            ));
            continue;
        }
        let v = env_value(cx, svc, &k, &v);
        svc.env.push((k, v));
    }
}

/// `depends_on`: process-compose's conditions as devstack's.
fn depends_on(svc: &mut Svc, m: &Mapping) {
    for (d, spec) in m {
        let Some(d) = d.as_str() else { continue };
        let cond = match spec.get("condition").and_then(text).as_deref() {
            None | Some("process_started") => Cond::Started,
            Some("process_healthy") | Some("process_log_ready") => Cond::Healthy,
            Some("process_completed_successfully") => Cond::Completed,
            Some("process_completed") => {
                svc.warn(format!(
                    "depends_on {d}: process_completed accepts any exit code; devstack's `completed` needs exit 0"
                ));
                Cond::Completed
            }
            Some(other) => {
                svc.warn(format!(
                    "depends_on {d}: condition {other} is unknown; it waits for {d} to start"
                ));
                Cond::Started
            }
        };
        svc.deps.push(Dep {
            name: d.to_string(),
            cond,
            restart: false,
        });
    }
}

/// The probes (`ready_log_line`, `readiness_probe`, `liveness_probe`): one health probe in
/// devstack.
fn probes(svc: &mut Svc, def: &Mapping) {
    let readiness = def.get("readiness_probe").and_then(Value::as_mapping);
    let liveness = def.get("liveness_probe").and_then(Value::as_mapping);
    if let Some(line) = def.get("ready_log_line").and_then(text) {
        svc.health = Some(Health {
            kind: "log",
            value: regex::escape(&line),
            ..Health::default()
        });
        if readiness.is_some() {
            svc.warn("readiness_probe is not translated: its ready_log_line is the health probe");
        }
    } else if let Some(r) = readiness {
        svc.health = probe(svc, r, "readiness_probe");
    }
    if let Some(l) = liveness {
        if svc.health.is_some() {
            svc.warn(
                "liveness_probe is not translated: devstack has one health probe, the readiness one",
            );
        } else {
            svc.warn(
                "liveness_probe is the health probe here: an unhealthy service is shown so, not restarted",
            );
            svc.health = probe(svc, l, "liveness_probe");
        }
    }

    // A probe on the service's own port goes to the process (its private port), not the proxy.
    if let (Some(port), Some(h)) = (svc.port, svc.health.as_mut())
        && h.kind == "http"
    {
        for host in ["127.0.0.1", "localhost"] {
            if let Some(path) = h.value.strip_prefix(&format!("http://{host}:{port}/")) {
                h.value = format!("/{path}");
            }
        }
    }
}

/// `availability`: its `restart` policy as devstack's; the rest has no counterpart.
fn availability(svc: &mut Svc, availability: Option<&Mapping>) {
    let restart = availability
        .and_then(|a| a.get("restart"))
        .and_then(text)
        .unwrap_or_else(|| "no".into());
    svc.restart = match restart.as_str() {
        "always" => Some("always"),
        "on_failure" => Some("on-failure"),
        "no" => Some("no"),
        "exit_on_failure" | "exit_on_end" => {
            svc.warn(format!(
                "availability restart {restart}: devstack does not stop the stack when one service ends; `devstack ci` fails when it fails"
            ));
            Some("no")
        }
        other => {
            svc.warn(format!(
                "availability restart {other} is unknown: left at no"
            ));
            Some("no")
        }
    };
    if let Some(a) = availability {
        for key in ["backoff_seconds", "max_restarts"] {
            if let Some(v) = a.get(key).and_then(text) {
                svc.warn(format!(
                    "availability {key} {v} has no counterpart: devstack backs off 1s, 2s, 4s … up to 30s, without a limit"
                ));
            }
        }
    }
}

/// `shutdown`: its signal and timeout as `stop_signal` and `grace`.
fn shutdown(svc: &mut Svc, s: &Mapping) {
    if let Some(sig) = s.get("signal").and_then(text) {
        match signal_name(&sig) {
            Some(n) => svc.stop_signal = Some(n),
            None => svc.warn(format!("shutdown signal {sig} is unknown: left at TERM")),
        }
    }
    if let Some(t) = number(s.get("timeout_seconds")) {
        svc.grace = Some(seconds(t));
    }
    if let Some(c) = s.get("command").and_then(text) {
        svc.warn(format!(
            "shutdown command `{c}` is not run: devstack stops a service with its stop_signal"
        ));
    }
}

/// `is_daemon`, `disabled` and `is_tty`.
fn flags(svc: &mut Svc, def: &Mapping, name: &str) {
    if def.get("is_daemon") == Some(&Value::Bool(true)) {
        svc.warn(
            "is_daemon: it forks into the background, but devstack supervises a process in the foreground (and stops what it leaves behind): run it in the foreground (a --foreground or --nodaemon flag)",
        );
    }
    if def.get("disabled") == Some(&Value::Bool(true)) {
        svc.autostart = Some(false);
        svc.note(format!(
            "disabled: not started with the stack; `devstack up {name}` or `s` in the dashboard starts it"
        ));
    }
    if def.get("is_tty").is_some() {
        svc.note("is_tty: every devstack service runs in a terminal");
    }
}

/// A readiness or liveness probe: `exec` → cmd, `http_get` → http.
fn probe(svc: &mut Svc, p: &Mapping, what: &str) -> Option<Health> {
    let mut h = if let Some(exec) = p.get("exec").and_then(Value::as_mapping) {
        let command = exec.get("command").and_then(text)?;
        if exec.get("working_dir").is_some() {
            svc.note(format!(
                "{what} exec working_dir: the probe runs in the service's cwd"
            ));
        }
        Health {
            kind: "cmd",
            value: shell_for_devstack(&command),
            ..Health::default()
        }
    } else if let Some(get) = p.get("http_get").and_then(Value::as_mapping) {
        let host = get
            .get("host")
            .and_then(text)
            .unwrap_or_else(|| "127.0.0.1".into());
        let scheme = get
            .get("scheme")
            .and_then(text)
            .unwrap_or_else(|| "http".into());
        let path = get.get("path").and_then(text).unwrap_or_else(|| "/".into());
        let Some(port) = get.get("port").and_then(text) else {
            svc.warn(format!("{what} http_get has no port: left out"));
            return None;
        };
        if scheme != "http" {
            svc.warn(format!(
                "{what} scheme {scheme}: devstack's http probe speaks plain http"
            ));
        }
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        Health {
            kind: "http",
            value: format!("http://{host}:{port}{path}").replace("${", "$${"),
            ..Health::default()
        }
    } else {
        svc.warn(format!("{what}: neither exec nor http_get: left out"));
        return None;
    };
    if let Some(n) = number(p.get("initial_delay_seconds")) {
        h.start_period = Some(seconds(n));
    }
    if let Some(n) = number(p.get("period_seconds")) {
        h.interval = Some(seconds(n));
    }
    if let Some(n) = number(p.get("timeout_seconds")) {
        h.timeout = Some(seconds(n));
    }
    if let Some(n) = number(p.get("failure_threshold")) {
        h.retries = Some(n as u32);
    }
    if let Some(n) = number(p.get("success_threshold"))
        && n > 1.0
    {
        svc.warn(format!(
            "{what} success_threshold {n}: devstack counts one success as healthy"
        ));
    }
    Some(h)
}
