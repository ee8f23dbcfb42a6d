//! Who holds a TCP port: checked before a service starts, so that another process answering on
//! the service's port is named instead of passing its health probe.

/// Who listens on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    /// None when no process shows the socket (it is exiting, or belongs to another user).
    pub pid: Option<i32>,
    /// Its `DEVSTACK_SERVICE`: a process a devstack service started.
    pub service: Option<String>,
    /// `pid N (command line)`, for messages.
    pub text: String,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The process listening on `port` (any address), if one is.
#[cfg(target_os = "linux")]
pub fn port_holder(port: u16) -> Option<PortHolder> {
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
            let service = proc
                .environ()
                .ok()
                .and_then(|env| super::group::service_of(&env));
            return Some(PortHolder {
                pid: Some(proc.pid),
                service,
                text: format!("pid {} ({})", proc.pid, printable(&cmd, 80)),
            });
        }
    }
    Some(PortHolder {
        pid: None,
        service: None,
        text: "a process devstack can't see (one that is exiting, or another user's)".into(),
    })
}

/// Does a socket listen where a connection to `addr` would land (its address, or any address
/// of its family)? Read from the kernel's socket tables, without connecting: a test connection
/// is one more request the service logs (`? / -> 404`).
#[cfg(target_os = "linux")]
pub fn listening(addr: std::net::SocketAddr) -> bool {
    use procfs::net::TcpState;
    let table = if addr.is_ipv4() {
        procfs::net::tcp()
    } else {
        procfs::net::tcp6()
    };
    table.is_ok_and(|entries| {
        entries.iter().any(|e| {
            e.state == TcpState::Listen
                && e.local_address.port() == addr.port()
                && (e.local_address.ip() == addr.ip() || e.local_address.ip().is_unspecified())
        })
    })
}

/// Elsewhere: whether a connection is accepted.
#[cfg(not(target_os = "linux"))]
pub fn listening(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

/// Elsewhere: whether the port can be bound on loopback.
#[cfg(not(target_os = "linux"))]
pub fn port_holder(port: u16) -> Option<PortHolder> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .err()
        .map(|_| PortHolder {
            pid: None,
            service: None,
            text: "another process".into(),
        })
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
