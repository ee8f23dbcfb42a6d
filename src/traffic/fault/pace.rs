//! What a fault does to a raw TCP connection's bytes, one direction at a time ([`Shape`]):
//! passed on late (`latency`: each chunk `ms` after it was read, reads going on meanwhile, so
//! the bytes come late as over a long link, not slower), paced (`bandwidth`: [`Pace`]) or its
//! end passed on late (`slow_close`); an HTTP/1 answer paced as it is written ([`Paced`]),
//! an h2c one frame by frame ([`Gate`]).

use super::{Effect, delay};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How many chunks a held direction reads ahead of what it has passed on.
const AHEAD: usize = 64;
/// A paced direction reads this share of a second's bytes at a time (so that it is paced
/// smoothly, not in bursts of a whole read).
const SLICES: u64 = 20;
/// How late a paced chunk may be and still keep to its schedule.
const SLACK: Duration = Duration::from_millis(50);

/// What is done to one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Passed on as it comes.
    Plain,
    /// Each chunk passed on `ms` (± `jitter_ms`) after it was read.
    Held { ms: u64, jitter_ms: u64 },
    /// At most this many bytes per second.
    Paced(u64),
    /// Its end passed on this much later.
    SlowClose(Duration),
}

impl Shape {
    /// The caller's direction and the service's, for a connection `effect` touched. A
    /// latency holds what the service sends (each answer comes that much later, as an HTTP
    /// request's does, rather than twice that); a bandwidth and a slow close are each way.
    pub fn of(effect: Option<&Effect>) -> (Shape, Shape) {
        match effect {
            Some(&Effect::Latency { ms, jitter_ms }) => {
                (Shape::Plain, Shape::Held { ms, jitter_ms })
            }
            Some(&Effect::Bandwidth { bytes_per_sec }) => {
                (Shape::Paced(bytes_per_sec), Shape::Paced(bytes_per_sec))
            }
            Some(&Effect::SlowClose { ms }) => {
                let late = Shape::SlowClose(Duration::from_millis(ms));
                (late, late)
            }
            _ => (Shape::Plain, Shape::Plain),
        }
    }

    /// How much is read at a time, at most `read`.
    pub fn chunk(&self, read: usize) -> usize {
        match self {
            Shape::Paced(rate) => slice(*rate, read),
            _ => read,
        }
    }

    /// Its pace, when it has one.
    pub fn pace(&self) -> Option<Pace> {
        match self {
            Shape::Paced(rate) => Some(Pace::new(*rate)),
            _ => None,
        }
    }

    /// Wait as its end is passed on (`slow_close`).
    pub async fn closing(&self) {
        if let Shape::SlowClose(late) = self {
            tokio::time::sleep(*late).await;
        }
    }
}

/// At most `most` bytes, and at most a `SLICES`th of a second's at `rate`.
fn slice(rate: u64, most: usize) -> usize {
    most.min((rate / SLICES).max(1) as usize)
}

/// Bytes paced to a rate: each chunk takes its share of a second on the link, after the one
/// before it (no credit is saved while the connection is quiet: a burst after a pause is paced
/// too).
pub(crate) struct Pace {
    rate: u64,
    next: Instant,
}

impl Pace {
    pub fn new(rate: u64) -> Pace {
        Pace {
            rate: rate.max(1),
            next: Instant::now(),
        }
    }

    /// Wait until `n` more bytes may go.
    pub async fn take(&mut self, n: usize) {
        tokio::time::sleep_until(self.reserve(n)).await;
    }

    /// When `n` more bytes may go: once the ones before had their share of the link. Late by
    /// less than `SLACK` (a timer's tick, a write's time), they keep to the schedule, so that
    /// slips don't add up to a slower rate (20 slices a second late by 5 ms each would lose
    /// 10%); quiet for longer, the schedule starts again from now (no credit is saved).
    fn reserve(&mut self, n: usize) -> Instant {
        let now = Instant::now();
        let at = match now.saturating_duration_since(self.next) < SLACK {
            true => self.next,
            false => now,
        };
        self.next = at + Duration::from_secs_f64(n as f64 / self.rate as f64);
        at
    }
}

/// A gate that paces what passes it: open once what passed before had its share of a second.
pub(crate) struct Gate {
    pace: Pace,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Gate {
    pub fn new(rate: u64) -> Gate {
        Gate {
            pace: Pace::new(rate),
            wait: None,
        }
    }

    /// Ready once the bytes before may have gone.
    pub fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(wait) = &mut self.wait {
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
        }
        Poll::Ready(())
    }

    /// `n` bytes went: the gate closes for their share.
    pub fn passed(&mut self, n: usize) {
        self.pace.reserve(n);
        self.wait = Some(Box::pin(tokio::time::sleep_until(self.pace.next)));
    }
}

/// A writer paced to a rate: each write at most a `SLICES`th of a second's bytes, the next
/// one waiting until those had their share of the link.
pub(crate) struct Paced<W> {
    inner: W,
    gate: Gate,
}

impl<W> Paced<W> {
    pub fn new(inner: W, rate: u64) -> Paced<W> {
        Paced {
            inner,
            gate: Gate::new(rate),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Paced<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.gate.poll_open(cx));
        let most = slice(this.gate.pace.rate, buf.len());
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..most]))?;
        this.gate.passed(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Copy `from` to `to` until `from` ends, each chunk written `ms` (± `jitter_ms`) after it was
/// read (`pass` sees it as it is written), reads going on meanwhile up to `AHEAD` chunks
/// ahead; the bytes copied.
pub(crate) async fn held<R, W>(
    from: &mut R,
    to: &mut W,
    (ms, jitter_ms): (u64, u64),
    read: usize,
    mut pass: impl FnMut(&[u8]),
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut due: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; read];
    let (mut ended, mut total) = (false, 0);
    loop {
        let next = due.front().map(|(at, _)| *at);
        tokio::select! {
            got = from.read(&mut buf), if !ended && due.len() < AHEAD => match got? {
                0 => ended = true,
                n => due.push_back((Instant::now() + delay(ms, jitter_ms), buf[..n].to_vec())),
            },
            () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let (_, bytes) = due.pop_front().expect("a chunk is due");
                pass(&bytes);
                to.write_all(&bytes).await?;
                total += bytes.len() as u64;
            }
            else => return Ok(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pace_spreads_chunks_over_their_share_of_a_second_and_saves_no_credit() {
        let mut pace = Pace::new(1000);
        let start = Instant::now();
        for _ in 0..4 {
            pace.take(250).await;
        }
        // The fourth chunk goes once the first three had their 750 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(750));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let quiet = Instant::now();
        pace.take(500).await;
        pace.take(500).await;
        assert_eq!(quiet.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_writer_writes_a_slice_at_a_time_at_its_rate() {
        let mut paced = Paced::new(Vec::new(), 2000);
        let start = Instant::now();
        paced.write_all(&[7u8; 1000]).await.unwrap();
        // Ten writes of 100 bytes (a twentieth of a second's), the last after 450 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(450));
        assert_eq!(paced.inner, [7u8; 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn held_bytes_come_late_but_not_slower() {
        let (mut tx, mut from) = tokio::io::duplex(1024);
        let mut to = Vec::new();
        let start = Instant::now();
        let writer = async {
            for _ in 0..5 {
                tx.write_all(b"chunk").await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            drop(tx);
        };
        let copied = async { held(&mut from, &mut to, (200, 0), 64, |_| ()).await };
        let ((), copied) = tokio::join!(writer, copied);
        assert_eq!(copied.unwrap(), 25);
        assert_eq!(to, b"chunkchunkchunkchunkchunk");
        // Five chunks 10 ms apart, each 200 ms late: 240 ms, not 5 × 200.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(240) && took < Duration::from_millis(260),
            "{took:?}"
        );
    }
}
