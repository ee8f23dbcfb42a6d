//! The socket's JSON for what the engine publishes: the engine's types are not the wire's. A
//! `ServiceView` goes out as a `Service` (as the README's `ps --json` table documents it, field
//! order included) and comes back as a view; the control layer maps one onto the other here.

use crate::engine::{HealthState, ServiceView, State};
use crate::logs::LogLoss;
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
            restarts: s.restarts,
            since: s
                .uptime_secs
                .map(|secs| now.checked_sub(Duration::from_secs(secs)).unwrap_or(now)),
            log_lost: s.log_lost,
        }
    }
}

/// Views as they go out.
pub fn services(views: &[ServiceView]) -> Vec<Service> {
    views.iter().map(Service::from).collect()
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
            r#"{"name":"api","state":"build-failed","health":"unhealthy","health_error":"connection refused","ready":false,"wanted":true,"auto_rebuild":true,"spawns":3,"building":false,"build_failed":true,"cpu_percent":1.5,"mem_bytes":1024,"crash_loop":false,"settled":true,"detail":"build-failed (code 1)","pid":42,"port":8080,"restarts":2,"uptime_secs":75,"log_lost":{"file":"/x/api.log","lines":7,"error":"No space left on device"}}"#
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
}
