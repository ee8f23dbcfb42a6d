//! After a 101 (or a 2xx to CONNECT): the connection is a tunnel, bytes both ways, a
//! WebSocket's frames read as they pass when its exchange is kept.

use super::Upstream;
use super::io::Stream;
use crate::sync::Locked;
use crate::traffic::Recorder;
use crate::traffic::capture::Capture;
use crate::traffic::capture::websocket::{Frames, Tap, Way};
use crate::traffic::proxy::Counted;
use crate::traffic::stats::{ErrorKind, Record};
use bytes::BytesMut;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// After a 101: bytes both ways between the caller and the service (what either had sent past
/// the heads first), then the request's record.
pub(super) async fn tunnel<C: Stream, S: Stream>(
    client: C,
    cbuf: BytesMut,
    mut up: Upstream<S>,
    (mut record, capture): (Record, Option<Capture>),
    records: &Recorder,
) {
    let mut client = Counted::new(client);
    // A WebSocket's frames are read as they pass, when its exchange is kept.
    let frames = capture
        .as_ref()
        .filter(|c| c.asks_websocket())
        .map(|_| Arc::new(Mutex::new(Frames::default())));
    let copied = match &frames {
        Some(frames) => {
            frames.locked().feed(Way::Out, &cbuf);
            frames.locked().feed(Way::In, &up.buf);
            let mut caller = Tap::new(&mut client, Way::Out, frames.clone());
            let mut service = Tap::new(&mut up.stream, Way::In, frames.clone());
            copy_both(&mut caller, &mut service, &cbuf, &up.buf).await
        }
        None => copy_both(&mut client, &mut up.stream, &cbuf, &up.buf).await,
    };
    if copied.is_err() {
        record.error = Some(ErrorKind::Reset);
    }
    record.bytes_in += cbuf.len() as u64 + client.read;
    record.bytes_out += client.written;
    let mut capture = capture;
    if let (Some(c), Some(frames)) = (&mut capture, frames) {
        c.websocket = Some(std::mem::take(&mut *frames.locked()));
    }
    records.record_captured(record, capture);
}

/// What either side sent past the heads, then bytes both ways until both closed.
async fn copy_both<A, B>(a: &mut A, b: &mut B, to_b: &[u8], to_a: &[u8]) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    b.write_all(to_b).await?;
    a.write_all(to_a).await?;
    tokio::io::copy_bidirectional(a, b).await.map(drop)
}
