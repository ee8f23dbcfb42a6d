//! `ports`: the one port devstack knows of a service (the first TCP one: its proxy forwards
//! TCP), and what of the others is said and left to the process.

use super::super::Svc;
use super::text;
use serde_norway::Value;

/// A service's `ports` entries: those devstack's proxy can stand in front of (TCP), and the others.
pub(super) struct Ports<'a> {
    tcp: Vec<&'a Value>,
    other: Vec<&'a Value>,
    /// The first TCP entry's container port, and the host port it is published on.
    pub container: Option<(u16, Option<u16>)>,
}

impl<'a> Ports<'a> {
    pub fn new(ports: Option<&'a Value>) -> Self {
        // devstack's proxy forwards TCP: a UDP port is not one it can stand in front of.
        let (other, tcp): (Vec<&Value>, Vec<&Value>) = ports
            .and_then(Value::as_sequence)
            .map(|p| p.iter().partition(|p| not_tcp(p).is_some()))
            .unwrap_or_default();
        let container = tcp.first().copied().and_then(first_port);
        Ports {
            tcp,
            other,
            container,
        }
    }

    /// The service's port (unless it is commented out, or a well-known image run `native`ly,
    /// which has its own), and what is left out.
    pub fn translate(&self, svc: &mut Svc, native: bool) {
        let ports = &self.tcp;
        if let Some((target, published)) = self.container.filter(|_| !svc.commented && !native) {
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
        for p in &self.other {
            let protocol = not_tcp(p).unwrap_or_default();
            svc.warn(format!(
                "ports {}: {protocol}, and devstack's proxy forwards TCP only: left out (the process binds it itself)",
                shown(p)
            ));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_entries() {
        assert_eq!(
            first_port(&Value::String("127.0.0.1:8080:80/tcp".into())),
            Some((80, Some(8080)))
        );
        assert_eq!(
            first_port(&Value::String("3000".into())),
            Some((3000, None))
        );
    }
}
