//! Protocol detection from a connection's first bytes, and a stream that replays them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// HTTP/2's connection preface, as a client with prior knowledge (h2c) opens.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/1 methods are tokens; a longer one than this is not taken for HTTP.
const MAX_METHOD: usize = 16;
/// A request line longer than this is not waited for.
const MAX_LINE: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Http1,
    H2,
    Tcp,
}

/// What `bytes` (the start of a connection) are, or None if more are needed to tell.
pub fn detect(bytes: &[u8]) -> Option<Detected> {
    if bytes.is_empty() {
        return None;
    }
    let n = bytes.len().min(H2_PREFACE.len());
    if bytes[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Detected::H2);
    }
    // `METHOD SP target SP HTTP/1.x` (a line-protocol command such as `SET k v` is not HTTP).
    let token = bytes.iter().position(|&b| !b.is_ascii_uppercase());
    match token {
        Some(i) if i > 0 && i <= MAX_METHOD && bytes[i] == b' ' => {}
        Some(_) => return Some(Detected::Tcp),
        // A method of MAX_METHOD letters still needs its space: wait for one more byte.
        None if bytes.len() <= MAX_METHOD => return None,
        None => return Some(Detected::Tcp),
    }
    // A line is judged by its first `MAX_LINE` bytes, whatever follows.
    let Some(end) = memchr::memchr(b'\n', &bytes[..bytes.len().min(MAX_LINE)]) else {
        if bytes.len() < MAX_LINE {
            return None;
        }
        // A request line longer than that (a huge query string) is still HTTP when its target
        // starts as one does: the relay answers it (431) rather than pass it as opaque bytes.
        let target = bytes[..MAX_LINE]
            .split(|&b| b == b' ')
            .nth(1)
            .unwrap_or_default();
        let http = target.starts_with(b"/")
            || target.starts_with(b"http://")
            || target.starts_with(b"https://");
        return Some(if http { Detected::Http1 } else { Detected::Tcp });
    };
    let line = bytes[..end].strip_suffix(b"\r").unwrap_or(&bytes[..end]);
    let mut parts = line.split(|&b| b == b' ');
    let (_method, target, version) = (parts.next(), parts.next(), parts.next());
    let http = parts.next().is_none()
        && target.is_some_and(|t| !t.is_empty())
        && version.is_some_and(|v| v.starts_with(b"HTTP/1."));
    Some(if http { Detected::Http1 } else { Detected::Tcp })
}

/// Read the start of `stream` until its protocol is known, for at most `wait` (a client that
/// sends nothing, as with a server that speaks first, is TCP; so is one that closes). Returns
/// the protocol and the bytes read, to be replayed.
pub async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    wait: Duration,
    silent: Detected,
) -> io::Result<(Detected, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Ok((detect(&buf).unwrap_or(silent_or_tcp(&buf, silent)), buf)),
            Ok(Ok(0)) => return Ok((detect(&buf).unwrap_or(Detected::Tcp), buf)),
            Ok(Ok(_)) => {
                if let Some(d) = detect(&buf) {
                    return Ok((d, buf));
                }
            }
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Undecided after the wait: nothing sent is `silent`; a partial token is TCP.
fn silent_or_tcp(buf: &[u8], silent: Detected) -> Detected {
    if buf.is_empty() {
        silent
    } else {
        Detected::Tcp
    }
}

/// A stream whose first reads return `prefix` (bytes sniffed off it).
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `sniff` fuzz target: a method of exactly `MAX_METHOD` letters, its space
    /// not read yet, was called TCP, and HTTP once the space came.
    #[test]
    fn more_bytes_never_change_an_answer() {
        let line = b"POIIIIIIIIIIIISD / HTTP/1.1\r\n";
        let mut decided = None;
        for end in 0..=line.len() {
            let now = detect(&line[..end]);
            if decided.is_some() {
                assert_eq!(now, decided, "after {end} bytes");
            }
            decided = decided.or(now);
        }
        assert_eq!(decided, Some(Detected::Http1));
        assert_eq!(detect(&[b'A'; MAX_METHOD + 1]), Some(Detected::Tcp));
    }

    #[test]
    fn first_bytes_tell_the_protocol() {
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(detect(b"GET /a?b HTTP/1.0\n"), Some(Detected::Http1));
        assert_eq!(
            detect(b"PROPFIND /x HTTP/1.1\r\nHost"),
            Some(Detected::Http1)
        );
        assert_eq!(detect(b"GET / HTT"), None);
        assert_eq!(detect(H2_PREFACE), Some(Detected::H2));
        assert_eq!(detect(b"PRI * HTTP/2"), None);
        assert_eq!(detect(b"SET key value\r\n"), Some(Detected::Tcp));
        assert_eq!(detect(b"PRI x"), None);
        assert_eq!(detect(b"GE"), None);
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"*1\r\n$4\r\nPING\r\n"), Some(Detected::Tcp));
        assert_eq!(detect(b"hello world"), Some(Detected::Tcp));
        assert_eq!(detect(b"\x16\x03\x01"), Some(Detected::Tcp));
        assert_eq!(detect(b"ABCDEFGHIJKLMNOPQRSTUV"), Some(Detected::Tcp));
    }

    #[tokio::test]
    async fn sniffed_bytes_are_replayed_and_silence_is_tcp() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let (d, prefix) = sniff(&mut b, Duration::from_secs(5), Detected::Tcp)
            .await
            .unwrap();
        assert_eq!(d, Detected::Http1);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"Host: x\r\n")
            .await
            .unwrap();
        drop(a);
        let mut all = Vec::new();
        Prefixed::new(prefix, b)
            .read_to_end(&mut all)
            .await
            .unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: x\r\n");

        let (_a, mut b) = tokio::io::duplex(64);
        let (d, prefix) = sniff(&mut b, Duration::from_millis(50), Detected::Tcp)
            .await
            .unwrap();
        assert_eq!((d, prefix.len()), (Detected::Tcp, 0));
    }
}
