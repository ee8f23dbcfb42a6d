//! HTTP/2 with prior knowledge (h2c, gRPC) through the proxy: hyper serves the caller and a hyper
//! client connection per caller connection forwards to the backend, its requests multiplexed on
//! it and bodies streamed both ways, never held whole. One record per request: method, path,
//! status (and gRPC's from the trailers), latency from the request head to the end of the
//! response, body bytes each way. (HTTP/1.x is relayed as bytes, in `h1`.)

use super::capture::{Capture, Kept, Settings, head_text};
use super::fault;
use super::proxy::Backend;
use super::sniff::Prefixed;
use super::stats::{self, ErrorKind, Kind, Record};
use super::upstream::Alpn;
use super::{Conn, Recorder};
use crate::ignored::Ignore;
use crate::sync::Locked;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http2 as client_h2;
use hyper::header::HeaderMap;
use hyper::server::conn::http2 as server_h2;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tokio::net::TcpStream;

/// Serve a caller speaking HTTP/2 with prior knowledge (h2c, gRPC).
pub async fn serve_h2(client: Prefixed<TcpStream>, conn: Conn) {
    let shared = Shared::new(conn);
    // A fault's `reset` is the stream's: hyper resets a stream its service fails.
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { shared.forward(req).await }
    });
    server_h2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(client), service)
        .await
        .or_say("a caller's connection ended in error; its requests are recorded as they ended");
}

/// A stream a fault ends without an answer: reset at once, or (`Held`) after the caller gave
/// up waiting.
#[derive(Debug)]
enum Reset {
    Now,
    Held,
}

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a fault reset the stream")
    }
}

impl std::error::Error for Reset {}

/// What a fault does instead of sending a request on.
enum Instead {
    /// An HTTP answer made here: its status and text.
    Answer(u16, String),
    /// A gRPC call answered here with trailers only: its status code and message.
    Grpc(u32, String),
    /// No answer: the stream reset (`Reset`), or held until the caller gives up (`Timeout`).
    End(ErrorKind),
}

/// Whether a request is a gRPC call (`application/grpc`, `application/grpc+proto`, …).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// What the requests of one caller connection share: its caller and its backend connection.
struct Shared {
    records: Recorder,
    capture: Settings,
    upstream: tokio::sync::Mutex<Upstream>,
}

struct Upstream {
    backend: Backend,
    h2: Option<client_h2::SendRequest<RequestBody>>,
}

impl Shared {
    fn new(conn: Conn) -> Arc<Shared> {
        Arc::new(Shared {
            records: conn.records,
            capture: conn.capture,
            upstream: tokio::sync::Mutex::new(Upstream {
                backend: conn.backend,
                h2: None,
            }),
        })
    }

    async fn forward(&self, req: Request<Incoming>) -> Result<Response<ResponseBody>, Reset> {
        let start = Instant::now();
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_string());
        let on = fault::On::H2c;
        let effect = self.records.fault(on, req.method().as_str(), &path).await;
        let version = stats::version_name(req.version());
        // (The head is written out only when it is kept.)
        let mut capture = self
            .capture
            .on
            .then(|| {
                let start = format!("{} {path} {version}", req.method());
                Capture::start(self.capture, &head_text(&start, req.headers()))
            })
            .flatten();
        let mut record = self.records.start(Kind::Http {
            version: version.into(),
            method: stats::method_name(req.method()),
            path: stats::bounded_path(path),
            status: 0,
            grpc_status: None,
        });
        let bytes_in = Arc::new(Mutex::new(Inflow {
            kept: capture.as_ref().map(|_| Kept::new(self.capture.body)),
            ..Inflow::default()
        }));
        let req = req.map(|inner| RequestBody {
            inner,
            inflow: bytes_in.clone(),
        });
        let mut pace = None;
        if let Some(effect) = effect {
            record.injected = Some(effect.to_string());
            if let fault::Effect::Bandwidth { bytes_per_sec } = effect {
                pace = Some(bytes_per_sec);
            }
            let grpc = is_grpc(req.headers());
            if let Some(instead) = self.fault(effect, grpc).await {
                let answered = self.injected(instead, record, capture, (start, &bytes_in));
                if let Err(Reset::Held) = answered {
                    // Until the caller gives up: hyper drops this with the stream.
                    std::future::pending::<()>().await;
                }
                return answered;
            }
        }
        let sent = self.send_h2(req).await;
        self.records.hold().await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(kind) => {
                let (code, why) = kind.answer();
                let text = format!("devstack: {} {why}\n", self.records.callee());
                record.error = Some(kind);
                return Ok(self.made(code, text, record, capture, (start, &bytes_in)));
            }
        };
        record.set_status(resp.status().as_u16(), grpc_status(resp.headers()));
        if let Some(c) = &mut capture {
            c.answer.head(&answer_head(&resp));
        }
        let finish = Finish {
            record,
            capture,
            start,
            bytes_in,
            records: self.records.clone(),
        };
        Ok(resp.map(|inner| ResponseBody::new(inner, finish, pace)))
    }

    /// What a fault does to a stream before it goes on: None when it goes on (after a
    /// latency's hold); else what happens instead (a gRPC call, `grpc`, answered in gRPC).
    async fn fault(&self, effect: fault::Effect, grpc: bool) -> Option<Instead> {
        match effect {
            fault::Effect::Latency { ms, jitter_ms } => {
                fault::hold(fault::delay(ms, jitter_ms)).await;
                None
            }
            fault::Effect::Error {
                status,
                grpc: code,
                body,
            } => {
                let callee = self.records.callee();
                let said = format!("devstack: a fault set on {callee} answered {status}");
                Some(match grpc {
                    true => {
                        let code = code.unwrap_or(super::grpc::from_http(status));
                        Instead::Grpc(code, body.unwrap_or(said))
                    }
                    false => Instead::Answer(status, body.unwrap_or(said + "\n")),
                })
            }
            fault::Effect::Reset => Some(Instead::End(ErrorKind::Reset)),
            fault::Effect::Timeout => Some(Instead::End(ErrorKind::Timeout)),
            // Its answer paced as it goes (`ResponseBody::Paced`).
            fault::Effect::Bandwidth { .. } => None,
            // Not asked about on a request (`fault::On::H2c`): the request goes on.
            fault::Effect::Cut | fault::Effect::SlowClose { .. } => None,
        }
    }

    /// A request a fault touched that goes no further: answered here, in HTTP or gRPC; or
    /// its stream reset at once (`reset`) or held unanswered until the caller gives up
    /// (`timeout`: recorded as it starts, the caller's end unknown here).
    fn injected(
        &self,
        instead: Instead,
        mut record: Record,
        capture: Option<Capture>,
        flow: (Instant, &Mutex<Inflow>),
    ) -> Result<Response<ResponseBody>, Reset> {
        let kind = match instead {
            Instead::Answer(status, text) => {
                return Ok(self.made(status, text, record, capture, flow));
            }
            Instead::Grpc(code, text) => {
                let mut resp = Response::new(ResponseBody::Full(None));
                let headers = resp.headers_mut();
                let field = |v: &str| hyper::header::HeaderValue::from_str(v).ok();
                let fields = [
                    ("content-type", field("application/grpc")),
                    ("grpc-status", field(&code.to_string())),
                    ("grpc-message", field(&super::grpc::message_encoded(&text))),
                ];
                for (name, value) in fields {
                    headers
                        .extend(value.map(|v| (hyper::header::HeaderName::from_static(name), v)));
                }
                record.set_status(200, Some(code));
                return Ok(self.answered(resp, record, capture, flow));
            }
            Instead::End(kind) => kind,
        };
        record.error = Some(kind);
        record.latency_us = stats::micros(flow.0.elapsed());
        self.records.record_captured(record, capture);
        match kind {
            ErrorKind::Timeout => Err(Reset::Held),
            _ => Err(Reset::Now),
        }
    }

    /// The caller's answer when the service gave none: made here, recorded (and kept) as the
    /// caller got it.
    fn made(
        &self,
        code: u16,
        text: String,
        mut record: Record,
        capture: Option<Capture>,
        flow: (Instant, &Mutex<Inflow>),
    ) -> Response<ResponseBody> {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        record.set_status(status.as_u16(), None);
        let mut resp = Response::new(ResponseBody::Full(Some(Bytes::from(text))));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        self.answered(resp, record, capture, flow)
    }

    /// An answer made here (its status already on `record`), recorded and kept as the caller
    /// got it.
    fn answered(
        &self,
        resp: Response<ResponseBody>,
        mut record: Record,
        mut capture: Option<Capture>,
        (start, bytes_in): (Instant, &Mutex<Inflow>),
    ) -> Response<ResponseBody> {
        record.latency_us = stats::micros(start.elapsed());
        let mut flow = bytes_in.locked();
        record.bytes_in = flow.bytes;
        if let Some(c) = &mut capture {
            c.answer.head(&answer_head(&resp));
            if let ResponseBody::Full(Some(text)) = resp.body() {
                c.answer.body.add(text);
            }
            c.request_body = flow.kept.take().unwrap_or_default();
        }
        drop(flow);
        self.records.record_captured(record, capture);
        resp
    }

    /// Send on this connection's HTTP/2 backend connection (requests multiplexed on it).
    async fn send_h2(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, ErrorKind> {
        let (mut sender, authority) = {
            let mut up = self.upstream.lock().await;
            // A connection to a process that serves no more (a blue-green switch) takes no new
            // streams: those on it finish there, and it closes once they have.
            let moved = up.backend.moved();
            let sender = match &up.h2 {
                Some(sender) if !sender.is_closed() && !moved => sender.clone(),
                _ => {
                    let stream = up.backend.connect(Alpn::H2).await?;
                    let (sender, conn) = client_h2::Builder::new(TokioExecutor::new())
                        .handshake(TokioIo::new(stream))
                        .await
                        .map_err(|_| ErrorKind::Reset)?;
                    tokio::spawn(conn);
                    up.h2.insert(sender).clone()
                }
            };
            let remote = up.backend.authority().map(str::to_string);
            (sender, remote.map(|a| (a, up.backend.scheme())))
        };
        // A remote end is asked for by its own name (`:authority`) and scheme.
        if let Some((authority, scheme)) = authority {
            let mut parts = req.uri().clone().into_parts();
            parts.scheme = scheme.parse().ok();
            parts.authority = authority.parse().ok();
            if let Ok(uri) = hyper::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            req.headers_mut().remove(hyper::header::HOST);
        }
        sender.ready().await.map_err(|_| ErrorKind::Reset)?;
        sender.send_request(req).await.map_err(|_| ErrorKind::Reset)
    }
}

/// A response's head as the store keeps it (`HTTP/2.0 200 OK` and its fields).
fn answer_head<B>(resp: &Response<B>) -> Bytes {
    let status = resp.status();
    let reason = status.canonical_reason().unwrap_or("");
    head_text(
        &format!("HTTP/2.0 {} {reason}", status.as_u16()),
        resp.headers(),
    )
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The caller's request body on its way to the service, counted.
pub(crate) struct RequestBody {
    inner: Incoming,
    inflow: Arc<Mutex<Inflow>>,
}

/// The request body's bytes so far; a response that ends before the request body does (HTTP/2
/// lets a server answer first) leaves its record here, for the body's end to finish.
#[derive(Default)]
pub(crate) struct Inflow {
    bytes: u64,
    /// What is kept of it (capture on).
    kept: Option<Kept>,
    done: bool,
    waiting: Option<Box<Finish>>,
}

impl RequestBody {
    /// The request body has ended (or was dropped): a record waiting for it is finished now.
    fn done(&self) {
        let mut flow = self.inflow.locked();
        if flow.done {
            return;
        }
        flow.done = true;
        if let Some(finish) = flow.waiting.take() {
            let body = (flow.bytes, flow.kept.take());
            drop(flow);
            finish.record(body);
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.done();
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
            && let Some(data) = data
        {
            let mut flow = this.inflow.locked();
            flow.bytes += data.len() as u64;
            if let Some(kept) = &mut flow.kept {
                kept.add(data);
            }
        }
        if frame.is_none() || this.inner.is_end_stream() {
            this.done();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the caller gets: the service's response, metered, or one devstack made.
pub(crate) enum ResponseBody {
    Metered(Metered),
    /// Passed on at most so many bytes a second (a `bandwidth` fault), frame by frame.
    Paced(Metered, Box<fault::pace::Gate>),
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// The service's response body, metered (and paced to `pace` bytes a second).
    fn new(inner: Incoming, finish: Finish, pace: Option<u64>) -> ResponseBody {
        let mut body = Metered {
            inner,
            finish: Some(Box::new(finish)),
        };
        if body.inner.is_end_stream() {
            body.end(None);
        }
        match pace {
            None => ResponseBody::Metered(body),
            Some(rate) => ResponseBody::Paced(body, Box::new(fault::pace::Gate::new(rate))),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Metered(m) => m.poll(cx),
            ResponseBody::Paced(m, gate) => {
                ready!(gate.poll_open(cx));
                let frame = ready!(m.poll(cx));
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    gate.passed(data.len());
                }
                Poll::Ready(frame)
            }
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Metered(m) | ResponseBody::Paced(m, _) => m.inner.is_end_stream(),
            ResponseBody::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Metered(m) | ResponseBody::Paced(m, _) => m.inner.size_hint(),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// The service's response body on its way to the caller; its end (or its loss) makes the record.
pub(crate) struct Metered {
    inner: Incoming,
    /// Boxed: the response body stays small while it streams.
    finish: Option<Box<Finish>>,
}

pub(crate) struct Finish {
    record: Record,
    capture: Option<Capture>,
    start: Instant,
    bytes_in: Arc<Mutex<Inflow>>,
    records: Recorder,
}

impl Finish {
    /// Recorded with the request body's bytes and what was kept of it.
    fn record(self, (bytes_in, kept): (u64, Option<Kept>)) {
        let mut record = self.record;
        record.bytes_in = bytes_in;
        let mut capture = self.capture;
        if let (Some(c), Some(kept)) = (&mut capture, kept) {
            c.request_body = kept;
        }
        self.records.record_captured(record, capture);
    }
}

impl Metered {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(finish) = &mut self.finish {
                    if let Some(data) = frame.data_ref() {
                        finish.record.bytes_out += data.len() as u64;
                        if let Some(c) = &mut finish.capture {
                            c.answer.body.add(data);
                        }
                    } else if let Some(trailers) = frame.trailers_ref() {
                        if let Some(c) = &mut finish.capture {
                            c.answer.trailers = head_text("", trailers);
                        }
                        if let Some(code) = grpc_status(trailers)
                            && let Kind::Http { grpc_status, .. } = &mut finish.record.kind
                        {
                            *grpc_status = Some(code);
                        }
                    }
                }
                if self.inner.is_end_stream() {
                    self.end(None);
                }
            }
            Some(Err(_)) => self.end(Some(ErrorKind::Reset)),
            None => self.end(None),
        }
        Poll::Ready(frame)
    }

    fn end(&mut self, error: Option<ErrorKind>) {
        if let Some(mut finish) = self.finish.take() {
            finish.record.latency_us = stats::micros(finish.start.elapsed());
            finish.record.error = finish.record.error.or(error);
            let flows = finish.bytes_in.clone();
            let mut flow = flows.locked();
            if flow.done {
                let body = (flow.bytes, flow.kept.take());
                drop(flow);
                finish.record(body);
            } else {
                // The request body is still on its way: recorded when it ends.
                flow.waiting = Some(finish);
            }
        }
    }
}

impl Drop for Metered {
    /// Dropped before its end: the caller went away, or hyper needed no more of it.
    fn drop(&mut self) {
        let error = (!self.inner.is_end_stream()).then_some(ErrorKind::Reset);
        self.end(error);
    }
}
