//! The proxy: one listener per service on `127.0.0.1:PORT`, each connection forwarded to the
//! service's current backend and recorded. It runs on a runtime of its own (its own threads), so
//! a busy engine or dashboard never delays a request.

use super::caller::{Attributor, Sessions};
use super::fault::On;
use super::limits::{Limits, Notice, OpenConnections, Said, refuse};
use super::sniff::{self, Detected, Prefixed};
use super::stats::{ErrorKind, Stats};
use super::upstream::{Alpn, RemoteEnd, Upstream};
use crate::ignored::Ignore;
use crate::process::PortHolder;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

/// How long a connection's first bytes are waited for before it is taken for TCP (a client that
/// waits for the server to speak first).
pub const SNIFF_WAIT: Duration = Duration::from_millis(300);
/// With `protocol = "http"`, how long a silent connection is kept before it is read as HTTP/1
/// anyway (and then hyper's own handling applies).
const HTTP_SNIFF_WAIT: Duration = Duration::from_secs(60);

/// How long a refused connection waits for news of its backend (a restart) before the caller
/// is told the service is down.
const REFUSED_GRACE: Duration = Duration::from_millis(500);
/// How often the address is tried again meanwhile.
const REFUSED_RETRY: Duration = Duration::from_millis(50);

/// How a listener reads its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Sniff the first bytes: HTTP/1.x, h2c (HTTP/2 with prior knowledge) or raw TCP.
    #[default]
    Auto,
    /// HTTP/1.x or h2c, never TCP.
    Http,
    /// Raw TCP: connections and bytes only.
    Tcp,
}

/// Where a service can be reached now, as its route's `backend` says.
#[derive(Debug, Clone)]
pub enum Target {
    /// Listening at this (private) address.
    Up(SocketAddr),
    /// Served by its remote end (`url`), not by a process here.
    Remote(Arc<RemoteEnd>),
    /// Coming (starting, restarting, rebuilding): new connections wait for it, up to the route's
    /// `wait`.
    Coming,
    /// Stopped, and nothing will start it unless asked: new connections fail at once.
    Down,
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Up(a), Target::Up(b)) => a == b,
            (Target::Remote(a), Target::Remote(b)) => Arc::ptr_eq(a, b),
            (Target::Coming, Target::Coming) | (Target::Down, Target::Down) => true,
            _ => false,
        }
    }
}

/// One service's listener: where it listens and where it forwards.
pub struct Route {
    /// The callee's name in the records.
    pub service: String,
    /// The public port, on 127.0.0.1 (0: any free port, for tests).
    pub port: u16,
    /// Where the service is now: `Coming` before its process is stopped for a restart or a
    /// rebuild, `Up` with the new address once the new process listens, `Down` when stopped.
    pub backend: watch::Receiver<Target>,
    pub protocol: Protocol,
    /// How long a new connection waits for a backend (while `backend` is `Coming`) before the
    /// caller gets an error: HTTP 503, or a closed connection for TCP.
    pub wait: Duration,
    pub limits: Limits,
    pub notice: Option<Notice>,
    /// What is kept of its exchanges.
    pub capture: super::capture::Settings,
}

/// A public port could not be listened on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("port {port} is already in use by {holder}")]
    Taken { port: u16, holder: PortHolder },
    #[error(
        "port {port} is already in use on ::1 (localhost for Node and browsers) by a process devstack can't see"
    )]
    TakenOnV6 { port: u16 },
    #[error("can't listen on 127.0.0.1:{port}: {source}")]
    Io { port: u16, source: io::Error },
}

/// A running listener (on 127.0.0.1, and on ::1 where there is IPv6); dropping it stops
/// accepting (connections already accepted carry on).
pub struct Listener {
    addr: SocketAddr,
    tasks: Vec<AbortHandle>,
}

impl Listener {
    /// Where it listens (the port chosen, when the route asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The proxy: a runtime on threads of its own, the stats every listener records into, and the
/// caller lookup.
pub struct Proxy {
    runtime: tokio::runtime::Handle,
    /// Ends the runtime's thread (which then shuts the runtime down) when dropped.
    _stop: tokio::sync::oneshot::Sender<()>,
    ctx: Arc<Ctx>,
}

pub(crate) struct Ctx {
    pub stats: Arc<Stats>,
    callers: Attributor,
    open: OpenConnections,
}

/// One open connection, counted until dropped (however its task ends).
struct Open(Arc<Ctx>);

impl Open {
    fn new(ctx: Arc<Ctx>) -> Open {
        ctx.open.opened();
        Open(ctx)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.closed();
    }
}

impl Proxy {
    /// Start the proxy's runtime (`threads` workers, at least 1) recording into `stats`, telling
    /// callers by `sessions`.
    pub fn start(stats: Arc<Stats>, sessions: Arc<Sessions>, threads: usize) -> io::Result<Proxy> {
        // One thread: a current-thread runtime (no work stealing, no cross-thread wake-ups
        // between a connection's tasks); more: a multi-thread one.
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .max_blocking_threads(8)
                .thread_name("devstack-proxy")
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .max_blocking_threads(8)
                .thread_name("devstack-proxy")
                .enable_all()
                .build()?
        };
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("devstack-proxy".into())
            .spawn(move || {
                runtime
                    .block_on(stopped)
                    .or_say("a proxy dropped without a stop stops too");
                runtime.shutdown_background();
            })?;
        Ok(Proxy {
            runtime: handle,
            _stop: stop,
            ctx: Arc::new(Ctx {
                stats,
                callers: Attributor::new(sessions),
                open: OpenConnections::default(),
            }),
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.ctx.stats
    }

    /// Run `task` on the proxy's threads (what keeps its routes' backends current).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// Listen on `127.0.0.1:route.port` and `[::1]:route.port` (where the machine has IPv6) and
    /// forward there from now on. A taken port is reported with the process holding it.
    pub fn listen(&self, route: Route) -> Result<Listener, BindError> {
        let v4 = bind(std::net::Ipv4Addr::LOCALHOST.into(), route.port)?;
        let port = v4.local_addr().map_err(|source| BindError::Io {
            port: route.port,
            source,
        })?;
        let port = port.port();
        // Node and Vite callers reach `localhost` at ::1 first.
        let v6 = match bind(std::net::Ipv6Addr::LOCALHOST.into(), port) {
            Ok(l) => Some(l),
            // The holder found is this process, on 127.0.0.1: the one on ::1 is not visible.
            Err(BindError::Taken { holder, .. })
                if holder.pid == Some(std::process::id() as i32) =>
            {
                return Err(BindError::TakenOnV6 { port });
            }
            Err(BindError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
                ) || source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let route = Arc::new(route);
        let permits = Arc::new(Semaphore::new(route.limits.max_connections));
        let mut tasks = Vec::new();
        let mut addr = None;
        for std_listener in std::iter::once(v4).chain(v6) {
            let io_err = |source| BindError::Io { port, source };
            std_listener.set_nonblocking(true).map_err(io_err)?;
            let local = std_listener.local_addr().map_err(io_err)?;
            addr.get_or_insert(local);
            let listener = {
                let _entered = self.runtime.enter();
                TcpListener::from_std(std_listener).map_err(io_err)?
            };
            tracing::info!(addr = %local, "proxy listening");
            let accepting = accept_loop(listener, route.clone(), self.ctx.clone(), permits.clone());
            tasks.push(self.runtime.spawn(accepting).abort_handle());
        }
        Ok(Listener {
            addr: addr.expect("listening on 127.0.0.1"),
            tasks,
        })
    }
}

/// A listening socket on `ip:port`; a taken port names its holder.
fn bind(ip: std::net::IpAddr, port: u16) -> Result<std::net::TcpListener, BindError> {
    match std::net::TcpListener::bind((ip, port)) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            Err(match crate::process::port_holder(port) {
                Some(holder) => BindError::Taken { port, holder },
                None => BindError::Io { port, source: e },
            })
        }
        Err(source) => Err(BindError::Io { port, source }),
    }
}

async fn accept_loop(
    listener: TcpListener,
    route: Arc<Route>,
    ctx: Arc<Ctx>,
    permits: Arc<Semaphore>,
) {
    let (mut full, mut failing) = (Said(None), Said(None));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let open = Open::new(ctx.clone());
                    let (route, ctx) = (route.clone(), ctx.clone());
                    tokio::spawn(async move {
                        serve(stream, peer, route, ctx).await;
                        drop((permit, open));
                    });
                }
                Err(_) => {
                    full.say(&route, || {
                        format!(
                            "{} connections to port {} at once: new ones are closed until some end (the proxy's cap per service, which keeps files for the rest of the stack)",
                            route.limits.max_connections, route.port
                        )
                    });
                    refuse(stream, &route);
                }
            },
            // Out of file descriptors, or a connection reset before it was accepted: say so,
            // and wait a little rather than spin.
            Err(e) => {
                failing.say(&route, || {
                    format!(
                        "the proxy can't accept connections on port {}: {e}",
                        route.port
                    )
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a connection that keeps Nagle's delay is no matter: it works, only small writes wait.
const NODELAY: &str = "the connection works with Nagle's delay, only slower to answer";

/// One accepted connection: find the caller while reading the first bytes, then forward.
async fn serve(mut client: TcpStream, peer: SocketAddr, route: Arc<Route>, ctx: Arc<Ctx>) {
    client.set_nodelay(true).or_say(NODELAY);
    let Ok(local) = client.local_addr() else {
        return;
    };
    // Forwarding never waits for the caller: the records do.
    let caller = match ctx.stats.is_replay(peer) {
        true => super::Lookup::known(super::Caller::Replay),
        false => ctx.callers.lookup(peer, local),
    };
    let records = super::Recorder::new(caller, route.service.as_str().into(), ctx.stats.clone());
    if let Some(cut) = records.fault(On::Accept, "", "").await {
        return super::tcp::cut(client, &records, &cut);
    }
    let sniffed = match route.protocol {
        Protocol::Tcp => Ok((Detected::Tcp, Vec::new())),
        Protocol::Auto => sniff::sniff(&mut client, SNIFF_WAIT, Detected::Tcp).await,
        Protocol::Http => sniff::sniff(&mut client, HTTP_SNIFF_WAIT, Detected::Http1).await,
    };
    let Ok((detected, prefix)) = sniffed else {
        return;
    };
    let mut conn = super::Conn {
        records,
        backend: Backend::new(&route),
        limits: route.limits,
        capture: route.capture,
    };
    let (detected, prefix, server) = match (route.protocol, detected) {
        // Said to be HTTP: what is not is answered as HTTP (400), never passed as bytes.
        (Protocol::Http, Detected::Tcp) => (Detected::Http1, prefix, None),
        // Nothing yet: a server that speaks first (MySQL, SMTP), or a caller that opened its
        // connection early (a browser's preconnect). Whoever speaks first decides.
        (Protocol::Auto, Detected::Tcp) if prefix.is_empty() => {
            match first_to_speak(&mut client, &mut conn).await {
                Ok(Speaker::Caller(server)) => {
                    match sniff::sniff(&mut client, SNIFF_WAIT, Detected::Tcp).await {
                        Ok((detected, prefix)) => (detected, prefix, Some(server)),
                        Err(_) => return,
                    }
                }
                Ok(Speaker::Service(server)) => (Detected::Tcp, prefix, Some(server)),
                // The service is not there: said as TCP's failure is.
                Err(_) => (Detected::Tcp, prefix, None),
            }
        }
        (_, detected) => (detected, prefix, None),
    };
    match detected {
        Detected::Tcp => super::tcp::forward(prefix, client, conn, server).await,
        Detected::Http1 => super::h1::relay(prefix, client, conn, server).await,
        Detected::H2 => super::http::serve_h2(Prefixed::new(prefix, client), conn).await,
    }
}

/// Who spoke first on a connection silent past `SNIFF_WAIT`.
enum Speaker {
    /// The caller: its bytes are still unread (peeked); the service's connection is open.
    Caller(Upstream),
    /// The service: its bytes are still unread.
    Service(Upstream),
}

/// Connect to the service and wait for either side to speak (or close).
async fn first_to_speak(
    client: &mut TcpStream,
    conn: &mut super::Conn,
) -> Result<Speaker, ErrorKind> {
    let server = conn.backend.connect(Alpn::H1).await?;
    let (mut mine, mut theirs) = ([0u8; 1], [0u8; 1]);
    let caller_first = tokio::select! {
        _ = client.peek(&mut mine) => true,
        _ = server.tcp().peek(&mut theirs) => false,
    };
    Ok(if caller_first {
        Speaker::Caller(server)
    } else {
        Speaker::Service(server)
    })
}

/// Where one connection's requests go: the route's backend, waited for while there is none.
pub(crate) struct Backend {
    rx: watch::Receiver<Target>,
    wait: Duration,
    /// The remote end the last connection went to, if it went to one: requests carry its
    /// authority as their `Host`, and its scheme.
    remote: Option<Arc<RemoteEnd>>,
}

impl Backend {
    fn new(route: &Route) -> Backend {
        Backend {
            rx: route.backend.clone(),
            wait: route.wait,
            remote: None,
        }
    }

    /// The `Host` requests on the last connection must carry: a remote end's name, or None (a
    /// process here takes what the caller wrote).
    pub fn authority(&self) -> Option<&str> {
        self.remote.as_ref().map(|end| end.authority.as_str())
    }

    /// The scheme requests on the last connection are for: `https` to a remote end with TLS.
    pub fn scheme(&self) -> &'static str {
        match self.remote.as_ref().is_some_and(|end| end.tls.is_some()) {
            true => "https",
            false => "http",
        }
    }

    /// Whether the backend changed (another process, or none) since the last connection was
    /// made: a kept-alive connection then goes to the old one.
    pub fn moved(&mut self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// Done once the backend changes (never, once the route is gone).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A connection to the current backend, waiting (up to the route's wait) while it is
    /// coming. A refused connection is retried only if the backend changed meanwhile (a restart
    /// raced with it). A remote end is dialled by name, with TLS when it has it (`alpn`: what
    /// the connection carries).
    pub async fn connect(&mut self, alpn: Alpn) -> Result<Upstream, ErrorKind> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let settled = self.rx.wait_for(|t| *t != Target::Coming);
            let target = match tokio::time::timeout_at(deadline, settled).await {
                Ok(Ok(target)) => target.clone(),
                Ok(Err(_)) => return Err(ErrorKind::Stopped), // the route was dropped
                Err(_) => return Err(ErrorKind::Timeout),
            };
            self.remote = None;
            let addr = match target {
                Target::Up(addr) => addr,
                Target::Remote(end) => {
                    let connected = remote(&end, alpn, deadline).await;
                    self.remote = Some(end);
                    return connected;
                }
                _ => return Err(ErrorKind::Stopped),
            };
            // A connect to a process whose backlog is full waits; if the route moves meanwhile
            // (a switch away from that process), it goes where the route is now.
            let attempt = tokio::select! {
                attempt = tokio::time::timeout_at(deadline, TcpStream::connect(addr)) => attempt,
                _ = self.rx.changed() => continue,
            };
            match attempt {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true).or_say(NODELAY);
                    return Ok(Upstream::Tcp(stream));
                }
                Ok(Err(_)) if self.rx.has_changed().unwrap_or(false) => continue,
                // Refused by the address it is meant to be at: the process is most likely on
                // its way out (a restart whose news has not come yet) or binding its port again
                // (a server reloading itself); give either a moment.
                Ok(Err(_)) => {
                    let until = deadline.min(tokio::time::Instant::now() + REFUSED_GRACE);
                    match self.refused(addr, until).await {
                        Some(Ok(stream)) => return Ok(Upstream::Tcp(stream)),
                        Some(Err(())) => continue,
                        None => return Err(ErrorKind::Refused),
                    }
                }
                Err(_) => return Err(ErrorKind::Timeout),
            }
        }
    }
}

/// A connection to a remote end, within the route's wait: refused, unreachable or a failed TLS
/// handshake are the service's refusal (a 502 to an HTTP caller), said in devstack's log.
async fn remote(
    end: &RemoteEnd,
    alpn: Alpn,
    deadline: tokio::time::Instant,
) -> Result<Upstream, ErrorKind> {
    match tokio::time::timeout_at(deadline, end.connect(alpn)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => {
            tracing::warn!(host = %end.host, port = end.port, error = %e, "the remote end refused");
            Err(ErrorKind::Refused)
        }
        Err(_) => Err(ErrorKind::Timeout),
    }
}

impl Backend {
    /// After `addr` refused: until `until`, try it again now and then, and hear of a new
    /// target. `Some(Ok)`: it accepted; `Some(Err)`: the target changed; None: neither came.
    async fn refused(
        &mut self,
        addr: SocketAddr,
        until: tokio::time::Instant,
    ) -> Option<Result<TcpStream, ()>> {
        loop {
            let pause = tokio::time::Instant::now() + REFUSED_RETRY;
            if pause >= until {
                return None;
            }
            tokio::select! {
                changed = self.rx.changed() => return changed.ok().map(|()| Err(())),
                _ = tokio::time::sleep_until(pause) => {
                    if let Ok(stream) = TcpStream::connect(addr).await {
                        stream.set_nodelay(true).or_say(NODELAY);
                        return Some(Ok(stream));
                    }
                }
            }
        }
    }
}

/// A stream that counts the bytes read from it and written to it.
/// Its first write waits for `hold`, when there is one.
pub(crate) struct Counted<S> {
    inner: S,
    pub read: u64,
    pub written: u64,
    pub hold: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl<S> Counted<S> {
    pub fn new(inner: S) -> Counted<S> {
        Counted {
            inner,
            read: 0,
            written: 0,
            hold: None,
        }
    }

    /// The stream itself (to reset it).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read += (buf.filled().len() - before) as u64;
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(hold) = &mut this.hold {
            std::task::ready!(hold.as_mut().poll(cx));
            this.hold = None;
        }
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.written += n as u64;
        }
        poll
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
