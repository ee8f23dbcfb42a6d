//! Who holds a TCP port: checked before a service starts, so that another process answering on
//! the service's port is named instead of passing its health probe. Also where a port is
//! listened on and where a session listens, read from the kernel's tables of sockets.

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

/// The kernel's listening TCP sockets, IPv4 and IPv6.
#[cfg(target_os = "linux")]
fn listeners() -> impl Iterator<Item = procfs::net::TcpNetEntry> {
    [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.state == procfs::net::TcpState::Listen)
}

/// The process listening on `port` (any address), if one is.
#[cfg(target_os = "linux")]
pub fn port_holder(port: u16) -> Option<PortHolder> {
    let inodes: Vec<u64> = listeners()
        .filter(|e| e.local_address.port() == port)
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

/// Where `port` is listened on (TCP), as a client on this machine reaches it: 127.0.0.1 for a
/// socket on 127.0.0.1 or 0.0.0.0, ::1 for one on ::1 or ::, the address itself otherwise.
/// Read from the kernel's tables: nothing connects to find out (a test connection shows in
/// the service's own log).
#[cfg(target_os = "linux")]
pub fn reachable_at(port: u16) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let listening: Vec<IpAddr> = listeners()
        .filter(|e| e.local_address.port() == port)
        .map(|e| e.local_address.ip())
        .collect();
    // Only the unspecified address stands for loopback: a socket on 127.0.0.2 is reached there.
    let reach = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            let v4 = v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::LOCALHOST);
            if v4.is_unspecified() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                v4.into()
            }
        }
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => *ip,
    };
    // IPv4 loopback first: what the callers' `<NAME>_URL` says.
    let mut reached: Vec<IpAddr> = listening.iter().map(reach).collect();
    reached.sort_by_key(|ip| (!ip.is_loopback(), ip.is_ipv6()));
    reached.first().map(|ip| SocketAddr::new(*ip, port))
}

/// How many TCP connections are open to `port` on this machine (established, either address
/// family): what a draining process still serves.
#[cfg(target_os = "linux")]
pub fn connections_to(port: u16) -> Option<usize> {
    let (v4, v6) = (procfs::net::tcp(), procfs::net::tcp6());
    if v4.is_err() && v6.is_err() {
        return None;
    }
    let mut open = 0;
    // (A machine without IPv6 has no tcp6 table.)
    for table in [v4, v6].into_iter().flatten() {
        open += table
            .iter()
            .filter(|e| e.state == procfs::net::TcpState::Established)
            .filter(|e| e.local_address.port() == port)
            .count();
    }
    Some(open)
}

/// Elsewhere: not known (a drain lasts its time).
#[cfg(not(target_os = "linux"))]
pub fn connections_to(_port: u16) -> Option<usize> {
    None
}

/// Elsewhere: connecting is the only way to tell.
#[cfg(not(target_os = "linux"))]
pub fn reachable_at(port: u16) -> Option<std::net::SocketAddr> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect(addr).ok().map(|_| addr)
}

/// The addresses the processes of session `session` listen on (TCP), sorted.
#[cfg(target_os = "linux")]
pub fn listening_in_session(session: i32) -> Vec<std::net::SocketAddr> {
    let mut inodes = std::collections::HashSet::new();
    for (proc, stat) in super::stat::all() {
        if stat.session != session {
            continue;
        }
        for fd in proc.fd().into_iter().flatten().flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target {
                inodes.insert(inode);
            }
        }
    }
    let mut found: Vec<std::net::SocketAddr> = listeners()
        .filter(|e| inodes.contains(&e.inode))
        .map(|e| e.local_address)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(not(target_os = "linux"))]
pub fn listening_in_session(_session: i32) -> Vec<std::net::SocketAddr> {
    Vec::new()
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
