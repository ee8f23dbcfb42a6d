//! Kept exchanges shown decoded, through the real binary: gRPC messages as JSON with their field
//! names when the service's `.proto` is given (and without it by field numbers), a `.proto` that
//! does not compile refused where the config names it; compressed bodies and gRPC messages shown
//! decompressed (the bytes as they went kept for `curl`).

use crate::common::{Stack, example, free_port};
use crate::inspect::{exchange, id_of, json};
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
            && text.contains(r#"← {"id":150,"display_name":"alice"}"#),
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

/// A service answering `GET /gzip` and `GET /deflate` with [`lines`]`(100)` so encoded, `GET
/// /big` with [`lines`]`(20000)` gzipped, and any POST with 204.
const ENCODED: &str = r#"
import gzip, http.server, os, zlib

def lines(n):
    return "".join(f"line {i * 7919 % 100003}\n" for i in range(n)).encode()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        encoding = "deflate" if self.path == "/deflate" else "gzip"
        body = lines(20000 if self.path == "/big" else 100)
        body = zlib.compress(body) if encoding == "deflate" else gzip.compress(body)
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-encoding", encoding)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

fn lines(n: u64) -> String {
    (0..n)
        .map(|i| format!("line {}\n", i * 7919 % 100003))
        .collect()
}

fn get(port: u16, path: &str) -> Vec<u8> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    exchange(port, request.as_bytes())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn compressed_bodies_are_shown_decompressed_and_sent_again_as_they_went() {
    let (port, grpc) = (free_port(), free_port());
    let mut stack = Stack::new(&format!(
        "[services.web]\nrun = [\"python3\", \"-u\", \"encoded.py\"]\nport = {port}\ncapture = {{ body = \"16KiB\" }}\n\
         [services.web.health]\ntcp = true\ninterval = \"100ms\"\n\n{}",
        service(
            "users",
            grpc,
            "capture = { proto = [\"protos/users.proto\"] }"
        )
    ));
    std::fs::write(stack.path().join("encoded.py"), ENCODED).unwrap();
    std::fs::create_dir(stack.path().join("protos")).unwrap();
    std::fs::write(stack.path().join("protos/users.proto"), USERS).unwrap();
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(30);

    let small = lines(100);
    for encoding in ["gzip", "deflate"] {
        let path = format!("/{encoding}");
        assert!(get(port, &path).starts_with(b"HTTP/1.1 200"));
        let id = id_of(&stack, &path).to_string();
        let body = &json(&stack, &["traffic", "show", &id, "--json"])["response"]["body"];
        let d = &body["decompressed"];
        assert_eq!(d["encoding"], encoding);
        assert_eq!(
            (&d["text"], &d["size"], &d["cut"]),
            (&json!(small), &json!(small.len()), &json!(false))
        );
        assert!(body["base64"].is_string(), "the bytes as they went: {body}");
        let out = stack.command(&["traffic", "show", &id]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(&format!("({encoding}, ")) && text.contains(" decompressed)"),
            "{text}"
        );
        assert!(text.contains("line 7919\n"), "{text}");
    }

    // Cut by the kept 16 KiB: what they hold, decompressed, and said.
    get(port, "/big");
    let id = id_of(&stack, "/big").to_string();
    let body = &json(&stack, &["traffic", "show", &id, "--json"])["response"]["body"];
    let d = &body["decompressed"];
    assert_eq!((&body["cut"], &d["cut"]), (&json!(true), &json!(true)));
    let text = d["text"].as_str().unwrap();
    assert!(
        text.len() > 16 << 10 && lines(20000).starts_with(text),
        "{}",
        text.len()
    );

    // HAR: the text decompressed, its size, and the bytes saved.
    let har = stack.path().join("out.har");
    let out = stack
        .command(&["traffic", "export", "--har", har.to_str().unwrap(), "web"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let har: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entry = har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["request"]["url"].as_str().unwrap().ends_with("/gzip"))
        .unwrap();
    let content = &entry["response"]["content"];
    assert_eq!(
        (&content["text"], &content["size"]),
        (&json!(small), &json!(small.len()))
    );
    let sent = entry["response"]["bodySize"].as_i64().unwrap();
    assert_eq!(content["compression"], json!(small.len() as i64 - sent));

    // A compressed request: shown decompressed, sent again by curl as it went.
    let zipped = gzip(b"{\"name\":\"alice\"}");
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        zipped.len()
    )
    .into_bytes();
    request.extend_from_slice(&zipped);
    exchange(port, &request);
    let id = id_of(&stack, "/upload").to_string();
    let shown = json(&stack, &["traffic", "show", &id, "--json"]);
    assert_eq!(
        shown["request"]["body"]["decompressed"]["text"],
        r#"{"name":"alice"}"#
    );
    let out = stack.command(&["traffic", "curl", &id]).output().unwrap();
    let curl = String::from_utf8(out.stdout).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&zipped);
    assert!(
        curl.contains(&b64) && curl.contains("--data-binary @-"),
        "{curl}"
    );

    // A gRPC call compressed (`grpc-encoding: gzip`): its messages decompressed, then decoded.
    let mut frame = vec![1];
    let message = gzip(MESSAGE);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    call(grpc, "/users.v1.Users/Get", frame, Some("gzip"));
    let id = id_of(&stack, "/users.v1.Users/Get").to_string();
    let grpc = &json(&stack, &["traffic", "show", &id, "--json"])["grpc"];
    assert_eq!(grpc["requests"], json!([{"id": 150, "name": "alice"}]));
    assert_eq!(
        grpc["responses"],
        json!([{"id": 150, "display_name": "alice"}])
    );
}
