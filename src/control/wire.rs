//! The socket's JSON for what the engine and the proxy publish: their types are not the wire's.
//! A `ServiceView` goes out as a `Service` (as the README's `ps --json` table documents it, field
//! order included), a `traffic::Record` as a `Call`, a `traffic::Snapshot` as a `Traffic`, and
//! each comes back as what it was, a fault `Set` as a `Fault` with its words; the control layer
//! maps one onto the other here. The small value types they carry (a `Caller`, a record's `Kind`
//! and `ErrorKind`, `StatusClasses`) are written by name and shared.

use crate::engine::{HealthState, ServiceView, State};
use crate::logs::LogLoss;
use crate::traffic::stats::StatusClasses;
use crate::traffic::{Caller, EdgeSnapshot, ErrorKind, Kind, Record, ServiceSnapshot, Snapshot};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// One service on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub state: State,
    pub health: Option<HealthState>,
    pub health_error: Option<String>,
    pub ready: bool,
    pub wanted: bool,
    pub auto_rebuild: Option<bool>,
    pub spawns: u64,
    pub building: bool,
    pub build_failed: bool,
    pub cpu_percent: Option<f32>,
    pub mem_bytes: Option<u64>,
    pub crash_loop: bool,
    #[serde(default)]
    pub settled: bool,
    pub detail: String,
    pub pid: Option<i32>,
    pub port: Option<u16>,
    /// The port its serving process listens on, when proxied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_port: Option<u16>,
    /// A blue-green rollout's new process, starting beside `pid` until it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_pid: Option<i32>,
    /// The process a blue-green switch replaced, draining (then stopping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_pid: Option<i32>,
    /// Why the last rollout's new process never served (`pid` kept serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_failed: Option<String>,
    /// The image it runs from (`image` services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The `url` of the remote end serving it now, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The stack's named volumes its container uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    pub restarts: u32,
    /// The whole seconds its process has run when sent; read back as the instant that long
    /// ago (the stack and its clients share the machine's clock).
    #[serde(default)]
    pub uptime_secs: Option<u64>,
    pub log_lost: Option<LogLoss>,
}

impl From<&ServiceView> for Service {
    fn from(v: &ServiceView) -> Service {
        Service {
            name: v.name.clone(),
            state: v.state,
            health: v.health,
            health_error: v.health_error.clone(),
            ready: v.ready,
            wanted: v.wanted,
            auto_rebuild: v.auto_rebuild,
            spawns: v.spawns,
            building: v.building,
            build_failed: v.build_failed,
            cpu_percent: v.cpu_percent,
            mem_bytes: v.mem_bytes,
            crash_loop: v.crash_loop,
            settled: v.settled,
            detail: v.detail.clone(),
            pid: v.pid,
            port: v.port,
            private_port: v.private_port,
            next_pid: v.next_pid,
            draining_pid: v.draining_pid,
            rollout_failed: v.rollout_failed.clone(),
            image: v.image.clone(),
            remote: v.remote.clone(),
            volumes: v.volumes.clone(),
            restarts: v.restarts,
            uptime_secs: v.uptime_secs(),
            log_lost: v.log_lost.clone(),
        }
    }
}

impl From<Service> for ServiceView {
    fn from(s: Service) -> ServiceView {
        let now = Instant::now();
        ServiceView {
            name: s.name,
            state: s.state,
            health: s.health,
            health_error: s.health_error,
            ready: s.ready,
            wanted: s.wanted,
            auto_rebuild: s.auto_rebuild,
            spawns: s.spawns,
            building: s.building,
            build_failed: s.build_failed,
            cpu_percent: s.cpu_percent,
            mem_bytes: s.mem_bytes,
            crash_loop: s.crash_loop,
            settled: s.settled,
            detail: s.detail,
            pid: s.pid,
            port: s.port,
            private_port: s.private_port,
            next_pid: s.next_pid,
            draining_pid: s.draining_pid,
            rollout_failed: s.rollout_failed,
            image: s.image,
            remote: s.remote,
            volumes: s.volumes,
            restarts: s.restarts,
            since: s
                .uptime_secs
                .map(|secs| now.checked_sub(Duration::from_secs(secs)).unwrap_or(now)),
            log_lost: s.log_lost,
        }
    }
}

/// One request (or TCP connection) through the proxy, on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The record's number (`traffic show ID`).
    #[serde(default)]
    pub id: u64,
    pub time_ms: u64,
    pub caller: Caller,
    pub callee: String,
    #[serde(flatten)]
    pub kind: Kind,
    pub latency_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// What a fault did to it (`error 503`, `latency 200ms`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected: Option<String>,
}

impl From<&Record> for Call {
    fn from(r: &Record) -> Call {
        Call {
            id: r.id,
            time_ms: r.time_ms,
            caller: r.caller.clone(),
            callee: r.callee.clone(),
            kind: r.kind.clone(),
            latency_us: r.latency_us,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            error: r.error,
            injected: r.injected.clone(),
        }
    }
}

impl From<Call> for Record {
    fn from(c: Call) -> Record {
        Record {
            id: c.id,
            time_ms: c.time_ms,
            caller: c.caller,
            callee: c.callee,
            kind: c.kind,
            latency_us: c.latency_us,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            error: c.error,
            injected: c.injected,
        }
    }
}

/// One kept exchange, on the wire: the proxy's readable form of it, as it is (plain data made
/// for showing; its JSON is documented in the README).
pub type Exchange = crate::traffic::capture::Inspected;

/// A fault set on the stack, on the wire: its number, its words as `fault add` reads them
/// (`text`), what they say (`scope`, `effect`, `when`), how many requests it touched, and
/// whether it ended (its `first` or `for` ran out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u64,
    pub text: String,
    #[serde(flatten)]
    pub fault: crate::traffic::fault::Fault,
    pub touched: u64,
    pub spent: bool,
}

impl From<crate::traffic::fault::Set> for Fault {
    fn from(set: crate::traffic::fault::Set) -> Fault {
        Fault {
            id: set.id,
            text: set.fault.to_string(),
            fault: set.fault,
            touched: set.touched,
            spent: set.spent,
        }
    }
}

/// The traffic table at one moment, on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    pub edges: Vec<Edge>,
    pub services: Vec<Callee>,
    /// The faults set on the stack's edges, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
}

/// One caller → callee edge's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub caller: Caller,
    pub callee: String,
    pub protocol: String,
    pub requests: u64,
    pub errors: u64,
    /// Requests a fault touched (not in `errors`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub injected: u64,
    pub rate_10s: f64,
    pub rate_1m: f64,
    pub error_rate_1m: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub status: StatusClasses,
    /// Decoded commands and queries by group (Redis, Postgres), busiest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<crate::traffic::stats::GroupSnapshot>,
}

/// One callee summed over its callers, with its sparkline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callee {
    pub service: String,
    pub rate_10s: f64,
    pub error_rate_1m: f64,
    pub history: Vec<u32>,
}

impl From<&Snapshot> for Traffic {
    fn from(s: &Snapshot) -> Traffic {
        Traffic {
            edges: s
                .edges
                .iter()
                .map(|e| Edge {
                    caller: e.caller.clone(),
                    callee: e.callee.clone(),
                    protocol: e.protocol.clone(),
                    requests: e.requests,
                    errors: e.errors,
                    injected: e.injected,
                    rate_10s: e.rate_10s,
                    rate_1m: e.rate_1m,
                    error_rate_1m: e.error_rate_1m,
                    p50_ms: e.p50_ms,
                    p95_ms: e.p95_ms,
                    p99_ms: e.p99_ms,
                    bytes_in: e.bytes_in,
                    bytes_out: e.bytes_out,
                    status: e.status.clone(),
                    groups: e.groups.clone(),
                })
                .collect(),
            services: s
                .services
                .iter()
                .map(|c| Callee {
                    service: c.service.clone(),
                    rate_10s: c.rate_10s,
                    error_rate_1m: c.error_rate_1m,
                    history: c.history.clone(),
                })
                .collect(),
            faults: s.faults.iter().cloned().map(Fault::from).collect(),
        }
    }
}

impl From<Traffic> for Snapshot {
    fn from(t: Traffic) -> Snapshot {
        Snapshot {
            edges: t
                .edges
                .into_iter()
                .map(|e| EdgeSnapshot {
                    caller: e.caller,
                    callee: e.callee,
                    protocol: e.protocol,
                    requests: e.requests,
                    errors: e.errors,
                    injected: e.injected,
                    rate_10s: e.rate_10s,
                    rate_1m: e.rate_1m,
                    error_rate_1m: e.error_rate_1m,
                    p50_ms: e.p50_ms,
                    p95_ms: e.p95_ms,
                    p99_ms: e.p99_ms,
                    bytes_in: e.bytes_in,
                    bytes_out: e.bytes_out,
                    status: e.status,
                    groups: e.groups,
                })
                .collect(),
            services: t
                .services
                .into_iter()
                .map(|c| ServiceSnapshot {
                    service: c.service,
                    rate_10s: c.rate_10s,
                    error_rate_1m: c.error_rate_1m,
                    history: c.history,
                })
                .collect(),
            faults: t
                .faults
                .into_iter()
                .map(|f| crate::traffic::fault::Set {
                    id: f.id,
                    fault: f.fault,
                    touched: f.touched,
                    spent: f.spent,
                })
                .collect(),
        }
    }
}

/// Views as they go out.
pub fn services(views: &[ServiceView]) -> Vec<Service> {
    views.iter().map(Service::from).collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A view as the socket and `ps --json` write it: every field, in this order.
    #[test]
    fn a_view_is_written_as_the_readme_says() {
        let view = ServiceView {
            name: "api".into(),
            state: State::BuildFailed,
            health: Some(HealthState::Unhealthy),
            health_error: Some("connection refused".into()),
            ready: false,
            wanted: true,
            auto_rebuild: Some(true),
            spawns: 3,
            building: false,
            build_failed: true,
            cpu_percent: Some(1.5),
            mem_bytes: Some(1024),
            crash_loop: false,
            settled: true,
            detail: "build-failed (code 1)".into(),
            pid: Some(42),
            port: Some(8080),
            private_port: Some(40001),
            next_pid: Some(43),
            draining_pid: Some(41),
            rollout_failed: None,
            image: None,
            remote: None,
            volumes: Vec::new(),
            restarts: 2,
            since: Some(tokio::time::Instant::now() - Duration::from_secs(75)),
            log_lost: Some(crate::logs::LogLoss {
                file: "/x/api.log".into(),
                lines: 7,
                error: Some("No space left on device".into()),
            }),
        };
        let text = serde_json::to_string(&Service::from(&view)).unwrap();
        assert_eq!(
            text,
            r#"{"name":"api","state":"build-failed","health":"unhealthy","health_error":"connection refused","ready":false,"wanted":true,"auto_rebuild":true,"spawns":3,"building":false,"build_failed":true,"cpu_percent":1.5,"mem_bytes":1024,"crash_loop":false,"settled":true,"detail":"build-failed (code 1)","pid":42,"port":8080,"private_port":40001,"next_pid":43,"draining_pid":41,"restarts":2,"uptime_secs":75,"log_lost":{"file":"/x/api.log","lines":7,"error":"No space left on device"}}"#
        );
        let without = ServiceView {
            health: None,
            health_error: None,
            pid: None,
            log_lost: None,
            ..view.clone()
        };
        let value = serde_json::to_value(Service::from(&without)).unwrap();
        assert_eq!(value["health"], json!(null));
        assert_eq!(value["pid"], json!(null));
        assert_eq!(value["log_lost"], json!(null));
        // Read back, it is the same view, started as long ago.
        let back = ServiceView::from(serde_json::from_str::<Service>(&text).unwrap());
        assert_eq!(back.uptime_secs(), Some(75));
        assert_eq!(
            back,
            ServiceView {
                since: back.since,
                ..view
            }
        );
    }

    /// What the proxy saw goes out and comes back whole: a snapshot as `Traffic`, each record as a
    /// `Call` (written as the README's `traffic --json` shows them).
    #[test]
    fn traffic_goes_out_and_comes_back_whole() {
        use crate::traffic::Stats;
        let stats = Stats::new();
        let mut http = Record::now(
            Caller::Service("web".into()),
            "api",
            Kind::Http {
                version: "HTTP/1.1".into(),
                method: "GET".into(),
                path: "/users/42".into(),
                status: 200,
                grpc_status: None,
            },
        );
        http.latency_us = 1500;
        let mut tcp = Record::now(Caller::External, "db", Kind::Tcp);
        tcp.error = Some(ErrorKind::Reset);
        for r in [&http, &tcp] {
            stats.record(r.clone());
        }
        let snap = stats.snapshot();
        let text = serde_json::to_string(&Traffic::from(&snap)).unwrap();
        let back = Snapshot::from(serde_json::from_str::<Traffic>(&text).unwrap());
        assert_eq!(back, snap);
        for r in [http, tcp] {
            let text = serde_json::to_string(&Call::from(&r)).unwrap();
            assert_eq!(
                Record::from(serde_json::from_str::<Call>(&text).unwrap()),
                r
            );
        }
        let call = serde_json::to_value(Call::from(&stats.recent()[0].as_ref().clone())).unwrap();
        assert_eq!(call["protocol"], json!("http"));
        assert_eq!(call["method"], json!("GET"));
        assert_eq!(call["caller"], json!("web"));
        assert!(call.get("error").is_none(), "{call}");
    }
}
