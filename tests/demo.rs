//! The demo stack at the repository root, as a newcomer runs it.

mod common;

use common::Stack;
use nix::sys::signal::Signal;
use std::io::{Read, Write};

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

    stack.signal(Signal::SIGINT);
    assert!(stack.wait_exit(30).success(), "{}", stack.output());
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}
