//! Who holds a TCP port: checked before a service starts, so that another process answering on
//! the service's port is named instead of passing its health probe.

/// The process listening on `port` (any address), as `pid N (command line)`, if one is.
#[cfg(target_os = "linux")]
pub fn port_holder(port: u16) -> Option<String> {
    use procfs::net::TcpState;
    let inodes: Vec<u64> = [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.state == TcpState::Listen && e.local_address.port() == port)
        .map(|e| e.inode)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let all = procfs::process::all_processes().ok()?;
    for proc in all.flatten() {
        let Ok(fds) = proc.fd() else { continue };
        let holds = fds.flatten().any(|fd| {
            matches!(fd.target, procfs::process::FDTarget::Socket(inode) if inodes.contains(&inode))
        });
        if holds {
            let cmd = proc.cmdline().unwrap_or_default().join(" ");
            return Some(format!("pid {} ({})", proc.pid, printable(&cmd, 80)));
        }
    }
    Some("a process of another user".into())
}

/// Elsewhere: whether the port can be bound on loopback.
#[cfg(not(target_os = "linux"))]
pub fn port_holder(port: u16) -> Option<String> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .err()
        .map(|_| "another process".into())
}

/// At most `max` characters, control characters shown as `?` (a command line is untrusted text).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
