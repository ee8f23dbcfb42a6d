use super::*;
use crate::traffic::decode::script::{Caller, Service, every_cut, ex, seen};
use bytes::{BufMut, BytesMut};
use postgres_protocol::message::frontend;
use std::time::Duration;

fn new() -> Box<dyn Decoder> {
    Box::new(Postgres::new())
}

/// A server's message.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', format!("{tag}\0").as_bytes())
}

fn error(code: &str, message: &str) -> Vec<u8> {
    msg(
        b'E',
        format!("SERROR\0VERROR\0C{code}\0M{message}\0\0").as_bytes(),
    )
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

fn row() -> Vec<u8> {
    msg(b'D', b"\0\x01\0\0\0\x01x")
}

fn caller(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    write(&mut buf);
    buf.to_vec()
}

fn startup() -> Vec<u8> {
    caller(|b| frontend::startup_message([("user", "app"), ("database", "shop")], b).unwrap())
}

fn query(text: &str) -> Vec<u8> {
    caller(|b| frontend::query(text, b).unwrap())
}

/// Authentication ok, a parameter, the backend's key, ready.
fn welcome() -> Vec<u8> {
    let mut out = msg(b'R', &[0, 0, 0, 0]);
    out.extend(msg(b'S', b"server_version\x0015.1\0"));
    out.extend(msg(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
    out.extend(ready());
    out
}

#[test]
fn startup_and_simple_queries_in_any_chunking() {
    let rows = [
        msg(b'T', b"\0\0"),
        row(),
        row(),
        complete("SELECT 2"),
        ready(),
    ]
    .concat();
    let notice = msg(b'N', b"SNOTICE\0Mhi\0\0");
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, startup()),
        (Service, welcome()),
        (Caller, query("SELECT *\n  FROM users WHERE id = 42")),
        (Service, rows),
        (Caller, query("INSERT INTO t VALUES (1, 'x')")),
        (Service, [notice, complete("INSERT 0 1"), ready()].concat()),
        (Caller, query("SELECT * FROM nope")),
        (
            Service,
            [error("42P01", "relation \"nope\" does not exist"), ready()].concat(),
        ),
        (Caller, query("")),
        (Service, [msg(b'I', b""), ready()].concat()),
        (Caller, query("SET x = 1; SELECT 1")),
        (
            Service,
            [complete("SET"), row(), complete("SELECT 1"), ready()].concat(),
        ),
        (Caller, query("ALTER ROLE app PASSWORD 'hunter2'")),
        (Service, [complete("ALTER ROLE"), ready()].concat()),
        (Caller, caller(frontend::terminate)),
    ];
    assert_eq!(
        every_cut(new, &script),
        vec![
            ex("startup user=app database=shop", "startup", "ready", None),
            ex(
                "SELECT * FROM users WHERE id = 42",
                "SELECT * FROM users WHERE id = ?",
                "2 rows",
                None
            ),
            ex(
                "INSERT INTO t VALUES (1, 'x')",
                "INSERT INTO t VALUES (?, ?)",
                "INSERT 0 1",
                None
            ),
            ex(
                "SELECT * FROM nope",
                "SELECT * FROM nope",
                "error",
                Some("SQLSTATE 42P01: relation \"nope\" does not exist")
            ),
            ex("", "", "empty query", None),
            ex("SET x = 1; SELECT 1", "SET x = ?; SELECT ?", "1 row", None),
            ex(
                "ALTER ROLE app PASSWORD ?",
                "ALTER ROLE app PASSWORD ?",
                "ALTER ROLE",
                None
            ),
        ]
    );
}

fn parse(name: &str, text: &str) -> Vec<u8> {
    caller(|b| frontend::parse(name, text, [], b).unwrap())
}

fn bind(statement: &str, value: &str) -> Vec<u8> {
    caller(|b| {
        frontend::bind(
            "",
            statement,
            [0],
            [value],
            |v, buf| {
                buf.put_slice(v.as_bytes());
                Ok(postgres_protocol::IsNull::No)
            },
            [0],
            b,
        )
        .map_err(|_| ())
        .unwrap()
    })
}

fn execute(max_rows: i32) -> Vec<u8> {
    caller(|b| frontend::execute("", max_rows, b).unwrap())
}

fn sync() -> Vec<u8> {
    caller(frontend::sync)
}

#[test]
fn prepared_statements_are_reused_by_name() {
    let text = "SELECT * FROM users WHERE id = $1";
    let describe = caller(|b| frontend::describe(b'P', "", b).unwrap());
    let first = [
        parse("S_1", text),
        bind("S_1", "7"),
        describe,
        execute(0),
        sync(),
    ]
    .concat();
    let again = [bind("S_1", "8"), execute(0), sync()].concat();
    let suspended = [bind("S_1", "9"), execute(1), sync()].concat();
    let close = [caller(|b| frontend::close(b'S', "S_1", b).unwrap()), sync()].concat();
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, startup()),
        (Service, welcome()),
        (Caller, first),
        (
            Service,
            [
                msg(b'1', b""),
                msg(b'2', b""),
                msg(b'T', b"\0\0"),
                row(),
                complete("SELECT 1"),
                ready(),
            ]
            .concat(),
        ),
        (Caller, again),
        (
            Service,
            [msg(b'2', b""), complete("SELECT 0"), ready()].concat(),
        ),
        (Caller, suspended),
        (
            Service,
            [msg(b'2', b""), row(), msg(b's', b""), ready()].concat(),
        ),
        (Caller, close),
        (Service, [msg(b'3', b""), ready()].concat()),
    ];
    let want = |outcome: &str| ex(text, text, outcome, None);
    assert_eq!(
        every_cut(new, &script)[1..],
        [want("1 row"), want("0 rows"), want("1 row, suspended")]
    );
}

#[test]
fn an_error_in_a_batch_skips_the_rest_of_it() {
    // One Sync for two executions (a pipeline): the first fails, the second is never run.
    let batch = [
        parse("", "SELECT 1/$1"),
        bind("", "0"),
        execute(0),
        parse("", "SELECT 2"),
        bind("", "1"),
        execute(0),
        sync(),
    ]
    .concat();
    let bad_parse = [parse("", "SELEC 1"), bind("", "1"), execute(0), sync()].concat();
    let parse_only = [parse("q", "SELEC 2"), caller(frontend::flush)].concat();
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, startup()),
        (Service, welcome()),
        (Caller, batch),
        (
            Service,
            [
                msg(b'1', b""),
                msg(b'2', b""),
                error("22012", "division by zero"),
                ready(),
            ]
            .concat(),
        ),
        (Caller, bad_parse),
        (
            Service,
            [error("42601", "syntax error at or near \"SELEC\""), ready()].concat(),
        ),
        (Caller, parse_only),
        (Service, error("42601", "syntax error")),
        (Caller, [bind("q", "1"), execute(0)].concat()),
        (Caller, sync()),
        (Service, ready()),
        (Caller, query("SELECT 3")),
        (Service, [row(), complete("SELECT 1"), ready()].concat()),
    ];
    let got = every_cut(new, &script);
    assert_eq!(
        got[1..],
        [
            ex(
                "SELECT 1/$1",
                "SELECT ?/$1",
                "error",
                Some("SQLSTATE 22012: division by zero")
            ),
            ex(
                "SELEC 1",
                "SELEC ?",
                "error",
                Some("SQLSTATE 42601: syntax error at or near \"SELEC\"")
            ),
            ex(
                "SELEC 2",
                "SELEC ?",
                "error",
                Some("SQLSTATE 42601: syntax error")
            ),
            ex("SELECT 3", "SELECT ?", "1 row", None),
        ]
    );
}

#[test]
fn ssl_and_gss_requests() {
    let ssl = caller(frontend::ssl_request);
    let gss = [0, 0, 0, 8, 4, 210, 22, 48];
    let refused: Vec<(_, Vec<u8>)> = vec![
        (Caller, gss.to_vec()),
        (Service, b"N".to_vec()),
        (Caller, ssl.clone()),
        (Service, b"N".to_vec()),
        (Caller, startup()),
        (Service, welcome()),
    ];
    assert_eq!(
        every_cut(new, &refused),
        vec![
            ex("GSSENCRequest", "startup", "refused", None),
            ex("SSLRequest", "startup", "refused", None),
            ex("startup user=app database=shop", "startup", "ready", None),
        ]
    );
    let mut decoder = Postgres::new();
    let t = Instant::now();
    decoder.caller_sent(&ssl, t);
    decoder.service_sent(b"S", t + Duration::from_millis(1));
    decoder.caller_sent(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", t);
    decoder.service_sent(b"\x16\x03\x03\x00\x7a\x02", t);
    let got = decoder.take();
    assert_eq!(
        seen(&got),
        vec![ex("SSLRequest", "startup", "encrypted", None)]
    );
    assert_eq!(got[0].latency, Duration::from_millis(1));
    assert_eq!(decoder.state(), State::Encrypted);
}

#[test]
fn copy_in_and_out_keep_the_stream_in_step() {
    let data = caller(|b| {
        frontend::CopyData::new(&b"1\tx\n"[..]).unwrap().write(b);
        frontend::CopyData::new(&b"2\ty\n"[..]).unwrap().write(b);
        frontend::copy_done(b);
    });
    let out = [
        msg(b'H', b"\0\0\0"),
        msg(b'd', b"1\tx\n"),
        msg(b'd', b"2\ty\n"),
        msg(b'c', b""),
    ]
    .concat();
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, startup()),
        (Service, welcome()),
        (Caller, query("COPY t FROM STDIN")),
        (Service, msg(b'G', b"\0\0\0")),
        (Caller, data),
        (Service, [complete("COPY 2"), ready()].concat()),
        (Caller, query("COPY t TO STDOUT")),
        (Service, [out, complete("COPY 2"), ready()].concat()),
    ];
    assert_eq!(
        every_cut(new, &script)[1..],
        [
            ex("COPY t FROM STDIN", "COPY t FROM STDIN", "COPY 2", None),
            ex("COPY t TO STDOUT", "COPY t TO STDOUT", "COPY 2", None),
        ]
    );
}

#[test]
fn a_failed_login_and_a_cancel_request() {
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, startup()),
        (Service, msg(b'R', &[0, 0, 0, 3])),
        (
            Caller,
            caller(|b| frontend::password_message(b"wrong", b).unwrap()),
        ),
        (
            Service,
            error("28P01", "password authentication failed for user \"app\""),
        ),
    ];
    assert_eq!(
        every_cut(new, &script),
        vec![ex(
            "startup user=app database=shop",
            "startup",
            "error",
            Some("SQLSTATE 28P01: password authentication failed for user \"app\"")
        )]
    );
    let cancel = caller(|b| frontend::cancel_request(1, 2, b));
    assert!(looks_like(&cancel));
    assert_eq!(
        every_cut(new, &[(Caller, cancel)]),
        vec![ex("cancel request", "cancel request", "sent", None)]
    );
}

#[test]
fn a_huge_row_is_counted_not_kept() {
    let mut decoder = Postgres::new();
    let t = Instant::now();
    decoder.caller_sent(&startup(), t);
    decoder.service_sent(&welcome(), t);
    decoder.caller_sent(&query("SELECT big FROM t"), t);
    let len: u32 = 100 << 20;
    let mut head = vec![b'D'];
    head.extend_from_slice(&(len + 4).to_be_bytes());
    decoder.service_sent(&head, t);
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..100 {
        decoder.service_sent(&chunk, t);
    }
    decoder.service_sent(&[complete("SELECT 1"), ready()].concat(), t);
    assert_eq!(
        seen(&decoder.take()[1..]),
        vec![ex("SELECT big FROM t", "SELECT big FROM t", "1 row", None)]
    );
}

#[test]
fn what_cannot_be_matched_or_read_is_given_up() {
    let mut decoder = Postgres::new();
    let t = Instant::now();
    decoder.caller_sent(&startup(), t);
    decoder.service_sent(&welcome(), t);
    decoder.service_sent(&complete("SELECT 1"), t);
    assert_eq!(decoder.state(), State::GaveUp, "an answer to nothing");
    let mut decoder = Postgres::new();
    decoder.caller_sent(&startup(), t);
    decoder.caller_sent(b"GET / HTTP/1.1\r\n\r\n", t);
    assert_eq!(decoder.state(), State::GaveUp, "not a message");
    let mut decoder = Postgres::new();
    decoder.caller_sent(&startup(), t);
    decoder.caller_sent(&query("SELECT 1").repeat(MAX_PENDING + 1), t);
    assert_eq!(decoder.state(), State::GaveUp, "a flood");
    assert!(decoder.conn.items.is_empty());
}

#[test]
fn what_had_no_answer_is_told_at_the_end() {
    let mut decoder = Postgres::new();
    let t = Instant::now();
    decoder.caller_sent(&startup(), t);
    decoder.service_sent(&welcome(), t);
    decoder.caller_sent(&query("SELECT pg_sleep(10)"), t);
    decoder.service_sent(
        &error(
            "57P01",
            "terminating connection due to administrator command",
        ),
        t,
    );
    decoder.end(t + Duration::from_secs(2));
    let got = decoder.take();
    assert_eq!(
        seen(&got[1..]),
        vec![ex(
            "SELECT pg_sleep(10)",
            "SELECT pg_sleep(?)",
            "no reply",
            Some("SQLSTATE 57P01: terminating connection due to administrator command")
        )]
    );
    assert_eq!(got[1].latency, Duration::from_secs(2));
}

#[test]
fn only_postgres_openings_look_like_postgres() {
    assert!(looks_like(&startup()));
    assert!(looks_like(&caller(frontend::ssl_request)));
    assert!(!looks_like(&startup()[..7]));
    assert!(!looks_like(b"*1\r\n$4\r\nPING\r\n"));
    assert!(!looks_like(&[0, 0, 0, 8, 0, 2, 0, 0]));
    assert!(!looks_like(&[0, 1, 0, 0, 0, 3, 0, 0]));
}

#[test]
fn a_query_is_kept_to_resend_with_its_parameters_user_and_database_never_a_password() {
    use crate::traffic::decode::resend::{Query, Resend};
    let mut decoder = Postgres::new();
    decoder.keep(1000);
    let at = Instant::now();
    let mut batch = parse("s1", "SELECT name FROM users WHERE id = $1");
    batch.extend(bind("s1", "42"));
    batch.extend(execute(0));
    batch.extend(sync());
    let script = [
        startup(),
        caller(|b| frontend::password_message(b"s3cret", b).unwrap()),
        query("SELECT 1"),
        query("ALTER ROLE app PASSWORD 'x'"),
        query(&format!("SELECT '{}'", "x".repeat(2000))),
        batch,
    ];
    let answers = [
        welcome(),
        [complete("SELECT 1"), ready()].concat(),
        [complete("ALTER ROLE"), ready()].concat(),
        [complete("SELECT 1"), ready()].concat(),
        [
            msg(b'1', b""),
            msg(b'2', b""),
            complete("SELECT 0"),
            ready(),
        ]
        .concat(),
    ];
    decoder.caller_sent(&script.concat(), at);
    decoder.service_sent(&answers.concat(), at);
    let kept: Vec<Resend> = decoder
        .take()
        .into_iter()
        .map(|e| (*e.resend.unwrap()).clone())
        .collect();
    let query = |text: &str, params: Vec<Option<Vec<u8>>>, extended| Query {
        user: "app".into(),
        database: "shop".into(),
        text: text.into(),
        types: Vec::new(),
        formats: if extended { vec![0] } else { Vec::new() },
        params,
        extended,
    };
    assert!(matches!(&kept[0], Resend::Withheld(w) if w.contains("not a query")));
    assert_eq!(
        kept[1],
        Resend::Postgres(query("SELECT 1", Vec::new(), false))
    );
    assert_eq!(kept[2], Resend::credential());
    assert!(matches!(&kept[3], Resend::Withheld(w) if w.contains("over the 1000 kept")));
    let bound = query(
        "SELECT name FROM users WHERE id = $1",
        vec![Some(b"42".to_vec())],
        true,
    );
    assert_eq!(kept[4], Resend::Postgres(bound));
    assert_eq!(kept.len(), 5);
}

#[test]
fn a_refusal_reads_as_an_error_response_and_an_opening_is_told_whole() {
    let fatal = fatal("57P03", "down");
    let mut buf = BytesMut::from(&fatal[..]);
    let parsed = postgres_protocol::message::backend::Message::parse(&mut buf).unwrap();
    let Some(postgres_protocol::message::backend::Message::ErrorResponse(body)) = parsed else {
        panic!("not an ErrorResponse");
    };
    assert_eq!(error_fields(&body), ("57P03".into(), "down".into()));
    let ssl = [0, 0, 0, 8, 4, 210, 22, 47];
    assert_eq!(opening(&ssl[..6]), None);
    assert_eq!(opening(&ssl), Some((8, true)));
    let mut startup = BytesMut::new();
    frontend::startup_message([("user", "app")], &mut startup).unwrap();
    assert_eq!(opening(&startup), Some((startup.len(), false)));
    assert_eq!(opening(&startup[..startup.len() - 1]), None);
}
