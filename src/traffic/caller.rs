//! Who is calling: the service whose process holds the other end of an accepted connection.
//!
//! On Linux, at accept (the caller is still waiting for an answer, so its socket exists), the
//! caller's socket is found in `/proc/net/tcp` (then `tcp6`, IPv4-mapped addresses unmapped) by
//! its address pair, which gives its inode; the inode is then looked for among the open files of
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

    /// The inode of the socket whose local end is `peer` and remote end `local` (the caller's
    /// socket, seen from its side). None if it is gone (no entry, or inode 0: closed, in
    /// TIME_WAIT).
    pub fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
        let unmapped = |a: SocketAddr| match a {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), v6.port()),
                None => a,
            },
            a => a,
        };
        let (peer, local) = (unmapped(peer), unmapped(local));
        let find = |entries: procfs::ProcResult<Vec<procfs::net::TcpNetEntry>>| {
            entries.ok()?.into_iter().find_map(|e| {
                (unmapped(e.local_address) == peer && unmapped(e.remote_address) == local)
                    .then_some(e.inode)
            })
        };
        let inode = find(procfs::net::tcp()).or_else(|| find(procfs::net::tcp6()))?;
        (inode != 0).then_some(inode)
    }

    #[derive(Default)]
    pub struct Cache {
        /// Every process seen: its session and when it was first seen.
        procs: HashMap<i32, (i32, Instant)>,
        /// Processes that held a caller's socket, most recent last: looked at first.
        recent: Vec<i32>,
    }

    impl Cache {
        /// The service whose session has a process holding socket `inode`.
        pub fn holder(&mut self, inode: u64, sessions: &Sessions) -> Option<Arc<str>> {
            let target = format!("socket:[{inode}]");
            let mut checked = Vec::new();
            for pass in 0..2 {
                if pass == 1 {
                    self.rescan();
                }
                let candidates = self.candidates(sessions, &checked);
                for (pid, service) in candidates {
                    checked.push(pid);
                    if holds(pid, &target) {
                        self.recent.retain(|&p| p != pid);
                        self.recent.push(pid);
                        if self.recent.len() > 64 {
                            self.recent.remove(0);
                        }
                        return Some(service);
                    }
                }
            }
            None
        }

        /// The stack's processes not yet checked, recent holders first.
        fn candidates(&self, sessions: &Sessions, checked: &[i32]) -> Vec<(i32, Arc<str>)> {
            let mut out: Vec<(i32, Arc<str>)> = self
                .procs
                .iter()
                .filter(|(pid, _)| !checked.contains(pid))
                .filter_map(|(&pid, &(sid, _))| sessions.service(sid).map(|s| (pid, s)))
                .collect();
            let rank = |pid: i32| self.recent.iter().position(|&p| p == pid);
            out.sort_by_key(|(pid, _)| std::cmp::Reverse(rank(*pid)));
            out
        }

        /// Forget processes that exited; read the session of new ones (and of young ones again).
        fn rescan(&mut self) {
            let Ok(dir) = std::fs::read_dir("/proc") else {
                return;
            };
            let now = Instant::now();
            let mut alive = HashMap::with_capacity(self.procs.len());
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                let known = self.procs.get(&pid).copied();
                let fresh = match known {
                    Some((sid, seen)) if now.duration_since(seen) > SETTLE => Some((sid, seen)),
                    _ => session_of(pid).map(|sid| (sid, known.map_or(now, |(_, seen)| seen))),
                };
                if let Some(v) = fresh {
                    alive.insert(pid, v);
                }
            }
            self.procs = alive;
            self.recent.retain(|pid| self.procs.contains_key(pid));
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
