//! Inside a request (issue 25): what the proxy keeps of each HTTP/1 exchange, through the real
//! binary: heads, capped bodies (the bytes relayed unchanged), timings, secrets redacted unless
//! a service says not to, `traffic show`, `traffic curl` (run, and answered alike), `traffic
//! export --har` (validated against HAR 1.2's required fields), `traffic -f --errors`.

use crate::common::{Stack, example, free_port};
use serde_json::Value;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `api`, the echo fixture (a POST's body comes back as it went), on a proxied `port`, with
/// `extra` lines in its table.
fn echo(port: u16, extra: &str) -> Stack {
    let mut stack = Stack::new(&format!(
        "[services.api]\nrun = \"{} $PORT\"\nport = {port}\n{extra}\n[services.api.health]\ntcp = true\ninterval = \"100ms\"\n",
        example("http_echo")
    ));
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    stack
}

/// One request on a connection of its own: the whole response's bytes.
pub(crate) fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response);
    response
}

pub(crate) fn post(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// The body of a response read whole.
pub(crate) fn body_of(response: &[u8]) -> &[u8] {
    let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &response[at + 4..]
}

pub(crate) fn json(stack: &Stack, args: &[&str]) -> Value {
    let out = stack.command(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The id of the last request to `path`, once the proxy recorded it.
pub(crate) fn id_of(stack: &Stack, path: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = devstack::control::client::Client::connect(
            &stack.path().join(".devstack/devstack.sock"),
        )
        .unwrap();
        c.hello().unwrap();
        let (_, recent) = c.traffic(1000, false).unwrap();
        let found = recent.iter().rev().find(
            |r| matches!(&r.kind, devstack::traffic::Kind::Http { path: p, .. } if p == path),
        );
        if let Some(r) = found {
            return r.id;
        }
        assert!(Instant::now() < deadline, "{path} never recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn base64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn a_kept_exchange_has_its_heads_capped_bodies_and_timings_with_secrets_redacted() {
    let port = free_port();
    let stack = echo(port, "");
    // A JSON body, with secrets in its head.
    let sent = br#"{"user":42,"items":[1,2]}"#;
    let headers =
        "authorization: Bearer s3cret\r\ncookie: session=abc\r\ncontent-type: application/json\r\n";
    let response = exchange(port, &post("/orders", headers, sent));
    assert_eq!(body_of(&response), sent, "relayed unchanged");
    let id = id_of(&stack, "/orders");
    let shown = json(&stack, &["traffic", "show", &id.to_string(), "--json"]);
    assert_eq!(shown["id"], id);
    assert_eq!(shown["caller"], "external");
    assert_eq!(shown["request"]["method"], "POST");
    let fields = shown["request"]["headers"].as_array().unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|f| f[1].as_str().unwrap().to_string())
    };
    assert_eq!(field("authorization").as_deref(), Some("…redacted…"));
    assert_eq!(field("cookie").as_deref(), Some("…redacted…"));
    assert_eq!(field("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        shown["request"]["body"]["text"],
        std::str::from_utf8(sent).unwrap()
    );
    assert_eq!(shown["response"]["status"], 200);
    assert_eq!(
        shown["response"]["body"]["text"],
        std::str::from_utf8(sent).unwrap()
    );
    assert_eq!(shown["redacted"], true);
    let total = shown["timings"]["total_us"].as_u64().unwrap();
    let first = shown["timings"]["first_byte_us"].as_u64().unwrap();
    assert!(first <= total && total > 0, "{}", shown["timings"]);

    // The text form: heads, the JSON body pretty-printed, the timings, redaction said.
    let out = stack
        .command(&["traffic", "show", &id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("POST /orders HTTP/1.1"), "{text}");
    assert!(text.contains("  \"user\": 42"), "{text}");
    assert!(
        text.contains("first byte") && text.contains("redacted"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    // A binary body over the cap: relayed whole and unchanged, its first 64 KiB kept.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let response = exchange(port, &post("/blob", "", &big));
    assert_eq!(body_of(&response), &big[..], "relayed unchanged");
    let id = id_of(&stack, "/blob");
    let shown = json(&stack, &["traffic", "show", &id.to_string(), "--json"]);
    let body = &shown["request"]["body"];
    assert_eq!(body["size"], 200_000);
    assert_eq!(body["cut"], true);
    assert_eq!(base64(body["base64"].as_str().unwrap()), &big[..64 * 1024]);
    let text = stack
        .command(&["traffic", "show", &id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("00000000  00 01 02 03"), "a hex dump: {text}");

    // Asked for what is not there: said, with exit 1.
    let out = stack
        .command(&["traffic", "show", "999999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no request #999999 yet"));
    stack.stop();
}

#[test]
fn a_service_keeps_nothing_or_shows_its_secrets_and_caps_bodies_as_it_says() {
    let (port, other) = (free_port(), free_port());
    let mut stack = Stack::new(&format!(
        r#"
        [stack.capture]
        body = "10B"
        [services.open]
        run = "{echo} $PORT"
        port = {port}
        capture = {{ redact = false }}
        [services.closed]
        run = "{echo} $PORT"
        port = {other}
        capture = false
        "#,
        echo = example("http_echo")
    ));
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    exchange(
        port,
        &post(
            "/a",
            "authorization: Bearer s3cret\r\n",
            b"0123456789abcdef",
        ),
    );
    exchange(other, &post("/b", "", b"x"));
    let id = id_of(&stack, "/a");
    let shown = json(&stack, &["traffic", "show", &id.to_string(), "--json"]);
    let fields = shown["request"]["headers"].as_array().unwrap();
    assert!(fields.iter().any(|f| f[1] == "Bearer s3cret"), "{fields:?}");
    assert_eq!(shown["redacted"], false);
    assert_eq!(shown["request"]["body"]["text"], "0123456789");
    assert_eq!(shown["request"]["body"]["cut"], true);
    let id = id_of(&stack, "/b");
    let out = stack
        .command(&["traffic", "show", &id.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not kept"),
        "{out:?}"
    );
    stack.stop();
}

#[test]
fn curl_sends_a_kept_request_again_alike() {
    let port = free_port();
    let stack = echo(port, "");
    let sent = br#"{"name":"it's \"quoted\""}"#;
    let headers = "authorization: Bearer s3cret\r\nx-trace: abc 123\r\n";
    let first = exchange(port, &post("/curl?q=1&r=two", headers, sent));
    let id = id_of(&stack, "/curl?q=1&r=two");
    let out = stack
        .command(&["traffic", "curl", &id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.contains("$AUTHORIZATION") && !line.contains("s3cret"),
        "{line}"
    );
    let again = std::process::Command::new("sh")
        .arg("-c")
        .arg(line.trim())
        .env("AUTHORIZATION", "Bearer s3cret")
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}\n{line}");
    assert_eq!(again.stdout, body_of(&first), "{line}");
    // The second request is the first again: method, path, fields and body.
    // Recorded once its answer went out: curl may have exited a moment before.
    let mut c =
        devstack::control::client::Client::connect(&stack.path().join(".devstack/devstack.sock"))
            .unwrap();
    c.hello().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let kept = c.exchanges(&["api".to_string()], 10).unwrap();
        if let Some(e) = kept.iter().find(|e| e.id > id) {
            break e.id;
        }
        assert!(Instant::now() < deadline, "curl's request never kept");
        std::thread::sleep(Duration::from_millis(50));
    };
    let a = json(&stack, &["traffic", "show", &id.to_string(), "--json"]);
    let b = json(&stack, &["traffic", "show", &second.to_string(), "--json"]);
    assert_eq!(a["request"]["path"], b["request"]["path"]);
    assert_eq!(a["request"]["body"], b["request"]["body"]);
    let field = |e: &Value, name: &str| {
        e["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .cloned()
    };
    for name in ["authorization", "x-trace", "host"] {
        assert_eq!(
            field(&a, name).map(|f| f[1].clone()),
            field(&b, name).map(|f| f[1].clone()),
            "{name}"
        );
    }
    stack.stop();
}

#[test]
fn har_export_writes_valid_har_1_2_of_the_kept_requests() {
    let port = free_port();
    let stack = echo(port, "");
    exchange(
        port,
        &post("/text?x=1", "content-type: text/plain\r\n", b"hello"),
    );
    exchange(port, &post("/bin", "", &[0u8, 159, 146, 150]));
    exchange(
        port,
        b"GET /get HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    // Each recorded (a record waits for its caller to be known: they may come in any order).
    for path in ["/text?x=1", "/bin", "/get"] {
        id_of(&stack, path);
    }
    let file = stack.path().join("out.har");
    let out = stack
        .command(&["traffic", "export", "--har", file.to_str().unwrap(), "api"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let har: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let schema: Value = serde_json::from_str(include_str!("fixtures/har-1.2.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&har).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let entry = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        entries.iter().find(|e| e["request"]["url"] == url).unwrap()
    };
    let text = entry("/text?x=1");
    assert_eq!(
        text["request"]["url"],
        format!("http://127.0.0.1:{port}/text?x=1")
    );
    assert_eq!(text["request"]["queryString"][0]["name"], "x");
    assert_eq!(text["request"]["postData"]["text"], "hello");
    assert_eq!(text["response"]["content"]["text"], "hello");
    let binary = &entry("/bin")["request"]["postData"];
    assert_eq!(binary["encoding"], "base64");
    assert_eq!(
        base64(binary["text"].as_str().unwrap()),
        [0u8, 159, 146, 150]
    );
    assert_eq!(
        entry("/get")["response"]["content"]["text"],
        "hello world\n"
    );
    // An unknown service is said (as a bad name is elsewhere: exit 2).
    let out = stack
        .command(&["traffic", "export", "--har", "-", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service `nope`"));
    stack.stop();
}

#[test]
fn traffic_follow_errors_shows_only_the_failed_requests() {
    let port = free_port();
    let stack = echo(port, "");
    let mut follow = stack
        .command(&["traffic", "-f", "--errors"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = crate::common::stdout_lines(&mut follow);
    std::thread::sleep(Duration::from_millis(500));
    exchange(
        port,
        b"GET /fine HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    let stop = stack.command(&["stop", "api"]).output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
    let failed = exchange(
        port,
        b"GET /down HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(
        failed.starts_with(b"HTTP/1.1 502"),
        "{}",
        String::from_utf8_lossy(&failed)
    );
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the failed request");
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(line.contains("GET /down 502"), "{line}");
    assert!(rx.try_iter().all(|l| !l.contains("/fine")));
    stack.stop();
}

#[test]
fn replay_sends_a_kept_request_again_as_replay_and_edit_changes_it_first() {
    let port = free_port();
    let stack = echo(port, "capture = { redact = false }");
    let sent = br#"{"n":42}"#;
    exchange(
        port,
        &post("/replay-me", "authorization: Bearer s3cret\r\n", sent),
    );
    let id = id_of(&stack, "/replay-me");
    let out = stack
        .command(&["traffic", "replay", &id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("replay → api  200 OK"), "{said}");
    assert!(said.contains("body: the same"), "{said}");
    // Its own record, from `replay`, with the secret the original carried and the same body.
    let again: u64 = said
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix('#'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no #id in {said}"));
    assert!(again > id);
    let shown = json(&stack, &["traffic", "show", &again.to_string(), "--json"]);
    assert_eq!(shown["caller"], "replay");
    assert_eq!(shown["request"]["body"]["text"], r#"{"n":42}"#);
    let fields = shown["request"]["headers"].as_array().unwrap();
    assert!(fields.iter().any(|f| f[1] == "Bearer s3cret"), "{fields:?}");
    let table = json(&stack, &["traffic", "--json"]);
    assert!(
        table["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["caller"] == "replay" && e["callee"] == "api"),
        "{table}"
    );
    // Edited first: the body the editor left is what goes.
    let out = stack
        .command(&["traffic", "replay", &id.to_string(), "--edit"])
        .env("EDITOR", "sed -i s/42/43/")
        .env_remove("VISUAL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("body: differs"), "{said}");
    stack.stop();
}

/// `devstack traffic -f --json` lines until `done` holds for one; all read so far.
fn follow_json(stack: &Stack, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut follow = stack
        .command(&["traffic", "-f", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = crate::common::stdout_lines(&mut follow);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let call: Value = serde_json::from_str(&line).unwrap();
        let found = done(&call);
        seen.push(call);
        if found {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    seen
}

#[test]
fn redis_commands_through_the_proxy_are_each_a_record_with_its_reply() {
    let port = free_port();
    let stack = Stack::new(&format!(
        "[services.cache]\nrun = \"redis-server --port $PORT --save '' --appendonly no\"\nport = {port}\n[services.cache.health]\ntcp = true\ninterval = \"100ms\"\n"
    ));
    let mut stack = stack;
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    let cli = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cli = cli;
    cli.stdin
        .take()
        .unwrap()
        .write_all(b"SET user:42 alice\nGET user:42\nINCR user:42\n")
        .unwrap();
    let out = cli.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("alice"), "relayed unchanged: {said}");
    let calls = follow_json(&stack, |c| c["command"] == "INCR user:42");
    let of = |command: &str| {
        calls
            .iter()
            .find(|c| c["command"] == command)
            .unwrap_or_else(|| panic!("no {command} in {calls:#?}"))
    };
    let set = of("SET user:42");
    assert_eq!(
        (set["protocol"].as_str(), set["outcome"].as_str()),
        (Some("redis"), Some("OK"))
    );
    assert_eq!(set["caller"], "external");
    assert_eq!(set["callee"], "cache");
    assert_eq!(of("GET user:42")["outcome"], "bulk 5B");
    // Inside it: what was asked and answered.
    let id = of("GET user:42")["id"].as_u64().unwrap().to_string();
    let out = stack.command(&["traffic", "show", &id]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("redis: GET user:42") && text.contains("→ bulk 5B"),
        "{text}"
    );
    let incr = of("INCR user:42");
    assert!(
        incr["failure"]
            .as_str()
            .is_some_and(|f| f.contains("not an integer")),
        "{incr}"
    );
    // Counted on the edge as requests of their own, the error one an error.
    let table = json(&stack, &["traffic", "--json"]);
    let edge = table["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["callee"] == "cache")
        .cloned()
        .unwrap();
    assert_eq!(edge["protocol"], "redis");
    assert!(edge["requests"].as_u64().unwrap() >= 3, "{edge}");
    assert!(edge["errors"].as_u64().unwrap() >= 1, "{edge}");
    // By command, with the error where it was.
    let groups = edge["groups"].as_array().unwrap();
    let incr = groups.iter().find(|g| g["group"] == "INCR").unwrap();
    assert_eq!(
        (incr["requests"].as_u64(), incr["errors"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        groups
            .iter()
            .any(|g| g["group"] == "GET" && g["errors"] == 0)
    );
    let out = stack.command(&["traffic"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("external → cache by command:"), "{text}");
    stack.stop();
}
