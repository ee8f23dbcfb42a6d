//! Who is calling: the service whose process holds the other end of an accepted connection.
//!
//! On Linux, at accept (the caller is still waiting for an answer, so its socket exists), the
//! caller's socket is looked up by its address pair through netlink's sock_diag (falling back to
//! `/proc/net/tcp` and `tcp6`, IPv4-mapped addresses unmapped), which gives its inode; the inode is then looked for among the open files of
//! the processes of the stack's sessions only (every process devstack starts for a service leads
//! a session of its own, which [`Sessions`] maps to the service). The processes of those sessions
//! are cached: only a miss rescans `/proc`, and then only reads the `stat` of processes it has not
//! seen before. Elsewhere every caller is `external`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The calling side of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// A process of this service's session.
    Service(Arc<str>),
    /// A process outside the stack (a browser, curl in a terminal, a test).
    External,
    /// The caller had gone before it could be looked up.
    Unknown,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Caller::Service(name) => name,
            Caller::External => "external",
            Caller::Unknown => "unknown",
        })
    }
}

/// Serialised as its name: the service's, `external` or `unknown`.
impl Serialize for Caller {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Caller {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Caller, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "external" => Caller::External,
            "unknown" => Caller::Unknown,
            _ => Caller::Service(name.into()),
        })
    }
}

/// The stack's sessions: session id (the pid of the process devstack started, which leads it)
/// → the service it belongs to. Kept by whoever spawns (insert at spawn, remove at exit); read
/// by the proxy at each new connection.
#[derive(Debug, Default)]
pub struct Sessions {
    map: RwLock<HashMap<i32, Arc<str>>>,
}

impl Sessions {
    pub fn new() -> Arc<Sessions> {
        Arc::default()
    }

    pub fn insert(&self, session: i32, service: &str) {
        self.write().insert(session, service.into());
    }

    pub fn remove(&self, session: i32) {
        self.write().remove(&session);
    }

    pub fn service(&self, session: i32) -> Option<Arc<str>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .cloned()
    }

    fn is_empty(&self) -> bool {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i32, Arc<str>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Finds callers; one per proxy, shared by its connections (lookups are serialised on the cache,
/// and each is a few hundred microseconds of `/proc` reads).
pub struct Attributor {
    sessions: Arc<Sessions>,
    #[cfg(target_os = "linux")]
    cache: std::sync::Mutex<linux::Cache>,
}

impl Attributor {
    pub fn new(sessions: Arc<Sessions>) -> Attributor {
        Attributor {
            sessions,
            #[cfg(target_os = "linux")]
            cache: Default::default(),
        }
    }

    /// The caller of a connection accepted on `local` from `peer` (blocking: `/proc` reads).
    pub fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Caller {
        #[cfg(target_os = "linux")]
        {
            let Some(inode) = linux::socket_inode(peer, local) else {
                return Caller::Unknown;
            };
            if self.sessions.is_empty() {
                return Caller::External;
            }
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .holder(inode, &self.sessions)
                .map_or(Caller::External, Caller::Service)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (peer, local, &self.sessions);
            Caller::External
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Sessions;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A process seen young may still be between its fork and its `setsid`: its session is read
    /// again at the next rescan.
    const SETTLE: Duration = Duration::from_secs(2);
    /// How many of the latest holders of a caller's socket are looked at before anything else.
    const RECENT_FIRST: usize = 4;

    /// The inode of the socket whose local end is `peer` and remote end `local` (the caller's
    /// socket, seen from its side). None if it is gone (no such socket, or inode 0: closed).
    pub fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
        let unmapped = |a: SocketAddr| match a {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), v6.port()),
                None => a,
            },
            a => a,
        };
        let (peer, local) = (unmapped(peer), unmapped(local));
        let inode = match sock_diag(peer, local) {
            Ok(found) => found,
            // No sock_diag (an old or restricted kernel): the tables, much slower.
            Err(_) => proc_net_tcp(peer, local, unmapped),
        }?;
        (inode != 0).then_some(inode)
    }

    /// An exact lookup by address pair through netlink's sock_diag (what `ss` uses): tens of
    /// microseconds, where reading `/proc/net/tcp` costs milliseconds (the kernel walks its
    /// whole table). An IPv6 socket with IPv4-mapped addresses is found by the IPv4 lookup.
    fn sock_diag(peer: SocketAddr, local: SocketAddr) -> std::io::Result<Option<u64>> {
        use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
        use netlink_packet_sock_diag::{
            AF_INET, AF_INET6, IPPROTO_TCP, SockDiagMessage,
            inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
        };
        use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

        let socket = Socket::new(NETLINK_SOCK_DIAG)?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: if peer.is_ipv4() { AF_INET } else { AF_INET6 },
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::all(),
                socket_id: SocketId {
                    source_port: peer.port(),
                    destination_port: local.port(),
                    source_address: peer.ip(),
                    destination_address: local.ip(),
                    interface_id: 0,
                    cookie: [0xff; 8], // INET_DIAG_NOCOOKIE: look up by addresses
                },
            })
            .into(),
        );
        packet.finalize();
        let mut request = vec![0; packet.buffer_len()];
        packet.serialize(&mut request);
        socket.send_to(&request, &netlink_sys::SocketAddr::new(0, 0), 0)?;
        let mut reply = Vec::with_capacity(8192);
        socket.recv(&mut reply, 0)?;
        let message = <NetlinkMessage<SockDiagMessage>>::deserialize(&reply)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                Ok(Some(u64::from(response.header.inode)))
            }
            // ENOENT: no such socket (the caller has gone).
            NetlinkPayload::Error(e) if e.code.map(|c| c.get()) == Some(-libc::ENOENT) => Ok(None),
            NetlinkPayload::Error(e) => Err(e.into()),
            _ => Err(std::io::Error::other("unexpected sock_diag answer")),
        }
    }

    fn proc_net_tcp(
        peer: SocketAddr,
        local: SocketAddr,
        unmapped: impl Fn(SocketAddr) -> SocketAddr,
    ) -> Option<u64> {
        let find = |entries: procfs::ProcResult<Vec<procfs::net::TcpNetEntry>>| {
            entries.ok()?.into_iter().find_map(|e| {
                (unmapped(e.local_address) == peer && unmapped(e.remote_address) == local)
                    .then_some(e.inode)
            })
        };
        find(procfs::net::tcp()).or_else(|| find(procfs::net::tcp6()))
    }

    #[derive(Default)]
    pub struct Cache {
        /// Every process seen: its session and when it was first seen (None: at the first scan,
        /// or settled).
        procs: HashMap<i32, (i32, Option<Instant>)>,
        scanned: bool,
        /// Processes that held a caller's socket, most recent last: looked at first.
        recent: Vec<i32>,
    }

    impl Cache {
        /// The service whose session has a process holding socket `inode`. Looked at in the
        /// order a caller is likeliest found: the last few processes that held a caller's
        /// socket (a service's client pool), then processes new since the last lookup (a
        /// short-lived `curl`), then the rest of the stack's processes.
        pub fn holder(&mut self, inode: u64, sessions: &Sessions) -> Option<Arc<str>> {
            let target = format!("socket:[{inode}]");
            let mut checked = Vec::new();
            let recent: Vec<i32> = self
                .recent
                .iter()
                .rev()
                .take(RECENT_FIRST)
                .copied()
                .collect();
            if let Some(found) = self.search(&recent, &target, sessions, &mut checked) {
                return Some(found);
            }
            let new = self.rescan(sessions);
            if let Some(found) = self.search(&new, &target, sessions, &mut checked) {
                return Some(found);
            }
            let rest: Vec<i32> = self.procs.keys().copied().collect();
            self.search(&rest, &target, sessions, &mut checked)
        }

        /// The first of `pids` (of the stack's sessions, not checked yet) that holds `target`.
        fn search(
            &mut self,
            pids: &[i32],
            target: &str,
            sessions: &Sessions,
            checked: &mut Vec<i32>,
        ) -> Option<Arc<str>> {
            for &pid in pids {
                let Some(service) = self
                    .procs
                    .get(&pid)
                    .and_then(|&(sid, _)| sessions.service(sid))
                else {
                    continue;
                };
                if checked.contains(&pid) {
                    continue;
                }
                checked.push(pid);
                if holds(pid, target) {
                    self.recent.retain(|&p| p != pid);
                    self.recent.push(pid);
                    if self.recent.len() > 64 {
                        self.recent.remove(0);
                    }
                    return Some(service);
                }
            }
            None
        }

        /// Forget processes that exited; read the session of new ones (and again of young ones
        /// not in the stack: they may not have called `setsid` yet). Returns the new ones.
        fn rescan(&mut self, sessions: &Sessions) -> Vec<i32> {
            let Ok(dir) = std::fs::read_dir("/proc") else {
                return Vec::new();
            };
            let now = Instant::now();
            let mut alive = HashMap::with_capacity(self.procs.len());
            let mut new = Vec::new();
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                let known = self.procs.get(&pid).copied();
                let young =
                    |seen: Option<Instant>| seen.is_some_and(|t| now.duration_since(t) < SETTLE);
                let entry = match known {
                    Some((sid, seen)) if young(seen) && sessions.service(sid).is_none() => {
                        session_of(pid).map(|sid| (sid, seen))
                    }
                    Some((sid, seen)) => Some((sid, seen.filter(|_| young(seen)))),
                    None => {
                        new.push(pid);
                        // A process there at the first scan is not between fork and setsid.
                        session_of(pid).map(|sid| (sid, self.scanned.then_some(now)))
                    }
                };
                if let Some(v) = entry {
                    alive.insert(pid, v);
                }
            }
            self.procs = alive;
            self.scanned = true;
            self.recent.retain(|pid| self.procs.contains_key(pid));
            new
        }
    }

    /// A process's session id, from `/proc/PID/stat`.
    fn session_of(pid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_ascii_whitespace().nth(3)?.parse().ok()
    }

    /// Whether process `pid` has `target` (`socket:[INODE]`) open.
    fn holds(pid: i32, target: &str) -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|link| link.as_os_str().as_encoded_bytes() == target.as_bytes())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_session_of_this_process_is_read_from_stat() {
            let pid = std::process::id() as i32;
            assert_eq!(
                session_of(pid),
                Some(nix::unistd::getsid(None).unwrap().as_raw())
            );
        }

        #[test]
        fn a_connected_socket_is_found_and_its_holder_too() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (_server, peer) = listener.accept().unwrap();
            let inode = socket_inode(peer, listener.local_addr().unwrap()).expect("found");
            assert!(holds(
                std::process::id() as i32,
                &format!("socket:[{inode}]")
            ));
            drop(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_serialise_as_names() {
        let callers = [
            Caller::Service("api".into()),
            Caller::External,
            Caller::Unknown,
        ];
        let json = serde_json::to_string(&callers).unwrap();
        assert_eq!(json, r#"["api","external","unknown"]"#);
        let back: Vec<Caller> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, callers);
    }

    #[test]
    fn this_process_is_external() {
        let sessions = Sessions::new();
        sessions.insert(i32::MAX - 7, "nobody");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let attributor = Attributor::new(sessions);
        let caller = attributor.resolve(peer, listener.local_addr().unwrap());
        assert_eq!(caller, Caller::External);
    }
}
