//! The MCP tools inside the requests the proxy kept: `failed_requests` (each failure with its
//! `#id` and, when kept, the first bytes of its answer's body), `request` (one, whole, as
//! `traffic show` prints it) and `replay` (sent again, the answer beside the original's).

use super::Outcome;
use crate::cli::remote::Running;
use devstack::traffic::Record;
use devstack::traffic::capture::text;
use rmcp::schemars;
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// Requests a `failed_requests` call returns unless told (the stack keeps the last 1000).
const DEFAULT_FAILED: usize = 50;
const RECENT_KEPT: usize = 1000;
/// Of a failed request's answer body, this much is shown.
const BODY_SHOWN: usize = 1024;
/// A `request` answer is at most this long (two bodies of 64 KiB fit).
const REQUEST_MOST: usize = 256 * 1024;

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FailedParams {
    /// Only requests to or from this service
    service: Option<String>,
    /// How many of the most recent failures to return (default 50; at least 1)
    limit: Option<usize>,
    /// With the first KiB of each one's answer body, when the proxy kept it (default true)
    bodies: Option<bool>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RequestParams {
    /// The request's number (`#42` in failed_requests)
    pub id: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ReplayParams {
    /// The request's number
    id: u64,
    /// The request to send instead, as text: `METHOD /path HTTP/1.1`, `Name: value` lines, a blank line, the body
    request: Option<String>,
}

pub fn failed_requests(mut stack: Running, p: FailedParams) -> Outcome {
    let limit = super::at_least_one(p.limit, DEFAULT_FAILED, "limit")?;
    let (_, recent) = stack
        .client
        .traffic(RECENT_KEPT, false)
        .map_err(|e| stack.describe(&e))?;
    let failed: Vec<&Record> = recent
        .iter()
        .filter(|r| r.is_error())
        .filter(|r| {
            p.service
                .as_deref()
                .is_none_or(|s| r.callee == s || r.caller.to_string() == s)
        })
        .collect();
    let shown = &failed[failed.len().saturating_sub(limit)..];
    if shown.is_empty() {
        return Ok(format!(
            "no failed request among the last {} recorded",
            devstack::format::plural(recent.len(), "request")
        ));
    }
    let mut lines = Vec::new();
    for r in shown {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(r.time_ms);
        lines.push(format!("{} #{} {r}", devstack::format::stamp(at), r.id));
        if p.bodies.unwrap_or(true)
            && let Ok(kept) = stack.client.exchange(r.id)
            && let Some(body) = kept
                .response
                .and_then(|a| a.body.shown_text().map(str::to_string))
            && !body.is_empty()
        {
            let cut = devstack::format::ellipsize(&body, BODY_SHOWN);
            lines.push(format!(
                "  answer: {}",
                cut.trim_end().replace('\n', "\n  ")
            ));
        }
    }
    Ok(lines.join("\n"))
}

pub fn request(mut stack: Running, id: u64) -> Outcome {
    let kept = stack.client.exchange(id).map_err(|e| stack.describe(&e))?;
    let mut out = String::new();
    for (_, line) in text::lines(&kept) {
        if out.len() + line.len() > REQUEST_MOST {
            out.push_str("… (cut: the rest is in `devstack traffic show` with --json)\n");
            break;
        }
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

pub fn replay(mut stack: Running, p: ReplayParams) -> Outcome {
    let original = stack
        .client
        .exchange(p.id)
        .map_err(|e| stack.describe(&e))?;
    let replayed = stack
        .client
        .replay(p.id, p.request)
        .map_err(|e| stack.describe(&e))?;
    let lines = devstack::traffic::replay::compare::compared(&original, &replayed);
    match replayed.error {
        Some(_) => Err(lines.join("\n")),
        None => Ok(lines.join("\n")),
    }
}
