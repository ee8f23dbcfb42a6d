//! When is a stack up? Every wanted service running and healthy (or without a probe), every
//! wanted task completed. When has it failed? A wanted service settled without being ready
//! (build failed, crashed, blocked, exited), or is crash-looping.

use super::{ServiceView, State};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Failed { service: String, why: String },
    Waiting,
}

pub fn verdict(views: &[ServiceView]) -> Verdict {
    for v in views.iter().filter(|v| v.wanted && !v.ready) {
        // Blocked by a failed dependency, or by another process on its port.
        if v.settled || v.state == State::Blocked {
            return Verdict::Failed {
                service: v.name.clone(),
                why: v.detail.clone(),
            };
        }
        if v.crash_loop {
            return Verdict::Failed {
                service: v.name.clone(),
                why: format!("is crash-looping ({} restarts): {}", v.restarts, v.detail),
            };
        }
    }
    if views.iter().filter(|v| v.wanted).all(|v| v.ready) {
        Verdict::Ready
    } else {
        Verdict::Waiting
    }
}

/// What each wanted service that isn't ready is doing, one line each.
pub fn not_ready(views: &[ServiceView]) -> Vec<(String, String)> {
    views
        .iter()
        .filter(|v| v.wanted && !v.ready)
        .map(|v| {
            let mut what = v.detail.clone();
            if let Some(h) = v.health {
                what.push_str(&format!(", health {h}"));
            }
            if let Some(e) = &v.health_error {
                what.push_str(&format!(" (last check: {e})"));
            }
            (v.name.clone(), what)
        })
        .collect()
}
