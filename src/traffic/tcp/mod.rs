//! Raw TCP through the proxy: bytes both ways until both sides closed, one record per
//! connection; or, when the caller's first bytes are Redis or PostgreSQL (`decode::detect`),
//! each command or query a record of its own (`Kind::Redis`, `Kind::Postgres`), read off the
//! bytes as they pass (fed to the decoder before they are written on, never changed, never
//! held). A decoder that gives up (bytes it can't read) leaves the rest of the connection plain
//! TCP, recorded as such; so does an encrypted one (Postgres after an accepted SSLRequest).
//! When the service's capture is on, what a replay needs of each exchange is kept with it.
//!
//! A fault set on the edge is asked once per connection (`fault::On::Tcp`): `reset` resets
//! the caller's connection at once, `timeout` holds it (nothing relayed, the service never
//! dialled) until the caller leaves, `latency`, `bandwidth` and `slow_close` shape its bytes
//! (`fault::pace`); `error` is asked when the caller speaks PostgreSQL (`fault::On::Postgres`:
//! its startup refused here, the service never dialled; a plain byte stream has no error to
//! say: `reset` is the fault for that). A Redis connection is asked once about what shapes
//! its bytes (`On::Redis`) and then command by command (`commands`). A connection a fault
//! touched is recorded with it (`injected`), as each of its decoded exchanges is. `cut` is
//! asked as the connection is accepted (`cut` here).

mod commands;

use super::decode::{self, Decoder, Exchange, State};
use super::fault::pace::{self, Shape};
use super::fault::{Effect, On};
use super::h1::Stream as _;
use super::proxy::Counted;
use super::stats::{self, Decoded, ErrorKind, Kind};
use super::upstream::{Alpn, Upstream};
use super::{Conn, Recorder};
use crate::ignored::Ignore;
use crate::sync::Locked;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much is read at a time.
const READ: usize = 16 * 1024;

/// Forward a TCP connection (the bytes read while sniffing first), as a fault set on its
/// edge says (`fault::On::Tcp`, or `On::Redis`/`On::Postgres` when its caller speaks one;
/// asked once per connection, and a Redis one per command too).
pub(super) async fn forward(
    prefix: Vec<u8>,
    client: TcpStream,
    mut conn: Conn,
    server: Option<Upstream>,
) {
    let start = Instant::now();
    let mut record = conn.records.start(Kind::Tcp);
    record.bytes_in = prefix.len() as u64;
    let mut client = Counted::new(client);
    let decoder = decode::detect(&prefix);
    let on = match decoder.as_ref().map(|d| d.protocol()) {
        Some(decode::Protocol::Redis) => On::Redis,
        Some(decode::Protocol::Postgres) => On::Postgres,
        None => On::Tcp,
    };
    let effect = conn.records.fault(on, "", "").await;
    record.injected = effect.as_ref().map(ToString::to_string);
    // Told apart as the connection ends: every exchange was recorded on its own, or not.
    let decoded = match (&effect, decoder) {
        (Some(Effect::Reset), _) => {
            client.get_mut().reset();
            record.error = Some(ErrorKind::Reset);
            false
        }
        (Some(Effect::Timeout), _) => {
            let mut sink = vec![0u8; READ];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            record.error = Some(ErrorKind::Timeout);
            false
        }
        (Some(Effect::Error { body, .. }), Some(decoder)) => {
            let decoding = Decoding::new(decoder, &conn, record.injected.clone());
            let text = fault_text(body.as_deref(), conn.records.callee());
            if refuse_postgres(&prefix, &mut client, &decoding, &text)
                .await
                .is_err()
            {
                record.error = Some(ErrorKind::Reset);
            }
            decoding.finish()
        }
        (None, Some(decoder)) if commands::asked_per_command(&conn, Some(decoder.protocol())) => {
            let decoding = Decoding::new(decoder, &conn, None);
            record.error =
                commands::relay_commands(&prefix, &mut client, &mut conn, &decoding).await;
            decoding.finish()
        }
        (_, decoder) => {
            let connected = match server {
                Some(server) => Ok(server),
                None => conn.backend.connect(Alpn::H1).await,
            };
            match connected {
                Err(kind) => {
                    record.error = Some(kind);
                    false
                }
                Ok(mut server) => {
                    // What the service says first waits for the caller to be known.
                    let records = conn.records.clone();
                    client.hold = Some(Box::pin(async move { records.hold().await }));
                    let ends = (&mut client, &mut server);
                    let shapes = Shape::of(effect.as_ref());
                    let said = (prefix.as_slice(), decoder);
                    let (copied, all) = copy(said, ends, &conn, shapes, &record.injected).await;
                    if copied.is_err() {
                        record.error = Some(ErrorKind::Reset);
                    }
                    all
                }
            }
        }
    };
    if decoded && record.error.is_none() {
        return;
    }
    record.bytes_in += client.read;
    record.bytes_out = client.written;
    record.latency_us = stats::micros(start.elapsed());
    conn.records.record(record);
}

/// What an `error` fault says: its `body`, or words naming it.
fn fault_text(body: Option<&str>, callee: &str) -> String {
    match body {
        Some(body) => body.replace(['\r', '\n'], " "),
        None => format!("devstack: a fault set on {callee} answered an error"),
    }
}

/// A PostgreSQL connection an `error` fault touched: its startup refused here with a FATAL
/// error (SQLSTATE 57P03, cannot connect now; `N` first to an SSL or GSS request), the
/// service never dialled, the decoder reading both as if the service had answered.
async fn refuse_postgres(
    prefix: &[u8],
    client: &mut Counted<TcpStream>,
    decoding: &Decoding,
    text: &str,
) -> std::io::Result<()> {
    let mut buf = prefix.to_vec();
    let mut read = vec![0u8; READ];
    loop {
        match decode::opening(&buf) {
            Some((len, encrypted)) => {
                let asked: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                let answer = match encrypted {
                    true => b"N".to_vec(),
                    false => decode::fatal("57P03", text),
                };
                decoding.feed(Side::Caller, &asked);
                decoding.feed(Side::Service, &answer);
                client.write_all(&answer).await?;
                if !encrypted {
                    return Ok(());
                }
            }
            None => match client.read(&mut read).await? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&read[..n]),
            },
        }
    }
}

/// A new connection a `cut` touched, as it was accepted: reset at once, and recorded.
pub(super) fn cut(mut client: TcpStream, records: &Recorder, effect: &Effect) {
    client.reset();
    drop(client);
    let mut record = records.start(Kind::Tcp);
    record.injected = Some(effect.to_string());
    record.error = Some(ErrorKind::Reset);
    records.record(record);
}

/// The connection's bytes both ways, once the service's end is open: decoded when they are
/// Redis or PostgreSQL (`decoder`), shaped as a fault says (`shapes`: the caller's way, the
/// service's), or copied as they come. Whether every exchange was recorded on its own.
async fn copy(
    (prefix, decoder): (&[u8], Option<Box<dyn Decoder>>),
    (client, server): (&mut Counted<TcpStream>, &mut Upstream),
    conn: &Conn,
    shapes: (Shape, Shape),
    injected: &Option<String>,
) -> (std::io::Result<(u64, u64)>, bool) {
    match decoder {
        Some(decoder) => {
            let decoding = Decoding::new(decoder, conn, injected.clone());
            let relayed = relay(prefix, client, server, Some(&decoding), shapes).await;
            (relayed, decoding.finish())
        }
        None if shapes == (Shape::Plain, Shape::Plain) => {
            let copied = async {
                server.write_all(prefix).await?;
                tokio::io::copy_bidirectional(client, server).await
            };
            (copied.await, false)
        }
        None => (relay(prefix, client, server, None, shapes).await, false),
    }
}

/// Both directions at once, each read fed to the decoder (when there is one) before it is
/// written on; as `copy_bidirectional`, a side's end is passed on (its write shut) while the
/// other goes on.
async fn relay(
    prefix: &[u8],
    client: &mut Counted<TcpStream>,
    server: &mut Upstream,
    decoding: Option<&Decoding>,
    (up, down): (Shape, Shape),
) -> std::io::Result<(u64, u64)> {
    if let Some(d) = decoding {
        d.feed(Side::Caller, prefix);
    }
    server.write_all(prefix).await?;
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut server_rx, mut server_tx) = super::h1::Stream::halves(server);
    let up = pump(&mut client_rx, &mut server_tx, (Side::Caller, up), decoding);
    let down = pump(
        &mut server_rx,
        &mut client_tx,
        (Side::Service, down),
        decoding,
    );
    let (up, down) = tokio::join!(up, down);
    Ok((up?, down?))
}

#[derive(Clone, Copy)]
enum Side {
    Caller,
    Service,
}

/// Copy `from` to `to` until `from` ends (then `to`'s write is shut), feeding the decoder,
/// shaped as a fault says.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    (side, shape): (Side, Shape),
    decoding: Option<&Decoding>,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let feed = |bytes: &[u8]| {
        if let Some(d) = decoding {
            d.feed(side, bytes);
        }
    };
    let total = match shape {
        Shape::Held { ms, jitter_ms } => pace::held(from, to, (ms, jitter_ms), READ, feed).await?,
        _ => {
            let mut buf = vec![0u8; shape.chunk(READ)];
            let mut pace = shape.pace();
            let mut total = 0;
            loop {
                let n = from.read(&mut buf).await?;
                if n == 0 {
                    break total;
                }
                if let Some(pace) = &mut pace {
                    pace.take(n).await;
                }
                feed(&buf[..n]);
                to.write_all(&buf[..n]).await?;
                total += n as u64;
            }
        }
    };
    shape.closing().await;
    to.shutdown()
        .await
        .or_say("the other side may have gone already");
    Ok(total)
}

/// One connection's decoder, shared by both directions, and where its exchanges go.
struct Decoding {
    /// None once it stopped (gave up, or the connection went encrypted) before the end.
    decoder: Mutex<Option<Box<dyn Decoder>>>,
    records: Recorder,
    /// The fault that touched the connection, marked on each exchange (a command's own, when
    /// asked per command, given with the bytes that end it: `feed_marked`).
    injected: Mutex<Option<String>>,
}

impl Decoding {
    /// Decoding a connection of `conn` (keeping what a replay needs when its capture is on).
    fn new(mut decoder: Box<dyn Decoder>, conn: &Conn, injected: Option<String>) -> Decoding {
        if conn.capture.on {
            decoder.keep(conn.capture.body);
        }
        Decoding {
            decoder: Mutex::new(Some(decoder)),
            records: conn.records.clone(),
            injected: Mutex::new(injected),
        }
    }

    /// From now on, exchanges are marked with `injected` (the fault that ended the connection).
    fn mark(&self, injected: Option<String>) {
        *self.injected.locked() = injected;
    }

    fn feed(&self, side: Side, bytes: &[u8]) {
        let injected = self.injected.locked().clone();
        self.feed_marked(side, bytes, injected);
    }

    /// As `feed`, the exchanges these bytes end marked with `injected`.
    fn feed_marked(&self, side: Side, bytes: &[u8], injected: Option<String>) {
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
            record(&self.records, exchange, &injected);
        }
    }

    /// The connection ended: what still waited is recorded. Whether every exchange was
    /// recorded on its own (the connection needs no record of its own).
    fn finish(self) -> bool {
        let Some(mut d) = self.decoder.into_inner().unwrap_or_else(|p| p.into_inner()) else {
            return false;
        };
        d.end(Instant::now());
        let injected = self
            .injected
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        for exchange in d.take() {
            record(&self.records, exchange, &injected);
        }
        true
    }
}

/// A decoded exchange recorded on its own, with what a replay needs of it when that was kept.
fn record(records: &Recorder, mut e: Exchange, injected: &Option<String>) {
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
    record.injected = injected.clone();
    records.record_captured(record, resend);
}
