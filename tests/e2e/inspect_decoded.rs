//! Kept exchanges shown decoded, through the real binary: gRPC messages as JSON with their field
//! names when the service's `.proto` is given (and without it by field numbers), a `.proto` that
//! does not compile refused where the config names it.

use crate::common::{Stack, example, free_port};
use crate::inspect::{id_of, json};
use http_body_util::BodyExt;
use serde_json::json;

/// `users.v1.Users/Get`: the request's and the answer's types name the same fields apart.
const USERS: &str = "syntax = \"proto3\";\npackage users.v1;\n\n\
    message GetUser {\n  int32 id = 1;\n  string name = 2;\n}\n\n\
    message User {\n  int32 id = 1;\n  string display_name = 2;\n}\n\n\
    service Users {\n  rpc Get(GetUser) returns (User);\n}\n";

/// `{1: 150, 2: "alice"}` in protobuf's wire format.
const MESSAGE: &[u8] = b"\x08\x96\x01\x12\x05alice";

/// A stack of `grpc_echo` services (each call answered with its own messages), `protos/users.proto`
/// written beside its `devstack.toml`.
fn grpc_stack(toml: &str) -> Stack {
    let mut stack = Stack::new(toml);
    std::fs::create_dir(stack.path().join("protos")).unwrap();
    std::fs::write(stack.path().join("protos/users.proto"), USERS).unwrap();
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);
    stack
}

fn service(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[services.{name}]\nrun = \"{} $PORT\"\nport = {port}\n{extra}\n[services.{name}.health]\ntcp = true\ninterval = \"100ms\"\n\n",
        example("grpc_echo")
    )
}

/// A gRPC call of `path` on h2c to `port` with these framed `messages` (and `grpc-encoding`
/// when given): the answer's body.
pub(crate) fn call(port: u16, path: &str, messages: Vec<u8>, encoding: Option<&str>) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut sender = crate::traffic::h2_client(addr).await;
        let mut request = hyper::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(encoding) = encoding {
            request = request.header("grpc-encoding", encoding);
        }
        let request = request.body(crate::traffic::full(messages)).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap();
        body.to_bytes().to_vec()
    })
}

/// A message framed as gRPC (not compressed).
pub(crate) fn framed(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

#[test]
fn grpc_messages_show_as_json_with_field_names_with_the_service_s_proto_and_by_number_without() {
    let (users, plain) = (free_port(), free_port());
    let stack = grpc_stack(&format!(
        "{}{}",
        service(
            "users",
            users,
            "capture = { proto = [\"protos/users.proto\"] }"
        ),
        service("plain", plain, "")
    ));
    let path = "/users.v1.Users/Get";
    assert_eq!(call(users, path, framed(MESSAGE), None), framed(MESSAGE));
    let id = id_of(&stack, path).to_string();
    let shown = json(&stack, &["traffic", "show", &id, "--json"]);
    let grpc = &shown["grpc"];
    assert_eq!(grpc["schema"], "users.v1.GetUser → users.v1.User");
    assert_eq!(grpc["requests"], json!([{"id": 150, "name": "alice"}]));
    assert_eq!(
        grpc["responses"],
        json!([{"id": 150, "display_name": "alice"}])
    );
    let out = stack.command(&["traffic", "show", &id]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(r#"→ {"id":150,"name":"alice"}"#)
            && text.contains(r#"← {"display_name":"alice","id":150}"#),
        "{text}"
    );

    // A method the schemas do not have: by field numbers, and said.
    call(users, "/users.v1.Users/Delete", framed(MESSAGE), None);
    let id = id_of(&stack, "/users.v1.Users/Delete").to_string();
    let grpc = &json(&stack, &["traffic", "show", &id, "--json"])["grpc"];
    assert_eq!(grpc["requests"], json!([r#"1: 150  2: "alice""#]));
    let schema = grpc["schema"].as_str().unwrap();
    assert!(schema.contains("no method"), "{schema}");

    // A service without a proto: by field numbers.
    call(plain, path, framed(MESSAGE), None);
    let id = loop {
        let id = id_of(&stack, path);
        let shown = json(&stack, &["traffic", "show", &id.to_string(), "--json"]);
        if shown["callee"] == "plain" {
            break shown;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(id["grpc"]["requests"], json!([r#"1: 150  2: "alice""#]));
    assert!(id["grpc"].get("schema").is_none());
}

#[test]
fn a_proto_that_does_not_compile_is_a_config_error_at_its_place_with_the_compiler_s() {
    let stack = Stack::new(
        "[stack.capture]\nproto = [\"protos/users.proto\", \"protos/missing.binpb\"]\n\n[services.api]\nrun = \"true\"\n",
    );
    std::fs::create_dir(stack.path().join("protos")).unwrap();
    let broken = USERS.replace(
        "int32 id = 1;\n  string name",
        "int32 id = 1\n  string name",
    );
    std::fs::write(stack.path().join("protos/users.proto"), broken).unwrap();
    let out = stack.command(&["check"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("devstack.toml:2:10"), "{stderr}");
    assert!(stderr.contains("users.proto:6:3: "), "{stderr}");
    assert!(stderr.contains("devstack.toml:2:32"), "{stderr}");
    assert!(stderr.contains("missing.binpb"), "{stderr}");
}
