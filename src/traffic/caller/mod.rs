//! Who is calling: the service whose process holds the other end of an accepted connection.
//!
//! On Linux, at accept (the caller is still waiting for an answer, so its socket exists), the
//! caller's socket is looked up by its address pair through netlink's sock_diag, which gives its
//! inode; the inode's holder is then found in an index of the sockets the stack's processes hold
//! (`linux::Index`), kept by one thread of its own. Looking up never delays forwarding: the
//! proxy forwards at once and a connection's records get their caller when it is known
//! ([`Lookup`]). Elsewhere every caller is `external`.
//!
//! The stack's processes are those of the stack's sessions ([`Sessions`]: every process devstack
//! starts for a service leads a session of its own) and, for a process outside them (one that
//! left its session, or one whose session is not registered yet), those whose environment
//! carries the stack's mark.

#[cfg(target_os = "linux")]
mod linux;

use crate::ignored::Ignore;
use crate::sync::Unpoisoned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The calling side of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// A process of this service's session.
    Service(Arc<str>),
    /// A process outside the stack (a browser, curl in a terminal, a test).
    External,
    /// The caller had gone before it could be looked up.
    Unknown,
    /// devstack, sending a kept request again (`traffic replay`).
    Replay,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Caller::Service(name) => name,
            Caller::External => "external",
            Caller::Unknown => "unknown",
            Caller::Replay => "replay",
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
            "replay" => Caller::Replay,
            _ => Caller::Service(name.into()),
        })
    }
}

/// The stack's sessions: session id (the pid of the process devstack started, which leads it)
/// → the service it belongs to. Kept by whoever spawns (insert at spawn, remove at exit); read
/// by the attributor. And the stack's mark: what its processes carry in their environment
/// (`DEVSTACK_STACK`), which tells whose a process outside those sessions is (`DEVSTACK_SERVICE`).
#[derive(Debug, Default)]
pub struct Sessions {
    map: RwLock<HashMap<i32, Arc<str>>>,
    mark: Option<Mark>,
}

/// The environment variables that mark a stack's processes.
#[derive(Debug, Clone)]
pub struct Mark {
    /// `DEVSTACK_STACK=<stack>`, as it appears in `/proc/PID/environ`.
    stack: Vec<u8>,
    /// `DEVSTACK_SERVICE=`, followed by the service's name.
    service_prefix: Vec<u8>,
}

impl Mark {
    /// Processes whose environment has `stack_var=stack`, named by their `service_var`.
    pub fn new(stack_var: &str, stack: &str, service_var: &str) -> Mark {
        Mark {
            stack: format!("{stack_var}={stack}").into_bytes(),
            service_prefix: format!("{service_var}=").into_bytes(),
        }
    }

    /// The service named in an environment (`/proc/PID/environ`: NUL-separated) carrying the mark.
    pub fn service_in(&self, environ: &[u8]) -> Option<Arc<str>> {
        let mut vars = environ.split(|&b| b == 0);
        let mut ours = false;
        let mut service = None;
        for var in vars.by_ref() {
            if var == self.stack.as_slice() {
                ours = true;
            } else if let Some(name) = var.strip_prefix(self.service_prefix.as_slice()) {
                service = std::str::from_utf8(name).ok().map(Arc::from);
            }
        }
        service.filter(|_| ours)
    }
}

impl Sessions {
    pub fn new() -> Arc<Sessions> {
        Arc::default()
    }

    /// Sessions of a stack whose processes carry `mark`.
    pub fn marked(mark: Mark) -> Arc<Sessions> {
        Arc::new(Sessions {
            map: RwLock::default(),
            mark: Some(mark),
        })
    }

    pub fn insert(&self, session: i32, service: &str) {
        self.write().insert(session, service.into());
    }

    pub fn remove(&self, session: i32) {
        self.write().remove(&session);
    }

    pub fn service(&self, session: i32) -> Option<Arc<str>> {
        self.map.read().unpoisoned().get(&session).cloned()
    }

    pub fn mark(&self) -> Option<&Mark> {
        self.mark.as_ref()
    }

    /// No stack process can be told: every caller is external.
    fn is_empty(&self) -> bool {
        self.mark.is_none() && self.map.read().unpoisoned().is_empty()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i32, Arc<str>>> {
        self.map.write().unpoisoned()
    }
}

/// How long a record waits for its caller before it is counted as `unknown` (the lookup is
/// answered within milliseconds unless the stack's processes hold tens of thousands of files
/// and keep changing them).
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The caller of one connection, as it becomes known: the connection is forwarded meanwhile.
#[derive(Debug, Clone)]
pub struct Lookup(watch::Receiver<Option<Caller>>);

impl Lookup {
    /// A caller known already (devstack's own replays).
    pub fn known(caller: Caller) -> Lookup {
        Lookup(watch::channel(Some(caller)).1)
    }

    /// The caller, if known by now.
    pub fn now(&self) -> Option<Caller> {
        self.0.borrow().clone()
    }

    /// The caller, once known (`unknown` if no answer comes in time).
    pub async fn caller(&mut self) -> Caller {
        self.within(ANSWER_WAIT).await.unwrap_or(Caller::Unknown)
    }

    /// The caller, if known within `wait`.
    pub async fn within(&mut self, wait: Duration) -> Option<Caller> {
        match tokio::time::timeout(wait, self.0.wait_for(Option::is_some)).await {
            Ok(Ok(found)) => found.clone(),
            _ => None,
        }
    }
}

/// Finds callers; one per proxy, shared by its connections. On Linux its index lives on a
/// thread of its own, which answers the lookups asked meanwhile together.
pub struct Attributor {
    /// The index's thread (None where there is none: every caller is `external`).
    #[cfg(target_os = "linux")]
    asks: Option<std::sync::mpsc::Sender<linux::Ask>>,
}

impl Attributor {
    pub fn new(sessions: Arc<Sessions>) -> Attributor {
        #[cfg(target_os = "linux")]
        return Attributor {
            asks: linux::start(sessions),
        };
        #[cfg(not(target_os = "linux"))]
        {
            drop(sessions);
            Attributor {}
        }
    }

    /// Look up the caller of a connection accepted on `local` from `peer`; `answer` is called
    /// with it, on the attributor's thread.
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub fn ask(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        answer: impl FnOnce(Caller) + Send + 'static,
    ) {
        #[cfg(target_os = "linux")]
        if let Some(asks) = &self.asks {
            let ask = linux::Ask {
                peer,
                local,
                answer: Box::new(answer),
            };
            if let Err(std::sync::mpsc::SendError(ask)) = asks.send(ask) {
                (ask.answer)(Caller::Unknown);
            }
            return;
        }
        answer(Caller::External)
    }

    /// The caller of a connection, answered in a moment (never blocks).
    pub fn lookup(&self, peer: SocketAddr, local: SocketAddr) -> Lookup {
        let (tx, rx) = watch::channel(None);
        self.ask(peer, local, move |caller| {
            tx.send_replace(Some(caller));
        });
        Lookup(rx)
    }

    /// The caller of a connection, waited for (blocking).
    pub fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Caller {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.ask(peer, local, move |caller| {
            tx.send(caller)
                .or_say("the answer came after it was waited for");
        });
        rx.recv_timeout(ANSWER_WAIT).unwrap_or(Caller::Unknown)
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

    #[test]
    fn a_mark_names_the_service_only_with_the_stacks_mark() {
        let mark = Mark::new("DEVSTACK_STACK", "/a", "DEVSTACK_SERVICE");
        let env = b"HOME=/root\0DEVSTACK_SERVICE=api\0DEVSTACK_STACK=/a\0";
        assert_eq!(mark.service_in(env).as_deref(), Some("api"));
        let other = b"DEVSTACK_SERVICE=api\0DEVSTACK_STACK=/b\0";
        assert_eq!(mark.service_in(other), None);
        let prefix = b"DEVSTACK_SERVICE=api\0DEVSTACK_STACK=/ab\0";
        assert_eq!(mark.service_in(prefix), None);
        assert_eq!(mark.service_in(b"DEVSTACK_STACK=/a\0"), None);
    }
}
