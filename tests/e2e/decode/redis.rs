//! A real `redis-server` through the tee: `redis-cli` (commands, `--pipe`), and raw RESP
//! written here (pipelining, pub/sub, RESP3 pushes, transactions, big values).

use super::{Server, Tee, program, run};
use crate::common::free_port;
use devstack::traffic::decode::{Protocol, State};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

pub(crate) fn redis_server(dir: &std::path::Path) -> Server {
    let bin = program("redis-server", &[], "redis-server");
    let port = free_port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Server::new(child, port)
}

fn cli(port: u16) -> Command {
    let mut command = Command::new(program("redis-cli", &[], "redis-tools"));
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    command
}

/// `redis-cli` running each line of `input` in turn, on one connection.
fn cli_lines(port: u16, input: &str, args: &[&str]) -> String {
    let mut child = cli(port)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command as clients send it.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads from `stream` until what came ends with `end`; what came.
fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while !got.ends_with(end) {
        let n = stream.read(&mut buf).expect("the server answers");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn exchange(stream: &mut TcpStream, args: &[&[u8]], end: &[u8]) -> Vec<u8> {
    stream.write_all(&resp(args)).unwrap();
    read_until(stream, end)
}

#[test]
fn redis_commands_replies_errors_and_latencies() {
    let dir = tempfile::tempdir().unwrap();
    let server = redis_server(dir.path());
    let tee = Tee::new(server.port);
    let input = "SET user:42 alice\nGET user:42\nGET nope\nINCR hits\nLPUSH user:42 x\nNOPE 1\n\
                 AUTH s3cret\nBLPOP emptyq 0.3\n";
    cli_lines(tee.port, input, &[]);
    let conns = tee.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].protocol, Some(Protocol::Redis));
    assert_eq!(conns[0].state, Some(State::Decoding));
    // redis-cli reading commands from its input asks for their docs first.
    let lines = conns[0].lines();
    assert!(lines[0].starts_with("COMMAND DOCS → array "), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "SET user:42 → OK",
            "GET user:42 → bulk 5B",
            "GET nope → nil",
            "INCR hits → integer 1",
            "LPUSH user:42 → error [WRONGTYPE Operation against a key holding the wrong kind of value]",
            "NOPE 1 → error [ERR unknown command 'NOPE', with args beginning with: '1' ]",
            "AUTH → error [ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?]",
            "BLPOP emptyq → nil",
        ]
    );
    let exchanges = &conns[0].exchanges[1..];
    assert!(exchanges.iter().all(|e| !e.request.contains("s3cret")));
    assert_eq!(exchanges[0].group, "SET");
    let blpop = exchanges.last().unwrap();
    assert!(
        blpop.latency >= Duration::from_millis(300) && blpop.latency < Duration::from_secs(5),
        "{blpop:?}"
    );
    assert!(
        exchanges[1].latency < Duration::from_millis(300),
        "{exchanges:?}"
    );
}

#[test]
fn redis_pipelined_commands_are_matched_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = redis_server(dir.path());
    let tee = Tee::new(server.port);
    let mut stream = connect(tee.port);
    let mut batch = resp(&[b"INCR", b"n"]).repeat(100);
    batch.extend(resp(&[b"GET", b"n"]));
    stream.write_all(&batch).unwrap();
    read_until(&mut stream, b"$3\r\n100\r\n");
    drop(stream);
    // redis-cli --pipe: a mass insertion, and the ECHO it ends with to know the last reply.
    let mass: Vec<u8> = (0..50)
        .flat_map(|i| resp(&[b"SET", format!("k{i}").as_bytes(), b"v"]))
        .collect();
    let mut child = cli(tee.port)
        .arg("--pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&mass).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replies: 50"),
        "{out:?}"
    );
    let conns = tee.connections();
    let raw = conns[0].lines();
    assert_eq!(raw.len(), 101);
    assert_eq!(raw[0], "INCR n → integer 1");
    assert_eq!(raw[99], "INCR n → integer 100");
    assert_eq!(raw[100], "GET n → bulk 3B");
    let piped = &conns[1].exchanges;
    assert_eq!(piped.len(), 51, "{:?}", conns[1].lines());
    assert!(
        piped[..50]
            .iter()
            .enumerate()
            .all(|(i, e)| e.request == format!("SET k{i}") && e.outcome == "OK")
    );
    assert_eq!(piped[50].group, "ECHO");
}

#[test]
fn redis_pub_sub_messages_are_not_replies() {
    let dir = tempfile::tempdir().unwrap();
    let server = redis_server(dir.path());
    let tee = Tee::new(server.port);
    let mut sub = connect(tee.port);
    exchange(&mut sub, &[b"SUBSCRIBE", b"news", b"sport"], b":2\r\n");
    let published = run(cli(tee.port).args(["PUBLISH", "news", "hello"]), true);
    assert_eq!(published.trim(), "1");
    read_until(&mut sub, b"hello\r\n");
    exchange(&mut sub, &[b"PING"], b"$0\r\n\r\n");
    exchange(&mut sub, &[b"UNSUBSCRIBE"], b":0\r\n");
    exchange(&mut sub, &[b"GET", b"k"], b"$-1\r\n");
    drop(sub);
    let conns = tee.connections();
    assert_eq!(
        conns[0].lines(),
        [
            "SUBSCRIBE news → 2 subscriptions",
            "PING → array 2",
            "UNSUBSCRIBE → 0 subscriptions",
            "GET k → nil",
        ]
    );
    assert_eq!(conns[1].lines(), ["PUBLISH news → integer 1"]);
}

#[test]
fn redis_resp3_pushes_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let server = redis_server(dir.path());
    let tee = Tee::new(server.port);
    let mut conn = connect(tee.port);
    exchange(&mut conn, &[b"HELLO", b"3"], b"modules\r\n*0\r\n");
    exchange(&mut conn, &[b"CLIENT", b"TRACKING", b"on"], b"+OK\r\n");
    exchange(&mut conn, &[b"GET", b"k"], b"_\r\n");
    // Another client changes the key: an invalidation is pushed to this one.
    run(cli(tee.port).args(["SET", "k", "v"]), true);
    read_until(&mut conn, b"$1\r\nk\r\n");
    exchange(&mut conn, &[b"MULTI"], b"+OK\r\n");
    exchange(&mut conn, &[b"SET", b"a", b"1"], b"+QUEUED\r\n");
    exchange(&mut conn, &[b"INCR", b"a"], b"+QUEUED\r\n");
    exchange(&mut conn, &[b"EXEC"], b":2\r\n");
    exchange(&mut conn, &[b"SUBSCRIBE", b"c"], b":1\r\n");
    run(cli(tee.port).args(["PUBLISH", "c", "x"]), true);
    read_until(&mut conn, b"$1\r\nx\r\n");
    exchange(&mut conn, &[b"GET", b"k"], b"$1\r\nv\r\n");
    drop(conn);
    let conns = tee.connections();
    assert_eq!(
        conns[0].lines(),
        [
            "HELLO 3 → map 7",
            "CLIENT TRACKING → OK",
            "GET k → nil",
            "MULTI → OK",
            "SET a → QUEUED",
            "INCR a → QUEUED",
            "EXEC → array 2",
            "SUBSCRIBE c → 1 subscription",
            "GET k → bulk 1B",
        ]
    );
}

#[test]
fn redis_big_values_are_counted_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let server = redis_server(dir.path());
    let tee = Tee::new(server.port);
    let mut conn = connect(tee.port);
    let big = vec![b'x'; 3 << 20];
    exchange(&mut conn, &[b"SET", b"big", &big], b"+OK\r\n");
    exchange(&mut conn, &[b"GET", b"big"], b"xx\r\n");
    exchange(&mut conn, &[b"STRLEN", b"big"], b":3145728\r\n");
    drop(conn);
    let conns = tee.connections();
    assert_eq!(
        conns[0].lines(),
        [
            "SET big → OK",
            "GET big → bulk 3.1MB",
            "STRLEN big → integer 3145728"
        ]
    );
}
