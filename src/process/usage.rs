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
    fn counts_a_session_and_its_children() {
        use std::os::unix::process::CommandExt;
        // A session of its own (the test's session leader may be outside this pid namespace).
        let mut child = std::process::Command::new("sh");
        child.args(["-c", "sleep 30 & wait"]);
        unsafe {
            child.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = child.spawn().unwrap();
        let sid = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while super::super::tree::Tree::new()
            .children_of(sid, 1)
            .is_empty()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The child may still be between fork and exec at the first look: look again for a
        // while (without counting children, the sum never passes the leader's own).
        let leader = || super::super::tree::stat(sid).unwrap().rss * procfs::page_size();
        let mut usage = sample(&[sid])[&sid];
        let mut own = leader();
        while usage.rss_bytes <= own && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            own = leader();
            usage = sample(&[sid])[&sid];
        }
        let leader = own;
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(sid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        assert!(leader > 0);
        assert!(
            usage.rss_bytes > leader,
            "the child's memory is counted too"
        );
    }
}
