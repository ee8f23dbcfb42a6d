//! The control socket (`.devstack/devstack.sock`): one JSON object per line each way. The server
//! drives the same engine commands as the TUI; the client is what `devstack ps`, `restart`,
//! `logs` … use. Both speak through the types of this module: a [`Request`] goes one way; a
//! [`Response`] comes back, then, on a stream, [`Message`]s.

pub mod client;
pub mod server;
pub mod wire;

use crate::config::Services;
use crate::logs::{LogLine, Stream, strip_sgr};
use serde::{Deserialize, Serialize, Serializer};

/// The version of this protocol, exchanged by `hello`. Raise it when a request or an answer
/// changes in a way the other side can't read; `hello` itself never changes.
pub const PROTOCOL: u32 = 5;

/// Which end serves a service with both a `run` and a `url`.
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum End {
    Local,
    Remote,
}

/// A request. `wait` (default true) makes an action answer once it took effect.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// The client's protocol version; answered with the stack's, or an error when they differ.
    /// Optional: a request without it is read as the current version.
    Hello {
        version: u32,
    },
    Ps,
    Start {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Stop {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Restart {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    /// Restart every wanted service in dependency order (the dashboard's `R`).
    #[serde(rename = "restart-all")]
    RestartAll {
        #[serde(default = "yes")]
        wait: bool,
    },
    Rebuild {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Kill {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Logs {
        /// Services to show; empty means all.
        #[serde(default)]
        services: Vec<String>,
        #[serde(default = "default_lines")]
        lines: usize,
        #[serde(default)]
        follow: bool,
        /// Keep the colours a service printed (SGR sequences, the only ones a line keeps), for
        /// a client that renders them (an attached dashboard).
        #[serde(default, skip_serializing_if = "is_false")]
        color: bool,
    },
    /// Bytes typed into a running service's terminal (what a terminal sends for the keys,
    /// escape sequences included), as the dashboard's `i` does.
    Input {
        service: String,
        text: String,
    },
    /// Resize a running service's terminal (the dashboard's typing pane).
    Resize {
        service: String,
        rows: u16,
        cols: u16,
    },
    /// Rebuild on file changes (`auto`) or only when asked.
    Watch {
        service: String,
        auto: bool,
    },
    /// Serve a service with both a `run` and a `url` by its remote end or its local process
    /// (`devstack use`); with `wait`, answered once it does (and is ready).
    Use {
        service: String,
        to: End,
        #[serde(default = "yes")]
        wait: bool,
    },
    /// The edge table; `recent` of the last requests with it; `follow`: then every request as
    /// it ends (`Message::Call`).
    Traffic {
        #[serde(default)]
        recent: usize,
        #[serde(default)]
        follow: bool,
    },
    /// One kept exchange by its record's id: heads, bodies (capped, secrets redacted unless
    /// the service said not to), timings.
    Exchange {
        id: u64,
    },
    /// Send the kept request `id` again through the proxy, as `replay`; `request` (text: start
    /// line, fields, a blank line, the body) in place of it when given.
    Replay {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    /// The last `recent` kept exchanges of `services` (every service when empty), oldest first.
    Exchanges {
        #[serde(default)]
        services: Vec<String>,
        recent: usize,
    },
    Down,
    /// Wait until the services (every wanted one when empty) are ready, one fails or is stopped,
    /// or `timeout_ms` passes: answered with the `Readiness`, as `ci` judges it.
    Ready {
        #[serde(default)]
        services: Vec<String>,
        timeout_ms: u64,
    },
    /// The views, then an event per change of state; with `all`, also one per other change
    /// (CPU, memory, a countdown, a probe's error), so that a client showing them never asks;
    /// with `traffic`, also the proxy's edge table (at once, then when it changed) and its last
    /// `traffic` requests (then each as it ends): all a dashboard shows, on one connection.
    Subscribe {
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traffic: Option<usize>,
    },
    /// Set a fault, as its words (`orders->users latency=200ms first=3`, read by
    /// `traffic::fault::parse`): answered with it as set, its id given. It lives as long as the
    /// stack, in memory only.
    #[serde(rename = "fault_add")]
    FaultAdd {
        fault: String,
    },
    /// The faults set, oldest first.
    Faults,
    /// Remove the fault `id`.
    #[serde(rename = "fault_rm")]
    FaultRm {
        id: u64,
    },
    /// Remove every fault: answered with how many there were.
    #[serde(rename = "fault_clear")]
    FaultClear,
    /// Set every fault of the scenario `name` (`[faults.NAME]` in the stack's `devstack.toml`):
    /// answered with the faults set, as `faults` has them.
    #[serde(rename = "fault_apply")]
    FaultApply {
        name: String,
    },
}

impl Request {
    /// Its `cmd`, as the stack reads it.
    pub fn cmd(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("cmd")?.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// One request line as a client sent it (any bytes: invalid UTF-8 is replaced); None for a
    /// blank line, which is skipped.
    pub fn parse(line: &[u8]) -> Option<Result<Request, String>> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(serde_json::from_str::<Request>(text).map_err(|e| format!("bad request: {e}")))
    }
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !b
}

fn default_lines() -> usize {
    100
}

/// An answer: `{"ok":true,...}` with what the request asked for, or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub enum Response {
    Ok(Answer),
    /// `lines`: what tells more, when there is some (the output of a build that failed).
    Error {
        error: String,
        lines: Vec<String>,
    },
}

impl Response {
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            error: message.into(),
            lines: Vec::new(),
        }
    }
}

/// How waiting for a stack (`ready`) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Readiness {
    /// Every service waited for is ready.
    Ready { took_ms: u64 },
    /// One failed (`engine::ready::verdict`): why, and its last lines.
    Failed {
        service: String,
        why: String,
        lines: Vec<String>,
    },
    /// One was stopped while it was waited for, or is not meant to be up.
    Unwanted { service: String, detail: String },
    /// The time ran out: each service not ready, what it is doing, and its last lines.
    TimedOut { waiting: Vec<Waiting> },
    /// The stack stopped.
    Stopped,
}

/// A service not ready when the wait ran out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub service: String,
    pub what: String,
    pub lines: Vec<String>,
}

/// What a successful answer carries beside `"ok":true`: which answer it is (`"answer":"services"`)
/// and its fields, side by side with `ok`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    /// `hello`: the stack's protocol and devstack version.
    Hello { version: u32, devstack: String },
    /// `traffic`: the edges and per-service rates, and the last requests asked for (oldest
    /// first; a follow's come after, as `Message::Call`).
    Traffic {
        traffic: wire::Traffic,
        #[serde(default)]
        recent: Vec<wire::Call>,
    },
    /// `ps`, `restart-all` (once it took effect), and the first answer of `subscribe`.
    Services { services: Vec<wire::Service> },
    /// An action on one service (once it took effect), `watch` (boxed: it is large beside the
    /// others).
    Service { service: Box<wire::Service> },
    /// `logs`: the tail (a follow's lines come after, as `Message::Line`).
    Lines { lines: Vec<WireLine> },
    /// `ready`: how the wait ended.
    Readiness { readiness: Readiness },
    /// `exchange`: one kept exchange (boxed: it is large beside the others).
    Exchange { exchange: Box<wire::Exchange> },
    /// `replay`: how it went (boxed: it is large beside the others).
    Replayed {
        replayed: Box<crate::traffic::replay::Replayed>,
    },
    /// `exchanges`: kept exchanges, oldest first.
    Exchanges { exchanges: Vec<wire::Exchange> },
    /// `fault_add`: the fault as set.
    Fault { fault: wire::Fault },
    /// `faults`: the faults set, oldest first; `fault_apply`: the faults it set.
    Faults { faults: Vec<wire::Fault> },
    /// `fault_clear`: how many faults were removed.
    Cleared { cleared: usize },
    /// Done: `down`, an action with `"wait":false`.
    Done {},
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Ok<'a> {
            ok: bool,
            #[serde(flatten)]
            answer: &'a Answer,
        }
        #[derive(Serialize)]
        struct Error<'a> {
            ok: bool,
            error: &'a str,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            lines: &'a [String],
        }
        #[derive(Serialize)]
        struct Hello<'a> {
            ok: bool,
            version: u32,
            devstack: &'a str,
        }
        match self {
            // The one answer whose form never changes, tag-less as it always was.
            Response::Ok(Answer::Hello { version, devstack }) => Hello {
                ok: true,
                version: *version,
                devstack,
            }
            .serialize(s),
            Response::Ok(answer) => Ok { ok: true, answer }.serialize(s),
            Response::Error { error, lines } => Error {
                ok: false,
                error,
                lines,
            }
            .serialize(s),
        }
    }
}

/// A response as read: `ok`, then the answer its tag names (`Answer`), or the error. `hello`'s
/// form never changes, so an older stack's untagged `hello` answer is still read as one (and its
/// other protocol version said).
impl TryFrom<serde_json::Value> for Response {
    type Error = String;

    fn try_from(mut v: serde_json::Value) -> Result<Response, String> {
        let ok = v
            .get("ok")
            .and_then(serde_json::Value::as_bool)
            .ok_or("an answer without `ok`")?;
        if !ok {
            #[derive(Deserialize)]
            struct Refusal {
                error: String,
                #[serde(default)]
                lines: Vec<String>,
            }
            let Refusal { error, lines } = serde_json::from_value(v)
                .map_err(|e| format!("`\"ok\":false` without an `error`: {e}"))?;
            return Ok(Response::Error { error, lines });
        }
        if let Some(map) = v.as_object_mut()
            && !map.contains_key("answer")
            && map.contains_key("version")
            && map.contains_key("devstack")
        {
            map.insert("answer".into(), "hello".into());
        }
        serde_json::from_value(v)
            .map(Response::Ok)
            .map_err(|e| e.to_string())
    }
}

/// What a stream (`logs` with `follow`, `subscribe`) sends after its first answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Message {
    /// `{"line":{...}}`: a log line.
    Line { line: WireLine },
    /// `{"event":"state","service":{...}}`: a service's state changed (`"update"`: something
    /// else in its view, for a `subscribe` with `all`).
    Event {
        event: Event,
        service: wire::Service,
    },
    /// `{"call":{...}}`: a request (or TCP connection) through the proxy, once it ended.
    Call { call: wire::Call },
    /// `{"table":{...}}`: the proxy's edge table, as the `traffic` answer's `traffic` (for a
    /// `subscribe` with `traffic`: at once, then whenever it changed).
    Table { table: wire::Traffic },
    /// `{"missed":N}`: the client fell so far behind that N messages went by.
    Missed { missed: u64 },
    /// `{"ok":false,"error":"..."}`: the stream ends, and why (`dropped: ...`).
    End(Response),
}

/// The kind of an event on a `subscribe` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    State,
    Update,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineStream {
    /// The service's run process.
    Out,
    /// Its build.
    Build,
    /// devstack, about the service.
    Devstack,
}

impl From<Stream> for LineStream {
    fn from(s: Stream) -> Self {
        match s {
            Stream::Out => LineStream::Out,
            Stream::Build => LineStream::Build,
            Stream::System => LineStream::Devstack,
        }
    }
}

impl From<LineStream> for Stream {
    fn from(s: LineStream) -> Self {
        match s {
            LineStream::Out => Stream::Out,
            LineStream::Build => Stream::Build,
            LineStream::Devstack => Stream::System,
        }
    }
}

/// One log line on the wire.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct WireLine {
    pub service: String,
    pub stream: LineStream,
    /// RFC 3339 with milliseconds
    pub time: String,
    /// Without colour codes, unless the request asked for them (`color`).
    pub text: String,
}

impl WireLine {
    pub fn new(line: &LogLine, names: &Services<String>) -> Self {
        Self::with_color(line, names, false)
    }

    /// With `color`, the text keeps its SGR sequences (sanitising left no other).
    pub fn with_color(line: &LogLine, names: &Services<String>, color: bool) -> Self {
        WireLine {
            service: names[line.service].clone(),
            stream: line.stream.into(),
            time: crate::format::stamp(line.time),
            text: if color {
                line.text.clone()
            } else {
                strip_sgr(&line.text).into_owned()
            },
        }
    }

    /// The line as the log buffers hold it; None for a service not among `names`.
    pub fn into_log_line(self, names: &Services<String>) -> Option<LogLine> {
        Some(LogLine {
            service: names.find(|n| *n == self.service)?,
            stream: self.stream.into(),
            time: humantime::parse_rfc3339(&self.time)
                .unwrap_or_else(|_| std::time::SystemTime::now()),
            text: self.text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(response: Response, wire: serde_json::Value) {
        assert_eq!(serde_json::to_value(&response).unwrap(), wire);
        let text = serde_json::to_string(&response).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), response);
    }

    /// The README's forms: `{"ok":true,"answer":"...",...}` with the answer's fields beside `ok`
    /// (`hello`'s without the tag, as always), or `{"ok":false,"error":"..."}`.
    #[test]
    fn responses_are_written_as_documented() {
        round_trip(
            Response::Ok(Answer::Hello {
                version: 1,
                devstack: "0.1.0".into(),
            }),
            json!({"ok": true, "version": 1, "devstack": "0.1.0"}),
        );
        round_trip(
            Response::Ok(Answer::Done {}),
            json!({"ok": true, "answer": "done"}),
        );
        round_trip(
            Response::error("unknown service `x`"),
            json!({"ok": false, "error": "unknown service `x`"}),
        );
        round_trip(
            Response::Ok(Answer::Services { services: vec![] }),
            json!({"ok": true, "answer": "services", "services": []}),
        );
        round_trip(
            Response::Ok(Answer::Traffic {
                traffic: wire::Traffic::default(),
                recent: vec![],
            }),
            json!({"ok": true, "answer": "traffic", "traffic": {"edges": [], "services": []}, "recent": []}),
        );
        let line = WireLine {
            service: "api".into(),
            stream: LineStream::Devstack,
            time: "2025-01-01T00:00:00.000Z".into(),
            text: "hi".into(),
        };
        round_trip(
            Response::Ok(Answer::Lines {
                lines: vec![line.clone()],
            }),
            json!({"ok": true, "answer": "lines", "lines": [{"service": "api", "stream": "devstack", "time": "2025-01-01T00:00:00.000Z", "text": "hi"}]}),
        );
        // The server writes a tail piece by piece: the same bytes as the whole.
        assert_eq!(
            serde_json::to_string(&Response::Ok(Answer::Lines { lines: vec![] })).unwrap(),
            r#"{"ok":true,"answer":"lines","lines":[]}"#
        );
        let err = serde_json::from_str::<Response>(r#"{"ok":false}"#).unwrap_err();
        assert!(err.to_string().contains("without an `error`"), "{err}");
    }

    #[test]
    fn stream_messages_are_written_as_documented() {
        let line = WireLine {
            service: "api".into(),
            stream: LineStream::Out,
            time: "t".into(),
            text: "x".into(),
        };
        let cases = [
            (
                Message::Line { line },
                json!({"line": {"service": "api", "stream": "out", "time": "t", "text": "x"}}),
            ),
            (Message::Missed { missed: 3 }, json!({"missed": 3})),
            (
                Message::End(Response::error("dropped: took nothing")),
                json!({"ok": false, "error": "dropped: took nothing"}),
            ),
        ];
        for (message, wire) in cases {
            assert_eq!(serde_json::to_value(&message).unwrap(), wire);
            assert_eq!(serde_json::from_value::<Message>(wire).unwrap(), message);
        }
        assert_eq!(serde_json::to_value(Event::State).unwrap(), json!("state"));
    }

    #[test]
    fn requests_are_written_as_documented() {
        let cases = [
            (
                Request::Hello { version: PROTOCOL },
                json!({"cmd": "hello", "version": PROTOCOL}),
            ),
            (Request::Ps, json!({"cmd": "ps"})),
            (
                Request::RestartAll { wait: false },
                json!({"cmd": "restart-all", "wait": false}),
            ),
            (
                Request::Watch {
                    service: "api".into(),
                    auto: true,
                },
                json!({"cmd": "watch", "service": "api", "auto": true}),
            ),
            (
                Request::Use {
                    service: "users".into(),
                    to: End::Remote,
                    wait: true,
                },
                json!({"cmd": "use", "service": "users", "to": "remote", "wait": true}),
            ),
            (
                Request::Input {
                    service: "api".into(),
                    text: "hi\r".into(),
                },
                json!({"cmd": "input", "service": "api", "text": "hi\r"}),
            ),
            (
                Request::Resize {
                    service: "api".into(),
                    rows: 24,
                    cols: 80,
                },
                json!({"cmd": "resize", "service": "api", "rows": 24, "cols": 80}),
            ),
            (
                Request::Logs {
                    services: vec![],
                    lines: 10,
                    follow: true,
                    color: true,
                },
                json!({"cmd": "logs", "services": [], "lines": 10, "follow": true, "color": true}),
            ),
            (
                Request::FaultAdd {
                    fault: "orders->users latency=200ms".into(),
                },
                json!({"cmd": "fault_add", "fault": "orders->users latency=200ms"}),
            ),
            (Request::Faults, json!({"cmd": "faults"})),
            (
                Request::FaultRm { id: 3 },
                json!({"cmd": "fault_rm", "id": 3}),
            ),
            (Request::FaultClear, json!({"cmd": "fault_clear"})),
        ];
        for (request, wire) in cases {
            assert_eq!(serde_json::to_value(&request).unwrap(), wire);
            assert_eq!(serde_json::from_value::<Request>(wire).unwrap(), request);
        }
        // Defaults, for people typing requests by hand.
        assert_eq!(
            serde_json::from_value::<Request>(json!({"cmd": "restart", "service": "api"})).unwrap(),
            Request::Restart {
                service: "api".into(),
                wait: true
            }
        );
    }
}
