//! A tmux server of a test's own, to drive the real dashboard in a real terminal: type keys,
//! read the screen.

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own, killed with everything in it when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(dir: &std::path::Path, command: &str) -> Tmux {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux {
            socket: format!("devstack-test-{}-{n}", std::process::id()),
        };
        let status = tmux
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "40",
                "-c",
            ])
            .arg(dir)
            .arg(command)
            .status()
            .expect("tmux is installed");
        assert!(status.success());
        tmux
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c
    }

    pub fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "t", k]).status().unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `ok` holds for the screen; panics with the screen after `secs`.
    pub fn wait(&self, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {secs}s; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "t"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).output();
    }
}

/// The pid shown in the service list for a running `service`.
pub fn pid_of(screen: &str, service: &str) -> Option<i32> {
    let row = screen
        .lines()
        .find(|l| l.contains(&format!(" {service} ")) && l.contains("running"))?;
    // Columns: glyph, name, state, health, pid, port, …
    let cols: Vec<&str> = row
        .trim_matches(|c| c == '┃' || c == '│')
        .split_whitespace()
        .collect();
    cols.get(4)?.parse().ok()
}
