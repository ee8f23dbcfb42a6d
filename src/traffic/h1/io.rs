//! What the relay needs of its streams, so that it runs on TCP sockets (the proxy) as on
//! in-memory streams (its scripted tests): a [`Stream`] split into a read half and a write half
//! that move at once, and a [`Dial`] that opens a new connection to the service. The TCP
//! implementations borrow the socket's halves and read it without waiting, as the relay did
//! before it was generic: monomorphised, they cost nothing more (under callgrind, 13.8k–13.9k
//! instructions per proxied keep-alive request before and after).

use super::super::proxy::Backend;
use super::super::stats::ErrorKind;
use super::super::upstream::{Alpn, Upstream};
use crate::ignored::Ignore;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// A connection the relay reads and writes: the caller's, or the service's.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    type Reader<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;

    /// Its two directions, to be used at once (a request body going out while its response
    /// comes back).
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);

    /// Make its close a reset (a fault's `reset`): what is unsent is dropped, the peer gets an
    /// RST.
    fn reset(&mut self) {}

    /// Whether a kept-alive connection has been closed (or has said something unasked) while
    /// nobody was reading it; never waits.
    fn closed_while_idle(&mut self) -> bool {
        said_something(self)
    }
}

/// Whether a read of `stream` now, without waiting, would give anything (bytes, its end, an
/// error); a byte it gives is taken.
fn said_something<S: AsyncRead + Unpin + ?Sized>(stream: &mut S) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    !matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

impl Stream for TcpStream {
    type Reader<'a> = ReadHalf<'a>;
    type Writer<'a> = WriteHalf<'a>;

    fn halves(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        self.split()
    }

    fn reset(&mut self) {
        self.set_zero_linger()
            .or_say("a socket whose close can't be a reset closes plainly");
    }

    fn closed_while_idle(&mut self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(self.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Where a caller's requests go: a new connection to the service each time the relay asks for
/// one (its first, or after the kept-alive one closed).
pub(crate) trait Dial: Send {
    type Stream: Stream;

    /// A new connection to the service (waiting while it is coming), or why there is none.
    fn dial(&mut self) -> impl Future<Output = Result<Self::Stream, ErrorKind>> + Send;

    /// Whether the service moved (another process serves: a restart, a blue-green switch)
    /// since the last dial; never waits.
    fn moved(&mut self) -> bool {
        false
    }

    /// The `Host` a request on the last connection must carry (a remote end's name), or None to
    /// send it as the caller wrote it.
    fn authority(&self) -> Option<&str> {
        None
    }

    /// Done once the service moves (never, for one that does not).
    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// A service's connection: a socket's halves borrowed, or TLS's through `tokio::io::split` (a
/// TLS session reads and writes through one state).
impl Stream for Upstream {
    type Reader<'a> = UpReader<'a>;
    type Writer<'a> = UpWriter<'a>;

    fn halves(&mut self) -> (UpReader<'_>, UpWriter<'_>) {
        match self {
            Upstream::Tcp(s) => {
                let (r, w) = s.split();
                (UpReader::Tcp(r), UpWriter::Tcp(w))
            }
            Upstream::Tls(s) => {
                let (r, w) = tokio::io::split(s.as_mut());
                (UpReader::Tls(r), UpWriter::Tls(w))
            }
        }
    }

    fn reset(&mut self) {
        self.tcp()
            .set_zero_linger()
            .or_say("a socket whose close can't be a reset closes plainly");
    }

    fn closed_while_idle(&mut self) -> bool {
        match self {
            Upstream::Tcp(s) => Stream::closed_while_idle(s),
            // Read through TLS: a record with no data for the caller (a session ticket) is
            // taken and leaves it pending.
            Upstream::Tls(s) => said_something(s.as_mut()),
        }
    }
}

type TlsHalf<'a> = &'a mut tokio_rustls::client::TlsStream<TcpStream>;

/// The read half of an `Upstream`.
pub(crate) enum UpReader<'a> {
    Tcp(ReadHalf<'a>),
    Tls(tokio::io::ReadHalf<TlsHalf<'a>>),
}

/// The write half of an `Upstream`.
pub(crate) enum UpWriter<'a> {
    Tcp(WriteHalf<'a>),
    Tls(tokio::io::WriteHalf<TlsHalf<'a>>),
}

impl AsyncRead for UpReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpReader::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            UpReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpWriter::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            UpWriter::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            UpWriter::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            UpWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

impl Dial for Backend {
    type Stream = Upstream;

    fn dial(&mut self) -> impl Future<Output = Result<Upstream, ErrorKind>> + Send {
        self.connect(Alpn::H1)
    }

    fn moved(&mut self) -> bool {
        Backend::moved(self)
    }

    fn authority(&self) -> Option<&str> {
        Backend::authority(self)
    }

    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        Backend::changed(self)
    }
}
