//! The HTTP/1 relay against the service it fronts, on real sockets: any pipelined run of valid
//! requests (bodiless, with a length or chunked in any chunks, with or without trailers;
//! answered with a length, chunked, or to HEAD; the last one HTTP/1.1 asking to close or
//! HTTP/1.0, answered until close), written in any pieces, gets the same bytes
//! through the proxy as directly from the service (a hyper server), and each request is
//! recorded once. The relay frames messages itself (`traffic::h1`), so this is the check that
//! its idea of where each message ends is the service's.

use devstack::traffic::{Caller, Protocol, Proxy, Route, Sessions, Stats, Target};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// The service: answers `METHOD PATH` then the request's body, with a length (`/len/…`) or
/// chunked in pieces of 7 bytes (`/chunked/…`).
async fn handle(req: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let chunked = req.uri().path().starts_with("/chunked/");
    let mut answer = format!("{} {}\n", req.method(), req.uri().path()).into_bytes();
    answer.extend_from_slice(&req.into_body().collect().await?.to_bytes());
    let body = if chunked {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = answer
            .chunks(7)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
    } else {
        Full::new(Bytes::from(answer))
            .map_err(|e| match e {})
            .boxed()
    };
    Ok(Response::new(body))
}

async fn service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle)),
            );
        }
    });
    addr
}

/// How a request's body is sent.
#[derive(Debug, Clone)]
enum Sent {
    None,
    Length(Vec<u8>),
    /// The body in these chunks, then these trailer fields.
    Chunked(Vec<Vec<u8>>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    answer_chunked: bool,
    body: Sent,
    /// Header name case as a client may send it.
    upper: bool,
}

impl Req {
    /// The request as bytes; the last one ends the connection: HTTP/1.1 with `Connection:
    /// close`, or HTTP/1.0 (`v10`, whose answers the service ends by closing when it would
    /// chunk them; a chunked body is then sent with its length, as 1.0 has no chunking).
    fn bytes(&self, i: usize, last: bool, v10: bool) -> Vec<u8> {
        let kind = if self.answer_chunked {
            "chunked"
        } else {
            "len"
        };
        let (length, coding) = if self.upper {
            ("Content-Length", "Transfer-Encoding")
        } else {
            ("content-length", "transfer-encoding")
        };
        let v10 = last && v10;
        let version = if v10 { "1.0" } else { "1.1" };
        let mut out =
            format!("{} /{kind}/{i} HTTP/{version}\r\nHost: x\r\n", self.method).into_bytes();
        if last && !v10 {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        let body = match &self.body {
            Sent::Chunked(chunks, _) if v10 => Sent::Length(chunks.concat()),
            body => body.clone(),
        };
        match &body {
            Sent::None => out.extend_from_slice(b"\r\n"),
            Sent::Length(body) => {
                out.extend_from_slice(format!("{length}: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            Sent::Chunked(chunks, trailers) => {
                out.extend_from_slice(format!("{coding}: chunked\r\n\r\n").as_bytes());
                for c in chunks {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for t in trailers {
                    out.extend_from_slice(format!("x-{t}: {t}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }
}

fn request() -> impl Strategy<Value = Req> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..3000);
    let body = prop_oneof![
        Just(Sent::None),
        bytes().prop_map(Sent::Length),
        (
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..2000), 0..5),
            proptest::collection::vec("[a-z]{1,6}", 0..3),
        )
            .prop_map(|(c, t)| Sent::Chunked(c, t)),
    ];
    (
        proptest::sample::select(&["GET", "HEAD", "POST", "PUT", "DELETE"][..]),
        any::<bool>(),
        body,
        any::<bool>(),
    )
        .prop_map(|(method, answer_chunked, body, upper)| Req {
            method,
            answer_chunked,
            // A bodiless method with a body is valid but unusual; keep the methods honest.
            body: if matches!(method, "GET" | "HEAD") {
                Sent::None
            } else {
                body
            },
            upper,
        })
}

/// Write `bytes` to `to` in pieces cut at `cuts`, read everything until it closes, and drop the
/// `date` field (the service's clock) from the answer.
async fn exchange(to: SocketAddr, bytes: &[u8], cuts: &[usize]) -> Vec<u8> {
    let stream = TcpStream::connect(to).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        let mut start = 0;
        for end in ends {
            w.write_all(&bytes[start..end]).await.unwrap();
            w.flush().await.unwrap();
            start = end;
            tokio::task::yield_now().await;
        }
        w
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut answer))
        .await
        .expect("the connection ends after the last answer")
        .unwrap();
    drop(writer.await.unwrap());
    let text = String::from_utf8_lossy(&answer);
    text.split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

#[test]
fn any_run_of_requests_gets_the_same_answers_through_the_proxy_as_directly() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(service());
    let proxy = Proxy::start(Stats::new(), Sessions::new(), 1).unwrap();
    let (_tx, rx) = watch::channel(Target::Up(backend));
    let listener = {
        let _in = rt.enter();
        proxy
            .listen(Route {
                service: "api".into(),
                port: 0,
                backend: rx,
                protocol: Protocol::Auto,
                wait: Duration::from_secs(10),
                limits: Default::default(),
                notice: None,
                capture: Default::default(),
            })
            .unwrap()
    };
    let through = listener.local_addr();
    // Records so far (shrinking runs cases again; the count goes on).
    let recorded = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(request(), 1..6),
        any::<bool>(),
        proptest::collection::vec(any::<usize>(), 0..6),
    );
    runner
        .run(&strategy, |(requests, v10, cuts)| {
            let bytes: Vec<u8> = requests
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r.bytes(i, i + 1 == requests.len(), v10))
                .collect();
            let (direct, proxied) = rt.block_on(async {
                (
                    exchange(backend, &bytes, &cuts).await,
                    exchange(through, &bytes, &cuts).await,
                )
            });
            prop_assert_eq!(
                String::from_utf8_lossy(&proxied),
                String::from_utf8_lossy(&direct)
            );
            // Each request is recorded once, with its method and path.
            recorded.set(recorded.get() + requests.len() as u64);
            let recorded = recorded.get();
            let deadline = Instant::now() + Duration::from_secs(20);
            let edge = loop {
                let edge = proxy
                    .stats()
                    .snapshot()
                    .edges
                    .into_iter()
                    .find(|e| e.caller == Caller::External && e.callee == "api");
                if edge.as_ref().is_some_and(|e| e.requests >= recorded) {
                    break edge.unwrap();
                }
                assert!(Instant::now() < deadline, "records never came: {edge:?}");
                std::thread::sleep(Duration::from_millis(10));
            };
            prop_assert_eq!(edge.requests, recorded);
            prop_assert_eq!(edge.status.s2xx, recorded);
            Ok(())
        })
        .unwrap();
    drop(listener);
}
