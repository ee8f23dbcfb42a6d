//! The relay on scripted streams (`script`): the caller's bytes and the service's, cut where
//! each test says, and exactly what each side is sent back, with the records the exchange
//! leaves. The socket tests (`tests/e2e/traffic.rs`, `relay_props.rs`) run it on TCP against
//! real servers; these pin each behaviour byte for byte.

use super::message::MAX_HEAD;
use super::relay_streams;
use super::script::{Dialer, Log, Script, show};
use crate::sync::Locked;
use crate::traffic::capture::Settings;
use crate::traffic::limits::Limits;
use crate::traffic::{Attributor, Kind, Recorder, Sessions, Stats};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How a test's exchanges went: one line per record, and how many service connections the
/// relay opened.
struct Ran {
    records: Vec<String>,
    dialed: usize,
}

/// Relay `caller` (whose first bytes, `prefix`, were read while sniffing) to the service, each
/// connection the relay opens playing the next of `services`; every script must be played
/// through.
async fn run(prefix: &str, caller: &Script, services: &[Script]) -> Ran {
    run_faulted(prefix, caller, services, &[]).await
}

/// [`run`] with `faults` set on the stack first (each as its words).
async fn run_faulted(
    prefix: &str,
    caller: &Script,
    services: &[Script],
    faults: &[&[&str]],
) -> Ran {
    static CALLERS: OnceLock<Attributor> = OnceLock::new();
    let callers = CALLERS.get_or_init(|| Attributor::new(Sessions::new()));
    let mut lookup = callers.lookup(([127, 0, 0, 1], 9).into(), ([127, 0, 0, 1], 9).into());
    // Known before the first request: each record is counted when it is made.
    lookup.caller().await;
    let stats = Stats::new();
    for words in faults {
        stats
            .faults()
            .add(crate::traffic::fault::parse(words).unwrap());
    }
    let records = Recorder::new(lookup, "svc".into(), stats.clone());
    let dialer = Dialer::new(services);
    let dialed = dialer.dialed.clone();
    let relayed = relay_streams(
        prefix.as_bytes().to_vec(),
        caller.clone(),
        None,
        dialer,
        (records, Limits::default(), Settings::default()),
    );
    tokio::time::timeout(Duration::from_secs(10), relayed)
        .await
        .expect("the relay ends when the caller's script does");
    for script in std::iter::once(caller).chain(services) {
        script.assert_done();
    }
    Ran {
        records: recorded(&stats),
        dialed: dialed.load(Ordering::Relaxed),
    }
}

/// The records, each as `METHOD PATH STATUS in N out N [error]`.
fn recorded(stats: &Stats) -> Vec<String> {
    stats
        .recent()
        .iter()
        .map(|r| {
            let Kind::Http {
                method,
                path,
                status,
                ..
            } = &r.kind
            else {
                panic!("not an HTTP record: {r:?}")
            };
            let error = r.error.map(|e| format!(" {e:?}")).unwrap_or_default();
            let injected = (r.injected.as_ref())
                .map(|f| format!(" [{f}]"))
                .unwrap_or_default();
            format!(
                "{method} {path} {status} in {} out {}{error}{injected}",
                r.bytes_in, r.bytes_out
            )
        })
        .collect()
}

/// A response the proxy makes itself: `status`, its reason and `text`.
fn made(status: &str, text: &str, connection: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: {connection}\r\n\r\n{text}",
        text.len()
    )
}

const OK_A: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
const NOT_FOUND: &str = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";

#[tokio::test]
async fn a_keep_alive_pair_goes_on_one_service_connection_unchanged() {
    let get_a = "GET /a HTTP/1.1\r\nHost: x\r\nX-Odd:  spaced \r\n\r\n";
    let get_b = "GET /b?q=1 HTTP/1.1\r\nhost: x\r\n\r\n";
    let caller = Script::new("caller")
        .sends(&get_a["GET /a".len()..])
        .receives(OK_A)
        .sends(get_b)
        .receives(NOT_FOUND);
    let service = Script::new("service")
        .receives(get_a)
        .sends(OK_A)
        .receives(get_b)
        .sends(NOT_FOUND);
    let ran = run("GET /a", &caller, &[service]).await;
    assert_eq!(
        ran.records,
        ["GET /a 200 in 0 out 2", "GET /b?q=1 404 in 0 out 9"]
    );
    assert_eq!(ran.dialed, 1);
    assert!(!caller.was_shut(), "the caller closed first");
}

#[tokio::test]
async fn a_chunked_response_cut_anywhere_ends_where_its_last_chunk_does() {
    let pieces = [
        "HTTP/1.1 200 OK\r\nTransfer-Enc",
        "oding: chunked\r\n\r\n5",
        "\r",
        "\nhel",
        "lo\r\n1",
        "0;ext=\"a\"\r\n0123456789abcdef\r",
        "\n0\r\n",
        "X-Trailer: 1\r",
        "\n\r",
        "\n",
    ];
    let get = "GET /stream HTTP/1.1\r\n\r\n";
    let then = "GET /then HTTP/1.1\r\n\r\n";
    let caller = Script::new("caller")
        .sends(get)
        .receives(pieces.concat())
        .sends(then)
        .receives(OK_A);
    let mut service = Script::new("service").receives(get);
    for piece in pieces {
        service = service.sends(piece);
    }
    let service = service.receives(then).sends(OK_A);
    let ran = run("", &caller, &[service]).await;
    // Found to end at its last byte: not waited past (the next request would hang), not
    // before (the rest would be read as the next response, and the connection not kept).
    assert_eq!(
        ran.records,
        ["GET /stream 200 in 0 out 21", "GET /then 200 in 0 out 2"]
    );
    assert_eq!(ran.dialed, 1);
}

#[tokio::test]
async fn a_request_body_with_a_length_is_streamed_as_it_comes() {
    let log = Log::default();
    let head = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
    let answer = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let caller = Script::new("caller")
        .logged(&log)
        .sends(format!("{head}hel"))
        .sends("lo ")
        .sends("world")
        .receives(answer);
    let service = Script::new("service")
        .logged(&log)
        .receives(format!("{head}hello world"))
        .sends(answer);
    let ran = run("", &caller, &[service]).await;
    assert_eq!(ran.records, ["POST /upload 201 in 11 out 2"]);
    // Each piece reached the service before the caller sent the next.
    let log = log.locked().clone();
    let at = |entry: &str| {
        log.iter()
            .position(|e| e.ends_with(entry))
            .unwrap_or_else(|| panic!("no {entry:?} in {log:#?}"))
    };
    assert!(at("service< hel") < at("caller> lo "), "{log:#?}");
    assert!(at("service< lo ") < at("caller> world"), "{log:#?}");
}

#[tokio::test]
async fn an_interim_100_continue_reaches_the_caller_before_it_sends_the_body() {
    let head = "POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let interim = "HTTP/1.1 100 Continue\r\n\r\n";
    let last = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let caller = Script::new("caller")
        .sends(head)
        .receives(interim)
        .sends("hello")
        .receives(last);
    let service = Script::new("service")
        .receives(head)
        .sends(interim)
        .receives("hello")
        .sends(last);
    let ran = run("", &caller, &[service]).await;
    assert_eq!(ran.records, ["POST /c 200 in 5 out 0"]);
}

#[tokio::test]
async fn an_upgrade_is_tunnelled_both_ways_and_counted() {
    let upgrade = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let switching = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                     Upgrade: websocket\r\n\r\n";
    let caller = Script::new("caller")
        .sends(upgrade)
        .receives(format!("{switching}hi"))
        .sends("ping")
        .receives("pong!");
    // The service's first bytes come with its 101.
    let service = Script::new("service")
        .receives(upgrade)
        .sends(format!("{switching}hi"))
        .receives("ping")
        .sends("pong!");
    let ran = run("", &caller, &[service]).await;
    assert_eq!(ran.records, ["GET /ws 101 in 4 out 7"]);
    assert!(caller.was_shut(), "the service's close is passed on");
}

#[tokio::test]
async fn a_request_the_service_closed_on_unanswered_gets_a_502_and_is_not_sent_again() {
    let text = "devstack: svc closed the connection without answering\n";
    // Not sent again: what is not idempotent, and what has a body (which is not kept).
    for (request, connection, line) in [
        (
            "POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            "close",
            "POST /p 502 in 2",
        ),
        ("POST /p HTTP/1.1\r\n\r\n", "keep-alive", "POST /p 502 in 0"),
        (
            "GET /g HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            "close",
            "GET /g 502 in 2",
        ),
    ] {
        let caller = Script::new("caller").sends(request).receives(made(
            "502 Bad Gateway",
            text,
            connection,
        ));
        let service = Script::new("service").receives(request);
        let spare = Script::new("spare");
        let ran = run("", &caller, &[service, spare]).await;
        assert_eq!(ran.records, [format!("{line} out 0 Reset")]);
        assert_eq!(ran.dialed, 1, "{request}");
        // With a body the connection ends (what is left of the body is not read).
        assert_eq!(caller.was_shut(), connection == "close");
    }
}

#[tokio::test]
async fn a_service_that_closes_mid_response_closes_the_caller_s_connection() {
    let get = "GET /big HTTP/1.1\r\n\r\n";
    let part = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
    // What came is passed on; the caller sees the connection end 5 bytes short.
    let caller = Script::new("caller").sends(get).receives(part);
    let service = Script::new("service").receives(get).sends(part);
    let ran = run("", &caller, &[service]).await;
    assert_eq!(ran.records, ["GET /big 200 in 0 out 5 Reset"]);
    assert_eq!(
        ran.dialed, 1,
        "a request answered in part is not sent again"
    );
    assert!(caller.was_shut());
}

#[tokio::test]
async fn a_malformed_head_gets_400_and_the_service_never_sees_it() {
    for (bad, line) in [
        ("GET /\x01 HTTP/1.1\r\n\r\n", "GET ?"),
        // Framed two ways (request smuggling).
        (
            "POST /s HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /s",
        ),
    ] {
        let caller =
            Script::new("caller")
                .sends(bad)
                .receives(made("400 Bad Request", "", "close"));
        let ran = run("", &caller, &[]).await;
        assert_eq!(
            ran.records,
            [format!("{line} 400 in {} out 0", bad.len())],
            "{}",
            show(bad.as_bytes())
        );
        assert_eq!(ran.dialed, 0);
        assert!(caller.was_shut());
    }
}

#[tokio::test]
async fn a_head_over_64_kib_gets_431_and_the_service_never_sees_it() {
    let start = "GET /big HTTP/1.1\r\nX-Big: ";
    let mut caller = Script::new("caller").sends(start);
    // Past the limit with the last piece, whole fields or not.
    let piece = "a".repeat(MAX_HEAD / 4);
    for _ in 0..4 {
        caller = caller.sends(&piece);
    }
    let caller = caller.receives(made("431 Request Header Fields Too Large", "", "close"));
    let ran = run("", &caller, &[]).await;
    assert_eq!(
        ran.records,
        [format!("GET /big 431 in {} out 0", start.len() + MAX_HEAD)]
    );
    assert_eq!(ran.dialed, 0);
    assert!(caller.was_shut());
}

#[tokio::test]
async fn a_get_the_service_dropped_unanswered_is_sent_again_once() {
    let get = "GET /r HTTP/1.1\r\n\r\n";
    // Dropped (a restart under it), then answered on a new connection.
    let caller = Script::new("caller").sends(get).receives(OK_A);
    let dropped = Script::new("dropped").receives(get);
    let answering = Script::new("answering").receives(get).sends(OK_A);
    let ran = run("", &caller, &[dropped, answering]).await;
    assert_eq!(ran.records, ["GET /r 200 in 0 out 2"]);
    assert_eq!(ran.dialed, 2);

    // Dropped twice: the caller is told, and a third connection is not tried.
    let text = "devstack: svc closed the connection without answering\n";
    let caller =
        Script::new("caller")
            .sends(get)
            .receives(made("502 Bad Gateway", text, "keep-alive"));
    let dropped = [get, get].map(|get| Script::new("dropped").receives(get));
    let spare = Script::new("spare");
    let ran = run(
        "",
        &caller,
        &[dropped[0].clone(), dropped[1].clone(), spare],
    )
    .await;
    assert_eq!(ran.records, ["GET /r 502 in 0 out 0 Reset"]);
    assert_eq!(ran.dialed, 2);
}

#[tokio::test]
async fn a_post_after_the_service_closed_its_idle_connection_goes_on_a_new_one() {
    let get = "GET /a HTTP/1.1\r\n\r\n";
    let post = "POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
    let caller = Script::new("caller")
        .sends(get)
        .receives(OK_A)
        .sends(post)
        .receives(NOT_FOUND);
    // The first connection closes once it has answered: the POST must not be written to it
    // (it would be lost, and the caller answered 502).
    let first = Script::new("first").receives(get).sends(OK_A);
    let second = Script::new("second").receives(post).sends(NOT_FOUND);
    let ran = run("", &caller, &[first, second]).await;
    assert_eq!(
        ran.records,
        ["GET /a 200 in 0 out 2", "POST /b 404 in 1 out 9"]
    );
    assert_eq!(ran.dialed, 2);
}

#[tokio::test]
async fn a_fault_s_error_answers_for_the_service_then_lets_requests_through() {
    let get_a = "GET /a HTTP/1.1\r\nhost: x\r\n\r\n";
    let get_b = "GET /b HTTP/1.1\r\nhost: x\r\n\r\n";
    let caller = Script::new("caller")
        .sends(get_a)
        .receives(made("503 Service Unavailable", "down", "keep-alive"))
        .sends(get_b)
        .receives(OK_A);
    // The service sees only the second request.
    let service = Script::new("service").receives(get_b).sends(OK_A);
    let faults: &[&[&str]] = &[&["svc", "error=503", "body=down", "first=1"]];
    let ran = run_faulted("", &caller, &[service], faults).await;
    assert_eq!(
        ran.records,
        ["GET /a 503 in 0 out 0 [error 503]", "GET /b 200 in 0 out 2"]
    );
}

#[tokio::test]
async fn a_fault_for_another_edge_or_path_leaves_a_request_alone() {
    let get = "GET /a HTTP/1.1\r\nhost: x\r\n\r\n";
    let caller = Script::new("caller").sends(get).receives(OK_A);
    let service = Script::new("service").receives(get).sends(OK_A);
    let faults: &[&[&str]] = &[
        &["orders->svc", "error=503"],
        &["svc", "reset", "path=/b"],
        &["other", "timeout"],
    ];
    let ran = run_faulted("", &caller, &[service], faults).await;
    assert_eq!(ran.records, ["GET /a 200 in 0 out 2"]);
}

#[tokio::test]
async fn a_fault_s_latency_holds_the_request_before_it_goes_on() {
    let get = "GET /a HTTP/1.1\r\nhost: x\r\n\r\n";
    let caller = Script::new("caller").sends(get).receives(OK_A);
    let service = Script::new("service").receives(get).sends(OK_A);
    let faults: &[&[&str]] = &[&["svc", "latency=300ms"]];
    let started = std::time::Instant::now();
    let ran = run_faulted("", &caller, &[service], faults).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(ran.records, ["GET /a 200 in 0 out 2 [latency 300ms]"]);
}

#[tokio::test]
async fn a_fault_s_reset_or_timeout_sends_the_request_nowhere() {
    let get = "GET /a HTTP/1.1\r\nhost: x\r\n\r\n";
    for (effect, line) in [
        ("reset", "GET /a 0 in 0 out 0 Reset [reset]"),
        ("timeout", "GET /a 0 in 0 out 0 Timeout [timeout]"),
    ] {
        // The caller gets nothing; it gives up (closes) and the relay ends.
        let caller = Script::new("caller").sends(get);
        let ran = run_faulted("", &caller, &[], &[&["svc", effect]]).await;
        assert_eq!(ran.records, [line], "{effect}");
        assert_eq!(ran.dialed, 0);
    }
}
