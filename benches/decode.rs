//! What a decoded exchange costs the relay: a Redis command with its reply, alone and pipelined
//! by a hundred; a PostgreSQL simple query with its 3 rows, and an execution of a prepared
//! statement; a query's normalisation alone. Each fed as the relay reads it (a read per side).
//! `cargo bench --bench decode`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use devstack::traffic::decode::{Decoder, Postgres, Redis, State, normalize};
use std::hint::black_box;
use std::time::Instant;

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Feeds one exchange's bytes, checking that it was decoded (a bench of a decoder that gave up
/// would measure nothing).
fn check(decoder: &mut dyn Decoder, asked: &[u8], answer: &[u8], exchanges: usize) {
    decoder.caller_sent(asked, Instant::now());
    decoder.service_sent(answer, Instant::now());
    let got = decoder.take();
    assert_eq!(got.len(), exchanges, "{got:?}");
    assert!(got.iter().all(|e| e.error.is_none()), "{got:?}");
    assert_eq!(decoder.state(), State::Decoding);
}

/// Each bench twice: decoding only, and keeping what a replay needs too (`_kept`: the service's
/// capture on, the default).
const MODES: [(&str, bool); 2] = [("", false), ("_kept", true)];

fn redis(c: &mut Criterion) {
    for (suffix, keep) in MODES {
        redis_mode(c, suffix, keep);
    }
}

fn redis_mode(c: &mut Criterion, suffix: &str, keep: bool) {
    let mut group = c.benchmark_group("redis");
    let get = resp(&["GET", "user:42"]);
    let reply = b"$24\r\n{\"id\":42,\"name\":\"alice\"}\r\n".to_vec();
    let mut decoder = Redis::new();
    if keep {
        decoder.keep(64 * 1024);
    }
    check(&mut decoder, &get, &reply, 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("command{suffix}"), |b| {
        b.iter(|| {
            let at = Instant::now();
            decoder.caller_sent(black_box(&get), at);
            decoder.service_sent(black_box(&reply), at);
            black_box(decoder.take())
        })
    });
    let mut batch = Vec::new();
    let mut replies = Vec::new();
    for i in 0..100 {
        batch.extend(resp(&[
            "SET",
            &format!("session:{i}"),
            "some value of 32 bytes, or so...",
        ]));
        replies.extend_from_slice(b"+OK\r\n");
    }
    check(&mut decoder, &batch, &replies, 100);
    group.throughput(Throughput::Elements(100));
    group.bench_function(format!("pipelined_100{suffix}"), |b| {
        b.iter(|| {
            let at = Instant::now();
            decoder.caller_sent(black_box(&batch), at);
            decoder.service_sent(black_box(&replies), at);
            black_box(decoder.take())
        })
    });
    group.finish();
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstring(text: &str) -> Vec<u8> {
    [text.as_bytes(), b"\0"].concat()
}

/// A decoder past a connection's startup (keeping what a replay needs when told).
fn started(keep: bool) -> Postgres {
    let mut decoder = Postgres::new();
    if keep {
        decoder.keep(64 * 1024);
    }
    let mut startup = vec![0, 3, 0, 0];
    startup.extend(b"user\0app\0database\0shop\0\0");
    let len = (startup.len() as u32 + 4).to_be_bytes();
    decoder.caller_sent(&[&len[..], &startup].concat(), Instant::now());
    let welcome = [message(b'R', &[0; 4]), message(b'Z', b"I")].concat();
    decoder.service_sent(&welcome, Instant::now());
    decoder.take();
    decoder
}

fn postgres(c: &mut Criterion) {
    for (suffix, keep) in MODES {
        postgres_mode(c, suffix, keep);
    }
    let text = "SELECT id, name, email FROM users WHERE org_id = 42 AND active = 'yes' ORDER BY id";
    c.benchmark_group("postgres")
        .bench_function("normalize", |b| b.iter(|| normalize(black_box(text))));
}

fn postgres_mode(c: &mut Criterion, suffix: &str, keep: bool) {
    let mut group = c.benchmark_group("postgres");
    group.throughput(Throughput::Elements(1));
    let text = "SELECT id, name, email FROM users WHERE org_id = 42 AND active = 'yes' ORDER BY id";
    let query = message(b'Q', &cstring(text));
    let row = message(
        b'D',
        b"\0\x03\0\0\0\x0242\0\0\0\x05alice\0\0\0\x0da@example.com",
    );
    let rows = [
        message(b'T', b"\0\0"),
        row.clone(),
        row.clone(),
        row.clone(),
        message(b'C', b"SELECT 3\0"),
        message(b'Z', b"I"),
    ]
    .concat();
    let mut decoder = started(keep);
    check(&mut decoder, &query, &rows, 1);
    group.bench_function(format!("simple_query{suffix}"), |b| {
        b.iter(|| {
            let at = Instant::now();
            decoder.caller_sent(black_box(&query), at);
            decoder.service_sent(black_box(&rows), at);
            black_box(decoder.take())
        })
    });
    let mut decoder = started(keep);
    let parse = [
        b"s1\0".as_slice(),
        &cstring("SELECT * FROM users WHERE id = $1"),
        &[0, 0],
    ]
    .concat();
    decoder.caller_sent(
        &[message(b'P', &parse), message(b'S', b"")].concat(),
        Instant::now(),
    );
    decoder.service_sent(
        &[message(b'1', b""), message(b'Z', b"I")].concat(),
        Instant::now(),
    );
    let bind = message(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x0242\0\0");
    let execute = [bind, message(b'E', b"\0\0\0\0\0"), message(b'S', b"")].concat();
    let answer = [
        message(b'2', b""),
        row,
        message(b'C', b"SELECT 1\0"),
        message(b'Z', b"I"),
    ]
    .concat();
    check(&mut decoder, &execute, &answer, 1);
    group.bench_function(format!("prepared_execution{suffix}"), |b| {
        b.iter(|| {
            let at = Instant::now();
            decoder.caller_sent(black_box(&execute), at);
            decoder.service_sent(black_box(&answer), at);
            black_box(decoder.take())
        })
    });
    group.finish();
}

criterion_group!(benches, redis, postgres);
criterion_main!(benches);
