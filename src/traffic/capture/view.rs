//! A kept exchange made readable: [`Inspected`], its heads split into fields, its bodies shown
//! by `body.rs` (de-chunked, as text or base64, decompressed beside), and secrets' values
//! redacted unless the service said not to. This is what the socket, `traffic show`, HAR, `curl` and the inspector
//! show; it is also the wire form (`control::wire` uses it as it is).

use super::Capture;
pub use super::body::{Decompressed, Shown, dechunk, encoded, shown};
use crate::traffic::{Caller, ErrorKind, Kind, Record};
use prost_reflect::DescriptorPool;
use serde::{Deserialize, Serialize};

/// Header fields whose values are secrets: shown as [`REDACTED`] unless the service turned
/// redaction off.
pub const SECRETS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];
/// What a redacted value is shown as.
pub const REDACTED: &str = "…redacted…";

/// One exchange, readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspected {
    pub id: u64,
    pub time_ms: u64,
    pub caller: Caller,
    pub callee: String,
    pub request: Request,
    /// None: no response came (the record's `error` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    pub timings: Timings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// What a fault set on the edge did to it (`error 503`): the answer, or its absence, is
    /// devstack's, not the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected: Option<String>,
    /// Secrets' values are shown as `…redacted…`.
    pub redacted: bool,
    /// A gRPC call's method, status and messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Grpc>,
    /// A Redis command or PostgreSQL query decoded off a TCP connection: `redis` or `postgres`
    /// and what was asked and answered (`request` and `response` are empty then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<(String, crate::traffic::stats::Decoded)>,
    /// An upgraded WebSocket's frames (the last ones kept), each way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub websocket: Vec<WsFrame>,
}

/// One WebSocket frame: which way, its kind, and its payload as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsFrame {
    pub way: super::websocket::Way,
    pub kind: String,
    pub payload: Shown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Shown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Shown,
    /// HTTP/2 trailers (gRPC's `grpc-status`, `grpc-message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<(String, String)>,
}

/// A gRPC call: its method, its status, and its messages: JSON objects with their field names
/// when the service's schemas decoded them, else strings decoded without a schema
/// (`1: 42  2: "alice"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grpc {
    /// `/pkg.Service/Method`.
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// With schemas: the method's types (`users.v1.GetUser → users.v1.User`), or why its
    /// messages are shown without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub requests: Vec<serde_json::Value>,
    pub responses: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Waiting for a connection to the service; absent when a kept-alive one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<u64>,
    /// From the request's head to the response's first byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_us: Option<u64>,
    pub total_us: u64,
}

/// The exchange `record` with what was captured of it; its gRPC messages read with `protos`, the
/// callee's schemas, when it has some.
pub fn inspect(record: &Record, capture: &Capture, protos: Option<&DescriptorPool>) -> Inspected {
    let redact = capture.redact;
    let (method, path, version) = match &record.kind {
        Kind::Http {
            method,
            path,
            version,
            ..
        } => (method.to_string(), path.clone(), version.to_string()),
        Kind::Tcp | Kind::Redis(_) | Kind::Postgres(_) => {
            (String::new(), String::new(), String::new())
        }
    };
    let (request_fields, request_chunked) = fields(&capture.request_head, redact);
    let request = Request {
        method,
        path,
        version,
        body: encoded(
            &capture.request_body,
            request_chunked,
            field(&request_fields, "content-encoding"),
        ),
        headers: request_fields,
    };
    let response = response(capture, redact);
    let grpc = grpc(record, capture, (&request, response.as_ref()), protos);
    Inspected {
        id: record.id,
        time_ms: record.time_ms,
        caller: record.caller.clone(),
        callee: record.callee.clone(),
        request,
        response,
        timings: Timings {
            connect_us: capture.connect.map(crate::traffic::stats::micros),
            first_byte_us: capture.answer.first_byte.map(crate::traffic::stats::micros),
            total_us: record.latency_us,
        },
        error: record.error,
        injected: record.injected.clone(),
        redacted: redact,
        grpc,
        decoded: None,
        websocket: capture
            .websocket
            .iter()
            .flat_map(|frames| frames.kept.iter())
            .map(|f| WsFrame {
                way: f.way,
                kind: f.kind.clone(),
                payload: f.shown(),
            })
            .collect(),
    }
}

/// A decoded command's or query's record, readable (None for any other record).
pub fn decoded(record: &Record) -> Option<Inspected> {
    let (protocol, d) = match &record.kind {
        Kind::Redis(d) => ("redis", d),
        Kind::Postgres(d) => ("postgres", d),
        _ => return None,
    };
    Some(Inspected {
        id: record.id,
        time_ms: record.time_ms,
        caller: record.caller.clone(),
        callee: record.callee.clone(),
        request: Request {
            method: String::new(),
            path: String::new(),
            version: String::new(),
            headers: Vec::new(),
            body: Shown::default(),
        },
        response: None,
        timings: Timings {
            total_us: record.latency_us,
            ..Timings::default()
        },
        error: record.error,
        injected: record.injected.clone(),
        redacted: false,
        grpc: None,
        decoded: Some((protocol.to_string(), d.clone())),
        websocket: Vec::new(),
    })
}

/// A gRPC call's view: when the request said `application/grpc`.
fn grpc(
    record: &Record,
    capture: &Capture,
    (request, response): (&Request, Option<&Response>),
    protos: Option<&DescriptorPool>,
) -> Option<Grpc> {
    let content_type = field(&request.headers, "content-type")?;
    if !content_type.starts_with("application/grpc") {
        return None;
    }
    let status = match &record.kind {
        Kind::Http { grpc_status, .. } => *grpc_status,
        Kind::Tcp | Kind::Redis(_) | Kind::Postgres(_) => None,
    };
    let message = response
        .and_then(|r| field(&r.trailers, "grpc-message").or(field(&r.headers, "grpc-message")))
        .map(crate::traffic::grpc::message_decoded);
    let method = protos.and_then(|pool| super::grpc::method(pool, &request.path));
    let schema = match (&method, protos) {
        (Some(m), _) => Some(format!(
            "{} → {}",
            m.input().full_name(),
            m.output().full_name()
        )),
        (None, Some(_)) => Some(format!(
            "`{}` is no method of the service's schemas: its messages are shown without them",
            request.path
        )),
        (None, None) => None,
    };
    Some(Grpc {
        method: request.path.clone(),
        status,
        message,
        schema,
        requests: super::grpc::messages(
            &capture.request_body.bytes,
            method.as_ref().map(|m| m.input()).as_ref(),
            field(&request.headers, "grpc-encoding"),
        ),
        responses: super::grpc::messages(
            &capture.answer.body.bytes,
            method.as_ref().map(|m| m.output()).as_ref(),
            response.and_then(|r| field(&r.headers, "grpc-encoding")),
        ),
    })
}

/// The value of the header field `name` (any case), the first if there are several.
pub fn field<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn response(capture: &Capture, redact: bool) -> Option<Response> {
    let head = &capture.answer.head;
    // `HTTP/1.1 200 OK` (or `HTTP/2.0 200`, as an h2 head is kept).
    let line = head.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim_end().splitn(3, ' ');
    let version = words.next().filter(|v| v.starts_with("HTTP/"))?.to_string();
    let status = words.next()?.parse().ok()?;
    let reason = words.next().unwrap_or("").to_string();
    let (headers, chunked) = fields(head, redact);
    // Kept as a head with an empty start line (`head_text("", …)`).
    let trailers = fields(&capture.answer.trailers, redact).0;
    Some(Response {
        version,
        status,
        reason,
        body: encoded(
            &capture.answer.body,
            chunked,
            field(&headers, "content-encoding"),
        ),
        headers,
        trailers,
    })
}

/// A head's lines: room for as many fields.
fn lines(head: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', head).count() + 1
}

/// A head's fields, in order (redacted when asked), and whether its body is chunked.
fn fields(head: &[u8], redact: bool) -> (Vec<(String, String)>, bool) {
    // The start line is skipped: any head's fields parse the same after it.
    let Some(start) = memchr::memchr(b'\n', head) else {
        return (Vec::new(), false);
    };
    let mut headers = vec![httparse::EMPTY_HEADER; lines(head)];
    let Ok(httparse::Status::Complete((_, parsed))) =
        httparse::parse_headers(&head[start + 1..], &mut headers)
    else {
        return (Vec::new(), false);
    };
    let mut chunked = false;
    let fields = parsed
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
            }
            let secret = SECRETS.iter().any(|s| h.name.eq_ignore_ascii_case(s));
            let value = if redact && secret {
                REDACTED.to_string()
            } else {
                value
            };
            (h.name.to_string(), value)
        })
        .collect();
    (fields, chunked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::capture::Settings;
    use bytes::Bytes;

    fn inspect_plain(record: &Record, capture: &Capture) -> Inspected {
        inspect(record, capture, None)
    }

    fn record(kind: Kind) -> Record {
        let mut r = Record::now(Caller::External, "api", kind);
        r.id = 7;
        r
    }

    #[test]
    fn heads_split_into_fields_with_secrets_redacted_and_bodies_de_chunked() {
        let head = Bytes::from_static(
            b"POST /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nCookie: a=b\r\n\r\n",
        );
        let mut c = Capture::start(Settings::default(), &head).unwrap();
        c.request_body.add(b"{\"n\":1}");
        c.answer
            .head(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s=1\r\n\r\n");
        c.answer.body.add(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n");
        let seen = inspect_plain(&record(Kind::http("POST", "/orders", 201)), &c);
        assert_eq!(seen.request.method, "POST");
        assert_eq!(
            seen.request.headers,
            [
                ("Host".to_string(), "x".to_string()),
                ("Authorization".to_string(), REDACTED.to_string()),
                ("Cookie".to_string(), REDACTED.to_string()),
            ]
        );
        assert_eq!(seen.request.body.text.as_deref(), Some("{\"n\":1}"));
        let response = seen.response.unwrap();
        assert_eq!(
            (response.status, response.reason.as_str()),
            (201, "Created")
        );
        assert_eq!(response.headers[1].1, REDACTED);
        assert_eq!(response.body.text.as_deref(), Some("abcde"));
        assert!(seen.redacted);

        let plain = Settings {
            redact: false,
            ..Settings::default()
        };
        let c = Capture::start(plain, &head).unwrap();
        let seen = inspect_plain(&record(Kind::http("POST", "/orders", 0)), &c);
        assert_eq!(seen.request.headers[1].1, "Bearer s3cret");
        assert!(seen.response.is_none() && !seen.redacted);
    }
}
