//! Fault scenarios (issue 26): `[faults.NAME]` in `devstack.toml`, set by name through the real
//! binary with `devstack fault apply NAME` (and the socket's `fault_apply`, MCP's
//! `apply_faults`) or `devstack run --faults NAME -- CMD`, where CMD sees them. A scenario's bad
//! words are `devstack check` errors (`config_errors.rs`).

use crate::common::{Stack, example, free_port};
use crate::fault::{run, stdout};
use crate::inspect::json;
use serde_json::json;

/// `api` and `users` (the echo fixture) on proxied ports, and two scenarios.
fn config() -> String {
    let echo = |name: &str| {
        format!(
            "[services.{name}]\nrun = \"{} $PORT\"\nport = {}\n[services.{name}.health]\ntcp = true\ninterval = \"100ms\"\n",
            example("http_echo"),
            free_port()
        )
    };
    format!(
        "{}{}[faults.slow]\nfaults = [\"api->users latency=200ms\", \"users error=503 first=2\"]\n\
         [faults.api-down]\napi = {{ error = 503, body = \"api is down\" }}\n",
        echo("api"),
        echo("users"),
    )
}

fn started() -> Stack {
    let mut stack = Stack::new(&config());
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    stack
}

#[test]
fn a_scenario_is_applied_by_name_and_fault_ls_shows_its_faults() {
    let stack = started();
    assert_eq!(
        stdout(&run(&stack, &["fault", "apply", "slow"])),
        "fault 1: api->users latency=200ms\nfault 2: users error=503 first=2\n"
    );
    let listed = json(&stack, &["fault", "ls", "--json"]);
    let texts: Vec<&str> = listed["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["api->users latency=200ms", "users error=503 first=2"]
    );
    // An unknown name lists the scenarios there are, and sets nothing.
    let out = run(&stack, &["fault", "apply", "slwo"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("no fault scenario `slwo`; did you mean `slow`? scenarios are: api-down, slow"),
        "{e}"
    );
    assert_eq!(
        json(&stack, &["fault", "ls", "--json"])["faults"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The socket answers with the faults it set.
    let mut c =
        devstack::control::client::Client::connect(&stack.path().join(".devstack/devstack.sock"))
            .unwrap();
    let set = c.fault_apply("api-down").unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(
        (set[0].id, set[0].text.as_str()),
        (3, "api error=503 'body=api is down'")
    );
    assert_eq!(crate::common::http_status(port_of(&stack, "api"), "/"), 503);
    stack.stop();
}

/// The public port of `service`, as `ps --json` says it.
fn port_of(stack: &Stack, service: &str) -> u16 {
    let ps = json(stack, &["ps", "--json"]);
    let s = ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .unwrap()
        .clone();
    s["port"].as_u64().unwrap() as u16
}

#[test]
fn run_faults_sets_the_scenario_before_the_command_starts() {
    let stack = Stack::new(&config());
    let curl = "curl -s -o /dev/null -w '%{http_code}' $API_URL/";
    let out = run(
        &stack,
        &["run", "-q", "--faults", "api-down", "--", "sh", "-c", curl],
    );
    assert_eq!(stdout(&out), "503");
    // Said in the callee's log, as devstack's own line.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("| [devstack] fault 1: api error=503"),
        "{said}"
    );
    // Repeated: both scenarios are set (the first two requests to users fail too).
    let curl = "for u in $USERS_URL $USERS_URL $USERS_URL $API_URL; do \
                curl -s -o /dev/null -w '%{http_code} ' $u/; done";
    let args = [
        "run", "-q", "--faults", "slow", "--faults", "api-down", "--", "sh", "-c", curl,
    ];
    assert_eq!(stdout(&run(&stack, &args)), "503 503 200 503 ");
    // Without --faults, none is set: faults end with the stack.
    let curl = "curl -s -o /dev/null -w '%{http_code}' $API_URL/";
    assert_eq!(
        stdout(&run(&stack, &["run", "-q", "--", "sh", "-c", curl])),
        "200"
    );
    // An unknown scenario is said before anything starts.
    let out = run(&stack, &["run", "--faults", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("error: no fault scenario `nope`; scenarios are: api-down, slow"),
        "{e}"
    );
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_tool_applies_a_scenario() {
    use crate::mcp::{call, mcp};
    let stack = started();
    let client = mcp(stack.path()).await;
    let (text, error) = call(&client, "apply_faults", json!({"name": "slow"})).await;
    assert!(!error, "{text}");
    assert_eq!(
        text,
        "fault 1: api->users latency=200ms\nfault 2: users error=503 first=2"
    );
    let (text, error) = call(&client, "apply_faults", json!({"name": "nope"})).await;
    assert!(
        error && text.contains("scenarios are: api-down, slow"),
        "{text}"
    );
    client.cancel().await.unwrap();
    stack.stop();
}

#[test]
fn up_faults_sets_the_scenario_once_the_stack_is_ready() {
    let stack = Stack::new(&config());
    let out = run(&stack, &["up", "-d", "--wait", "--faults", "api-down"]);
    let stopped = || drop(run(&stack, &["down"]));
    if !out.status.success() {
        stopped();
        panic!("{out:?}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let texts = loop {
        let listed = json(&stack, &["fault", "ls", "--json"]);
        let texts: Vec<String> = listed["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap().to_string())
            .collect();
        if !texts.is_empty() || std::time::Instant::now() > deadline {
            break texts;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    stopped();
    assert_eq!(texts, ["api error=503 'body=api is down'"]);
    // An unknown name is refused before anything starts.
    let out = run(&stack, &["up", "-d", "--faults", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn check_prints_the_scenarios_as_their_faults_are_written() {
    let stack = Stack::new(&config());
    let plan = stdout(&run(&stack, &["check"]));
    assert!(
        plan.ends_with(
            "fault scenarios (set only when asked: `devstack fault apply NAME`):\n  \
             api-down: api error=503 'body=api is down'\n  slow: api->users latency=200ms; users error=503 first=2\n"
        ),
        "{plan}"
    );
}
