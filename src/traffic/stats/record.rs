//! A [`Record`]: one HTTP request (head to response end) or one TCP connection (accept to
//! close) as the proxy saw it, with its [`Kind`] (what was exchanged) and its [`ErrorKind`] (why
//! it failed, beyond its status); how it reads as a line; and what the relays fill it with,
//! bounded and without allocating per request where they can (`bounded_path`, `version_name`,
//! `method_name`, `micros`).

use crate::traffic::Caller;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A path longer than this is cut (a record's memory stays bounded).
const MAX_PATH: usize = 512;

/// Why a request or connection failed, beyond what its status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The service is stopped (by hand, failed, done): nothing was tried.
    Stopped,
    /// The backend refused the connection (the service is not listening on its port).
    Refused,
    /// No backend address came within the wait (the service stayed stopped or restarting).
    Timeout,
    /// The connection broke mid-request or mid-response (either side).
    Reset,
}

impl ErrorKind {
    /// What the proxy answers an HTTP caller for a request that failed so, and why in words
    /// (after the service's name).
    pub fn answer(self) -> (u16, &'static str) {
        match self {
            ErrorKind::Timeout => (503, "did not come up in time"),
            ErrorKind::Stopped => (502, "is stopped"),
            ErrorKind::Refused => (502, "refused the connection (not listening on its port)"),
            ErrorKind::Reset => (502, "closed the connection without answering"),
        }
    }
}

/// What was exchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum Kind {
    Http {
        /// `HTTP/1.1` or `HTTP/2.0`.
        version: Cow<'static, str>,
        method: Cow<'static, str>,
        path: String,
        /// The status the caller got (a proxy-made 502/503 included); 0 if none was sent.
        status: u16,
        /// gRPC's status, from the trailers (or a trailers-only response's headers).
        #[serde(skip_serializing_if = "Option::is_none")]
        grpc_status: Option<u32>,
    },
    Tcp,
    /// A Redis command and its reply, decoded off a TCP connection.
    Redis(Decoded),
    /// A PostgreSQL query and its result.
    Postgres(Decoded),
}

/// A command or query decoded off a TCP connection (`traffic::decode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decoded {
    /// What was asked: `GET user:42`, `SELECT * FROM users WHERE id = $1`.
    pub command: String,
    /// What it is grouped by: the command's name, the normalised query.
    pub group: String,
    /// What came back: `bulk 12B`, `3 rows`, `INSERT 0 1`, `error` …
    pub outcome: String,
    /// The error the service answered, when it did: `ERR …`, `SQLSTATE 42P01: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// One HTTP request (head to response end) or one TCP connection (accept to close); on the wire
/// as `control::wire::Call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its number, rising (given when it is recorded; 0 before): how `traffic show` and the
    /// inspector name it.
    pub id: u64,
    /// When it started, milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub caller: Caller,
    pub callee: String,
    pub kind: Kind,
    /// HTTP: request head to response end; TCP: the connection's life.
    pub latency_us: u64,
    /// Body bytes (HTTP) or stream bytes (TCP, and an upgraded connection) caller → callee.
    pub bytes_in: u64,
    /// … and callee → caller.
    pub bytes_out: u64,
    pub error: Option<ErrorKind>,
    /// What a fault did to it (`error 503`, `latency 200ms`): counted apart from the service's
    /// own errors.
    pub injected: Option<String>,
}

impl Record {
    /// A failure for the edge's error rate: a transport error, an HTTP 5xx, a gRPC status but OK.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
            || match &self.kind {
                Kind::Http {
                    status,
                    grpc_status,
                    ..
                } => *status >= 500 || grpc_status.is_some_and(|g| g != 0),
                Kind::Redis(d) | Kind::Postgres(d) => d.failure.is_some(),
                Kind::Tcp => false,
            }
    }

    /// When it started, as the time of day (`12:00:01.250`, UTC as the log files have it).
    pub fn time_of_day(&self) -> String {
        crate::format::time_of_day(UNIX_EPOCH + Duration::from_millis(self.time_ms))
    }

    /// An HTTP record's status (what the caller got), and gRPC's when one is known.
    pub fn set_status(&mut self, code: u16, grpc: Option<u32>) {
        if let Kind::Http {
            status,
            grpc_status,
            ..
        } = &mut self.kind
        {
            *status = code;
            if grpc.is_some() {
                *grpc_status = grpc;
            }
        }
    }

    /// A record starting now.
    pub fn now(caller: Caller, callee: &str, kind: Kind) -> Record {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Record {
            id: 0,
            time_ms,
            caller,
            callee: callee.to_string(),
            kind,
            latency_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            error: None,
            injected: None,
        }
    }
}

#[cfg(test)]
impl Kind {
    /// An HTTP/1.1 request's kind, for tests.
    pub(crate) fn http(method: &'static str, path: &str, status: u16) -> Kind {
        Kind::Http {
            version: "HTTP/1.1".into(),
            method: method.into(),
            path: path.into(),
            status,
            grpc_status: None,
        }
    }
}

impl std::fmt::Display for Record {
    /// One line, as `devstack traffic -f` and the dashboard's tail show it:
    /// `web → api GET /users 200 3.2ms` or `api → db tcp ↑120B ↓3.4kB 1.20s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {} ", self.caller, self.callee)?;
        match &self.kind {
            Kind::Http {
                method,
                path,
                status,
                grpc_status,
                ..
            } => {
                write!(f, "{method} {path} {status}")?;
                if let Some(g) = grpc_status {
                    write!(f, " grpc-status={g}")?;
                }
            }
            Kind::Tcp => write!(
                f,
                "tcp ↑{} ↓{}",
                crate::format::bytes(self.bytes_in),
                crate::format::bytes(self.bytes_out)
            )?,
            Kind::Redis(d) | Kind::Postgres(d) => {
                write!(f, "{} {}", d.command, d.outcome)?;
                if let Some(failure) = &d.failure {
                    write!(f, " ({failure})")?;
                }
            }
        }
        write!(f, " {}", crate::format::latency(self.latency_us))?;
        if let Some(e) = self.error {
            write!(f, " ({})", e.describe())?;
        }
        if let Some(fault) = &self.injected {
            write!(f, " [injected: {fault}]")?;
        }
        Ok(())
    }
}

impl ErrorKind {
    /// What happened, in words.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::Stopped => "the service is stopped",
            ErrorKind::Refused => "refused: the service is not listening",
            ErrorKind::Timeout => "timed out waiting for the service to come up",
            ErrorKind::Reset => "connection reset",
        }
    }
}

/// Cut a request target to a bounded length (on a character boundary).
pub fn bounded_path(path: String) -> String {
    crate::format::cut(path, MAX_PATH)
}

/// `HTTP/1.1` and friends, without allocating per request.
pub fn version_name(version: hyper::Version) -> &'static str {
    match version {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_11 => "HTTP/1.1",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A request's method; the standard ones without allocating.
pub fn method_name(method: &hyper::Method) -> Cow<'static, str> {
    use hyper::Method as M;
    Cow::Borrowed(match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => return Cow::Owned(method.as_str().to_string()),
    })
}

/// Microseconds in a duration, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut() {
        let long = "é".repeat(1000);
        let cut = bounded_path(long.clone());
        assert!(cut.len() <= MAX_PATH + "…".len());
        assert!(cut.ends_with('…'));
    }
}
