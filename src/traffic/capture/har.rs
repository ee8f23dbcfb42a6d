//! Kept exchanges as HAR 1.2 (the HTTP Archive format browsers' developer tools and proxies
//! read): one entry per exchange, bodies as text or base64 (`"encoding":"base64"`; a
//! compressed one decompressed, with its `compression`), timings
//! split into connect, wait (to the first byte) and receive; the caller and callee in each
//! entry's `comment` and `_caller`/`_callee`.

use super::view::{Inspected, Shown, field};
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

/// The archive of `exchanges`, each URL on `base(callee)` (`http://127.0.0.1:7001`).
pub fn archive(exchanges: &[Inspected], base: impl Fn(&str) -> String) -> Value {
    let entries: Vec<Value> = exchanges
        .iter()
        .map(|e| entry(e, &base(&e.callee)))
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "devstack", "version": env!("CARGO_PKG_VERSION") },
            "pages": [],
            "entries": entries,
        }
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn fields(headers: &[(String, String)]) -> Value {
    headers
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect()
}

/// A body's content: its text, or base64 with `encoding`; a compressed one decompressed (its
/// `size` then the decompressed size, and `compression` the bytes saved).
fn content(body: &Shown, mime: &str) -> Value {
    let mut content = json!({ "size": body.size, "mimeType": mime });
    let (text, base64) = match &body.decompressed {
        Some(d) => {
            content["size"] = json!(d.size);
            content["compression"] = json!(d.size as i64 - body.size as i64);
            (&d.text, &d.base64)
        }
        None => (&body.text, &body.base64),
    };
    match (text, base64) {
        (Some(text), _) => content["text"] = json!(text),
        (None, Some(b64)) => {
            content["text"] = json!(b64);
            content["encoding"] = json!("base64");
        }
        (None, None) => {}
    }
    if body.cut || body.decompressed.as_ref().is_some_and(|d| d.cut) {
        content["comment"] = json!("cut: only the first bytes were kept");
    }
    content
}

fn entry(e: &Inspected, base: &str) -> Value {
    let request = &e.request;
    let query: Vec<Value> = request
        .path
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            json!({ "name": name, "value": value })
        })
        .collect();
    let mut har_request = json!({
        "method": request.method,
        "url": format!("{}{}", base.trim_end_matches('/'), request.path),
        "httpVersion": request.version,
        "cookies": [],
        "headers": fields(&request.headers),
        "queryString": query,
        "headersSize": -1,
        "bodySize": request.body.size,
    });
    if !request.body.is_empty() {
        let mime = field(&request.headers, "content-type").unwrap_or("application/octet-stream");
        har_request["postData"] = content(&request.body, mime);
    }
    let har_response = match &e.response {
        Some(r) => json!({
            "status": r.status,
            "statusText": r.reason,
            "httpVersion": r.version,
            "cookies": [],
            "headers": fields(&r.headers),
            "content": content(&r.body, field(&r.headers, "content-type").unwrap_or("")),
            "redirectURL": field(&r.headers, "location").unwrap_or(""),
            "headersSize": -1,
            "bodySize": r.body.size,
        }),
        // No response came: HAR's convention for a failed request.
        None => json!({
            "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
            "content": { "size": 0, "mimeType": "" }, "redirectURL": "",
            "headersSize": -1, "bodySize": -1,
        }),
    };
    let t = e.timings;
    let connect = t.connect_us.map_or(-1.0, ms);
    let wait = t.first_byte_us.map_or(ms(t.total_us), ms);
    let receive = (ms(t.total_us) - wait).max(0.0);
    let started = UNIX_EPOCH + Duration::from_millis(e.time_ms);
    let caller = e.caller.to_string();
    json!({
        "startedDateTime": humantime::format_rfc3339_millis(started).to_string(),
        "time": ms(t.total_us),
        "request": har_request,
        "response": har_response,
        "cache": {},
        "timings": {
            "blocked": -1, "dns": -1, "ssl": -1,
            "connect": connect, "send": 0, "wait": wait, "receive": receive,
        },
        "comment": format!("#{} {caller} → {}", e.id, e.callee),
        "_id": e.id,
        "_caller": caller,
        "_callee": e.callee,
    })
}
