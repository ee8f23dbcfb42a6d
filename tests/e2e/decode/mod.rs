//! The passive decoders (`traffic::decode`) against a real `redis-server` and a real PostgreSQL:
//! real clients (`redis-cli`, `psql`, `pgbench`, and raw protocol written here) connect through
//! `Tee`, a small TCP relay that feeds each connection's bytes to the decoder `detect` picks
//! (before writing them on, as the proxy will), and the tests assert on the exchanges it saw.
//! Each server is started by its test in a temporary folder on a free port and killed by its
//! guard (its pid only), also when the test panics. A missing server program fails the test
//! with what to install (`.ci/run` installs them). `replay`: the same servers behind the real
//! binary's proxy, a kept command or query sent again (`traffic replay`).

mod postgres;
pub(crate) mod redis;
mod replay;

use devstack::traffic::decode::{self, Decoder, Exchange, Protocol, State};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the relay saw of one connection.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub protocol: Option<Protocol>,
    pub exchanges: Vec<Exchange>,
    pub state: Option<State>,
    pub closed: bool,
}

impl Seen {
    /// Each exchange as `request → outcome` (and `[error]`), to compare in one go.
    pub fn lines(&self) -> Vec<String> {
        self.exchanges.iter().map(line).collect()
    }
}

pub fn line(e: &Exchange) -> String {
    match &e.error {
        Some(error) => format!("{} → {} [{error}]", e.request, e.outcome),
        None => format!("{} → {}", e.request, e.outcome),
    }
}

/// A TCP relay on a free port of loopback in front of `backend`, teeing both directions of each
/// connection into a decoder.
pub struct Tee {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Tee {
    pub fn new(backend: u16) -> Tee {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, a) = (seen.clone(), accepted.clone());
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let slot = {
                    let mut seen = s.lock().unwrap();
                    seen.push(Seen::default());
                    seen.len() - 1
                };
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay(client, backend, slot, s.clone()));
            }
        });
        Tee {
            port,
            seen,
            accepted,
            runtime: Some(runtime),
        }
    }

    /// Every connection so far, in the order they came, once all of them closed (20 s at most).
    pub fn connections(&self) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.seen.lock().unwrap().clone();
            let all = seen.len() == self.accepted.load(Ordering::SeqCst);
            if all && seen.iter().all(|s| s.closed) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "connections still open through the relay: {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Shared = Arc<Mutex<Option<Box<dyn Decoder>>>>;

async fn relay(client: TcpStream, backend: u16, slot: usize, seen: Arc<Mutex<Vec<Seen>>>) {
    let decoder: Shared = Arc::new(Mutex::new(None));
    if let Ok(service) = TcpStream::connect(("127.0.0.1", backend)).await {
        let (client_in, client_out) = client.into_split();
        let (service_in, service_out) = service.into_split();
        tokio::join!(
            pipe(client_in, service_out, true, &decoder, slot, &seen),
            pipe(service_in, client_out, false, &decoder, slot, &seen),
        );
    }
    let mut decoder = decoder.lock().unwrap();
    let mut seen = seen.lock().unwrap();
    if let Some(d) = decoder.as_mut() {
        d.end(Instant::now());
        seen[slot].exchanges.extend(d.take());
    }
    seen[slot].closed = true;
}

/// One direction: each read fed to the decoder (the caller's first read picks it), then
/// written on; the end of the reads ends the writes.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    caller: bool,
    decoder: &Shared,
    slot: usize,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = caller;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bytes = &buf[..n];
        {
            let mut decoder = decoder.lock().unwrap();
            let mut seen = seen.lock().unwrap();
            if std::mem::take(&mut first) {
                *decoder = decode::detect(bytes);
                seen[slot].protocol = decoder.as_ref().map(|d| d.protocol());
            }
            if let Some(d) = decoder.as_mut() {
                match caller {
                    true => d.caller_sent(bytes, Instant::now()),
                    false => d.service_sent(bytes, Instant::now()),
                }
                seen[slot].exchanges.extend(d.take());
                seen[slot].state = Some(d.state());
            }
        }
        if to.write_all(bytes).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A server program started by a test, killed by its pid when the guard drops (SIGINT first,
/// which both servers take for a fast shutdown, then SIGKILL after 10 s).
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn new(child: Child, port: u16) -> Server {
        let mut server = Server { child, port };
        server.wait_listening();
        server
    }

    /// Until the server accepts connections on its port (30 s at most).
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited before it listened: {status}");
            }
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program`: on the PATH, or in one of `dirs`; a missing one fails the test with
/// the package that has it.
pub fn program(program: &str, dirs: &[PathBuf], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(dirs.iter().cloned())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{program}` is missing: install it (`apt-get install -y {package}`, as .ci/run does)")
        })
}

/// Runs `command`, failing the test with its output unless it succeeds when `ok`.
pub fn run(command: &mut Command, ok: bool) -> String {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.success(), ok, "{command:?}: {text}");
    text
}
