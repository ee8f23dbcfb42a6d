//! `devstack traffic -f` prints what callers sent (a request's path) as text that can't act on
//! the terminal: C1 controls and bidi overrides are escaped, through the real binary.

use crate::common::{Stack, free_port, testsvc};
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn traffic_follow_escapes_c1_controls_and_bidi_overrides_in_paths() {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        "[services.api]\nrun = \"{}\"\nport = {port}\n[services.api.health]\nhttp = \"/healthz\"\ninterval = \"100ms\"\n",
        testsvc()
    ));
    stack.touch("healthy", true);
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    // U+009B is a one-character CSI on terminals that take 8-bit controls; U+202E reverses
    // what follows it.
    let path = "/a\u{9b}31mred\u{202e}desrever";
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );

    // The recorded request comes first among the last 20 a follow starts with.
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let mut follow = stack
            .command(&["traffic", "-f"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = crate::common::stdout_lines(&mut follow);
        let within = Instant::now() + Duration::from_secs(2);
        let got = loop {
            let left = within.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("GET /a") => break Ok(line),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = follow.kill();
        let _ = follow.wait();
        if let Ok(line) = got {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "the request never showed in traffic -f"
        );
    };
    assert!(
        !line.contains('\u{9b}') && !line.contains('\u{202e}'),
        "printed raw: {line:?}"
    );
    assert!(
        line.contains(r"/a\u{9b}31mred\u{202e}desrever"),
        "not escaped: {line:?}"
    );
    stack.stop();
}
