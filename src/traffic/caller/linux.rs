//! Finding a caller on Linux: its socket's inode by sock_diag, the inode's holder in an index of
//! the sockets the stack's processes hold.
//!
//! The index is kept by one thread, which owns it (no lock is held while `/proc` is read) and
//! answers every lookup asked meanwhile at once. A lookup whose inode the index knows is answered
//! at once; the others wait for one refresh, which reads only what may have changed:
//! - the processes new since the last refresh (their session, and for one outside the stack's
//!   sessions its environment, for the stack's mark);
//! - the sockets of the stack's processes that ran since their sockets were last read (a
//!   process's open files change only by its own system calls, and the kernel counts each
//!   thread's time on a CPU: `/proc/PID/task/TID/schedstat`). A database idling with 15,000
//!   open files costs a few microseconds a refresh, not the 70 ms of reading them all.
//!
//! A process whose files take long to read (thousands, and changing) is read again only after
//! three times that long, so that the thread never spends more than a quarter of its time on
//! it; the lookups that need it wait (their records wait, never the forwarding).

use super::{Caller, Mark, Sessions};
use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// A process seen young may still be between its fork and its `setsid` or `exec`: its session
/// and environment are read again at each refresh until then.
const SETTLE: Duration = Duration::from_secs(2);
/// Reading a process's sockets taking longer than this is paced (three times as long between
/// two readings).
const SLOW_READ: Duration = Duration::from_millis(1);
/// At most this much of an environment is read to find the stack's mark.
const MAX_ENVIRON: usize = 256 * 1024;

/// One lookup: the caller's address as the proxy saw it, and what to do with the answer.
pub struct Ask {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub answer: Box<dyn FnOnce(Caller) + Send>,
}

/// The attributor's thread; it ends when the returned sender is dropped.
pub fn start(sessions: Arc<Sessions>) -> Option<Sender<Ask>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("devstack-callers".into())
        .spawn(move || serve(&rx, &sessions))
        .ok()?;
    Some(tx)
}

type Answer = Box<dyn FnOnce(Caller) + Send>;

fn serve(asks: &Receiver<Ask>, sessions: &Sessions) {
    let mut diag = Diag::default();
    let mut index = Index::default();
    let mut waiting: Vec<(u64, Answer)> = Vec::new();
    loop {
        let first = if waiting.is_empty() {
            match asks.recv() {
                Ok(ask) => Some(ask),
                Err(_) => return,
            }
        } else {
            match asks.recv_timeout(index.pause()) {
                Ok(ask) => Some(ask),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        for ask in first.into_iter().chain(asks.try_iter()) {
            let Some(inode) = diag.inode(ask.peer, ask.local) else {
                (ask.answer)(Caller::Unknown);
                continue;
            };
            if sessions.is_empty() {
                (ask.answer)(Caller::External);
                continue;
            }
            match index.holder(inode, sessions) {
                Some(service) => (ask.answer)(Caller::Service(service)),
                None => waiting.push((inode, ask.answer)),
            }
        }
        if waiting.is_empty() {
            continue;
        }
        // Every socket a stack process held when the lookups were asked is in the index once
        // a refresh completes.
        let complete = index.refresh(sessions);
        for (inode, answer) in std::mem::take(&mut waiting) {
            match index.holder(inode, sessions) {
                Some(service) => answer(Caller::Service(service)),
                None if complete => answer(Caller::External),
                None => waiting.push((inode, answer)),
            }
        }
    }
}

/// The socket inodes the stack's processes hold, and every process seen.
#[derive(Default)]
struct Index {
    procs: HashMap<i32, Proc>,
    by_inode: HashMap<u64, i32>,
}

/// A process as the index knows it.
struct Proc {
    /// The inode of its `/proc/PID` (as `readdir` gives it): a pid used again by another
    /// process has another (procfs makes a new one for each process), so that a reused pid is
    /// never taken for the process that had it.
    ino: u64,
    session: i32,
    /// Its service by the stack's mark in its environment.
    marked: Option<Arc<str>>,
    /// When it was first seen, while it may still change its session or environment.
    young: Option<Instant>,
    /// While it is the stack's: its sockets.
    held: Option<Held>,
}

/// What a stack process holds, and how current that is.
struct Held {
    /// How much each of its threads had run when its sockets were read.
    ran: Option<Vec<(i32, u64, u64)>>,
    sockets: Vec<u64>,
    /// Not read again before this (a process whose files take long to read).
    not_before: Instant,
}

impl Proc {
    /// Its session and mark; `young`: since when it is known to be young, or None to tell by
    /// its start time.
    fn read(pid: i32, ino: u64, mark: Option<&Mark>, young: Option<Instant>) -> Option<Proc> {
        let stat = crate::process::stat(pid)?;
        let young = young.or_else(|| started_lately(stat.starttime));
        let mut proc = Proc {
            ino,
            session: stat.session,
            marked: None,
            young,
            held: None,
        };
        proc.marked = mark.and_then(|m| marked(pid, m));
        Some(proc)
    }

    fn owner(&self, sessions: &Sessions) -> Option<Arc<str>> {
        sessions
            .service(self.session)
            .or_else(|| self.marked.clone())
    }
}

/// When a process that started at `starttime` (clock ticks since boot) was new, if that was
/// less than `SETTLE` ago.
fn started_lately(starttime: u64) -> Option<Instant> {
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    let age = Duration::from_secs_f64((uptime - starttime as f64 / ticks).max(0.0));
    (age < SETTLE).then(|| Instant::now().checked_sub(age).unwrap_or_else(Instant::now))
}

/// The service named by the stack's mark in a process's environment.
fn marked(pid: i32, mark: &Mark) -> Option<Arc<str>> {
    use std::io::Read;
    let mut environ = Vec::new();
    File::open(format!("/proc/{pid}/environ"))
        .ok()?
        .take(MAX_ENVIRON as u64)
        .read_to_end(&mut environ)
        .ok()?;
    mark.service_in(&environ)
}

impl Index {
    /// The service whose process held socket `inode` when it was last read.
    fn holder(&self, inode: u64, sessions: &Sessions) -> Option<Arc<str>> {
        let pid = self.by_inode.get(&inode)?;
        self.procs.get(pid)?.owner(sessions)
    }

    /// How long until a paced process may be read again.
    fn pause(&self) -> Duration {
        let now = Instant::now();
        self.procs
            .values()
            .filter_map(|p| p.held.as_ref())
            .map(|h| h.not_before.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(SLOW_READ)
    }

    /// Bring the index up to date: processes come and gone, the sockets of those of the stack
    /// that ran since they were read. False if a paced process had to be left for later.
    fn refresh(&mut self, sessions: &Sessions) -> bool {
        let now = Instant::now();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return true;
        };
        self.read_processes(dir, sessions, now);
        self.read_sockets(sessions, now)
    }

    /// The processes listed in `dir` (`/proc`) replace those known: a known one is kept (its
    /// session and mark read again while it is young and no service's), a new one is read, and
    /// what is gone is forgotten with its sockets.
    fn read_processes(&mut self, dir: std::fs::ReadDir, sessions: &Sessions, now: Instant) {
        let mark = sessions.mark();
        let young = |since: Option<Instant>| since.filter(|t| now.duration_since(*t) < SETTLE);
        let mut alive = HashMap::with_capacity(self.procs.len());
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let ino = std::os::unix::fs::DirEntryExt::ino(&entry);
            let known = self.procs.remove(&pid).and_then(|mut p| {
                if p.ino != ino {
                    // Another process with this pid (or, rarely, the same one's inode made
                    // again after the kernel evicted it: read anew all the same; start times
                    // count in ticks of 10 ms, too coarse to tell a pid used again at once).
                    self.forget(pid, &p);
                    return None;
                }
                p.young = young(p.young);
                if p.young.is_some() && p.owner(sessions).is_none() {
                    // Maybe between its fork and its `setsid` or `exec`: read it again.
                    let Some(again) = Proc::read(pid, ino, mark, p.young) else {
                        self.forget(pid, &p);
                        return None;
                    };
                    (p.session, p.marked) = (again.session, again.marked);
                }
                Some(p)
            });
            // A process first seen is young if it started less than `SETTLE` ago (even at
            // the first reading: one may be between its fork and its `setsid` right then).
            let proc = known.or_else(|| Proc::read(pid, ino, mark, None));
            if let Some(p) = proc {
                alive.insert(pid, p);
            }
        }
        for (pid, gone) in std::mem::replace(&mut self.procs, alive) {
            self.forget(pid, &gone);
        }
    }

    /// The sockets of the stack's processes that ran since they were last read, read again
    /// and indexed (a paced one only once its pause is over); a process no longer the stack's
    /// is taken out of the index. False if a paced process had to be left for later.
    fn read_sockets(&mut self, sessions: &Sessions, now: Instant) -> bool {
        let mut complete = true;
        let Index {
            procs, by_inode, ..
        } = self;
        for (&pid, proc) in procs.iter_mut() {
            if proc.owner(sessions).is_none() {
                if let Some(held) = proc.held.take() {
                    unindex(by_inode, pid, &held.sockets);
                }
                continue;
            }
            let held = proc.held.get_or_insert_with(|| Held {
                ran: None,
                sockets: Vec::new(),
                not_before: now,
            });
            // Read before the sockets: whatever the process does after is seen next time.
            let ran = ran(pid);
            if ran.is_some() && ran == held.ran {
                continue;
            }
            if Instant::now() < held.not_before {
                complete = false;
                continue;
            }
            let start = Instant::now();
            let sockets = sockets_of(pid);
            let took = start.elapsed();
            held.not_before = if took > SLOW_READ {
                Instant::now() + took * 3
            } else {
                now
            };
            unindex(by_inode, pid, &held.sockets);
            for &inode in &sockets {
                by_inode.insert(inode, pid);
            }
            held.sockets = sockets;
            held.ran = ran;
        }
        complete
    }

    fn forget(&mut self, pid: i32, proc: &Proc) {
        if let Some(held) = &proc.held {
            unindex(&mut self.by_inode, pid, &held.sockets);
        }
    }
}

fn unindex(by_inode: &mut HashMap<u64, i32>, pid: i32, sockets: &[u64]) {
    for inode in sockets {
        if by_inode.get(inode) == Some(&pid) {
            by_inode.remove(inode);
        }
    }
}

/// How much each thread of a process has run (`/proc/PID/task/TID/schedstat`: time on a CPU and
/// times scheduled), by thread. None where the kernel does not say (it says zeros without
/// scheduler statistics), and while a thread is on a CPU: its counts move only at a tick or a
/// switch, so a thread running right now may have opened a socket they do not show yet.
fn ran(pid: i32) -> Option<Vec<(i32, u64, u64)>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
        let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
        let (Some(Some(time)), _, Some(Some(runs))) = (fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        // On a CPU (or waiting for one) now.
        let running = crate::process::thread_stat(pid, tid).is_some_and(|t| t.state == 'R');
        if runs == 0 || running {
            return None;
        }
        threads.push((tid, time, runs));
    }
    threads.sort_unstable();
    Some(threads)
}

/// The inodes of the sockets process `pid` has open.
fn sockets_of(pid: i32) -> Vec<u64> {
    use nix::dir::Dir;
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::{Mode, SFlag, fstatat};
    let Ok(mut dir) = Dir::open(
        format!("/proc/{pid}/fd").as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    // SAFETY: `dir` outlives every use of its descriptor below.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut sockets = Vec::new();
    for entry in dir.iter().flatten() {
        let name = entry.file_name();
        if name.to_bytes().starts_with(b".") {
            continue;
        }
        // Following the link: the socket itself, whose inode is the one sock_diag gives.
        if let Ok(st) = fstatat(fd, name, AtFlags::empty())
            && SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK
        {
            sockets.push(st.st_ino);
        }
    }
    sockets
}

/// Socket lookups by address pair, on one netlink socket kept open.
#[derive(Default)]
struct Diag {
    socket: Option<netlink_sys::Socket>,
}

impl Diag {
    /// The inode of the socket whose local end is `peer` and remote end `local` (the caller's
    /// socket, seen from its side). None if it is gone (no such socket, or inode 0: closed).
    fn inode(&mut self, peer: SocketAddr, local: SocketAddr) -> Option<u64> {
        let (peer, local) = (unmapped(peer), unmapped(local));
        let inode = match self.sock_diag(peer, local) {
            Ok(found) => found,
            // No sock_diag (an old or restricted kernel): the tables, much slower.
            Err(_) => {
                self.socket = None;
                proc_net_tcp(peer, local)
            }
        }?;
        (inode != 0).then_some(inode)
    }

    /// An exact lookup by address pair through netlink's sock_diag (what `ss` uses): tens of
    /// microseconds, where reading `/proc/net/tcp` costs milliseconds (the kernel walks its
    /// whole table). An IPv6 socket with IPv4-mapped addresses is found by the IPv4 lookup.
    fn sock_diag(&mut self, peer: SocketAddr, local: SocketAddr) -> std::io::Result<Option<u64>> {
        use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
        use netlink_packet_sock_diag::{
            AF_INET, AF_INET6, IPPROTO_TCP, SockDiagMessage,
            inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
        };
        use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

        let socket = match &mut self.socket {
            Some(s) => s,
            none => none.insert(Socket::new(NETLINK_SOCK_DIAG)?),
        };
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
}

/// An IPv4-mapped IPv6 address as the IPv4 one.
fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        a => a,
    }
}

fn proc_net_tcp(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let find = |entries: procfs::ProcResult<Vec<procfs::net::TcpNetEntry>>| {
        entries.ok()?.into_iter().find_map(|e| {
            (unmapped(e.local_address) == peer && unmapped(e.remote_address) == local)
                .then_some(e.inode)
        })
    };
    find(procfs::net::tcp()).or_else(|| find(procfs::net::tcp6()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignored::Ignore;

    #[test]
    fn a_connected_socket_is_found_and_its_holder_too() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let inode = Diag::default()
            .inode(peer, listener.local_addr().unwrap())
            .expect("found");
        assert!(sockets_of(std::process::id() as i32).contains(&inode));
        drop(client);
    }

    /// A process in a session of its own, as devstack starts a service.
    fn leader(cmd: &mut std::process::Command) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        cmd.spawn().expect("spawn")
    }

    #[test]
    fn a_pid_used_again_by_a_process_outside_the_stack_is_not_the_stacks() {
        use std::process::{Command, Stdio};
        // Choosing the next pid needs root (as CI runs).
        if std::fs::write("/proc/sys/kernel/ns_last_pid", "1").is_err() {
            eprintln!("skipped: /proc/sys/kernel/ns_last_pid is not writable here");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions = Sessions::new();
        let mut stack = leader(Command::new("sleep").arg("30"));
        let pid = stack.id() as i32;
        sessions.insert(pid, "svc");
        let mut index = Index::default();
        assert!(index.refresh(&sessions));
        assert!(index.procs[&pid].held.is_some());
        stack.kill().unwrap();
        stack.wait().unwrap();
        // A process outside the stack gets its pid, and calls.
        let mut other = None;
        for _ in 0..50 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
                .or_say("tried again 50 times; a test whose pid is not given again is skipped");
            let mut child = Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import socket,sys; s=socket.create_connection(('127.0.0.1',{})); sys.stdin.read()",
                    addr.port()
                ))
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            if child.id() as i32 == pid {
                other = Some(child);
                break;
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let Some(mut other) = other else {
            eprintln!("skipped: pid {pid} was not given again");
            return;
        };
        let (_conn, peer) = listener.accept().unwrap();
        let inode = Diag::default().inode(peer, addr).expect("its socket");
        assert!(index.refresh(&sessions));
        let holder = index.holder(inode, &sessions);
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(holder, None, "pid {pid} was taken for the stack's");
    }

    #[test]
    fn a_process_that_ran_says_so_and_one_that_did_not_does_not() {
        use nix::sys::signal::{Signal, kill};
        // This thread is on a CPU right now: its counts may lag, so nothing is said.
        assert_eq!(ran(std::process::id() as i32), None);
        // A sleeping child runs no more, until woken.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(200));
        let first = ran(pid);
        assert!(first.is_some());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ran(pid), first);
        let child_pid = nix::unistd::Pid::from_raw(pid);
        kill(child_pid, Signal::SIGSTOP).unwrap();
        kill(child_pid, Signal::SIGCONT).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_ne!(ran(pid), first);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
