//! Traffic through a running stack's proxy, through the real binary (README "Traffic"): private ports,
//! callers told apart, restarts that lose no request, a stopped callee, a taken public port, and
//! the `traffic` command and socket request. (tests/traffic.rs tests the proxy as a library.)

use crate::common::{Stack, free_port, http_get, http_status, testsvc};
use devstack::control::Message;
use devstack::control::client::Client;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `api` (testsvc: 200 while the file `healthy` exists) on a proxied `port`, probed over http.
fn api(port: u16) -> String {
    format!(
        r#"
        [services.api]
        run = "{}"
        port = {port}
        [services.api.health]
        http = "/healthz"
        interval = "100ms"
        "#,
        testsvc()
    )
}

fn running(toml: &str) -> Stack {
    let mut stack = Stack::new(toml);
    stack.touch("healthy", true);
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack
}

/// `devstack traffic --json`.
fn traffic(stack: &Stack) -> Value {
    let out = stack.command(&["traffic", "--json"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn edge(stack: &Stack, caller: &str, callee: &str) -> Option<Value> {
    traffic(stack)["edges"]
        .as_array()?
        .iter()
        .find(|e| e["caller"] == caller && e["callee"] == callee)
        .cloned()
}

/// Wait until the edge satisfies `done`.
fn edge_when(stack: &Stack, caller: &str, callee: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = edge(stack, caller, callee).filter(|e| done(e)) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "edge {caller} → {callee} never got there: {}\n{}",
            traffic(stack),
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_proxied_service_listens_on_a_private_port_and_its_probes_are_not_traffic() {
    let port = free_port();
    let stack = running(&api(port));
    let private = stack.wait_number("testsvc listening on ", 30);
    assert_ne!(private, port as i32, "PORT is the private port");
    stack.wait_ready(30);
    // Probed every 100 ms for a while: none of it is traffic.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(traffic(&stack)["edges"], serde_json::json!([]));
    // The public port reaches the service, and the test is an `external` caller.
    for _ in 0..10 {
        assert_eq!(http_status(port, "/x"), 200);
    }
    let e = edge_when(&stack, "external", "api", |e| e["requests"] == 10);
    assert_eq!(e["status"]["s2xx"], 10);
    assert_eq!(e["errors"], 0);
    assert_eq!(e["protocol"], "http");
    stack.stop();
}

#[test]
fn proxy_false_keeps_port_as_the_service_s_own() {
    let port = free_port();
    let stack = running(&format!(
        r#"
        [services.api]
        run = "{}"
        port = {port}
        proxy = false
        "#,
        testsvc()
    ));
    assert_eq!(stack.wait_number("testsvc listening on ", 30), port as i32);
    let plan = stack.command(&["check"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains(&format!(
            "port:  {port} (the service binds it: proxy = false)"
        )),
        "{plan:?}"
    );
    stack.wait_ready(30);
    assert_eq!(http_status(port, "/x"), 200);
    // Not proxied: nothing is recorded.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(traffic(&stack)["edges"], serde_json::json!([]));
    stack.stop();
}

#[test]
fn callers_are_told_apart_including_a_shell_loop_running_curl_per_request() {
    let port = free_port();
    let stack = running(&format!(
        r#"{}
        [services.poller]
        run = "while :; do curl -s -o /dev/null $API_URL/from-poller; sleep 0.05; done"
        depends_on = ["api"]
        "#,
        api(port)
    ));
    stack.wait_ready(30);
    let e = edge_when(&stack, "poller", "api", |e| {
        e["requests"].as_u64().unwrap() >= 5
    });
    assert_eq!(e["errors"], 0, "{e}");
    // Nothing the poller sent was taken for anyone else.
    assert!(
        edge(&stack, "unknown", "api").is_none(),
        "{}",
        traffic(&stack)
    );
    assert!(
        edge(&stack, "external", "api").is_none(),
        "{}",
        traffic(&stack)
    );
    assert_eq!(http_status(port, "/from-test"), 200);
    edge_when(&stack, "external", "api", |e| e["requests"] == 1);
    stack.stop();
}

#[test]
fn a_restart_during_a_steady_request_loop_loses_no_request() {
    let port = free_port();
    let stack = running(&api(port));
    stack.wait_ready(30);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(http_status(port, "/loop"));
            }
            statuses
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..2 {
        let out = stack.command(&["restart", "api"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = looping.join().unwrap();
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    assert!(statuses.len() > 10, "{}", statuses.len());
    let e = edge_when(&stack, "external", "api", |e| {
        e["requests"] == statuses.len() as u64
    });
    assert_eq!(e["errors"], 0);
    stack.stop();
}

#[test]
fn a_stopped_callee_gives_502_at_once_and_counts_as_an_error() {
    let port = free_port();
    let stack = running(&api(port));
    stack.wait_ready(30);
    let out = stack.command(&["stop", "api"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // At once: the proxy's own refusal, not the 503 that ends the wait for a service that is
    // coming back ("did not come up in time").
    let (status, response) = http_get(port, "/x");
    assert_eq!(status, 502, "{response}");
    assert!(response.contains("devstack: api is stopped"), "{response}");
    let e = edge_when(&stack, "external", "api", |e| e["errors"] == 1);
    assert_eq!(e["status"]["s5xx"], 1);
    stack.stop();
}

#[test]
fn a_taken_public_port_stops_the_start_and_names_its_holder() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let mut stack = Stack::new(&api(port));
    stack.start(&["up"]);
    let status = stack.wait_exit(30);
    assert_eq!(status.code(), Some(1), "{}", stack.output());
    let out = stack.output();
    assert!(
        out.contains(&format!("port {port} is already in use by"))
            && out.contains(&format!("pid {}", std::process::id())),
        "{out}"
    );
    assert!(!out.contains("spawned"), "nothing started: {out}");
}

#[test]
fn the_socket_streams_each_request_as_it_ends() {
    let port = free_port();
    let stack = running(&api(port));
    stack.wait_ready(30);
    let mut client = Client::connect(&stack.path().join(".devstack/devstack.sock")).unwrap();
    client.hello().unwrap();
    let (snapshot, recent) = client.traffic(5, true).unwrap();
    assert!(snapshot.edges.is_empty() && recent.is_empty());
    assert_eq!(http_status(port, "/streamed"), 200);
    client.set_timeout(Some(Duration::from_secs(30))).unwrap();
    match client.next_message().unwrap() {
        Some(Message::Call { call }) => {
            let call = devstack::traffic::Record::from(call);
            assert_eq!(call.callee, "api");
            assert_eq!(call.caller.to_string(), "external");
            assert!(call.to_string().contains("GET /streamed 200"), "{call}");
        }
        other => panic!("not a call: {other:?}"),
    }
    // The table as people read it.
    let out = stack.command(&["traffic"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().next().unwrap().starts_with("CALLER") && text.contains("external  api"),
        "{text}"
    );
    stack.stop();
}

/// `api`, and `poller` calling it from a shell loop.
fn polled(port: u16) -> String {
    format!(
        r#"{}
        [services.poller]
        run = "while :; do curl -s -o /dev/null $API_URL/from-poller; sleep 0.1; done"
        depends_on = ["api"]
        "#,
        api(port)
    )
}

/// `t` shows the traffic pane: the edge and the tail; the list has the RPS column.
fn shows_traffic(tmux: &crate::common::tmux::Tmux) {
    tmux.wait(30, "both services ready", |s| s.contains("2/2 ready"));
    tmux.keys(&["t"]);
    let screen = tmux.wait(30, "the traffic pane with the poller's requests", |s| {
        s.contains("traffic: all services")
            && s.contains("poller → api GET /from-poller 200")
            // The edge table's row, and (wide enough) the map of who calls whom.
            && s.lines().any(|l| l.contains("│poller") && l.contains(" api "))
            && s.contains("who calls whom")
            && s.contains("└▶ api")
    });
    assert!(screen.contains("RPS"), "{screen}");
    // `/` narrows the tail to what matches.
    tmux.keys(&["/", "z", "z", "q", "Enter"]);
    tmux.wait(10, "the tail narrowed to nothing", |s| {
        s.contains("search: zzq") && !s.contains("GET /from-poller")
    });
    // `t` again: the logs are back.
    tmux.keys(&["t"]);
    tmux.wait(10, "the log pane", |s| s.contains("logs: "));
}

#[test]
fn the_dashboard_shows_the_traffic_pane() {
    let port = free_port();
    let stack = Stack::new(&polled(port));
    stack.touch("healthy", true);
    let tmux = crate::common::tmux::Tmux::start(
        stack.path(),
        &format!("{} ; sleep 30", crate::common::BIN),
    );
    shows_traffic(&tmux);
    tmux.keys(&["q", "y"]);
    tmux.wait(30, "devstack to exit", |s| !s.contains("ready"));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn an_attached_dashboard_shows_the_same_traffic() {
    let port = free_port();
    let stack = Stack::new(&polled(port));
    stack.touch("healthy", true);
    let out = stack.command(&["up", "-d"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let tmux = crate::common::tmux::Tmux::start(
        stack.path(),
        &format!("{} attach ; sleep 30", crate::common::BIN),
    );
    shows_traffic(&tmux);
    let down = stack.command(&["down"]).output().unwrap();
    assert!(down.status.success(), "{down:?}");
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn the_proxy_learns_that_a_service_listens_without_connecting_to_it() {
    let port = free_port();
    let stack = running(&format!(
        r#"
        [services.api]
        run = "{}"
        port = {port}
        env = {{ TESTSVC_SAY_CONNECTIONS = "1" }}
        "#,
        testsvc()
    ));
    stack.wait_for("testsvc listening", 30);
    // The request waits until the proxy knows the service listens; it is its first connection.
    assert_eq!(http_status(port, "/"), 200);
    stack.wait_for("testsvc accepted connection 1", 10);
    std::thread::sleep(Duration::from_millis(300));
    let out = stack.output();
    assert!(
        !out.contains("testsvc accepted connection 2"),
        "a connection the service did not ask for:\n{out}"
    );
}

/// Read messages from a subscription until `done` says so (a read gives up after 30 s).
fn until_message(c: &mut Client, what: &str, mut done: impl FnMut(&Message) -> bool) -> Message {
    loop {
        match c.next_message() {
            Ok(Some(m)) if done(&m) => return m,
            Ok(Some(_)) => {}
            other => panic!("the stream ended before {what}: {other:?}"),
        }
    }
}

#[test]
fn a_subscription_with_traffic_carries_the_table_and_each_request_on_its_one_connection() {
    let port = free_port();
    let stack = running(&api(port));
    stack.wait_ready(30);
    for _ in 0..3 {
        assert_eq!(http_status(port, "/before"), 200);
    }
    edge_when(&stack, "external", "api", |e| e["requests"] == 3);

    let mut c = Client::connect(&stack.path().join(".devstack/devstack.sock")).unwrap();
    c.set_timeout(Some(Duration::from_secs(30))).unwrap();
    c.hello().unwrap();
    let subscribe = devstack::control::Request::Subscribe {
        all: false,
        traffic: Some(2),
    };
    match c.call(&subscribe).unwrap() {
        devstack::control::Answer::Services { services } => assert_eq!(services.len(), 1),
        other => panic!("not the services: {other:?}"),
    }
    // The table at once, then the last two requests.
    match c.next_message().unwrap() {
        Some(Message::Table { table }) => {
            let edge = table.edges.iter().find(|e| e.callee == "api").unwrap();
            assert_eq!(edge.requests, 3);
        }
        other => panic!("not the table first: {other:?}"),
    }
    for _ in 0..2 {
        match c.next_message().unwrap() {
            Some(Message::Call { call }) => assert_eq!(call.callee, "api"),
            other => panic!("not one of the last requests: {other:?}"),
        }
    }
    // A new request comes as it ends, and the table follows with it counted.
    assert_eq!(http_status(port, "/after"), 200);
    until_message(
        &mut c,
        "the new request",
        |m| matches!(m, Message::Call { call } if format!("{:?}", call.kind).contains("/after")),
    );
    until_message(&mut c, "the table with four requests", |m| {
        matches!(m, Message::Table { table }
            if table.edges.iter().any(|e| e.callee == "api" && e.requests == 4))
    });
    // A subscription without `traffic` gets none of it.
    let mut plain = Client::connect(&stack.path().join(".devstack/devstack.sock")).unwrap();
    plain.set_timeout(Some(Duration::from_secs(3))).unwrap();
    plain.hello().unwrap();
    let subscribe = devstack::control::Request::Subscribe {
        all: false,
        traffic: None,
    };
    plain.call(&subscribe).unwrap();
    assert_eq!(http_status(port, "/unseen"), 200);
    loop {
        match plain.next_message() {
            Ok(Some(Message::Call { .. } | Message::Table { .. })) => {
                panic!("traffic on a subscription that did not ask for it")
            }
            Ok(Some(_)) => {}
            // Nothing for 3 s: the read gave up.
            Err(devstack::control::client::Error::Lost(_)) => break,
            other => panic!("the stream ended: {other:?}"),
        }
    }
}
