//! Health checks that name a service's own port (`curl -f http://localhost:8000/health`): as
//! written, they would go through devstack's proxy (the port the service listens on here is
//! `$PORT`) and show as traffic; the importers make them reach the service directly.

/// The path a check like `curl -f http://localhost:8000/health || exit 1` (or `wget -q -O -
/// …`) asks of `port` on this machine, when it does nothing else: an `http` probe does the same.
pub(super) fn http_check(cmd: &str, port: u16) -> Option<String> {
    let words = shlex::split(cmd)?;
    let program = words.first()?.rsplit('/').next()?;
    if !matches!(program, "curl" | "wget") {
        return None;
    }
    let mut path = None;
    for w in &words[1..] {
        if let Some((at, p)) = local_url(w) {
            if at != port || path.is_some() {
                return None;
            }
            path = Some(p);
        } else if !(w.starts_with('-') || matches!(w.as_str(), "||" | "exit" | "1" | "/dev/null")) {
            return None;
        }
    }
    path
}

/// `http://localhost:8000/health` (or 127.0.0.1, 0.0.0.0, [::1]) → (8000, `/health`).
fn local_url(word: &str) -> Option<(u16, String)> {
    let rest = word.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && !port.contains(']') => (name, port.parse().ok()?),
        _ => (host, 80),
    };
    matches!(name, "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]").then_some((port, path))
}

/// `cmd` with `localhost:PORT` (or 127.0.0.1, 0.0.0.0) of the service's port made `${PORT}`,
/// the port it listens on here; None when it names none.
pub(super) fn to_own_port(cmd: &str, port: u16) -> Option<String> {
    let mut out = cmd.to_string();
    for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
        out = out.replace(&format!("{host}:{port}"), "127.0.0.1:${PORT}");
    }
    (out != cmd).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_of_the_own_port_probes_it_directly() {
        assert_eq!(
            http_check("curl -f http://localhost:8000/health || exit 1", 8000).as_deref(),
            Some("/health")
        );
        assert_eq!(
            http_check("wget -q -O /dev/null http://127.0.0.1:8000", 8000).as_deref(),
            Some("/")
        );
        assert_eq!(http_check("curl -f http://localhost:9000/h", 8000), None);
        assert_eq!(
            http_check("curl -f http://localhost:8000/h | grep ok", 8000),
            None
        );
        assert_eq!(http_check("curl -f http://db:8000/h", 8000), None);
        assert_eq!(
            to_own_port("nc -z localhost 8000 && nc -z 127.0.0.1:8000", 8000).as_deref(),
            Some("nc -z localhost 8000 && nc -z 127.0.0.1:${PORT}")
        );
        assert_eq!(to_own_port("pg_isready", 8000), None);
    }
}
