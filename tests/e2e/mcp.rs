//! `devstack mcp`: the real binary spawned by rmcp's client, against a real stack started with
//! `up -d` in a folder of its own: the tools, their errors, and a stdout that carries nothing
//! but MCP messages.

use crate::common::{Stack, free_port, http_status, number_after, testsvc};
use nix::sys::signal::Signal;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Kills a detached devstack by pid when a test ends, passed or not.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// `api`: testsvc on a proxied port, probed over http; `worker`: prints two lines and sleeps;
/// `lib`: a build that fails while the file `broken` exists.
fn config(port: u16) -> String {
    format!(
        r#"
        [services.api]
        run = "{}"
        port = {port}
        [services.api.health]
        http = "/healthz"
        interval = "100ms"

        [services.worker]
        run = "echo hello-from-worker; echo other-line; exec sleep 300"

        [services.lib]
        build = "if [ -f broken ]; then echo build-broke-here; exit 1; fi"
        run = "exec sleep 300"
        "#,
        testsvc()
    )
}

/// `devstack mcp` in `dir`, as an MCP client sees it.
pub(crate) async fn mcp(dir: &Path) -> RunningService<RoleClient, ()> {
    mcp_with(dir, &["mcp"]).await
}

/// `devstack ARGS` in `dir`, as an MCP client sees it.
async fn mcp_with(dir: &Path, args: &[&str]) -> RunningService<RoleClient, ()> {
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(crate::common::BIN).configure(|cmd| {
            cmd.args(args).current_dir(dir);
        }),
    )
    .expect("spawn devstack mcp");
    ().serve(transport).await.expect("MCP handshake")
}

/// Call a tool: its text, and whether it is a tool error.
pub(crate) async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    args: Value,
) -> (String, bool) {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(args) = args {
        params = params.with_arguments(args);
    }
    let result: CallToolResult = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (text, result.is_error == Some(true))
}

fn pid_in(ps: &Value, service: &str) -> i64 {
    ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .and_then(|s| s["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for {service}: {ps}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_see_and_drive_a_running_stack() {
    let port = free_port();
    let stack = Stack::new(&config(port));
    stack.touch("healthy", true);
    let out = stack.command(&["up", "-d"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let _daemon = Daemon(number_after(&err, "(pid "));
    assert!(out.status.success(), "{err}");
    let client = mcp(stack.path()).await;

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "add_fault",
            "apply_faults",
            "clear_faults",
            "failed_requests",
            "faults",
            "logs",
            "ps",
            "rebuild",
            "remove_fault",
            "replay",
            "request",
            "restart",
            "start",
            "stop",
            "traffic",
            "use_end",
            "wait_ready"
        ]
    );
    let logs_tool = tools.iter().find(|t| t.name == "logs").unwrap();
    let props = &logs_tool.input_schema["properties"];
    for p in ["services", "lines", "since", "pattern"] {
        assert!(props.get(p).is_some(), "logs has no `{p}`: {props:?}");
    }

    // Ready: every service.
    let (text, error) = call(&client, "wait_ready", json!({"timeout": "60s"})).await;
    assert!(!error, "{text}");
    assert!(text.contains("every service ready"), "{text}");

    // ps: the JSON of `ps --json`.
    let (text, error) = call(&client, "ps", json!({})).await;
    assert!(!error, "{text}");
    let ps: Value = serde_json::from_str(&text).unwrap();
    let api = ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap();
    assert_eq!(api["state"], "running", "{ps}");
    assert_eq!(api["health"], "healthy", "{ps}");
    assert_eq!(api["port"], port, "{ps}");
    assert_eq!(api["restarts"], 0, "{ps}");
    let api_pid = pid_in(&ps, "api");

    // logs: a pattern keeps only the matching lines, the service's name on each.
    let (text, error) = call(
        &client,
        "logs",
        json!({"services": ["worker"], "pattern": "^hello-from", "since": "1h"}),
    )
    .await;
    assert!(!error, "{text}");
    assert!(text.contains("worker | hello-from-worker"), "{text}");
    assert!(!text.contains("other-line"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    // Without a pattern, both lines (and devstack's own, marked).
    let (text, _) = call(&client, "logs", json!({"services": ["worker"]})).await;
    assert!(text.contains("worker | other-line"), "{text}");
    assert!(text.contains("worker | [devstack] "), "{text}");
    // A time in the future: nothing since.
    let (text, error) = call(
        &client,
        "logs",
        json!({"since": "2999-01-01T00:00:00+01:00"}),
    )
    .await;
    assert!(!error, "{text}");
    assert_eq!(text, "no line matches");
    let (text, error) = call(&client, "logs", json!({"since": "yesterday-ish"})).await;
    assert!(error && text.contains("bad since"), "{text}");
    let (text, error) = call(&client, "logs", json!({"services": ["nope"]})).await;
    assert!(error && text.contains("unknown service"), "{text}");

    // restart: returns once the new process is ready, with its pid.
    let (text, error) = call(&client, "restart", json!({"services": ["api"]})).await;
    assert!(!error, "{text}");
    assert!(text.starts_with("api: restarted (pid "), "{text}");
    let new_pid = number_after(&text, "(pid ") as i64;
    assert_ne!(new_pid, api_pid);
    let (text, _) = call(&client, "ps", json!({})).await;
    assert_eq!(
        pid_in(&serde_json::from_str(&text).unwrap(), "api"),
        new_pid
    );

    // traffic: the edge table.
    let (text, error) = call(&client, "traffic", json!({})).await;
    assert!(!error && text.starts_with("no traffic yet"), "{text}");
    for _ in 0..3 {
        assert_eq!(http_status(port, "/hello"), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (text, error) = call(&client, "traffic", json!({})).await;
        assert!(!error, "{text}");
        let row = text.lines().find(|l| l.starts_with("external"));
        if row.is_some_and(|r| r.split_whitespace().nth(3) == Some("3")) {
            assert!(text.starts_with("CALLER"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no edge: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (text, error) = call(&client, "failed_requests", json!({})).await;
    assert!(!error, "{text}");
    assert!(
        text.starts_with("no failed request among the last 3 requests"),
        "{text}"
    );

    // use_end: a service without a `url` has no remote end to switch to.
    let (text, error) = call(
        &client,
        "use_end",
        json!({"service": "api", "end": "remote"}),
    )
    .await;
    assert!(error && text.contains("api has no `url`"), "{text}");

    // stop: the service's callers get 502, a failed request.
    let (text, error) = call(&client, "stop", json!({"services": ["api"]})).await;
    assert!(!error && text.starts_with("api: stopped"), "{text}");
    assert_eq!(http_status(port, "/after-stop"), 502);
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (text, error) = call(&client, "failed_requests", json!({"service": "api"})).await;
        assert!(!error, "{text}");
        if text.contains("external → api GET /after-stop 502") {
            // The failure, with what its caller was answered.
            assert_eq!(text.lines().count(), 2, "{text}");
            assert!(
                text.contains("  answer: devstack: api is stopped"),
                "{text}"
            );
            break text;
        }
        assert!(Instant::now() < deadline, "no failure: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Inside it, by its #id; and sent again, answered alike.
    let id = number_after(&text, " #");
    let (inside, error) = call(&client, "request", json!({"id": id})).await;
    assert!(!error, "{inside}");
    assert!(inside.contains("GET /after-stop HTTP/1.1"), "{inside}");
    assert!(inside.contains("HTTP/1.1 502 Bad Gateway"), "{inside}");
    let (again, error) = call(&client, "replay", json!({"id": id})).await;
    assert!(!error, "{again}");
    assert!(again.contains("replay → api  502 Bad Gateway"), "{again}");
    assert!(again.contains("body: the same"), "{again}");
    let (none, error) = call(&client, "request", json!({"id": 999_999})).await;
    assert!(error && none.contains("no request #999999 yet"), "{none}");
    // A stopped service will not be ready: said at once, not after the timeout.
    let (text, error) = call(
        &client,
        "wait_ready",
        json!({"services": ["api"], "timeout": "10m"}),
    )
    .await;
    assert!(
        error && text.contains("`api` is not meant to run"),
        "{text}"
    );
    let (text, error) = call(&client, "start", json!({"services": ["api"]})).await;
    assert!(!error && text.starts_with("api: started (pid "), "{text}");
    let (text, error) = call(
        &client,
        "wait_ready",
        json!({"services": ["api", "worker"], "timeout": "30s"}),
    )
    .await;
    assert!(!error && text.contains("`api`, `worker` ready"), "{text}");

    // A failing rebuild: a tool error with the build's output; the old process runs on.
    stack.touch("broken", true);
    let (text, error) = call(&client, "rebuild", json!({"services": ["lib"]})).await;
    assert!(error, "{text}");
    assert!(
        text.contains("last 1 lines of the build of `lib`"),
        "{text}"
    );
    assert!(text.contains("  build-broke-here"), "{text}");
    stack.touch("broken", false);
    let (text, error) = call(&client, "rebuild", json!({"services": ["lib"]})).await;
    assert!(!error && text.starts_with("lib: rebuilt (pid "), "{text}");

    // A named service the stack lacks.
    let (text, error) = call(&client, "wait_ready", json!({"services": ["nope"]})).await;
    assert!(error && text.contains("unknown service `nope`"), "{text}");

    client.cancel().await.unwrap();
    let _ = stack.command(&["down"]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_stack_each_tool_says_so_and_the_server_stays_up() {
    let stack = Stack::new("[services.web]\nrun = \"sleep 300\"\n");
    let client = mcp(stack.path()).await;
    let folder = stack.path().canonicalize().unwrap();
    for (tool, args) in [
        ("ps", json!({})),
        ("restart", json!({"services": ["web"]})),
        ("wait_ready", json!({})),
        ("traffic", json!({})),
    ] {
        let (text, error) = call(&client, tool, args).await;
        assert!(error, "{tool}: {text}");
        let said = format!(
            "no stack runs in {}; start it with `devstack up -d`",
            folder.display()
        );
        assert_eq!(text, said, "{tool}");
    }
    assert_eq!(client.list_all_tools().await.unwrap().len(), 17);
    client.cancel().await.unwrap();

    // With -f, the stack of that file's folder, wherever the server runs.
    let elsewhere = tempfile::tempdir().unwrap();
    let file = folder.join("devstack.toml");
    let client = mcp_with(elsewhere.path(), &["-f", file.to_str().unwrap(), "mcp"]).await;
    let (text, error) = call(&client, "ps", json!({})).await;
    assert!(error, "{text}");
    assert_eq!(
        text,
        format!(
            "no stack runs in {}; start it with `devstack up -d`",
            folder.display()
        )
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_without_a_stack_reads_the_log_files_as_the_cli_does() {
    let mut stack = Stack::new(
        "[services.web]\nrun = \"echo web-said-this; echo web=$$; exec sleep 300\"\n[services.db]\nrun = \"echo db-line; exec sleep 300\"\n",
    );
    stack.start(&["up"]);
    stack.wait_number("web=", 20);
    // The line itself in the file (the line announcing the command says `db-line` too).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.log_lines("db").iter().any(|l| l == "db-line") {
        assert!(Instant::now() < deadline, "{:?}", stack.log_lines("db"));
        std::thread::sleep(Duration::from_millis(25));
    }
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);

    let client = mcp(stack.path()).await;
    let (text, error) = call(&client, "logs", json!({"services": ["web"]})).await;
    assert!(!error, "{text}");
    assert!(text.contains("web | web-said-this"), "{text}");
    assert!(!text.contains("db-line"), "{text}");
    let (text, error) = call(&client, "logs", json!({"pattern": "db-"})).await;
    assert!(!error, "{text}");
    assert!(text.contains("db | db-line"), "{text}");
    let (text, error) = call(&client, "logs", json!({"services": ["nope"]})).await;
    assert!(error, "{text}");
    assert!(text.contains("unknown service `nope`"), "{text}");
    client.cancel().await.unwrap();
}

#[test]
fn mcp_help_shows_how_to_register_it() {
    let out = std::process::Command::new(crate::common::BIN)
        .args(["mcp", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("Examples:"), "{help}");
    assert!(
        help.contains("claude mcp add devstack -- devstack mcp"),
        "{help}"
    );
    assert!(help.contains(r#""mcpServers""#), "{help}");
}

/// Everything `devstack mcp` writes on stdout is a JSON-RPC message, even for a tool that
/// fails; and it ends when its stdin closes.
#[test]
fn stdout_carries_only_protocol_messages() {
    let stack = Stack::new("[services.web]\nrun = \"sleep 300\"\n");
    let mut child = std::process::Command::new(crate::common::BIN)
        .arg("mcp")
        .current_dir(stack.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"test","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ps","arguments":{}}}),
    ];
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        writeln!(stdin, "{m}").unwrap();
        if i == 1 {
            continue;
        }
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(line);
    }
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(rest, "", "after the last answer");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
    }
    let answer: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(answer["id"], 2, "{answer}");
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("no stack runs in "),
        "{answer}"
    );
}

/// A line that is not JSON, and a 20 MB one, each get a JSON-RPC error (the client would
/// otherwise wait for an answer forever); the server then still answers.
#[test]
fn a_line_that_is_not_json_and_an_over_large_one_get_errors() {
    let stack = Stack::new("[services.web]\nrun = \"sleep 300\"\n");
    let mut child = std::process::Command::new(crate::common::BIN)
        .arg("mcp")
        .current_dir(stack.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Read on a thread of its own: an unanswered line fails the test instead of hanging it.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let answer = || {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no answer within 30s");
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    writeln!(stdin, "this is not json").unwrap();
    let parse = answer();
    assert_eq!(parse["id"], Value::Null, "{parse}");
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    // Answered as soon as it is too long, while the rest is still being sent.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"x\":\"{}\"}}\n",
        "x".repeat(20 << 20)
    );
    let writer = std::thread::spawn(move || {
        stdin.write_all(big.as_bytes()).unwrap();
        stdin
    });
    let long = answer();
    assert_eq!(long["error"]["code"], -32600, "{long}");
    assert!(
        long["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{long}"
    );
    let mut stdin = writer.join().unwrap();
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"test","version":"0"}}});
    writeln!(stdin, "{init}").unwrap();
    let init = answer();
    assert_eq!(init["id"], 1, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "devstack", "{init}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// `logs` answers are bounded in bytes as well as lines, and say when they were cut; `since`
/// before 1970 is every line; a count of 0 is refused rather than answered with "none".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_answers_are_bounded_in_bytes_and_odd_arguments_get_clear_answers() {
    // 100 lines of 10 KB: 1 MB, twice what an answer holds.
    let stack = Stack::new(
        r#"
        [services.long]
        run = "X=$(printf '%010000d' 0); i=0; while [ $i -lt 100 ]; do echo \"$i $X\"; i=$((i+1)); done; echo last-line; exec sleep 300"
        "#,
    );
    let out = stack.command(&["up", "-d"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let _daemon = Daemon(number_after(&err, "(pid "));
    assert!(out.status.success(), "{err}");
    // Every line is logged, and in the files (the memory holds only the newest).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = stack
            .command(&["logs", "-n", "500", "long"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.lines().count() >= 102 && text.contains("last-line") {
            break;
        }
        assert!(Instant::now() < deadline, "never logged: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let client = mcp(stack.path()).await;

    let (text, error) = call(&client, "logs", json!({"lines": 2000})).await;
    assert!(!error, "{}", &text[..200]);
    assert!(text.len() <= 512 * 1024 + 300, "{} bytes", text.len());
    assert!(
        text.starts_with('[') && text.lines().next().unwrap().contains("left out"),
        "{}",
        &text[..200]
    );
    assert!(
        text.ends_with("long | last-line"),
        "{}",
        &text[text.len() - 200..]
    );

    for since in ["1969-12-31T23:59:59Z", "1900-01-01T00:00:00Z"] {
        let (text, error) = call(
            &client,
            "logs",
            json!({"since": since, "pattern": "last-line"}),
        )
        .await;
        assert!(!error, "{since}: {text}");
        assert!(text.ends_with("long | last-line"), "{since}: {text}");
    }

    let (text, error) = call(&client, "failed_requests", json!({"limit": 0})).await;
    assert!(error, "{text}");
    assert!(text.contains("`limit` must be 1 or more"), "{text}");
    let (text, error) = call(&client, "logs", json!({"lines": 0})).await;
    assert!(error, "{text}");
    assert!(text.contains("`lines` must be 1 or more"), "{text}");
    client.cancel().await.unwrap();
}

/// Peak memory of a process (VmHWM), in MB.
fn peak_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// A `logs` search reads the stack's answer line by line, keeping only what it returns: 300
/// lines of 60 KB (18 MB, held twice over when read whole) never sit in the MCP server's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logs_search_through_long_lines_holds_only_what_it_answers() {
    let stack = Stack::new(
        r#"
        [services.long]
        run = "X=$(printf '%060000d' 0); i=0; while [ $i -lt 300 ]; do echo \"$i $X\"; i=$((i+1)); done; echo last-line; exec sleep 300"
        "#,
    );
    let out = stack.command(&["up", "-d"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let _daemon = Daemon(number_after(&err, "(pid "));
    assert!(out.status.success(), "{err}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = stack
            .command(&["logs", "-n", "1", "long"])
            .output()
            .unwrap();
        // The line itself, not devstack's `spawned` line, which quotes the command.
        if String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.ends_with("| last-line"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "never logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(crate::common::BIN).configure(|cmd| {
            cmd.arg("mcp").current_dir(stack.path());
        }),
    )
    .unwrap();
    let pid = transport.id().unwrap();
    let client = ().serve(transport).await.unwrap();
    let before = peak_mb(pid);
    // Every line is searched (the pattern matches the last only), then all 301 asked for.
    let (text, error) = call(&client, "logs", json!({"pattern": "last-line"})).await;
    assert!(!error && text.ends_with("long | last-line"), "{text}");
    let (text, error) = call(&client, "logs", json!({"lines": 2000, "pattern": "."})).await;
    assert!(!error && text.contains("left out"), "{}", &text[..200]);
    let after = peak_mb(pid);
    assert!(
        after < before + 10,
        "the MCP server's peak memory went from {before} MB to {after} MB"
    );
    client.cancel().await.unwrap();
}
