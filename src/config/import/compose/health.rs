//! `healthcheck`: its `test` as a probe devstack runs, with its timings; a check of the
//! service's own port made to reach the service directly (`own_port.rs`).

use super::super::own_port::{http_check, to_own_port};
use super::super::{Health, Svc, command_line, duration, shell_for_devstack, unescape_dollars};
use super::text;
use serde_norway::{Mapping, Value};

/// A `healthcheck` as a `cmd` probe (`http` when it fetches a URL of the service's own port);
/// `inside`: run in the service's container, as compose runs it.
pub(super) fn healthcheck(svc: &mut Svc, h: &Mapping, inside: bool) {
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
        exec: inside,
        ..Health::default()
    };
    // A check of the service's own port would go through devstack's proxy (the port the service
    // listens on here is $PORT) and show as `external` traffic: it probes the service directly.
    // Inside its container, the port is the container's own already.
    if let Some(port) = svc.port.filter(|_| svc.proxy != Some(false) && !inside) {
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
