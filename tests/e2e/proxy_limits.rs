//! The proxy under load, through the real binary: thousands of idle connections under a soft
//! limit of 1024 open files, the cap per service, head and idle timeouts, services on IPv6
//! loopback or on another port than theirs, callers that left their session or call at once.

use crate::common::{Stack, example, free_port, http_get, http_status};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Two fast HTTP services (`http_echo`, which holds any number of idle connections).
fn two_services(api: u16, web: u16) -> String {
    let echo = example("http_echo");
    format!(
        r#"
        [services.api]
        run = "{echo} $PORT 1"
        port = {api}
        [services.web]
        run = "{echo} $PORT 1"
        port = {web}
        "#
    )
}

/// Raise this test's own soft limit: it holds the connections.
fn raise_own_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

fn pid_of(stack: &Stack, service: &str) -> i32 {
    let services = stack.services().expect("ps --json");
    let svc = services
        .iter()
        .find(|s| s["name"] == service)
        .unwrap_or_else(|| panic!("no {service} in {services:?}"));
    svc["pid"].as_i64().expect("a pid") as i32
}

/// A process's soft limit of open files, from `/proc/PID/limits`.
fn soft_files(pid: i32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i} to {port}: {e}"))
        })
        .collect()
}

fn ok(stack: &Stack, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = stack.command(args).output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "devstack {args:?} failed after {took:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

#[test]
fn two_thousand_idle_connections_leave_a_stack_started_under_a_soft_limit_of_1024_answering() {
    let hard = raise_own_limit();
    if hard < 8192 {
        eprintln!("skipped: the hard limit of open files here is {hard}");
        return;
    }
    let (api, web) = (free_port(), free_port());
    let mut stack = Stack::new(&two_services(api, web));
    stack.limit_files(1024, hard);
    stack.start(&["up"]);
    stack.wait_ready(30);
    // What devstack starts keeps the soft limit it was given.
    assert_eq!(soft_files(pid_of(&stack, "api")), 1024);

    let idle = idle_connections(api, 2000);
    // Past the sniffing: each is forwarded to the service as TCP (two files in devstack).
    std::thread::sleep(Duration::from_secs(1));
    let took = ok(&stack, &["ps"]);
    eprintln!("ps with 2,000 idle connections: {took:?}");
    assert_eq!(http_status(web, "/"), 200);
    // (`api` itself, given 1024 files as it would be without devstack, holds what it can.)
    ok(&stack, &["restart", "api"]);
    let (status, text) = http_get(api, "/");
    assert_eq!(status, 200, "{text}");
    assert_eq!(soft_files(pid_of(&stack, "api")), 1024);
    drop(idle);
    ok(&stack, &["down"]);
    stack.wait_exit(30);
}

#[test]
fn a_service_past_its_share_of_connections_is_told_while_the_rest_of_the_stack_is_served() {
    raise_own_limit();
    let (api, web) = (free_port(), free_port());
    let mut stack = Stack::new(&two_services(api, web));
    // 512 files, 256 + 16 a service kept: (512 - 288) / 2 files a connection / 2 services.
    stack.limit_files(512, 512);
    stack.start(&["up"]);
    stack.wait_ready(30);
    let idle = idle_connections(api, 200);
    std::thread::sleep(Duration::from_secs(1));
    let (status, text) = http_get(api, "/");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("has 56 connections open"), "{text}");
    assert_eq!(http_status(web, "/"), 200);
    ok(&stack, &["ps"]);
    let said = stack.wait_log("api", "56 connections to port", 10);
    assert!(said.contains(&api.to_string()), "{said}");
    drop(idle);
    ok(&stack, &["restart", "api"]);
    assert_eq!(http_status(api, "/"), 200);
    ok(&stack, &["down"]);
    stack.wait_exit(30);
}

#[test]
fn a_head_sent_a_byte_at_a_time_gets_408_and_an_idle_connection_is_closed() {
    let (api, web) = (free_port(), free_port());
    let mut stack = Stack::new(&two_services(api, web));
    stack.env("DEVSTACK_PROXY_HEAD_TIMEOUT", "1s");
    stack.env("DEVSTACK_PROXY_IDLE_TIMEOUT", "1s");
    stack.start(&["up"]);
    stack.wait_ready(30);

    // Slowloris: a head that never ends.
    let mut slow = TcpStream::connect(("127.0.0.1", api)).unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the slow head was kept");
        if slow.write_all(b"x").is_err() {
            break;
        }
        match slow.read_to_end(&mut answer) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A kept-alive connection with nothing more to ask.
    let mut idle = TcpStream::connect(("127.0.0.1", api)).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut rest = Vec::new();
    // Ends (EOF) once idle past the timeout.
    idle.read_to_end(&mut rest).unwrap();

    // The 408 is recorded, a request the caller got wrong (not the service's error).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = stack.command(&["traffic", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let s4xx: u64 = v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["callee"] == "api")
            .map(|e| e["status"]["s4xx"].as_u64().unwrap_or(0))
            .sum();
        if s4xx >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no 4xx recorded: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    stack.stop();
}

/// A Python HTTP service listening on `host`:`port` (the port from `$PORT` when None).
fn python_http(host: &str, port: Option<u16>) -> String {
    let port = port.map_or("int(os.environ['PORT'])".to_string(), |p| p.to_string());
    format!(
        "import http.server, os, socket\n\
         class Server(http.server.ThreadingHTTPServer):\n    address_family = socket.AF_INET6 if ':' in '{host}' else socket.AF_INET\n\
         class Hello(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n        self.send_header('content-length', '6')\n        self.end_headers()\n        self.wfile.write(b'hello\\n')\n\
         Server(('{host}', {port}), Hello).serve_forever()\n"
    )
}

#[test]
fn a_service_on_ipv6_loopback_only_is_reached_from_either_loopback() {
    let port = free_port();
    let stack_toml = format!(
        r#"
        [services.node]
        run = ["python3", "-u", "v6.py"]
        port = {port}
        "#
    );
    let mut stack = Stack::new(&stack_toml);
    std::fs::write(stack.path().join("v6.py"), python_http("::1", None)).unwrap();
    stack.start(&["up"]);
    stack.wait_ready(30);
    let (status, text) = http_get(port, "/");
    assert_eq!(status, 200, "{text}");
    // A caller reaching `localhost` at ::1 (Node 18's fetch).
    let mut v6 = TcpStream::connect(("::1", port)).expect("the public port on ::1");
    v6.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    v6.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    v6.read_to_string(&mut answer).unwrap();
    assert!(answer.contains(" 200 OK"), "{answer}");
    stack.stop();
}

#[test]
fn a_service_listening_on_another_port_than_its_own_is_told_where() {
    let (port, elsewhere) = (free_port(), free_port());
    let stack_toml = format!(
        r#"
        [services.app]
        run = ["python3", "-u", "app.py"]
        port = {port}
        "#
    );
    let mut stack = Stack::new(&stack_toml);
    std::fs::write(
        stack.path().join("app.py"),
        python_http("127.0.0.1", Some(elsewhere)),
    )
    .unwrap();
    stack.start(&["up"]);
    let said = stack.wait_log("app", "not listening on its PORT", 30);
    assert!(said.contains(&format!("127.0.0.1:{elsewhere}")), "{said}");
    stack.stop();
}

#[test]
fn a_caller_that_left_its_session_and_one_that_calls_at_once_are_their_services() {
    let api = free_port();
    let echo = example("http_echo");
    let stack_toml = format!(
        r#"
        [services.api]
        run = "{echo} $PORT 1"
        port = {api}
        [services.worker]
        run = ["python3", "-u", "worker.py"]
        depends_on = ["api"]
        [services.early]
        run = "curl -s $API_URL/early >/dev/null; sleep 600"
        depends_on = ["api"]
        "#
    );
    let mut stack = Stack::new(&stack_toml);
    // A daemon-like child: its own session (`start_new_session`), calling every 200 ms.
    std::fs::write(
        stack.path().join("worker.py"),
        "import os, subprocess, time\n\
         subprocess.Popen(['sh', '-c', 'while true; do curl -s \"$API_URL/escaped\" >/dev/null; sleep 0.2; done'], start_new_session=True)\n\
         time.sleep(600)\n",
    )
    .unwrap();
    stack.start(&["up"]);
    stack.wait_ready(30);
    let deadline = Instant::now() + Duration::from_secs(20);
    let callers = loop {
        let out = stack.command(&["traffic", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut callers: Vec<String> = v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["caller"].as_str().unwrap().to_string())
            .collect();
        callers.sort();
        if callers.contains(&"worker".into()) && callers.contains(&"early".into()) {
            break callers;
        }
        assert!(Instant::now() < deadline, "callers: {callers:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(callers, ["early", "worker"]);
    stack.stop();
}

/// `devstack traffic --json`'s edges into `callee`: (requests, 2xx, 4xx).
fn edge_counts(stack: &Stack, callee: &str) -> (u64, u64, u64) {
    let out = stack.command(&["traffic", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["callee"] == callee)
        .fold((0, 0, 0), |(n, ok, bad), e| {
            (
                n + e["requests"].as_u64().unwrap_or(0),
                ok + e["status"]["s2xx"].as_u64().unwrap_or(0),
                bad + e["status"]["s4xx"].as_u64().unwrap_or(0),
            )
        })
}

/// One request written as given (after `pause`) on a connection of its own: the answer.
fn raw_request(port: u16, request: &[u8], pause: Duration) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::thread::sleep(pause);
    conn.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn many_header_fields_a_long_request_line_a_late_first_byte_and_non_http_are_read_as_http() {
    let (api, strict) = (free_port(), free_port());
    let echo = example("http_echo");
    let stack_toml = format!(
        r#"
        [services.api]
        run = ["python3", "-u", "fields.py"]
        port = {api}
        [services.strict]
        run = "{echo} $PORT 1"
        port = {strict}
        protocol = "http"
        "#
    );
    let mut stack = Stack::new(&stack_toml);
    std::fs::write(
        stack.path().join("fields.py"),
        "import http.server, os\n\
         class H(http.server.BaseHTTPRequestHandler):\n    protocol_version = 'HTTP/1.1'\n    def do_GET(self):\n        self.send_response(200)\n        for i in range(150):\n            self.send_header(f'x-field-{i}', str(i))\n        self.send_header('content-length', '3')\n        self.send_header('connection', 'close')\n        self.end_headers()\n        self.wfile.write(b'ok\\n')\n\
         http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n",
    )
    .unwrap();
    stack.start(&["up"]);
    stack.wait_ready(30);

    // A response with 150 fields passes whole.
    let answer = raw_request(
        api,
        b"GET /many HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::ZERO,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-field-149: 149"), "{answer}");
    // A request line over 8 KB is HTTP still.
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(9000));
    let answer = raw_request(api, long.as_bytes(), Duration::ZERO);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A first byte long after the connection opened (a browser's preconnect).
    let answer = raw_request(
        api,
        b"GET /late HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_millis(800),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Not HTTP, to a service said to speak HTTP: a 400, not bytes passed on.
    let answer = raw_request(strict, b"HELLO THERE\r\n\r\n", Duration::ZERO);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (api_requests, api_ok, _) = edge_counts(&stack, "api");
        let (_, _, strict_bad) = edge_counts(&stack, "strict");
        if api_ok >= 3 && strict_bad >= 1 {
            // Every one of them an HTTP request: no opaque TCP record among them.
            assert_eq!(api_requests, api_ok);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "api: {api_requests} requests, {api_ok} 2xx; strict: {strict_bad} 4xx"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stack.stop();
}
