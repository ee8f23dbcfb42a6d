//! `traffic replay` of a decoded exchange, through the real binary: a real `redis-server` and a
//! real PostgreSQL run as the stack's services behind its proxy, real clients call them, and a
//! kept read is sent again as `replay` (its answer shown beside the original's, its own record
//! `replay → SERVICE`); a write, and a command cut at the capture's cap, are refused with nothing
//! sent. Records come a moment after the client is done, in any order: the tests wait for them.

use super::postgres::{bindir, client, initdb, owner, send, until_ready};
use super::program;
use crate::common::{Stack, free_port};
use devstack::traffic::{Caller, Kind, Record};
use postgres_protocol::message::frontend;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The stack's service `name` running `run` on a proxied `port`, started and ready.
fn stack(name: &str, run: &str, port: u16, extra: &str) -> Stack {
    let mut stack = Stack::new(&format!(
        "{extra}\n[services.{name}]\nrun = \"{run}\"\nport = {port}\n\
         [services.{name}.health]\ntcp = true\ninterval = \"100ms\"\n"
    ));
    stack.start(&["up"]);
    stack.wait_socket(30);
    stack.wait_ready(60);
    stack
}

/// A decoded record's command.
fn command(r: &Record) -> Option<&str> {
    match &r.kind {
        Kind::Redis(d) | Kind::Postgres(d) => Some(&d.command),
        _ => None,
    }
}

/// The recent records, read off the socket.
fn records(stack: &Stack) -> Vec<Record> {
    let socket = stack.path().join(".devstack/devstack.sock");
    let mut c = devstack::control::client::Client::connect(&socket).unwrap();
    c.hello().unwrap();
    c.traffic(1000, false).unwrap().1
}

/// The record of `command` from `caller` to `callee`, once the proxy recorded it.
fn record(stack: &Stack, caller: &Caller, callee: &str, wanted: &str) -> Record {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = records(stack);
        let found = all
            .iter()
            .find(|r| r.caller == *caller && r.callee == callee && command(r) == Some(wanted));
        if let Some(r) = found {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {caller} {wanted:?} in {:#?}",
            all.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn replay(stack: &Stack, id: u64) -> (Output, String, String) {
    let out = stack
        .command(&["traffic", "replay", &id.to_string()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let error = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, said, error)
}

/// `replay` of `id` is refused, saying `why`, and nothing is sent: no record from `replay`
/// comes of it.
fn refused(stack: &Stack, id: u64, why: &str) {
    let before = records(stack).last().map_or(0, |r| r.id);
    let (out, said, error) = replay(stack, id);
    assert!(!out.status.success(), "{said}");
    assert!(error.contains(why), "{error}");
    assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
    std::thread::sleep(Duration::from_millis(300));
    let sent: Vec<String> = records(stack)
        .iter()
        .filter(|r| r.id > before && r.caller == Caller::Replay)
        .map(ToString::to_string)
        .collect();
    assert!(sent.is_empty(), "{sent:?}");
}

/// `redis-cli` running each line of `input` on one connection to `port`: its output.
fn redis_cli(port: u16, input: &str) -> String {
    let mut child = Command::new(program("redis-cli", &[], "redis-tools"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_redis_read_is_replayed_and_a_write_or_a_cut_command_refused() {
    let port = free_port();
    let server = program("redis-server", &[], "redis-server");
    let run = format!(
        "{} --port $PORT --bind 127.0.0.1 --save '' --appendonly no",
        server.display()
    );
    // `nocap` keeps nothing of its exchanges.
    let nocap = free_port();
    let extra = format!(
        "[stack.capture]\nbody = \"100B\"\n[services.nocap]\nrun = \"{run}\"\n\
         port = {nocap}\ncapture = false\n[services.nocap.health]\ntcp = true\n"
    );
    let stack = stack("db", &run, port, &extra);
    let long = format!("GET {}", "k".repeat(150));
    redis_cli(
        port,
        &format!("SET k old\nGET k\nSELECT 2\nSET k2 two\nGET k2\n{long}\n"),
    );
    redis_cli(port, "SET k new\n");
    let external = Caller::External;
    let get = record(&stack, &external, "db", "GET k");
    let (out, said, _) = replay(&stack, get.id);
    assert!(out.status.success(), "{out:?}");
    // The value now, beside what the original got.
    assert!(said.contains("replay → db  GET k  bulk 3B"), "{said}");
    assert!(said.contains(&format!("(#{}: bulk 3B)", get.id)), "{said}");
    assert!(said.contains("\"new\""), "{said}");
    let again = record(&stack, &Caller::Replay, "db", "GET k");
    assert!(said.starts_with(&format!("#{} ", again.id)), "{said}");
    // The database its connection had selected.
    let get2 = record(&stack, &external, "db", "GET k2");
    let (out, said, _) = replay(&stack, get2.id);
    assert!(out.status.success() && said.contains("\"two\""), "{said}");
    // A write: refused, not sent (the key keeps the value set since).
    let set = record(&stack, &external, "db", "SET k");
    refused(&stack, set.id, "`SET` is not a read-only command");
    assert_eq!(redis_cli(port, "GET k\n").trim(), "new");
    // Over the capture's cap (100 bytes): kept as cut.
    let cut = record(&stack, &external, "db", &long);
    refused(&stack, cut.id, "it was cut");
    // Capture off: nothing kept to send again.
    redis_cli(nocap, "GET k\n");
    let uncaptured = record(&stack, &external, "nocap", "GET k");
    refused(&stack, uncaptured.id, "nothing of it is kept");
    stack.stop();
}

/// `psql` on `port` as `postgres`.
fn psql(port: u16, args: &[&str]) -> String {
    let psql = Command::new(program("psql", &[bindir()], "postgresql-client"));
    let out = client(psql, port)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The extended protocol: `query` prepared as `s1` with an int4 parameter, bound to `value` in
/// binary, executed.
fn prepared(port: u16, query: &str, value: i32) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    send(&mut conn, |b| {
        let params = [("user", "postgres"), ("database", "postgres")];
        frontend::startup_message(params, b).unwrap()
    });
    until_ready(&mut conn);
    send(&mut conn, |b| {
        frontend::parse("s1", query, [23], b).unwrap();
        let bytes = value.to_be_bytes();
        let put = |v: &[u8], b: &mut bytes::BytesMut| {
            b.extend_from_slice(v);
            Ok(postgres_protocol::IsNull::No)
        };
        frontend::bind("", "s1", [1], [&bytes[..]], put, [0], b)
            .map_err(|_| "bind")
            .unwrap();
        frontend::execute("", 0, b).unwrap();
        frontend::sync(b);
    });
    until_ready(&mut conn);
    send(&mut conn, frontend::terminate);
}

#[test]
fn a_postgres_select_with_a_bound_parameter_is_replayed_and_writes_refused() {
    let bin = bindir();
    let dir = tempfile::tempdir().unwrap();
    let data = initdb(&bin, dir.path());
    // PostgreSQL refuses root: as `nobody` then.
    let user = owner().map_or(String::new(), |(uid, gid)| {
        format!("setpriv --reuid={uid} --regid={gid} --clear-groups ")
    });
    let run = format!(
        "{user}{} -D {} -p $PORT -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        bin.join("postgres").display(),
        data.display(),
        dir.path().display()
    );
    let port = free_port();
    let stack = stack("pg", &run, port, "");
    let insert = "INSERT INTO t VALUES (1, 'a', 0), (2, 'b', 0)";
    let update = "UPDATE t SET n = n + 1 WHERE id = 1";
    psql(
        port,
        &[
            "-c",
            "CREATE TABLE t (id int PRIMARY KEY, name text, n int)",
            "-c",
            insert,
            "-c",
            update,
        ],
    );
    let select = "SELECT name, n FROM t WHERE id = $1";
    prepared(port, select, 2);
    let external = Caller::External;
    let original = record(&stack, &external, "pg", select);
    let (out, said, _) = replay(&stack, original.id);
    assert!(out.status.success(), "{out:?}");
    // The same rows, as text, beside the original's outcome.
    assert!(
        said.contains(&format!("replay → pg  {select}  1 row")),
        "{said}"
    );
    assert!(
        said.contains(&format!("(#{}: 1 row)", original.id)),
        "{said}"
    );
    for line in ["  name | n", "  b | 0", "  SELECT 1"] {
        assert!(said.lines().any(|l| l == line), "{line:?} in {said}");
    }
    record(&stack, &Caller::Replay, "pg", select);
    // Writes: refused, not sent.
    let updated = record(&stack, &external, "pg", update);
    refused(&stack, updated.id, "`UPDATE` is not read-only");
    let inserted = record(&stack, &external, "pg", insert);
    refused(&stack, inserted.id, "`INSERT` is not read-only");
    assert_eq!(
        psql(port, &["-c", "SELECT n FROM t WHERE id = 1"]).trim(),
        "1"
    );
    stack.stop();
}
