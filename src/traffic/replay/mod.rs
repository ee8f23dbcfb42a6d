//! Sending a kept HTTP request again, as its caller would, through the proxy (so it is recorded,
//! kept and attributed like any other, its caller `replay`): the request as it was captured
//! (secrets included: they never leave devstack), or as the user edited it (`traffic replay
//! --edit`: a field still `…redacted…` keeps its captured value). Sent with hyper's client,
//! HTTP/1.1 or h2c as the original went; the answer comes back readable.
//!
//! A decoded Redis command or PostgreSQL query is replayed too, when it only reads
//! (`decoded`: the flow; `readonly`: what reads; `redis`, `postgres`: the clients).

pub mod compare;
mod decoded;
mod postgres;
mod readonly;
mod redis;

pub use decoded::{Answered, NO_EDIT};

use super::capture::view::{self, REDACTED, Response, field};
use super::capture::{Capture, Kept};
use super::{Caller, Kind, Record, Stats};
use bytes::Bytes;
use decoded::Read;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// An answer is read up to this much (the rest is counted, not kept).
const MOST: usize = 1 << 20;
/// A replay that has no answer by then is given up.
const WAIT: Duration = Duration::from_secs(30);
/// Fields the client writes itself for what it sends.
const OWN_FIELDS: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// How a replay went. `decoded` is an optional field added within protocol 5: a client that
/// predates it still reads the answer (it sees neither a response nor an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The replay's own record (None if it was not found kept in time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// What the service answered (None: `error` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub took_us: u64,
    /// A Redis command's or PostgreSQL query's answer (`response` is None then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<Answered>,
}

/// A request to send: what the head says, and the body.
struct Outgoing {
    method: String,
    path: String,
    version: String,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The request kept as `capture`, or as `edited` (HTTP/1-style text: start line, fields, a
/// blank line, the body), a redacted field taking the captured value.
fn outgoing(capture: &Capture, edited: Option<&str>) -> Result<Outgoing, String> {
    let original = parse(&capture.request_head, None)?;
    let Some(text) = edited else {
        if capture.request_body.cut() {
            return Err(format!(
                "its body was cut at {} of {} bytes: raise `[stack.capture] body` to replay it",
                capture.request_body.bytes.len(),
                capture.request_body.seen
            ));
        }
        let chunked = field(&original.fields, "transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let body = match chunked {
            true => view::dechunk(&capture.request_body.bytes),
            false => capture.request_body.bytes.clone(),
        };
        return Ok(Outgoing { body, ..original });
    };
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut request = parse(format!("{head}\n\n").as_bytes(), Some(&original.version))?;
    for (name, value) in &mut request.fields {
        if value == REDACTED
            && let Some(kept) = field(&original.fields, name)
        {
            *value = kept.to_string();
        }
    }
    request.body = body.as_bytes().to_vec();
    Ok(request)
}

/// A request head (`METHOD PATH VERSION` and fields); `version` when the line has none.
fn parse(head: &[u8], version: Option<&str>) -> Result<Outgoing, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let start = lines.next().unwrap_or("");
    let mut words = start.split_whitespace();
    let (Some(method), Some(path)) = (words.next(), words.next()) else {
        return Err(format!(
            "`{start}` is not a request line (`METHOD /path HTTP/1.1`)"
        ));
    };
    let version = words.next().or(version).unwrap_or("HTTP/1.1").to_string();
    let mut fields = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("`{line}` is not a header field (`Name: value`)"));
        };
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Outgoing {
        method: method.to_string(),
        path: path.to_string(),
        version,
        fields,
        body: Vec::new(),
    })
}

/// Replay the kept exchange `id` through its service's proxy (`port_of` a service's name: the
/// port its proxy listens on).
pub async fn replay(
    stats: &Stats,
    id: u64,
    port_of: impl Fn(&str) -> Option<u16>,
    edited: Option<&str>,
) -> Result<Replayed, String> {
    let callee = stats
        .kept_record(id)
        .or_else(|| stats.recent_record(id))
        .ok_or_else(|| not_kept(stats, id))?
        .callee
        .clone();
    let port = port_of(&callee).ok_or_else(|| format!("{callee} has no port to send it to"))?;
    if let Some((record, resend)) = stats.resend(id) {
        return decoded::replay(stats, &record, &resend, port, edited).await;
    }
    let (_, capture) = stats.kept(id).ok_or_else(|| not_kept(stats, id))?;
    let request = outgoing(&capture, edited)?;
    let before = stats.last_id();
    let start = Instant::now();
    let sent = tokio::time::timeout(WAIT, send(stats, port, request)).await;
    let took_us = super::stats::micros(start.elapsed());
    let (response, error) = match sent {
        Ok(Ok(response)) => (Some(response), None),
        Ok(Err(e)) => (None, Some(e)),
        Err(_) => (None, Some(format!("no answer within {}s", WAIT.as_secs()))),
    };
    Ok(Replayed {
        id: own_record(stats, before, |_| true).await.map(|r| r.id),
        response,
        error,
        took_us,
        decoded: None,
    })
}

/// Why `id` can't be replayed when nothing of it is kept.
fn not_kept(stats: &Stats, id: u64) -> String {
    let what = stats.recent_record(id).and_then(|r| match r.kind {
        Kind::Redis(_) => Some("a Redis command"),
        Kind::Postgres(_) => Some("a PostgreSQL query"),
        _ => None,
    });
    match what {
        Some(what) => format!(
            "it is {what} and nothing of it is kept to send again: its service keeps nothing \
             (`capture = false`), or newer exchanges took its place"
        ),
        None if id > stats.last_id() => {
            format!("no request #{id} yet: the last is #{}", stats.last_id())
        }
        None => format!("request #{id} is not kept: nothing to replay"),
    }
}

/// The replay's record (the first of the replay's since `after` that is `mine`), once the proxy
/// recorded it.
async fn own_record(
    stats: &Stats,
    after: u64,
    mine: impl Fn(&Record) -> bool,
) -> Option<Arc<Record>> {
    // Recorded once the proxy wrote the answer out: a moment after it was read here, longer
    // on a loaded machine; a decoded one once the decoder saw its answer.
    for _ in 0..100 {
        let found = stats
            .recent()
            .into_iter()
            .skip_while(|r| r.id <= after)
            .find(|r| r.caller == Caller::Replay && mine(r));
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Send `request` to the proxy on `port`, marked as a replay, and read the answer.
async fn send(stats: &Stats, port: u16, request: Outgoing) -> Result<Response, String> {
    through(stats, port, |stream| exchange(stream, request)).await
}

/// A connection to the proxy on `port`, marked as a replay while `talk` uses it.
async fn through<T, F>(
    stats: &Stats,
    port: u16,
    talk: impl FnOnce(TcpStream) -> F,
) -> Result<T, String>
where
    F: Future<Output = Result<T, String>>,
{
    // Marked before it connects: the proxy asks as it accepts.
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .map_err(|e| e.to_string())?;
    let from = socket.local_addr().map_err(|e| e.to_string())?;
    stats.replaying(from);
    let answered = async {
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .map_err(|e| format!("can't reach the proxy on port {port}: {e}"))?;
        talk(stream).await
    }
    .await;
    stats.replayed(from);
    answered
}

async fn exchange(stream: TcpStream, request: Outgoing) -> Result<Response, String> {
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (name, value) in &request.fields {
        let own = OWN_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f));
        // h2 has no Host: its authority is the URI's (hyper takes it from there).
        let h2_host = request.version == "HTTP/2.0" && name.eq_ignore_ascii_case("host");
        if !own && !h2_host {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let body = Full::new(Bytes::from(request.body));
    let io = TokioIo::new(stream);
    let response = if request.version == "HTTP/2.0" {
        let req = builder
            .version(hyper::Version::HTTP_2)
            .body(body)
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let req = builder.body(body).map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())?
    };
    readable(response).await
}

/// The answer as the inspector shows one.
async fn readable(response: hyper::Response<hyper::body::Incoming>) -> Result<Response, String> {
    let (parts, body) = response.into_parts();
    let version = match parts.version {
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let fields = |map: &hyper::HeaderMap| -> Vec<(String, String)> {
        map.iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    };
    let collected = Limited::new(body, MOST)
        .collect()
        .await
        .map_err(|e| format!("the answer broke off or is over {MOST} bytes: {e}"))?;
    let trailers = collected.trailers().map(fields).unwrap_or_default();
    let bytes = collected.to_bytes();
    let mut kept = Kept::new(MOST);
    kept.add(&bytes);
    let headers = fields(&parts.headers);
    // Read as the original's was: decompressed beside the bytes when it says how.
    let body = view::encoded(&kept, false, field(&headers, "content-encoding"));
    Ok(Response {
        version: version.into(),
        status: parts.status.as_u16(),
        reason: parts.status.canonical_reason().unwrap_or("").into(),
        headers,
        body,
        trailers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::capture::Settings;

    #[test]
    fn an_edited_request_keeps_the_captured_secrets_it_did_not_change() {
        let head = Bytes::from_static(
            b"POST /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n",
        );
        let mut capture = Capture::start(Settings::default(), &head).unwrap();
        capture.request_body.add(b"old");
        let as_kept = outgoing(&capture, None).unwrap();
        assert_eq!(as_kept.body, b"old");
        assert_eq!(
            field(&as_kept.fields, "authorization"),
            Some("Bearer s3cret")
        );
        let edited = "PUT /b HTTP/1.1\nHost: y\nAuthorization: …redacted…\nX-New: 1\n\nnew body";
        let request = outgoing(&capture, Some(edited)).unwrap();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("PUT", "/b")
        );
        assert_eq!(
            field(&request.fields, "authorization"),
            Some("Bearer s3cret")
        );
        assert_eq!(field(&request.fields, "x-new"), Some("1"));
        assert_eq!(request.body, b"new body");
        assert!(outgoing(&capture, Some("garbage")).is_err());
    }

    #[test]
    fn a_cut_body_is_not_replayed_short() {
        let head = Bytes::from_static(b"POST /a HTTP/1.1\r\n\r\n");
        let small = Settings {
            body: 2,
            ..Settings::default()
        };
        let mut capture = Capture::start(small, &head).unwrap();
        capture.request_body.add(b"abcdef");
        let e = outgoing(&capture, None).err().unwrap();
        assert!(e.contains("cut at 2 of 6 bytes"), "{e}");
    }
}
