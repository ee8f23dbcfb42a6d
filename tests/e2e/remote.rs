//! Services served elsewhere (`url`), through the real binary: a local HTTPS server stands in for
//! the remote end (`fixtures/tls_server.py`, answering with the Host and path it was asked).
//! Callers speak plain HTTP to the service's port; the proxy speaks TLS to the end (its
//! certificate checked against the system's roots, here `SSL_CERT_FILE`'s, or not with
//! `insecure`), asks for it by its own name, records the traffic, applies faults; `devstack use`
//! switches a service with a `run` too between its process and its remote end.

use crate::common::{Stack, example, free_port, http_get};
use crate::decode::run;
use crate::lifecycle::{run_within, service, wait_service};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, in `dir`: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir), true);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=devstack test CA",
    ];
    openssl(&[&["req", "-x509"][..], &ec, &ca].concat());
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// The stand-in remote end on its own port, its certificates in a folder of its own (`ca`:
/// the CA that signed them); killed (by its pid) when dropped.
struct RemoteEnd {
    child: Child,
    port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl RemoteEnd {
    fn start() -> RemoteEnd {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/fixtures/tls_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "listening");
        RemoteEnd {
            child,
            port,
            ca,
            _dir: dir,
        }
    }
}

impl Drop for RemoteEnd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_url_service_forwards_plain_http_to_its_remote_end_over_tls_by_its_own_name() {
    let end = RemoteEnd::start();
    let port = free_port();
    let mut stack = Stack::new(&format!(
        r#"
        [services.billing]
        url = "https://localhost:{remote}"
        insecure = true
        port = {port}
        "#,
        remote = end.port,
    ));
    stack.start(&["up", "--headless"]);
    stack.wait_ready(30);
    let billing = service(&stack, "billing");
    assert_eq!(billing["remote"], format!("https://localhost:{}", end.port));
    assert_eq!(billing["pid"], serde_json::Value::Null);
    assert_eq!(billing["health"], "healthy", "{billing}");
    // Plain HTTP here; TLS there, asked for by its own name, the path as it was.
    let (status, body) = http_get(port, "/invoices?n=3");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("host=localhost:{} path=/invoices?n=3", end.port)),
        "{body}"
    );
    // Recorded as any edge, and faults apply to it.
    let traffic = run_within(&stack, &["traffic", "--json"], 20);
    let traffic = String::from_utf8_lossy(&traffic.stdout).into_owned();
    assert!(traffic.contains("\"billing\""), "{traffic}");
    // Kept for the inspector: what was asked of the remote end, and its answer.
    let id = traffic_id(&stack);
    let shown = run_within(&stack, &["traffic", "show", &id.to_string()], 20);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("GET /invoices?n=3") && shown.contains("remote end: host="),
        "{shown}"
    );
    let fault = run_within(&stack, &["fault", "add", "billing", "error=503"], 20);
    assert!(fault.status.success(), "{fault:?}");
    assert_eq!(http_get(port, "/").0, 503);
    // Stopped, nothing is forwarded; started, it is again. Nothing ever ran here.
    let stop = run_within(&stack, &["fault", "clear"], 20);
    assert!(stop.status.success());
    assert!(
        run_within(&stack, &["stop", "billing"], 20)
            .status
            .success()
    );
    assert_ne!(http_get(port, "/").0, 200);
    assert!(
        run_within(&stack, &["start", "billing"], 20)
            .status
            .success()
    );
    assert_eq!(http_get(port, "/").0, 200);
    // A restart probes it anew, and returns once it is healthy again.
    let restart = run_within(&stack, &["restart", "billing"], 20);
    assert!(restart.status.success(), "{restart:?}");
    assert_eq!(http_get(port, "/").0, 200);
    let log = stack.log_lines("billing").join("\n");
    assert!(log.contains("served by its remote end"), "{log}");
    assert!(!log.contains("spawned"), "{log}");
}

/// The id of the newest request the stack kept (`traffic --json`'s recent ones, through the
/// socket's `traffic` request).
fn traffic_id(stack: &Stack) -> u64 {
    use std::io::{BufRead, Write};
    let mut conn =
        std::os::unix::net::UnixStream::connect(stack.path().join(".devstack/devstack.sock"))
            .unwrap();
    conn.write_all(b"{\"cmd\":\"traffic\",\"recent\":1}\n")
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(conn).read_line(&mut line).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
    answer["recent"][0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"))
}

#[test]
fn a_remote_end_s_certificate_is_checked_against_the_system_s_roots() {
    let end = RemoteEnd::start();
    let config = |port: u16| {
        format!(
            r#"
            [services.billing]
            url = "https://localhost:{remote}"
            port = {port}
            [services.billing.health]
            http = "/ping"
            interval = "200ms"
            "#,
            remote = end.port,
        )
    };
    // Trusted (its CA among the roots, as SSL_CERT_FILE says): probed and forwarded.
    let port = free_port();
    let mut trusted = Stack::new(&config(port));
    trusted.env("SSL_CERT_FILE", end.ca.to_str().unwrap());
    trusted.start(&["up", "--headless"]);
    trusted.wait_ready(30);
    assert_eq!(http_get(port, "/x").0, 200);
    // Not trusted: the probe says why, and callers get the proxy's 502, not the remote's page.
    let port = free_port();
    let mut untrusted = Stack::new(&config(port));
    let other_ca = tempfile::tempdir().unwrap();
    let (ca, _, _) = certificates(other_ca.path());
    untrusted.env("SSL_CERT_FILE", ca.to_str().unwrap());
    untrusted.start(&["up", "--headless"]);
    untrusted.wait_socket(30);
    let billing = wait_service(&untrusted, "billing", 30, |s| s["health_error"].is_string());
    let why = billing["health_error"].as_str().unwrap();
    assert!(why.contains("certificate"), "{why}");
    let (status, body) = http_get(port, "/x");
    assert_eq!(status, 502, "{body}");
}

#[test]
fn use_switches_a_service_between_its_process_and_its_remote_end() {
    let end = RemoteEnd::start();
    let port = free_port();
    let mut stack = Stack::new(&format!(
        r#"
        [services.users]
        run = "exec {echo} $PORT"
        url = "https://localhost:{remote}"
        insecure = true
        port = {port}
        [services.users.health]
        http = "/"
        interval = "200ms"
        "#,
        echo = example("http_echo"),
        remote = end.port,
    ));
    stack.start(&["up", "--headless"]);
    stack.wait_ready(30);
    let local = service(&stack, "users");
    let pid = local["pid"].as_i64().unwrap();
    assert_eq!(local["remote"], serde_json::Value::Null);
    assert!(!http_get(port, "/who").1.contains("remote end"));
    // To the remote end: the local process stops; callers keep the same port.
    let used = run_within(&stack, &["use", "users", "remote"], 60);
    let said = String::from_utf8_lossy(&used.stdout).into_owned();
    assert!(used.status.success(), "{used:?}");
    assert!(
        said.contains("served by its remote end https://localhost"),
        "{said}"
    );
    assert!(
        !crate::common::alive(pid as i32),
        "the local process stopped"
    );
    assert!(
        http_get(port, "/who")
            .1
            .contains("remote end: host=localhost")
    );
    assert!(service(&stack, "users")["remote"].is_string());
    // And back: a new local process, ready when `use` returns.
    let back = run_within(&stack, &["use", "users", "local"], 60);
    assert!(back.status.success(), "{back:?}");
    let users = service(&stack, "users");
    assert_eq!(users["remote"], serde_json::Value::Null);
    assert_ne!(users["pid"].as_i64(), Some(pid));
    assert_eq!(http_get(port, "/who").0, 200);
    assert!(!http_get(port, "/who").1.contains("remote end"));
}

#[test]
fn use_says_what_a_service_cannot_be_switched_to() {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        "[services.api]\nrun = \"exec {echo} $PORT\"\nport = {port}\n",
        echo = example("http_echo"),
    ));
    stack.start(&["up", "--headless"]);
    stack.wait_ready(30);
    let out = run_within(&stack, &["use", "api", "remote"], 20);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("api has no `url`"), "{said}");
}

#[test]
fn u_in_the_dashboard_switches_the_selected_service_to_its_remote_end_and_back() {
    use crate::common::{BIN, tmux::Tmux};
    let end = RemoteEnd::start();
    let port = free_port();
    let stack = Stack::new(&format!(
        r#"
        [services.users]
        run = "exec {echo} $PORT"
        url = "https://localhost:{remote}"
        insecure = true
        port = {port}
        "#,
        echo = example("http_echo"),
        remote = end.port,
    ));
    let tmux = Tmux::start(stack.path(), &format!("{BIN} ; sleep 30"));
    tmux.wait(30, "the service listening", |s| {
        s.contains("http_echo listening")
    });
    tmux.keys(&["U"]);
    tmux.wait(20, "the row saying remote", |s| {
        s.contains("running · remote")
    });
    assert!(http_get(port, "/").1.contains("remote end"));
    tmux.keys(&["U"]);
    tmux.wait(20, "the local process again", |s| {
        !s.contains("running · remote") && crate::common::tmux::pid_of(s, "users").is_some()
    });
    tmux.keys(&["q", "y"]);
    tmux.wait(30, "devstack to exit", |s| !s.contains("ready"));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn a_tcp_url_forwards_bytes_and_a_remote_redis_is_decoded_as_a_local_one() {
    let scratch = tempfile::tempdir().unwrap();
    let redis = crate::decode::redis::redis_server(scratch.path());
    let port = free_port();
    let mut stack = Stack::new(&format!(
        r#"
        [services.cache]
        url = "tcp://127.0.0.1:{remote}"
        port = {port}
        "#,
        remote = redis.port,
    ));
    stack.start(&["up", "--headless"]);
    stack.wait_ready(30);
    let cli = crate::decode::program("redis-cli", &[], "redis-tools");
    let set = run(
        Command::new(&cli).args(["-p", &port.to_string(), "set", "greeting", "hi"]),
        true,
    );
    assert_eq!(set.trim(), "OK");
    // Decoded: the edge is Redis's, each command a request.
    let traffic = run_within(&stack, &["traffic"], 20);
    let traffic = String::from_utf8_lossy(&traffic.stdout).into_owned();
    let edge = traffic
        .lines()
        .find(|l| l.contains("cache"))
        .unwrap_or_default();
    assert!(edge.contains("redis"), "{traffic}");
}

#[test]
fn a_remote_end_is_forwarded_to_before_its_first_probe_passes() {
    let end = RemoteEnd::start();
    let port = free_port();
    // A probe that never passes within its long start period: the service stays `starting`.
    let mut stack = Stack::new(&format!(
        r#"
        [services.billing]
        url = "https://localhost:{remote}"
        insecure = true
        port = {port}
        [services.billing.health]
        cmd = "false"
        start_period = "5m"
        "#,
        remote = end.port,
    ));
    stack.start(&["up", "--headless"]);
    stack.wait_socket(30);
    wait_service(&stack, "billing", 30, |s| s["state"] == "starting");
    let (status, body) = http_get(port, "/early");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("path=/early"), "{body}");
}
