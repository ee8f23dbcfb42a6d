//! One exchange's two directions at once: the request's body to the service while its answer
//! (interim heads, then the final head and body) goes back to the caller, the caller watched
//! meanwhile; what is kept of both (`capture`) filled as the bytes pass.

use super::io::Stream;
use super::message::{
    self, BadHead, Broke, Framing, HeadError, RequestHead, opens_tunnel, parse_response, read_head,
    relay_message,
};
use super::{Exchange, Upstream, caller_left};
use crate::traffic::Recorder;
use crate::traffic::capture::{self, Capture};
use crate::traffic::fault::pace::Paced;
use crate::traffic::stats::{ErrorKind, Record};
use bytes::{Buf, BytesMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The backend connection broke before a byte of the response came.
pub(super) struct Unanswered;

/// The two ends of an exchange: the caller (with what it sent not used yet) and the service.
pub(super) struct Ends<'a, C, S> {
    pub(super) client: &'a mut C,
    pub(super) cbuf: &'a mut BytesMut,
    pub(super) upstream: &'a mut Upstream<S>,
    /// The answer paced to this many bytes per second (a `bandwidth` fault).
    pub(super) pace: Option<u64>,
}

/// After the request head went out: its body to the service and the response to the caller,
/// both at once.
pub(super) async fn send_body_and_answer<C: Stream, S: Stream>(
    head: &RequestHead,
    ends: Ends<'_, C, S>,
    record: &mut Record,
    capture: &mut Option<Capture>,
    records: &Recorder,
) -> Result<Exchange, Unanswered> {
    let Ends {
        client,
        cbuf,
        upstream,
        pace,
    } = ends;
    let (keep_request, keep_answer) = match capture {
        Some(c) => (Some(&mut c.request_body), Some(&mut c.answer)),
        None => (None, None),
    };
    let (mut client_rx, mut client_tx) = client.halves();
    let (mut backend_rx, mut backend_tx) = upstream.stream.halves();
    // Counted as the bytes pass, read while both directions are still moving.
    let bytes_in = AtomicU64::new(0);
    let bytes_out = AtomicU64::new(0);
    // The two sides at once, dropped (with their borrows) once the exchange is over.
    let outcome = {
        let answer = answer_at(
            pace,
            &head.method,
            (&mut backend_rx, &mut upstream.buf),
            &mut client_tx,
            &bytes_out,
            (record, keep_answer),
            records,
        );
        // The caller's side: the request body to the service, then a watch on the caller, whose
        // leaving ends the exchange (what it sends meanwhile, a pipelined request, is kept).
        let body_read = AtomicBool::new(head.framing == Framing::Empty);
        let caller = async {
            if head.framing != Framing::Empty {
                let sent = relay_message(
                    0,
                    head.framing,
                    cbuf,
                    (&mut client_rx, &mut backend_tx),
                    &bytes_in,
                    keep_request,
                );
                if let Err(broke) = sent.await {
                    return broke;
                }
                body_read.store(true, Ordering::Relaxed);
            }
            caller_left(&mut client_rx, cbuf).await;
            Broke::From
        };
        tokio::pin!(answer, caller);
        let mut backend_broke = false;
        loop {
            tokio::select! {
                // An answer that came whole is the caller's, even if it has left since.
                biased;
                outcome = &mut answer => break match outcome {
                    // Answered before the whole request was read (or sent): the rest can't be told
                    // from the next request.
                    // (An upgrade then is not followed: the tunnel would start in the body.)
                    Ok(Exchange::Answered { .. } | Exchange::Upgraded)
                        if !body_read.load(Ordering::Relaxed) =>
                    {
                        Ok(Exchange::AnsweredEarly)
                    }
                    outcome => outcome,
                },
                broke = &mut caller, if !backend_broke => match broke {
                    // The service stopped reading the body: its answer may still come.
                    Broke::To => backend_broke = true,
                    // The caller left, or broke off its request: it gets no more.
                    Broke::From => break Ok(Exchange::CallerGone),
                },
            }
        }
    };
    record.bytes_in = bytes_in.into_inner();
    record.bytes_out = bytes_out.into_inner();
    outcome
}

/// [`answer`], written through a [`Paced`] writer when a `bandwidth` fault touched the
/// exchange (`pace`: bytes per second).
async fn answer_at<R, W>(
    pace: Option<u64>,
    method: &hyper::Method,
    from: (&mut R, &mut BytesMut),
    to: &mut W,
    payload: &AtomicU64,
    kept: (&mut Record, Option<&mut capture::Answer>),
    records: &Recorder,
) -> Result<Exchange, Unanswered>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match pace {
        None => answer(method, from, to, payload, kept, records).await,
        Some(rate) => {
            let mut paced = Paced::new(to, rate);
            answer(method, from, &mut paced, payload, kept, records).await
        }
    }
}

/// Read the response from the service and forward it: interim (1xx) heads, then the final
/// head and its body.
async fn answer<R, W>(
    method: &hyper::Method,
    (from, buf): (&mut R, &mut BytesMut),
    to: &mut W,
    payload: &AtomicU64,
    (record, mut keep): (&mut Record, Option<&mut capture::Answer>),
    records: &Recorder,
) -> Result<Exchange, Unanswered>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut forwarded = false;
    loop {
        let head = match read_head(from, buf, |b| parse_response(b, method)).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Closed) if !forwarded => return Err(Unanswered),
            Err(HeadError::Bad(BadHead(message::TOO_LARGE))) => return Ok(Exchange::TooLarge),
            Err(HeadError::Bad(_)) => return Ok(Exchange::Garbled),
            Ok(None) | Err(_) => return Ok(Exchange::Failed(ErrorKind::Reset)),
        };
        record.set_status(head.status, head.grpc_status);
        if let Some(keep) = keep.as_deref_mut() {
            keep.head(&buf[..head.len]);
        }
        records.hold().await;
        if opens_tunnel(method, head.status) {
            return match to.write_all(&buf[..head.len]).await {
                Ok(()) => {
                    buf.advance(head.len);
                    Ok(Exchange::Upgraded)
                }
                Err(_) => Ok(Exchange::CallerGone),
            };
        }
        forwarded = true;
        let body = keep.as_deref_mut().map(|k| &mut k.body);
        match relay_message(head.len, head.framing, buf, (from, to), payload, body).await {
            // An interim (1xx) response: the final one follows.
            Ok(()) if head.status < 200 => {}
            Ok(()) => return Ok(Exchange::Answered { close: head.close }),
            Err(Broke::To) => return Ok(Exchange::CallerGone),
            Err(Broke::From) => {
                record.error = Some(ErrorKind::Reset);
                return Ok(Exchange::Answered { close: true });
            }
        }
    }
}
