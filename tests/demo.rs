//! The demo stack at the repository root, as a newcomer runs it.

mod common;

use common::Stack;
use nix::sys::signal::Signal;
use std::io::{Read, Write};

/// The demo stack has fixed ports and one folder: its tests take turns.
static DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn get(port: u16, path: &str) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_demo_stack_runs_and_its_services_call_each_other() {
    let _one_at_a_time = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let mut stack = Stack::at(env!("CARGO_MANIFEST_DIR").as_ref());
    stack.start(&["up", "--headless"]);
    stack.wait_for("gateway | listening on 127.0.0.1:7100", 180);
    let out = stack.wait_for("worker  | polled orders", 30);
    let migrated = out
        .find("migrate | [devstack] task completed")
        .expect("migrate ran");
    assert!(
        migrated < out.find("users   | [devstack] spawned").unwrap(),
        "{out}"
    );

    let response = get(7100, "/api/orders");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#""name":"ada""#),
        "gateway → orders → users: {response}"
    );
    assert!(get(7101, "/healthz").starts_with("HTTP/1.1 200"));

    // Touching the services' source rebuilds and restarts the services that watch it.
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo/demo_svc.rs");
    std::fs::File::options()
        .write(true)
        .open(&source)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    stack.wait_for(
        "users   | [devstack] rebuilding: fixtures/demo/demo_svc.rs changed",
        20,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while common::lines_with(&stack.output(), "gateway | [devstack] health: healthy").len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no restart after the rebuild:\n{}",
            stack.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(get(7100, "/api/orders").starts_with("HTTP/1.1 200"));

    stack.signal(Signal::SIGINT);
    assert!(stack.wait_exit(30).success(), "{}", stack.output());
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn ci_and_run_pass_on_the_demo_stack() {
    let _one_at_a_time = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    // Both use the demo's fixed ports, so they run one after the other in this one test.
    let root: &std::path::Path = env!("CARGO_MANIFEST_DIR").as_ref();
    let demo = Stack::at(root);
    let out = demo.command(&["ci", "--timeout", "3m"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ci: every service is ready"), "{stderr}");

    let out = demo
        .command(&["run", "--", "sh", "-c", "curl -fsS $GATEWAY_URL/api/users"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("linus"));
    assert!(demo.leftovers().is_empty(), "{:?}", demo.leftovers());
}
