//! A Redis connection whose faults are asked per command (`fault::On::RedisCommand`: some
//! fault on its service can touch a command): each command the caller sends is asked in
//! turn, its name the request's method (`method=GET` touches only GETs; `rate` and `first`
//! count commands). Commands no fault touches go to the service in runs, as pipelined as
//! the caller sent them; before one a fault touches, the run is sent and its replies passed
//! on, so that what the caller reads stays in the order it asked:
//! - `error`: answered `-ERR text` here, the service never told;
//! - `latency`: held, then sent with those after it;
//! - `reset`: the caller's connection reset; `timeout`: nothing more answered until it leaves.
//!
//! What cannot be asked command by command goes on as plain relay for the rest of the
//! connection, faults no longer asked: pub/sub and `MONITOR` (the service speaks unasked),
//! `CLIENT REPLY` (commands go unanswered), bytes that are not RESP, and a command bigger
//! than `HELD` (it is not held whole to be asked about).
//! The decoder is fed both sides in the order the caller sees them, each exchange a fault
//! touched marked with it; the service is dialled at the first run sent.

use super::super::upstream::{Alpn, Upstream};
use super::{Decoding, READ, Side, relay};
use crate::traffic::Conn;
use crate::traffic::decode::{self, RedisFrames};
use crate::traffic::fault::pace::Shape;
use crate::traffic::fault::{self, Effect, On};
use crate::traffic::h1::Stream as _;
use crate::traffic::proxy::Counted;
use crate::traffic::stats::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A command held to be asked about is at most this big; past it, the connection goes plain.
const HELD: usize = 1024 * 1024;

/// Commands after which the service may speak unasked, or not answer: the rest goes plain.
const PLAIN_AFTER: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "MONITOR",
    "CLIENT REPLY",
];

/// Commands sent on and not yet answered, each with the fault that touched it.
#[derive(Default)]
struct Run {
    bytes: Vec<u8>,
    marks: Vec<Option<String>>,
}

/// The connection's two ends and what is between them.
struct Ends<'a> {
    client: &'a mut Counted<TcpStream>,
    server: Option<Upstream>,
    conn: &'a mut Conn,
    decoding: &'a Decoding,
    replies: RedisFrames,
    /// Why the service could not be dialled.
    refused: Option<ErrorKind>,
}

/// How the per-command relay ended: the error it ended with, if any.
pub(super) async fn relay_commands(
    prefix: &[u8],
    client: &mut Counted<TcpStream>,
    conn: &mut Conn,
    decoding: &Decoding,
) -> Option<ErrorKind> {
    let mut ends = Ends {
        client,
        server: None,
        conn,
        decoding,
        replies: RedisFrames::replies(),
        refused: None,
    };
    match ends.commands(prefix).await {
        Ok(ended) => ended,
        Err(_) => Some(ends.refused.unwrap_or(ErrorKind::Reset)),
    }
}

impl Ends<'_> {
    /// Each command asked about, in order, until the caller leaves or a fault ends it.
    async fn commands(&mut self, prefix: &[u8]) -> std::io::Result<Option<ErrorKind>> {
        let mut commands = RedisFrames::commands();
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; READ];
        let mut chunk = prefix.to_vec();
        loop {
            if chunk.is_empty() {
                let mut run = Run::default();
                return self.send(&mut run).await.map(|_| None);
            }
            self.decoding.feed(Side::Caller, &chunk);
            let from = pending.len();
            pending.extend_from_slice(&chunk);
            let Ok(ended) = commands.ends(&chunk) else {
                return self.plain(&pending).await;
            };
            let mut run = Run::default();
            let mut taken = 0;
            for command in ended {
                let bytes = &pending[taken..from + command.at];
                taken = from + command.at;
                if PLAIN_AFTER.contains(&command.name.as_str()) {
                    self.send(&mut run).await?;
                    return self.plain(&pending[taken - bytes.len()..]).await;
                }
                let asked = self.conn.records.fault(On::RedisCommand, &command.name, "");
                if let Some(end) = self.asked(asked.await, bytes, &mut run).await? {
                    return Ok(Some(end));
                }
            }
            self.send(&mut run).await?;
            pending.drain(..taken);
            if pending.len() > HELD {
                return self.plain(&pending).await;
            }
            let n = self.client.read(&mut buf).await?;
            chunk = buf[..n].to_vec();
        }
    }

    /// What a fault asked about one command does with it: into the run, or answered or ended
    /// here (`Some`: the connection ends so).
    async fn asked(
        &mut self,
        effect: Option<Effect>,
        bytes: &[u8],
        run: &mut Run,
    ) -> std::io::Result<Option<ErrorKind>> {
        let mark = effect.as_ref().map(ToString::to_string);
        match effect {
            Some(Effect::Error { body, .. }) => {
                self.send(run).await?;
                let text = super::fault_text(body.as_deref(), self.conn.records.callee());
                let said = format!("-ERR {text}\r\n");
                self.decoding
                    .feed_marked(Side::Service, said.as_bytes(), mark);
                self.client.write_all(said.as_bytes()).await?;
            }
            Some(Effect::Latency { ms, jitter_ms }) => {
                self.send(run).await?;
                fault::hold(fault::delay(ms, jitter_ms)).await;
                run.bytes.extend_from_slice(bytes);
                run.marks.push(mark);
            }
            Some(Effect::Reset) => {
                self.send(run).await?;
                self.decoding.mark(mark);
                self.client.get_mut().reset();
                return Ok(Some(ErrorKind::Reset));
            }
            Some(Effect::Timeout) => {
                self.send(run).await?;
                self.decoding.mark(mark);
                let mut sink = vec![0u8; READ];
                while self.client.read(&mut sink).await? > 0 {}
                return Ok(Some(ErrorKind::Timeout));
            }
            _ => {
                run.bytes.extend_from_slice(bytes);
                run.marks.push(None);
            }
        }
        Ok(None)
    }

    /// The run sent to the service (dialled the first time), and its replies passed on, each
    /// fed to the decoder with the mark of the command it answers.
    async fn send(&mut self, run: &mut Run) -> std::io::Result<()> {
        if run.marks.is_empty() {
            return Ok(());
        }
        self.dial().await?;
        let Ends {
            client,
            server: Some(server),
            decoding,
            replies,
            ..
        } = self
        else {
            unreachable!("dialled just now")
        };
        server.write_all(&run.bytes).await?;
        let mut marks = std::mem::take(&mut run.marks).into_iter();
        let mut left = marks.len();
        run.bytes.clear();
        let mut buf = vec![0u8; READ];
        while left > 0 {
            let n = server.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let Ok(ended) = replies.ends(&buf[..n]) else {
                // What follows is relayed plain, faults no longer asked.
                decoding.feed(Side::Service, &buf[..n]);
                client.write_all(&buf[..n]).await?;
                return Ok(());
            };
            let mut fed = 0;
            for reply in ended.iter().filter(|r| !r.push) {
                let mark = marks.next().flatten();
                decoding.feed_marked(Side::Service, &buf[fed..reply.at], mark);
                fed = reply.at;
                left = left.saturating_sub(1);
            }
            decoding.feed(Side::Service, &buf[fed..n]);
            client.write_all(&buf[..n]).await?;
        }
        Ok(())
    }

    /// The service's end, dialled the first time a command goes to it.
    async fn dial(&mut self) -> std::io::Result<()> {
        if self.server.is_none() {
            let dialled = self.conn.backend.connect(Alpn::H1).await;
            let stream = dialled.map_err(|kind| {
                self.refused = Some(kind);
                std::io::ErrorKind::ConnectionRefused
            })?;
            self.server = Some(stream);
        }
        Ok(())
    }

    /// The rest of the connection relayed plain from here (`pending`: what the caller sent
    /// that is not yet sent on, already fed to the decoder).
    async fn plain(&mut self, pending: &[u8]) -> std::io::Result<Option<ErrorKind>> {
        self.dial().await?;
        let mut server = self.server.take().expect("dialled just now");
        server.write_all(pending).await?;
        let shapes = (Shape::Plain, Shape::Plain);
        let relayed = relay(&[], self.client, &mut server, Some(self.decoding), shapes);
        relayed.await.map(|_| None)
    }
}

/// Whether a Redis connection of `conn` is asked about command by command.
pub(super) fn asked_per_command(conn: &Conn, protocol: Option<decode::Protocol>) -> bool {
    protocol == Some(decode::Protocol::Redis) && conn.records.asks(On::RedisCommand)
}
