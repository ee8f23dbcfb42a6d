//! Inside a request in the dashboard (issue 25), through the real binary in tmux: the traffic
//! pane's tail picked and opened in the inspector (here and attached), filtered by status class
//! and by edge (`e`), an edge's requests.

use crate::common::tmux::Tmux;
use crate::common::{BIN, Stack, example, free_port};
use crate::inspect::{body_of, exchange, post};

/// In a dashboard showing the traffic pane: pick the newest request, open it, and find it whole.
fn opens_the_request(tmux: &Tmux) {
    tmux.keys(&["t", "Tab"]);
    tmux.wait(30, "the request in the tail", |s| {
        s.contains("external → api POST /inspect-me 200")
    });
    tmux.keys(&["k", "Enter"]);
    let screen = tmux.wait(30, "the inspector", |s| {
        s.contains("request #") && s.contains("POST /inspect-me HTTP/1.1")
    });
    assert!(screen.contains("authorization: …redacted…"), "{screen}");
    assert!(
        screen.contains("\"answer\": 42"),
        "the JSON body, pretty-printed: {screen}"
    );
    assert!(screen.contains("HTTP/1.1 200 OK"), "{screen}");
    assert!(!screen.contains("s3cret"), "{screen}");
    tmux.keys(&["G"]);
    tmux.wait(10, "its timings at the bottom", |s| {
        s.contains("first byte")
    });
    // `r` sends it again: the answer above it, compared with the original's.
    tmux.keys(&["r"]);
    let screen = tmux.wait(30, "the replay's answer", |s| {
        s.contains("replayed #") && s.contains("body: the same")
    });
    assert!(screen.contains("replay → api  200 OK"), "{screen}");
    assert!(
        screen.contains("POST /inspect-me HTTP/1.1"),
        "the original below: {screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait(10, "the traffic pane again", |s| !s.contains("request #"));
}

#[test]
fn the_dashboard_opens_a_request_in_the_inspector_here_and_attached() {
    let port = free_port();
    let stack = Stack::new(&format!(
        "[services.api]\nrun = \"{} $PORT\"\nport = {port}\n",
        example("http_echo")
    ));
    let tmux = Tmux::start(stack.path(), &format!("{} ; sleep 30", BIN));
    tmux.wait(30, "the service ready", |s| s.contains("1/1 ready"));
    let body = br#"{"answer":42}"#;
    let response = exchange(
        port,
        &post("/inspect-me", "authorization: Bearer s3cret\r\n", body),
    );
    assert_eq!(body_of(&response), body);
    opens_the_request(&tmux);
    // The same through the socket, on a dashboard attached to that stack.
    let attached = Tmux::start(stack.path(), &format!("{} attach ; sleep 30", BIN));
    attached.wait(30, "the attached dashboard", |s| s.contains("1/1 ready"));
    opens_the_request(&attached);
    attached.keys(&["q", "d"]);
    quit(&tmux, &stack);
}

/// One GET on a connection of its own.
fn get(port: u16, path: &str) {
    exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    );
}

#[test]
fn the_tail_is_filtered_by_status_class_and_an_edge_picked_shows_its_requests() {
    let (api, down) = (free_port(), free_port());
    // `down` answers 503 to everything (testsvc without its `healthy` file).
    let stack = Stack::new(&format!(
        "[services.api]\nrun = \"{} $PORT\"\nport = {api}\n\
         [services.down]\nrun = \"{} http\"\nport = {down}\n",
        example("http_echo"),
        example("testsvc"),
    ));
    let tmux = Tmux::start(stack.path(), &format!("{BIN} ; sleep 30"));
    tmux.wait(30, "the services ready", |s| s.contains("2/2 ready"));
    for _ in 0..2 {
        get(api, "/fine-path");
        get(down, "/broken-path");
    }
    tmux.keys(&["t", "Tab"]);
    let both = |s: &str| s.contains("GET /fine-path 200") && s.contains("GET /broken-path 503");
    tmux.wait(30, "both in the tail", both);
    tmux.keys(&["&", "5", "x", "x", "Enter"]);
    tmux.wait(10, "only the 5xx", |s| {
        s.contains("GET /broken-path 503") && !s.contains("GET /fine-path")
    });
    tmux.keys(&[
        "&", "BSpace", "BSpace", "BSpace", "2", "x", "x", " ", "f", "i", "n", "e", "Enter",
    ]);
    tmux.wait(10, "only the 2xx to /fine", |s| {
        s.contains("GET /fine-path 200") && !s.contains("GET /broken-path")
    });
    tmux.keys(&["Escape"]);
    tmux.wait(10, "both again", both);
    // `e` picks an edge (whichever the table shows first), `e` again the other one.
    let mut picked = Vec::new();
    for _ in 0..2 {
        tmux.keys(&["e"]);
        let screen = tmux.wait(10, "one edge's requests", |s| {
            (s.contains("traffic: external → api")
                && s.contains("GET /fine-path 200")
                && !s.contains("GET /broken-path"))
                || (s.contains("traffic: external → down")
                    && s.contains("GET /broken-path 503")
                    && !s.contains("GET /fine-path"))
                    && !picked.iter().any(|p: &String| s.contains(p.as_str()))
        });
        let edge = ["external → api", "external → down"]
            .into_iter()
            .find(|e| screen.contains(&format!("traffic: {e}")))
            .unwrap();
        picked.push(format!("traffic: {edge}"));
    }
    tmux.keys(&["Escape"]);
    tmux.wait(10, "every edge again", |s| {
        s.contains("traffic: all services") && both(s)
    });
    quit(&tmux, &stack);
}

#[test]
fn a_picked_redis_edge_shows_its_commands_by_group_under_the_table() {
    let port = free_port();
    let stack = Stack::new(&format!(
        "[services.cache]\nrun = \"redis-server --port $PORT --save '' --appendonly no\"\nport = {port}\n[services.cache.health]\ntcp = true\ninterval = \"100ms\"\n"
    ));
    let tmux = Tmux::start(stack.path(), &format!("{BIN} ; sleep 30"));
    tmux.wait(30, "redis ready", |s| s.contains("1/1 ready"));
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli (.ci/run installs redis-tools)");
    use std::io::Write;
    cli.stdin
        .take()
        .unwrap()
        .write_all(b"SET user:42 alice\nGET user:42\nGET user:43\nINCR user:42\n")
        .unwrap();
    cli.wait().unwrap();
    tmux.keys(&["t", "Tab"]);
    // The tail first, the table (refreshed every second) a moment later.
    tmux.wait(
        30,
        "the commands in the tail and the edge in the table",
        |s| s.contains("INCR user:42") && s.lines().any(|l| l.contains("external     cache")),
    );
    tmux.keys(&["e"]);
    let screen = tmux.wait(10, "the edge's groups", |s| {
        s.contains("traffic: external → cache") && s.contains("COMMAND / QUERY")
    });
    // GET twice, INCR's one error: rows of REQS ERRORS … GROUP.
    let row = |group: &str| {
        screen
            .lines()
            .find(|l| {
                l.trim_end_matches(['┃', '│', ' '])
                    .ends_with(&format!(" {group}"))
            })
            .map(|l| {
                l.trim_start_matches(['┃', '│'])
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|| panic!("no {group} row: {screen}"))
    };
    assert_eq!(row("GET"), ["2", "0"], "{screen}");
    assert_eq!(row("INCR"), ["1", "1"], "{screen}");
    // A read opened and replayed from the inspector: the value now.
    tmux.keys(&["Escape", "&"]);
    tmux.keys(&[
        "g", "e", "t", " ", "u", "s", "e", "r", ":", "4", "2", "Enter", "k", "Enter",
    ]);
    tmux.wait(10, "the GET inspected", |s| {
        s.contains("redis: GET user:42")
    });
    tmux.keys(&["r"]);
    let screen = tmux.wait(30, "the replay's answer", |s| s.contains("replayed #"));
    assert!(screen.contains("\"alice\""), "{screen}");
    assert!(screen.contains("replay → cache  GET user:42"), "{screen}");
    tmux.keys(&["Escape"]);
    quit(&tmux, &stack);
}

#[test]
fn a_fault_shows_on_its_edge_in_the_tail_and_in_the_inspector() {
    let (port, stack, tmux) = api_dashboard();
    let set = stack
        .command(&["fault", "add", "api", "error=503", "path=/boom"])
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    get(port, "/fine");
    get(port, "/boom");
    tmux.keys(&["t", "Tab"]);
    tmux.wait(30, "the edge marked and the request too", |s| {
        s.contains("⚡ error 503")
            && s.contains("GET /boom 503")
            && s.contains("[injected: error 503]")
    });
    tmux.keys(&["&", "b", "o", "o", "m", "Enter", "k", "Enter"]);
    tmux.wait(10, "the inspector saying so", |s| {
        s.contains("injected: error 503 (a fault set on this edge, not the service)")
    });
    tmux.keys(&["Escape"]);
    let cleared = stack.command(&["fault", "clear"]).output().unwrap();
    assert!(cleared.status.success(), "{cleared:?}");
    tmux.wait(10, "the mark gone with the fault", |s| !s.contains("⚡"));
    quit(&tmux, &stack);
}

/// In a dashboard on `port`'s stack: `F` on the picked edge sets a fault, which then answers.
fn sets_a_fault(tmux: &Tmux, port: u16, path: &str) {
    get(port, "/warm");
    tmux.keys(&["t", "Tab"]);
    tmux.wait(30, "the edge in the table", |s| {
        s.lines().any(|l| l.contains("external     api"))
    });
    tmux.keys(&["e", "F"]);
    tmux.wait(10, "the form, the edge written", |s| {
        s.contains("fault: external->api ▏")
    });
    let words = format!("error=503 path={path}");
    let typed: Vec<String> = words.chars().map(String::from).collect();
    tmux.keys(&typed.iter().map(String::as_str).collect::<Vec<_>>());
    tmux.keys(&["Enter"]);
    tmux.wait(10, "the fault set", |s| {
        s.contains(&format!("external->api error=503 path={path}")) && s.contains("fault ")
    });
    assert_eq!(crate::common::http_status(port, path), 503);
    tmux.keys(&["Escape", "t"]);
}

#[test]
fn f_sets_a_fault_on_the_picked_edge_here_and_attached() {
    let (port, stack, tmux) = api_dashboard();
    sets_a_fault(&tmux, port, "/here");
    let attached = Tmux::start(stack.path(), &format!("{BIN} attach ; sleep 30"));
    attached.wait(30, "the attached dashboard", |s| s.contains("1/1 ready"));
    sets_a_fault(&attached, port, "/there");
    attached.keys(&["q", "d"]);
    quit(&tmux, &stack);
}

/// Quit the dashboard (stopping its stack) and find nothing of the stack left.
fn quit(tmux: &Tmux, stack: &Stack) {
    tmux.keys(&["q", "y"]);
    tmux.wait(30, "devstack to exit", |s| !s.contains("ready"));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

/// `api` (the echo fixture) on a free proxied port, in a dashboard once it is ready.
fn api_dashboard() -> (u16, Stack, Tmux) {
    let port = free_port();
    let stack = Stack::new(&format!(
        "[services.api]\nrun = \"{} $PORT\"\nport = {port}\n",
        example("http_echo")
    ));
    let tmux = Tmux::start(stack.path(), &format!("{BIN} ; sleep 30"));
    tmux.wait(30, "the service ready", |s| s.contains("1/1 ready"));
    (port, stack, tmux)
}
