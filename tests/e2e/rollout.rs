//! Blue-green rollouts through the real binary: restarts under a POST loop lose no request, a
//! new process that fails leaves the old one serving, a connection open across a switch stays
//! on the old process until its drain time, and `ps --json` shows both while they overlap.

use crate::common::tmux::Tmux;
use crate::common::{BIN, Stack, example, free_port};
use crate::lifecycle::{run_within, service, wait_service};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `api`: http_echo after a boot of `boot` seconds, probed over HTTP; `extra` added to it.
fn echo_stack(port: u16, boot: &str, extra: &str) -> Stack {
    Stack::new(&format!(
        r#"
        [services.api]
        run = "{extra_run}sleep {boot}; exec {echo} $PORT"
        port = {port}
        [services.api.health]
        http = "/"
        interval = "100ms"
        "#,
        echo = example("http_echo"),
        extra_run = extra,
    ))
}

/// POSTs on one keep-alive connection (a new one after a failure) until `stop`: each answer
/// must echo its body. Counted in `done` and `failed`.
fn post_loop(port: u16, stop: Arc<AtomicBool>, done: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!("post {n}");
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => conn.insert(BufReader::new(s)),
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let ok = post(c, &body).is_some_and(|answer| answer == body);
        if ok {
            done.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
            conn = None;
        }
    }
}

/// One POST on `conn`: the answer's body (None: no 200, or the connection broke).
fn post(conn: &mut BufReader<TcpStream>, body: &str) -> Option<String> {
    let request = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(request.as_bytes()).ok()?;
    let mut line = String::new();
    conn.read_line(&mut line).ok()?;
    let ok = line.starts_with("HTTP/1.1 200");
    let mut length = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut answer = vec![0u8; length];
    conn.read_exact(&mut answer).ok()?;
    ok.then(|| String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn restarts_under_a_post_loop_lose_no_request() {
    let port = free_port();
    let mut stack = echo_stack(port, "0.5", "");
    stack.start(&["up"]);
    stack.wait_ready(30);
    let first = service(&stack, "api")["pid"].as_i64().unwrap();
    let (stop, done, failed) = (Arc::default(), Arc::default(), Arc::default());
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, failed) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failed));
            std::thread::spawn(move || post_loop(port, stop, done, failed))
        })
        .collect();
    for _ in 0..3 {
        let out = run_within(&stack, &["restart", "api"], 60);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(done > 100, "{done} POSTs answered");
    assert_eq!(
        failed,
        0,
        "{failed} of {} POSTs failed\n{}",
        done + failed,
        stack.output()
    );
    let log = stack.log_lines("api").join("\n");
    assert_eq!(log.matches("switched to pid").count(), 3, "{log}");
    assert!(log.contains("drained in"), "{log}");
    let now = service(&stack, "api");
    assert_ne!(now["pid"].as_i64(), Some(first));
    assert!(now["draining_pid"].is_null() || now["draining_pid"] != now["pid"]);
    stack.stop();
}

#[test]
fn a_new_process_that_fails_leaves_the_old_one_serving() {
    let port = free_port();
    let mut stack = echo_stack(port, "0.2", "test -f broken && exit 3; ");
    stack.start(&["up"]);
    stack.wait_ready(30);
    let pid = service(&stack, "api")["pid"].clone();
    stack.touch("broken", true);
    let out = run_within(&stack, &["restart", "api"], 60);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the new process exited (code 3) before it was ready"),
        "{said}"
    );
    let api = service(&stack, "api");
    assert_eq!(api["pid"], pid, "{api}");
    assert_eq!(api["ready"], true, "{api}");
    assert!(api["rollout_failed"].as_str().is_some(), "{api}");
    assert_eq!(crate::common::http_status(port, "/"), 200);
    assert!(
        stack
            .log_lines("api")
            .iter()
            .any(|l| l.contains("rollout = \"restart\""))
    );
    // Mended: the next restart goes through, and the row no longer says it failed.
    stack.touch("broken", false);
    let out = run_within(&stack, &["restart", "api"], 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api = service(&stack, "api");
    assert_ne!(api["pid"], pid);
    assert!(api["rollout_failed"].is_null(), "{api}");
    stack.stop();
}

/// A line server: each line comes back prefixed with the pid that answered it.
const LINE_SERVER: &str = r#"
import os, socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen(16)
def serve(c):
    f = c.makefile("rwb", buffering=0)
    for line in f:
        f.write(b"%d %s" % (os.getpid(), line))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The same over HTTP: `/ws` upgrades (101), then each line comes back prefixed with the pid.
const UPGRADE_SERVER: &str = r#"
import os, http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path != "/ws":
            self.send_response(200); self.send_header("content-length", "2"); self.end_headers()
            self.wfile.write(b"ok"); return
        self.send_response(101); self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade"); self.end_headers(); self.wfile.flush()
        for line in self.rfile:
            self.wfile.write(b"%d %s" % (os.getpid(), line)); self.wfile.flush()
        self.close_connection = True
    def log_message(self, *args): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A connection through the proxy: plain TCP, or upgraded from HTTP (`/ws`, its 101 read).
fn open(port: u16, upgrade: bool) -> BufReader<TcpStream> {
    let mut conn = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    if upgrade {
        let ask =
            "GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n";
        conn.get_mut().write_all(ask.as_bytes()).unwrap();
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 101"), "{line}");
        while line != "\r\n" {
            line.clear();
            conn.read_line(&mut line).unwrap();
        }
    }
    conn
}

#[test]
fn a_connection_open_across_a_switch_stays_on_the_old_process_until_its_drain_time() {
    across_a_switch(LINE_SERVER, "protocol = \"tcp\"\n", false);
}

#[test]
fn a_websocket_open_across_a_switch_stays_on_the_old_process_until_its_drain_time() {
    across_a_switch(
        UPGRADE_SERVER,
        "[services.lines.health]\nhttp = \"/\"\n",
        true,
    );
}

/// A connection open across a restart stays with the old process, answered by it, until the
/// drain time ends it; a new one goes to the new process; `ps --json` shows both meanwhile.
fn across_a_switch(server: &str, extra: &str, upgrade: bool) {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        "[services.lines]\nrun = \"exec python3 -u lines.py\"\nport = {port}\ndrain = \"3s\"\n{extra}"
    ));
    std::fs::write(stack.path().join("lines.py"), server).unwrap();
    stack.start(&["up"]);
    stack.wait_ready(30);
    let old = service(&stack, "lines")["pid"].as_i64().unwrap();
    let mut held = open(port, upgrade);
    let said = |conn: &mut BufReader<TcpStream>, line: &str| {
        conn.get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        conn.read_line(&mut answer).unwrap();
        answer
    };
    assert_eq!(said(&mut held, "a"), format!("{old} a\n"));
    let out = run_within(&stack, &["restart", "lines"], 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both show while they overlap: the new one serves, the old one drains.
    let both = wait_service(&stack, "lines", 10, |s| {
        s["draining_pid"].as_i64() == Some(old)
    });
    let new = both["pid"].as_i64().unwrap();
    assert_ne!(new, old);
    // The open connection stays with the old process; a new one goes to the new process.
    assert_eq!(said(&mut held, "b"), format!("{old} b\n"));
    let mut fresh = open(port, upgrade);
    assert_eq!(said(&mut fresh, "c"), format!("{new} c\n"));
    // Its drain time up, the old one stops, and the connection with it.
    held.get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rest = String::new();
    let closed = held.read_to_string(&mut rest);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "{closed:?} {rest}"
    );
    wait_service(&stack, "lines", 20, |s| s["draining_pid"].is_null());
    let log = stack.log_lines("lines").join("\n");
    let said = format!("old pid {old} still connected after its drain time (3s)");
    assert!(log.contains(&said), "{log}");
    stack.stop();
}

#[test]
fn the_dashboard_row_shows_the_new_process_starting_then_the_old_one_draining() {
    let port = free_port();
    let stack = Stack::new(&format!(
        "[services.api]\nrun = \"sleep 2; exec {} $PORT\"\nport = {port}\n",
        example("http_echo")
    ));
    let tmux = Tmux::start(stack.path(), &format!("{BIN} ; sleep 30"));
    // (Ready at once without a probe: it listens after its 2 s boot.)
    tmux.wait(30, "the service listening", |s| {
        s.contains("http_echo listening")
    });
    let old = crate::common::tmux::pid_of(&tmux.screen(), "api").expect("a pid on the row");
    // A POST whose body is half sent: in flight on the old process, which drains until it ends.
    let mut busy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n";
    busy.write_all(format!("{head}12345").as_bytes()).unwrap();
    tmux.keys(&["r"]);
    tmux.wait(10, "the new process on the row", |s| {
        s.contains("starting beside")
    });
    let draining = format!("pid {old} draining");
    tmux.wait(20, "the old one draining", |s| s.contains(&draining));
    busy.write_all(b"67890").unwrap();
    // Answered by the old process, in full (its echo comes in chunks).
    let mut answer = vec![0u8; 512];
    let n = busy.read(&mut answer).unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    // (The row's words: the log below says `drains` and `stopping it`.)
    let stopping = format!("· old pid {old} stopping");
    tmux.wait(20, "the old one gone", |s| {
        !s.contains(&draining) && !s.contains(&stopping)
    });
    let new = crate::common::tmux::pid_of(&tmux.screen(), "api").expect("a pid on the row");
    assert_ne!(new, old);
    tmux.keys(&["q", "y"]);
    tmux.wait(30, "devstack to exit", |s| !s.contains("ready"));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}
