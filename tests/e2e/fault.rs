//! Faults on an edge (issue 26), their control path through the real binary: `devstack fault
//! add|ls|rm|clear` and the socket requests under them (ids, the `--json` shape, the parser's
//! errors, a scope refused when it names a service not in the stack or one not proxied), and
//! the MCP tools. What the proxy does under a fault is tested with the proxy.

use crate::common::{Stack, example, free_port};
use crate::inspect::json;
use serde_json::json;
use std::process::Output;

/// `api` (the echo fixture) and `users` on proxied ports; `worker` without a port; `plain` with
/// a port the proxy is not in front of.
fn stack() -> Stack {
    let echo = |name: &str| {
        format!(
            "[services.{name}]\nrun = \"{} $PORT\"\nport = {}\n[services.{name}.health]\ntcp = true\ninterval = \"100ms\"\n",
            example("http_echo"),
            free_port()
        )
    };
    let mut stack = Stack::new(&format!(
        "{}{}[services.worker]\nrun = \"exec sleep 300\"\n[services.plain]\nrun = \"exec sleep 300\"\nport = {}\nproxy = false\n",
        echo("api"),
        echo("users"),
        free_port()
    ));
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    stack
}

pub(crate) fn run(stack: &Stack, args: &[&str]) -> Output {
    stack.command(args).output().unwrap()
}

pub(crate) fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error a refused command said, once it exited non-zero.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn faults_are_added_listed_removed_and_cleared_by_id() {
    let stack = stack();
    assert_eq!(stdout(&run(&stack, &["fault", "ls"])), "no fault is set\n");
    let add = |words: &[&str]| stdout(&run(&stack, &[&["fault", "add"][..], words].concat()));
    assert_eq!(
        add(&["api->users", "latency=200ms", "jitter=50ms"]),
        "fault 1: api->users latency=200ms jitter=50ms\n"
    );
    assert_eq!(
        add(&["users", "error=503", "body=users are down", "first=3"]),
        "fault 2: users error=503 'body=users are down' first=3\n"
    );
    assert_eq!(
        add(&["external->api", "reset", "rate=0.5", "method=post"]),
        "fault 3: external->api reset rate=0.5 method=POST\n"
    );
    let table = stdout(&run(&stack, &["fault", "ls"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            vec!["ID", "FAULT", "TOUCHED"],
            vec!["1", "api->users latency=200ms jitter=50ms", "0"],
            vec!["2", "users error=503 'body=users are down' first=3", "0"],
            vec!["3", "external->api reset rate=0.5 method=POST", "0"],
        ],
        "{table}"
    );
    let listed = json(&stack, &["fault", "ls", "--json"]);
    assert_eq!(
        listed["faults"][0],
        json!({
            "id": 1,
            "text": "api->users latency=200ms jitter=50ms",
            "scope": {"caller": "api", "callee": "users"},
            "effect": {"kind": "latency", "ms": 200, "jitter_ms": 50},
            "when": {},
            "touched": 0,
            "spent": false
        })
    );
    assert_eq!(
        listed["faults"][1]["effect"],
        json!({"kind": "error", "status": 503, "body": "users are down"})
    );
    assert_eq!(listed["faults"][1]["scope"], json!({"callee": "users"}));
    assert_eq!(listed["faults"][1]["when"], json!({"first": 3}));
    assert_eq!(
        listed["faults"][2]["when"],
        json!({"rate": 0.5, "method": "POST"})
    );

    assert_eq!(
        stdout(&run(&stack, &["fault", "rm", "2"])),
        "fault 2 removed\n"
    );
    let e = refused(&run(&stack, &["fault", "rm", "2"]));
    assert!(e.contains("no fault 2: those set are 1, 3"), "{e}");
    let ids: Vec<u64> = json(&stack, &["fault", "ls", "--json"])["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
    // Numbers are never given twice.
    assert_eq!(add(&["users", "timeout"]), "fault 4: users timeout\n");
    assert_eq!(
        stdout(&run(&stack, &["fault", "clear"])),
        "3 faults removed\n"
    );
    assert_eq!(
        json(&stack, &["fault", "ls", "--json"]),
        json!({"faults": []})
    );
    assert_eq!(
        stdout(&run(&stack, &["fault", "clear"])),
        "no fault is set: nothing removed\n"
    );
    let e = refused(&run(&stack, &["fault", "rm", "1"]));
    assert!(e.contains("no fault 1: none is set"), "{e}");
    stack.stop();
}

#[test]
fn bad_words_and_scopes_the_stack_cannot_fault_are_refused() {
    let stack = stack();
    for (words, says) in [
        (
            &["users", "latency=fast"][..],
            "`latency=fast`: a time such as 200ms or 30s",
        ),
        (&["users", "error=700"][..], "an HTTP status, 100 to 599"),
        (&["users", "reset", "timeout"][..], "one effect per fault"),
        (
            &["users", "reset", "colour=red"][..],
            "`colour` is not a fault's word",
        ),
        (
            &["nope", "reset"][..],
            "unknown service `nope`; services are: ",
        ),
        (&["nope->users", "reset"][..], "unknown service `nope`"),
        (&["api->nope", "reset"][..], "unknown service `nope`"),
        (&["worker", "reset"][..], "worker is not proxied"),
        (&["api->plain", "reset"][..], "plain is not proxied"),
    ] {
        let e = refused(&run(&stack, &[&["fault", "add"][..], words].concat()));
        assert!(e.contains(says), "{words:?}: {e}");
    }
    let e = refused(&run(&stack, &["fault", "add", "nope->users", "reset"]));
    assert!(e.contains("(or `external`, for a caller)"), "{e}");
    // An unknown service is bad usage, as for the other commands.
    assert_eq!(
        run(&stack, &["fault", "add", "nope", "reset"])
            .status
            .code(),
        Some(2)
    );
    // Nothing refused was set.
    assert_eq!(
        json(&stack, &["fault", "ls", "--json"]),
        json!({"faults": []})
    );
    // The socket says the same to a client that is not the CLI.
    let mut c =
        devstack::control::client::Client::connect(&stack.path().join(".devstack/devstack.sock"))
            .unwrap();
    let e = c.fault_add("users latency=fast").unwrap_err();
    assert_eq!(e.to_string(), "`latency=fast`: a time such as 200ms or 30s");
    stack.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_tools_set_list_and_remove_faults() {
    use crate::mcp::{call, mcp};
    let stack = stack();
    let client = mcp(stack.path()).await;
    let (text, error) = call(
        &client,
        "add_fault",
        json!({"fault": "api->users error=503 first=2"}),
    )
    .await;
    assert!(!error, "{text}");
    assert_eq!(text, "fault 1: api->users error=503 first=2");
    let (text, error) = call(&client, "add_fault", json!({"fault": "users latency=soon"})).await;
    assert!(error && text.contains("a time such as 200ms"), "{text}");
    let (text, error) = call(&client, "add_fault", json!({"fault": "worker reset"})).await;
    assert!(error && text.contains("worker is not proxied"), "{text}");
    call(&client, "add_fault", json!({"fault": "users reset"})).await;
    let (text, error) = call(&client, "faults", json!({})).await;
    assert!(!error, "{text}");
    assert_eq!(text, stdout(&run(&stack, &["fault", "ls"])).trim_end());
    assert!(text.contains("1   api->users error=503 first=2"), "{text}");
    let (text, error) = call(&client, "remove_fault", json!({"id": 1})).await;
    assert!(!error && text == "fault 1 removed", "{text}");
    let (text, error) = call(&client, "remove_fault", json!({"id": 1})).await;
    assert!(error && text.contains("no fault 1"), "{text}");
    let (text, error) = call(&client, "clear_faults", json!({})).await;
    assert!(!error && text == "1 fault removed", "{text}");
    let (text, _) = call(&client, "faults", json!({})).await;
    assert_eq!(text, "no fault is set");
    client.cancel().await.unwrap();
    stack.stop();
}

#[test]
fn a_fault_set_from_the_cli_touches_the_stack_s_requests_and_traffic_says_so() {
    let port = free_port();
    let mut stack = Stack::new(&format!(
        "[services.api]\nrun = \"{} $PORT\"\nport = {port}\n[services.api.health]\ntcp = true\ninterval = \"100ms\"\n",
        example("http_echo")
    ));
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    stdout(&run(
        &stack,
        &["fault", "add", "external->api", "error=503", "first=2"],
    ));
    let statuses: Vec<u16> = (0..3)
        .map(|_| crate::common::http_status(port, "/"))
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    // The table says what the fault did, apart from the service's errors.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let table = stdout(&run(&stack, &["traffic"]));
        if table.contains("external → api: 2 requests touched by a fault (not in ERRORS)") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{table}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let listed = json(&stack, &["fault", "ls", "--json"]);
    assert_eq!(listed["faults"][0]["touched"], json!(2));
    assert_eq!(listed["faults"][0]["spent"], json!(true));
    stack.stop();
}
