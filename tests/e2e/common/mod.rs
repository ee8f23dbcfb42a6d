//! Running the real `devstack` binary against a throwaway stack, and cleaning up after it even
//! when a test fails: dropping a `Stack` kills devstack and every process left in its folder.
#![allow(dead_code)]

pub mod tmux;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_devstack");

/// The test fixture program (fixtures/testsvc.rs), built by `cargo test` with the examples.
pub fn testsvc() -> String {
    example("testsvc")
}

/// The path of a fixture built as an example (`testsvc`, `http_echo`).
pub fn example(name: &str) -> String {
    let bin = Path::new(BIN).parent().unwrap().join("examples").join(name);
    assert!(
        bin.exists(),
        "build the examples first (cargo test does): {}",
        bin.display()
    );
    bin.display().to_string()
}

/// One HTTP/1.1 GET on a connection of its own: the status (0 when the connection broke).
pub fn http_status(port: u16, path: &str) -> u16 {
    http_get(port, path).0
}

/// One HTTP/1.1 GET on a connection of its own: the status (0 when the connection broke) and
/// the whole response as text.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    if conn.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Stack {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    child: Option<Child>,
    output: Arc<Mutex<String>>,
    /// The soft and hard limits of open files devstack is started with.
    files: Option<(u64, u64)>,
    /// Variables devstack is started with.
    env: Vec<(String, String)>,
}

impl Stack {
    /// A folder holding `devstack.toml` with this text.
    pub fn new(toml: &str) -> Stack {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("devstack.toml"), toml).expect("write config");
        Stack {
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            child: None,
            output: Arc::default(),
            files: None,
            env: Vec::new(),
        }
    }

    /// The stack of an existing folder (the demo stack at the repository root).
    pub fn at(dir: &Path) -> Stack {
        Stack {
            dir: dir.to_path_buf(),
            _tmp: None,
            child: None,
            output: Arc::default(),
            files: None,
            env: Vec::new(),
        }
    }

    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.path().join("devstack.toml"), toml).expect("write config");
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Create or remove a file in the stack's folder (fixtures read them as switches).
    pub fn touch(&self, name: &str, present: bool) {
        let p = self.path().join(name);
        if present {
            std::fs::write(p, "").unwrap();
        } else {
            let _ = std::fs::remove_file(p);
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("NO_COLOR");
        cmd
    }

    /// Start `devstack ARGS`, collecting stdout and stderr together.
    pub fn start(&mut self, args: &[&str]) {
        self.spawn(args, true);
    }

    /// Start `devstack ARGS` with its output thrown away (floods).
    pub fn start_quiet(&mut self, args: &[&str]) {
        self.spawn(args, false);
    }

    /// Start devstack with these limits of open files (soft, hard), as `ulimit -Sn`/`-Hn`.
    pub fn limit_files(&mut self, soft: u64, hard: u64) {
        self.files = Some((soft, hard));
    }

    /// Start devstack with `name=value` in its environment.
    pub fn env(&mut self, name: &str, value: &str) {
        self.env.push((name.into(), value.into()));
    }

    fn spawn(&mut self, args: &[&str], capture: bool) {
        let mut cmd = self.command(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some((soft, hard)) = self.files {
            use std::os::unix::process::CommandExt;
            // SAFETY: one system call between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        soft,
                        hard,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }
        if capture {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        self.output.lock().unwrap().clear();
        let mut child = cmd.spawn().expect("start devstack");
        let readers: Vec<Box<dyn std::io::Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for r in readers {
            let out = self.output.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(r);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            });
        }
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("started").id() as i32
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Wait until the output contains `needle`; panics with the output after `secs`.
    pub fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            if Instant::now() > deadline {
                panic!("`{needle}` did not appear within {secs}s; output:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until the stack's control socket answers (`devstack ps` succeeds).
    pub fn wait_socket(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self
            .command(&["ps"])
            .output()
            .expect("run devstack ps")
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "the socket never answered; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The services of `devstack ps --json`, or None while no stack answers.
    pub fn services(&self) -> Option<Vec<serde_json::Value>> {
        let out = self.command(&["ps", "--json"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["services"].as_array().cloned()
    }

    /// Wait until every service is ready; panics with the services and the output after `secs`.
    pub fn wait_ready(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self
                .services()
                .is_some_and(|s| s.iter().all(|v| v["ready"] == true))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in {secs}s: {:?}\n{}",
                self.services(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C to devstack, then wait for it to exit.
    pub fn stop(mut self) {
        self.signal(nix::sys::signal::Signal::SIGINT);
        self.wait_exit(30);
    }

    /// Wait until the output holds `key<number>` (a fixture printing its pid) and return it.
    pub fn wait_number(&self, key: &str, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(n) = find_number(&self.output(), key) {
                return n;
            }
            if Instant::now() > deadline {
                panic!(
                    "no `{key}<number>` within {secs}s; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signal devstack");
    }

    /// Wait for devstack to exit; panics with the output after `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let child = self.child.as_mut().expect("started");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // Let the reader threads catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "devstack did not exit within {secs}s; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until a line of the service's log holds `needle`, and return that line; panics
    /// with the log after `secs`.
    pub fn wait_log(&self, service: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let lines = self.log_lines(service);
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in {service}'s log within {secs}s:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every log file of a service, rotated ones first, stripped of timestamps.
    pub fn log_lines(&self, service: &str) -> Vec<String> {
        let dir = self.path().join(".devstack/logs");
        let mut text = String::new();
        for n in (1..=9).rev() {
            if let Ok(t) = std::fs::read(dir.join(format!("{service}.log.{n}"))) {
                text.push_str(&String::from_utf8_lossy(&t));
            }
        }
        text.push_str(&String::from_utf8_lossy(
            &std::fs::read(dir.join(format!("{service}.log"))).unwrap_or_default(),
        ));
        text.lines()
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
            .collect()
    }

    /// Live (non-zombie) service processes left in this stack's folder, as `pid command line`.
    pub fn leftovers(&self) -> Vec<String> {
        // A process SIGKILLed just before devstack exited may take a moment to be gone.
        let pids = processes_under(self.path());
        all_gone(&pids, 3);
        processes_under(self.path())
            .into_iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
            })
            .collect()
    }
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Wait until none of `pids` is alive; false after `secs`.
pub fn all_gone(pids: &[i32], secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if pids.iter().all(|&p| !alive(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Live processes started by a devstack (they carry `DEVSTACK_SERVICE` in their environment)
/// whose working folder is inside `dir`.
fn processes_under(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let dir: PathBuf = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|var| var.starts_with(b"DEVSTACK_SERVICE="))
            })
        })
        .filter(|&pid| alive(pid))
        .collect()
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in processes_under(&self.dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `key<number>` found in `out`, if it is there yet.
pub fn find_number(out: &str, key: &str) -> Option<i32> {
    out.match_indices(key).find_map(|(at, _)| {
        let digits: String = out[at + key.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    })
}

/// Pull `name=<number>` out of the output (fixtures print their pids like `child=1234`).
pub fn number_after(out: &str, key: &str) -> i32 {
    find_number(out, key).unwrap_or_else(|| panic!("no `{key}<number>` in output:\n{out}"))
}

/// Lines of the output that contain `needle`, in order.
pub fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

/// The repository's demo stack (`devstack.toml` and `fixtures/demo`) copied into a folder of its
/// own, with every port moved to a free one: the user's own demo may be running beside the tests,
/// on its fixed ports and in its folder. The copy builds the demo's services itself.
pub struct Demo {
    pub stack: Stack,
    /// The demo's port → the port the copy uses.
    ports: std::collections::HashMap<u16, u16>,
}

impl Demo {
    pub fn new() -> Demo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = std::fs::read_to_string(root.join("devstack.toml")).expect("demo config");
        let mut ports = std::collections::HashMap::new();
        let moved: Vec<String> = config
            .lines()
            .map(|line| {
                let Some(old) = line
                    .strip_prefix("port = ")
                    .and_then(|p| p.trim().parse::<u16>().ok())
                else {
                    return line.to_string();
                };
                let new = *ports.entry(old).or_insert_with(free_port);
                format!("port = {new}")
            })
            .collect();
        let stack = Stack::new(&moved.join("\n"));
        let dest = stack.path().join("fixtures/demo");
        std::fs::create_dir_all(&dest).unwrap();
        for entry in std::fs::read_dir(root.join("fixtures/demo"))
            .unwrap()
            .flatten()
        {
            let name = entry.file_name();
            if entry.file_type().unwrap().is_file() && name != "Cargo.lock" {
                std::fs::copy(entry.path(), dest.join(&name)).unwrap();
            }
        }
        Demo { stack, ports }
    }

    /// Where the copy serves what the demo serves on `port`.
    pub fn port(&self, port: u16) -> u16 {
        self.ports[&port]
    }
}

/// Each service leaves one kind of process behind and names it in `<kind>.pid`.
pub const ESCAPING: &str = r#"
[stack]
grace = "1s"

[services.grandchildren]
run = "sleep 300 & echo $! > grandchild.pid; sleep 300 & wait"

[services.jobcontrol]
run = "set -m; sleep 300 & echo $! > jobgroup.pid; wait"

[services.daemon]
run = "(setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &); exec sleep 300"

[services.setsid]
run = "setsid sh -c 'echo $$ > setsid.pid; exec sleep 300' & wait"

[services.stubborn]
run = "trap '' TERM INT HUP; echo $$ > stubborn.pid; while :; do sleep 0.2; done"
"#;

pub const KINDS: [&str; 5] = ["grandchild", "jobgroup", "daemon", "setsid", "stubborn"];

/// The pids the `ESCAPING` stack's services wrote in their `<kind>.pid` files, as far as they got.
pub fn escaping_pids(stack: &Stack) -> Vec<i32> {
    KINDS
        .iter()
        .filter_map(|k| {
            std::fs::read_to_string(stack.path().join(format!("{k}.pid")))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

/// Wait until every kind of process of the `ESCAPING` stack is there; their pids.
pub fn escaping_started(stack: &Stack) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids = escaping_pids(stack);
        if pids.len() == KINDS.len() && pids.iter().all(|&p| alive(p)) {
            // The keeper looks every few hundred milliseconds: wait until it has seen (and
            // recorded) the processes that left their sessions.
            wait_recorded(stack, &[pids[2], pids[3]]);
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "not every process started: {pids:?}\n{}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the stack's process record (`.devstack/pgroups`) names each of `pids` as a process
/// that left its service's session.
pub fn wait_recorded(stack: &Stack, pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let record =
            std::fs::read_to_string(stack.path().join(".devstack/pgroups")).unwrap_or_default();
        if pids
            .iter()
            .all(|p| record.lines().any(|l| l.starts_with(&format!("+{p} "))))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pids:?} never recorded: {record}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which of them are still alive (after a moment for the last to go), by kind.
pub fn survivors(pids: &[i32]) -> Vec<(&'static str, i32)> {
    all_gone(pids, 5);
    KINDS
        .iter()
        .zip(pids)
        .filter(|&(_, &p)| alive(p))
        .map(|(k, &p)| (*k, p))
        .collect()
}

/// The lines `child` prints on its (piped) stdout, as they come, read on a thread of their own.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
