//! CPU time and resident memory of whole sessions (a service and everything it started), from
//! each service's process tree.

use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far by the session's live processes.
    pub cpu: Duration,
    pub rss_bytes: u64,
}

/// Usage of each of `sessions` (session ids = the services' pids): each service's process tree,
/// plus what came back to devstack (the subreaper) while still in the session.
#[cfg(target_os = "linux")]
pub fn sample(sessions: &[i32]) -> HashMap<i32, Usage> {
    let mut out: HashMap<i32, Usage> = sessions.iter().map(|&s| (s, Usage::default())).collect();
    let (tps, page) = (procfs::ticks_per_second(), procfs::page_size());
    let tree = super::tree::Tree::new();
    let me = std::process::id() as i32;
    // Devstack's children that aren't services: what came back to it (the subreaper).
    let ours: Vec<i32> = tree
        .children_of_thread(me)
        .into_iter()
        .filter(|p| !sessions.contains(p))
        .collect();
    for &sid in sessions {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![sid];
        stack.extend(&ours);
        while let Some(pid) = stack.pop() {
            if !seen.insert(pid) {
                continue;
            }
            let Some(stat) = super::tree::stat(pid) else {
                continue;
            };
            if stat.session != sid {
                continue;
            }
            let usage = out.get_mut(&sid).expect("one entry per session");
            usage.cpu += Duration::from_secs_f64((stat.utime + stat.stime) as f64 / tps as f64);
            usage.rss_bytes += stat.rss * page;
            stack.extend(tree.children_of(pid, stat.threads));
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
