//! Raw TCP through the proxy: bytes both ways until both sides closed, one record per
//! connection; or, when the caller's first bytes are Redis or PostgreSQL (`decode::detect`),
//! each command or query a record of its own (`Kind::Redis`, `Kind::Postgres`), read off the
//! bytes as they pass (fed to the decoder before they are written on, never changed, never
//! held). A decoder that gives up (bytes it can't read) leaves the rest of the connection plain
//! TCP, recorded as such; so does an encrypted one (Postgres after an accepted SSLRequest).
//! When the service's capture is on, what a replay needs of each exchange is kept with it.

use super::decode::{self, Decoder, Exchange, State};
use super::proxy::Counted;
use super::stats::{self, Decoded, ErrorKind, Kind};
use super::{Conn, Recorder};
use crate::ignored::Ignore;
use crate::sync::Locked;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much is read at a time.
const READ: usize = 16 * 1024;

/// Forward a TCP connection (the bytes read while sniffing first).
pub(super) async fn forward(
    prefix: Vec<u8>,
    client: TcpStream,
    mut conn: Conn,
    server: Option<TcpStream>,
) {
    let start = Instant::now();
    let mut record = conn.records.start(Kind::Tcp);
    record.bytes_in = prefix.len() as u64;
    let mut client = Counted::new(client);
    let connected = match server {
        Some(server) => Ok(server),
        None => conn.backend.connect().await,
    };
    // Told apart as the connection ends: every exchange was recorded on its own, or not.
    let mut decoded = false;
    match connected {
        Err(kind) => record.error = Some(kind),
        Ok(mut server) => {
            // What the service says first waits for the caller to be known.
            let records = conn.records.clone();
            client.hold = Some(Box::pin(async move { records.hold().await }));
            let copied = match decode::detect(&prefix) {
                Some(mut decoder) => {
                    if conn.capture.on {
                        decoder.keep(conn.capture.body);
                    }
                    let decoding = Decoding::new(decoder, conn.records.clone());
                    let relayed = relay(&prefix, &mut client, &mut server, &decoding).await;
                    decoded = decoding.finish();
                    relayed
                }
                None => {
                    async {
                        server.write_all(&prefix).await?;
                        tokio::io::copy_bidirectional(&mut client, &mut server).await
                    }
                    .await
                }
            };
            if copied.is_err() {
                record.error = Some(ErrorKind::Reset);
            }
        }
    }
    if decoded && record.error.is_none() {
        return;
    }
    record.bytes_in += client.read;
    record.bytes_out = client.written;
    record.latency_us = stats::micros(start.elapsed());
    conn.records.record(record);
}

/// Both directions at once, each read fed to the decoder before it is written on; as
/// `copy_bidirectional`, a side's end is passed on (its write shut) while the other goes on.
async fn relay(
    prefix: &[u8],
    client: &mut Counted<TcpStream>,
    server: &mut TcpStream,
    decoding: &Decoding,
) -> std::io::Result<(u64, u64)> {
    decoding.feed(Side::Caller, prefix);
    server.write_all(prefix).await?;
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut server_rx, mut server_tx) = server.split();
    let up = pump(&mut client_rx, &mut server_tx, Side::Caller, decoding);
    let down = pump(&mut server_rx, &mut client_tx, Side::Service, decoding);
    let (up, down) = tokio::join!(up, down);
    Ok((up?, down?))
}

#[derive(Clone, Copy)]
enum Side {
    Caller,
    Service,
}

/// Copy `from` to `to` until `from` ends (then `to`'s write is shut), feeding the decoder.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    side: Side,
    decoding: &Decoding,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown()
                .await
                .or_say("the other side may have gone already");
            return Ok(total);
        }
        decoding.feed(side, &buf[..n]);
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// One connection's decoder, shared by both directions, and where its exchanges go.
struct Decoding {
    /// None once it stopped (gave up, or the connection went encrypted) before the end.
    decoder: Mutex<Option<Box<dyn Decoder>>>,
    records: Recorder,
}

impl Decoding {
    fn new(decoder: Box<dyn Decoder>, records: Recorder) -> Decoding {
        Decoding {
            decoder: Mutex::new(Some(decoder)),
            records,
        }
    }

    fn feed(&self, side: Side, bytes: &[u8]) {
        let mut decoder = self.decoder.locked();
        let Some(d) = decoder.as_mut() else { return };
        let now = Instant::now();
        match side {
            Side::Caller => d.caller_sent(bytes, now),
            Side::Service => d.service_sent(bytes, now),
        }
        let exchanges = d.take();
        if d.state() != State::Decoding {
            *decoder = None;
        }
        drop(decoder);
        for exchange in exchanges {
            record(&self.records, exchange);
        }
    }

    /// The connection ended: what still waited is recorded. Whether every exchange was
    /// recorded on its own (the connection needs no record of its own).
    fn finish(self) -> bool {
        let Some(mut d) = self.decoder.into_inner().unwrap_or_else(|p| p.into_inner()) else {
            return false;
        };
        d.end(Instant::now());
        for exchange in d.take() {
            record(&self.records, exchange);
        }
        true
    }
}

/// A decoded exchange recorded on its own, with what a replay needs of it when that was kept.
fn record(records: &Recorder, mut e: Exchange) {
    let resend = e.resend.take();
    let decoded = Decoded {
        command: e.request,
        group: e.group,
        outcome: e.outcome,
        failure: e.error,
    };
    let kind = match e.protocol {
        decode::Protocol::Redis => Kind::Redis(decoded),
        decode::Protocol::Postgres => Kind::Postgres(decoded),
    };
    let mut record = records.start(kind);
    // It started when its first byte came, not now.
    let ago = e.started.elapsed();
    let started = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::now());
    record.time_ms = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    record.latency_us = stats::micros(e.latency);
    records.record_captured(record, resend);
}
