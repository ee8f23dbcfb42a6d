//! `devstack traffic`: the caller → callee table of the running stack (`--json`), or its
//! requests as they end (`-f`, `--errors`), through the control socket's `traffic` request;
//! and inside a request (`show`, `curl`, `export --har`), through `exchange` and `exchanges`.

use super::args::Inside;
use super::note;
use super::remote::{Running, fail, or_dash, out};
use devstack::config::diag::printable;
use devstack::control::{Message, Response, client};
use devstack::format::{bytes, latency};
use devstack::traffic::{Record, Snapshot, capture};
use std::process::ExitCode;

/// Requests shown before a follow goes live.
const FOLLOW_RECENT: usize = 20;

pub fn traffic(mut stack: Running, json: bool, follow: bool, errors: bool) -> ExitCode {
    let recent = if follow { FOLLOW_RECENT } else { 0 };
    let (snapshot, recent) = match stack.ask(|c| c.traffic(recent, follow)) {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    if !follow {
        if json {
            let traffic = devstack::control::wire::Traffic::from(&snapshot);
            out(&serde_json::to_string_pretty(&traffic).expect("JSON"));
        } else {
            print_table(&snapshot);
        }
        return ExitCode::SUCCESS;
    }
    let shown = |call: &Record| !errors || call.is_error();
    for call in recent.iter().filter(|c| shown(c)) {
        print_call(call, json);
    }
    loop {
        match stack.client.next_message() {
            Ok(Some(Message::Call { call })) => {
                let call = Record::from(call);
                if shown(&call) {
                    print_call(&call, json);
                }
            }
            Ok(Some(Message::Missed { missed })) => note(&format!(
                "({} went by too fast to show)",
                devstack::format::plural(missed as usize, "request")
            )),
            Ok(Some(Message::End(end))) => {
                let error = match end {
                    Response::Error { error, .. } => client::Error::Stack(error),
                    _ => client::Error::Garbled("the stream ended without a reason".into()),
                };
                return fail(&stack.state, error);
            }
            Ok(Some(Message::Line { .. } | Message::Event { .. } | Message::Table { .. })) => {}
            // The stack stopped: so does the follow.
            Ok(None) | Err(client::Error::Lost(_)) => return ExitCode::SUCCESS,
            Err(e) => return fail(&stack.state, e),
        }
    }
}

fn print_call(call: &Record, json: bool) {
    if json {
        let call = devstack::control::wire::Call::from(call);
        out(&serde_json::to_string(&call).expect("JSON"));
        return;
    }
    // The path is the caller's text: C1 controls and bidi overrides in it would reach the
    // terminal (or reorder the line) if printed raw.
    out(&format!(
        "{} #{} {}",
        call.time_of_day(),
        call.id,
        printable(&call.to_string())
    ));
}

/// The kept exchanges a HAR export takes at most (the store's bound per service is 1000).
const EXPORT_MOST: usize = 100_000;

/// `traffic show|curl|export`.
pub fn inside(mut stack: Running, inside: Inside, json: bool) -> ExitCode {
    match inside {
        Inside::Show { id } => {
            let exchange = match stack.ask(|c| c.exchange(id)) {
                Ok(e) => e,
                Err(code) => return code,
            };
            if json {
                out(&serde_json::to_string_pretty(&exchange).expect("JSON"));
            } else {
                for (_, line) in capture::text::lines(&exchange) {
                    out(&line);
                }
            }
            ExitCode::SUCCESS
        }
        Inside::Curl { id } => {
            let asked = stack.ask(|c| Ok((c.exchange(id)?, c.ps()?)));
            let (exchange, views) = match asked {
                Ok(answer) => answer,
                Err(code) => return code,
            };
            if let Some((protocol, _)) = &exchange.decoded {
                note(&format!(
                    "devstack: #{id} is a {protocol} command: it has no curl form"
                ));
                return ExitCode::FAILURE;
            }
            out(&capture::curl::command(
                &exchange,
                &base(&views, &exchange.callee),
            ));
            ExitCode::SUCCESS
        }
        Inside::Replay { id, edit } => super::replay::replay(stack, id, edit, json),
        Inside::Export { har, services } => {
            let asked = stack.ask(|c| Ok((c.exchanges(&services, EXPORT_MOST)?, c.ps()?)));
            let (exchanges, views) = match asked {
                Ok(answer) => answer,
                Err(code) => return code,
            };
            let archive = capture::har::archive(&exchanges, |callee| base(&views, callee));
            let text = serde_json::to_string_pretty(&archive).expect("JSON");
            if har.as_os_str() == "-" {
                out(&text);
                return ExitCode::SUCCESS;
            }
            match std::fs::write(&har, text + "\n") {
                Ok(()) => {
                    note(&format!(
                        "wrote {} to {}",
                        devstack::format::plural(exchanges.len(), "request"),
                        har.display()
                    ));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    note(&format!("devstack: can't write {}: {e}", har.display()));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Where a service is reached: its public port, as callers call it.
fn base(views: &[devstack::engine::ServiceView], service: &str) -> String {
    let port = views
        .iter()
        .find(|v| v.name == service)
        .and_then(|v| v.port);
    match port {
        Some(port) => format!("http://127.0.0.1:{port}"),
        None => format!("http://{service}"),
    }
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
            "CALLER", "CALLEE", "PROTO", "REQUESTS", "RPS", "RPS(1m)", "ERRORS", "ERR(1m)", "P50",
            "P95", "P99", "IN", "OUT",
        ]
        .map(String::from),
    ];
    let ms = |v: Option<f64>| or_dash(v.map(|ms| latency((ms * 1000.0) as u64)));
    for e in &snapshot.edges {
        rows.push([
            e.caller.to_string(),
            e.callee.clone(),
            e.protocol.clone(),
            e.requests.to_string(),
            format!("{:.1}", e.rate_10s),
            format!("{:.1}", e.rate_1m),
            // Errors since the start, and their share of the last minute's requests: none
            // in the last minute is no share (an old failure is not 0.0% of nothing).
            e.errors.to_string(),
            if e.rate_1m > 0.0 {
                format!("{:.1}%", e.error_rate_1m * 100.0)
            } else {
                "-".into()
            },
            ms(e.p50_ms),
            ms(e.p95_ms),
            ms(e.p99_ms),
            bytes(e.bytes_in),
            bytes(e.bytes_out),
        ]);
    }
    let mut lines = super::remote::table_lines(&rows);
    lines.extend(injected_lines(snapshot));
    lines.extend(group_lines(snapshot));
    Some(lines)
}

/// Under the table, what faults did on each edge they touched (not in its ERRORS).
fn injected_lines(snapshot: &Snapshot) -> Vec<String> {
    let touched: Vec<String> = snapshot
        .edges
        .iter()
        .filter(|e| e.injected > 0)
        .map(|e| {
            let requests = devstack::format::plural(e.injected as usize, "request");
            format!(
                "{} → {}: {requests} touched by a fault (not in ERRORS)",
                e.caller, e.callee
            )
        })
        .collect();
    match touched.is_empty() {
        true => touched,
        false => std::iter::once(String::new()).chain(touched).collect(),
    }
}

/// Under the table, each edge's decoded commands or queries by group (Redis, Postgres).
fn group_lines(snapshot: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    for e in snapshot.edges.iter().filter(|e| !e.groups.is_empty()) {
        let by = if e.protocol == "postgres" {
            "query"
        } else {
            "command"
        };
        lines.push(String::new());
        lines.push(format!("{} → {} by {by}:", e.caller, e.callee));
        let mut rows = vec![["REQUESTS", "ERRORS", "P50", "P99", "GROUP"].map(String::from)];
        let ms = |ms: f64| latency((ms * 1000.0) as u64);
        for g in &e.groups {
            rows.push([
                g.requests.to_string(),
                g.errors.to_string(),
                ms(g.p50_ms),
                ms(g.p99_ms),
                printable(&g.group).into_owned(),
            ]);
        }
        lines.extend(
            super::remote::table_lines(&rows)
                .into_iter()
                .map(|l| format!("  {l}")),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(errors: u64, rate_1m: f64, error_rate_1m: f64) -> Snapshot {
        serde_json::from_value::<devstack::control::wire::Traffic>(serde_json::json!({
            "edges": [{
                "caller": "web", "callee": "api", "protocol": "http", "requests": 1,
                "errors": errors, "rate_10s": 0.0, "rate_1m": rate_1m,
                "error_rate_1m": error_rate_1m, "p50_ms": null, "p95_ms": null, "p99_ms": null,
                "bytes_in": 0, "bytes_out": 0,
                "status": {"s1xx": 0, "s2xx": 0, "s3xx": 0, "s4xx": 0, "s5xx": 1, "other": 0},
            }],
            "services": [],
        }))
        .unwrap()
        .into()
    }

    fn cells(snapshot: &Snapshot) -> (String, String) {
        let lines = edge_lines(snapshot).unwrap();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        let at = |name: &str| row[header.iter().position(|h| *h == name).unwrap()].to_string();
        (at("ERRORS"), at("ERR(1m)"))
    }

    #[test]
    fn an_old_error_has_no_share_of_the_last_minute() {
        // The only request failed more than a minute ago.
        assert_eq!(cells(&snapshot(1, 0.0, 0.0)), ("1".into(), "-".into()));
        // It failed within the minute.
        assert_eq!(
            cells(&snapshot(1, 1.0 / 60.0, 1.0)),
            ("1".into(), "100.0%".into())
        );
    }
}
