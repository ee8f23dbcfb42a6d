//! CPU time and resident memory of whole sessions (a service and everything it started), from
//! one pass over `/proc`.

use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far by the session's live processes.
    pub cpu: Duration,
    pub rss_bytes: u64,
}

/// Usage of each of `sessions` (session ids = the services' pids).
#[cfg(target_os = "linux")]
pub fn sample(sessions: &[i32]) -> HashMap<i32, Usage> {
    let mut out: HashMap<i32, Usage> = sessions.iter().map(|&s| (s, Usage::default())).collect();
    let (Ok(all), tps, page) = (
        procfs::process::all_processes(),
        procfs::ticks_per_second(),
        procfs::page_size(),
    ) else {
        return out;
    };
    for proc in all.flatten() {
        let Ok(stat) = proc.stat() else { continue };
        if let Some(usage) = out.get_mut(&stat.session) {
            usage.cpu += Duration::from_secs_f64((stat.utime + stat.stime) as f64 / tps as f64);
            usage.rss_bytes += stat.rss * page;
        }
    }
    out
}

#[cfg(not(target_os = "linux"))]
pub fn sample(_sessions: &[i32]) -> HashMap<i32, Usage> {
    HashMap::new()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn counts_our_own_session() {
        let sid = nix::unistd::getsid(None).unwrap().as_raw();
        let usage = sample(&[sid])[&sid];
        assert!(usage.rss_bytes > 0);
    }
}
