//! `devstack traffic`: the caller → callee table of the running stack (`--json`), or its
//! requests as they end (`-f`), through the control socket's `traffic` request.

use super::note;
use super::remote::{Running, fail, or_dash, out};
use devstack::config::diag::printable;
use devstack::control::{Message, Response, client};
use devstack::traffic::stats::{human_bytes, human_latency};
use devstack::traffic::{Record, Snapshot};
use std::process::ExitCode;

/// Requests shown before a follow goes live.
const FOLLOW_RECENT: usize = 20;

pub fn traffic(mut stack: Running, json: bool, follow: bool) -> ExitCode {
    let recent = if follow { FOLLOW_RECENT } else { 0 };
    let (snapshot, recent) = match stack.ask(|c| c.traffic(recent, follow)) {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    if !follow {
        if json {
            out(&serde_json::to_string_pretty(&snapshot).expect("JSON"));
        } else {
            print_table(&snapshot);
        }
        return ExitCode::SUCCESS;
    }
    for call in &recent {
        print_call(call, json);
    }
    loop {
        match stack.client.next_message() {
            Ok(Some(Message::Call { call })) => print_call(&call, json),
            Ok(Some(Message::Missed { missed })) => note(&format!(
                "({} went by too fast to show)",
                devstack::plural(missed as usize, "request")
            )),
            Ok(Some(Message::End(end))) => {
                let error = match end {
                    Response::Error { error } => client::Error::Stack(error),
                    _ => client::Error::Garbled("the stream ended without a reason".into()),
                };
                return fail(&stack.state, error);
            }
            Ok(Some(Message::Line { .. } | Message::Event { .. })) => {}
            // The stack stopped: so does the follow.
            Ok(None) | Err(client::Error::Lost(_)) => return ExitCode::SUCCESS,
            Err(e) => return fail(&stack.state, e),
        }
    }
}

fn print_call(call: &Record, json: bool) {
    if json {
        out(&serde_json::to_string(call).expect("JSON"));
        return;
    }
    // The path is the caller's text: C1 controls and bidi overrides in it would reach the
    // terminal (or reorder the line) if printed raw.
    out(&format!(
        "{} {}",
        call.time_of_day(),
        printable(&call.to_string())
    ));
}

/// What the table says when no request went through the proxy.
pub(super) const NO_TRAFFIC: &str = "no traffic yet: services reach each other through their `port`s (the proxy records what goes through it)";

/// The edge table, busiest first, as `linkerd viz stat` shows it.
fn print_table(snapshot: &Snapshot) {
    match edge_lines(snapshot) {
        None => note(NO_TRAFFIC),
        Some(lines) => {
            for line in lines {
                out(&line);
            }
        }
    }
}

/// The edge table's lines (the first the header); None without traffic.
pub(super) fn edge_lines(snapshot: &Snapshot) -> Option<Vec<String>> {
    if snapshot.edges.is_empty() {
        return None;
    }
    let mut rows = vec![
        [
            "CALLER", "CALLEE", "PROTO", "REQUESTS", "RPS", "RPS(1m)", "ERRORS", "P50", "P95",
            "P99", "IN", "OUT",
        ]
        .map(String::from),
    ];
    let ms = |v: Option<f64>| or_dash(v.map(|ms| human_latency((ms * 1000.0) as u64)));
    for e in &snapshot.edges {
        rows.push([
            e.caller.to_string(),
            e.callee.clone(),
            e.protocol.clone(),
            e.requests.to_string(),
            format!("{:.1}", e.rate_10s),
            format!("{:.1}", e.rate_1m),
            format!("{} ({:.1}%)", e.errors, e.error_rate_1m * 100.0),
            ms(e.p50_ms),
            ms(e.p95_ms),
            ms(e.p99_ms),
            human_bytes(e.bytes_in),
            human_bytes(e.bytes_out),
        ]);
    }
    Some(super::remote::table_lines(&rows))
}
