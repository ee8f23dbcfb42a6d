//! A kept exchange as lines of text, each with the part it shows: what `traffic show` prints
//! and the dashboard's inspector draws (in colours by part). The request and the response as
//! they went (start line, fields, body: JSON pretty-printed, text as text, binary as a hex
//! dump, a cut one said), then the timings; everything a caller or service wrote is made
//! printable (no control sequence reaches the terminal).

use super::view::{Grpc, Inspected, REDACTED, SECRETS, Shown};
use crate::config::diag::printable;
use crate::format::{bytes, hex_dump, latency};
use std::time::{Duration, UNIX_EPOCH};

/// What a line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `#42 web → api 12:00:01.250`.
    Title,
    /// A request or status line.
    Start,
    /// A header field.
    Field,
    /// A body's line.
    Body,
    /// A line of a JSON body, pretty-printed (its keys in the order they came).
    Json,
    /// Of a replay compared with the original: what the original had (`- …`), and what the
    /// replay got instead (`+ …`).
    Was,
    Now,
    /// Said by devstack: timings, a cut body, redaction, a missing response.
    Note,
    Blank,
}

/// Binary bodies shown at most this far (the rest is counted).
const HEX_MOST: usize = 1024;

pub fn lines(e: &Inspected) -> Vec<(Part, String)> {
    let shown = |text: &str| printable(text).into_owned();
    let at = UNIX_EPOCH + Duration::from_millis(e.time_ms);
    let mut lines = vec![(
        Part::Title,
        format!(
            "#{} {} → {}  {}",
            e.id,
            e.caller,
            e.callee,
            crate::format::time_of_day(at)
        ),
    )];
    if let Some((protocol, d)) = &e.decoded {
        lines.push((Part::Blank, String::new()));
        lines.push((Part::Start, shown(&format!("{protocol}: {}", d.command))));
        lines.push((Part::Body, shown(&format!("→ {}", d.outcome))));
        if let Some(failure) = &d.failure {
            lines.push((Part::Body, shown(&format!("error: {failure}"))));
        }
        lines.push((Part::Field, shown(&format!("group: {}", d.group))));
        lines.push((Part::Blank, String::new()));
        lines.push((Part::Note, timings(e)));
        return lines;
    }
    let r = &e.request;
    lines.push((Part::Blank, String::new()));
    let start = format!("{} {} {}", r.method, r.path, r.version);
    lines.push((Part::Start, shown(&start)));
    let field = |(n, v): &(String, String)| (Part::Field, shown(&format!("{n}: {v}")));
    lines.extend(r.headers.iter().map(field));
    body(&r.body, &mut lines);
    lines.push((Part::Blank, String::new()));
    match &e.response {
        Some(a) => {
            let start = format!("{} {} {}", a.version, a.status, a.reason);
            lines.push((Part::Start, shown(&start)));
            lines.extend(a.headers.iter().map(field));
            body(&a.body, &mut lines);
        }
        None => lines.push((Part::Note, "(no response)".into())),
    }
    if let Some(g) = &e.grpc {
        grpc(g, &mut lines);
    }
    if !e.websocket.is_empty() {
        lines.push((Part::Blank, String::new()));
        lines.push((Part::Start, "WebSocket frames (the last kept):".into()));
    }
    for f in &e.websocket {
        let arrow = match f.way {
            super::websocket::Way::Out => "→",
            super::websocket::Way::In => "←",
        };
        let payload = match (&f.payload.text, f.payload.bytes()) {
            (Some(text), _) => format!("{text:?}"),
            (None, bytes) => bytes.iter().take(32).map(|b| format!("{b:02x}")).collect(),
        };
        let cut = if f.payload.cut { "…" } else { "" };
        let line = format!(
            "{arrow} {} {}: {payload}{cut}",
            f.kind,
            bytes(f.payload.size)
        );
        lines.push((Part::Body, shown(&line)));
    }
    lines.push((Part::Blank, String::new()));
    lines.push((Part::Note, timings(e)));
    if let Some(fault) = &e.injected {
        let note = format!("injected: {fault} (a fault set on this edge, not the service)");
        lines.push((Part::Was, shown(&note)));
    }
    if let Some(error) = e.error {
        lines.push((Part::Note, format!("error: {error:?}").to_lowercase()));
    }
    let secret = |h: &[(String, String)]| h.iter().any(|(_, v)| v == REDACTED);
    let answer = e.response.as_ref().map(|a| a.headers.as_slice());
    if secret(&r.headers) || answer.is_some_and(secret) {
        lines.push((
            Part::Note,
            format!(
                "secrets' values ({}) are redacted: `capture = {{ redact = false }}` on the service shows them",
                SECRETS.join(", ")
            ),
        ));
    }
    lines
}

/// A gRPC call: its method and status, then its messages each way.
fn grpc(g: &Grpc, lines: &mut Vec<(Part, String)>) {
    lines.push((Part::Blank, String::new()));
    let status = match g.status {
        Some(code) => {
            let name = crate::traffic::grpc::name(code);
            format!("status {code} {name}")
        }
        None => "no status".into(),
    };
    let message = g
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let title = format!("gRPC {} {status}{message}", g.method);
    lines.push((Part::Start, printable(&title).into_owned()));
    if let Some(schema) = &g.schema {
        lines.push((Part::Note, printable(schema).into_owned()));
    }
    for (arrow, messages) in [("→", &g.requests), ("←", &g.responses)] {
        for m in messages {
            let m = match m {
                serde_json::Value::String(raw) => format!("{arrow} {raw}"),
                json => format!("{arrow} {json}"),
            };
            lines.push((Part::Body, printable(&m).into_owned()));
        }
    }
}

fn timings(e: &Inspected) -> String {
    let t = e.timings;
    let mut parts = Vec::new();
    if let Some(us) = t.connect_us {
        parts.push(format!("connect {}", latency(us)));
    }
    if let Some(us) = t.first_byte_us {
        parts.push(format!("first byte {}", latency(us)));
    }
    parts.push(format!("total {}", latency(t.total_us)));
    parts.join(", ")
}

/// A body's lines: text as it is (JSON pretty-printed), binary as a hex dump; a cut one says so,
/// and a compressed one is shown decompressed, saying so first.
fn body(body: &Shown, lines: &mut Vec<(Part, String)>) {
    if body.is_empty() {
        return;
    }
    lines.push((Part::Blank, String::new()));
    let Some(d) = &body.decompressed else {
        payload(body.text.as_deref(), || body.bytes(), lines);
        if body.cut {
            let note = format!("… (cut: the first bytes of {})", bytes(body.size));
            lines.push((Part::Note, note));
        }
        return;
    };
    let kept = if body.cut { " (cut)" } else { "" };
    let note = format!(
        "({}, {}{kept} → {}{} decompressed)",
        d.encoding,
        bytes(body.size),
        bytes(d.size),
        if d.cut { "…" } else { "" }
    );
    lines.push((Part::Note, printable(&note).into_owned()));
    payload(d.text.as_deref(), || d.bytes(), lines);
    if d.cut {
        let note = match body.cut {
            true => "… (cut: what the first bytes kept decompress to)".to_string(),
            false => format!("… (cut: its first {} decompressed)", bytes(d.size)),
        };
        lines.push((Part::Note, note));
    }
}

/// A payload's lines: its text (JSON pretty-printed), or its bytes as a hex dump.
fn payload(text: Option<&str>, bytes: impl Fn() -> Vec<u8>, lines: &mut Vec<(Part, String)>) {
    match text {
        Some(text) => {
            let pretty = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .filter(|v| v.is_object() || v.is_array())
                .and_then(|v| serde_json::to_string_pretty(&v).ok());
            let part = if pretty.is_some() {
                Part::Json
            } else {
                Part::Body
            };
            let text = pretty.as_deref().unwrap_or(text);
            lines.extend(text.lines().map(|l| (part, printable(l).into_owned())));
        }
        None => {
            let dump = hex_dump(&bytes(), HEX_MOST);
            lines.extend(dump.into_iter().map(|l| (Part::Body, l)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::capture::{Capture, Settings};
    use crate::traffic::{Caller, Kind, Record};
    use std::io::Write;

    #[test]
    fn a_compressed_body_shows_decompressed_after_a_note_of_its_sizes() {
        let head = bytes::Bytes::from_static(b"GET /report HTTP/1.1\r\n\r\n");
        let mut c = Capture::start(Settings::default(), &head).unwrap();
        c.answer
            .head(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\n\r\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"total\": 42}").unwrap();
        c.answer.body.add(&gz.finish().unwrap());
        let kind = Kind::Http {
            version: "HTTP/1.1".into(),
            method: "GET".into(),
            path: "/report".into(),
            status: 200,
            grpc_status: None,
        };
        let record = Record::now(Caller::External, "api", kind);
        let e = super::super::view::inspect(&record, &c, None);
        let shown: Vec<String> = lines(&e).into_iter().map(|(_, l)| l).collect();
        let at = shown
            .iter()
            .position(|l| l.starts_with("(gzip, ") && l.ends_with(" → 13B decompressed)"))
            .unwrap_or_else(|| panic!("{shown:#?}"));
        assert_eq!(shown[at + 1..at + 4], ["{", "  \"total\": 42", "}"]);
    }
}
