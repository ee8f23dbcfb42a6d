//! Faults (issue 26) on raw TCP through the real proxy on its sockets: a fault asked once per
//! connection (`latency` holding each answer, `bandwidth` pacing the bytes, `reset`, `timeout`
//! holding without relaying, `slow_close` passing an end on late), `cut` refusing new
//! connections (TCP and HTTP alike) while open ones go on; only its own edge touched, and each
//! connection it touched recorded with it, apart from the service's errors.

use crate::traffic::{http_backend, line_backend, proxied};
use devstack::traffic::fault::parse;
use devstack::traffic::{Caller, Protocol};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that sends `len` bytes on each connection, then closes it.
async fn source_backend(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let bytes = vec![b'x'; len];
                drop(stream.write_all(&bytes).await);
            });
        }
    });
    addr
}

/// A line sent and its echo back; how long the echo took.
async fn echoed(stream: &mut TcpStream, line: &str) -> Duration {
    let started = Instant::now();
    stream.write_all(line.as_bytes()).await.unwrap();
    let mut back = vec![0u8; line.len() + 6];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, format!("echo: {line}").as_bytes());
    started.elapsed()
}

/// What a read of `stream` gives within `wait`: the bytes, the error's kind, or None.
async fn read_within(stream: &mut TcpStream, wait: Duration) -> Option<Result<usize, ErrorKind>> {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(wait, stream.read(&mut buf)).await;
    read.ok().map(|r| r.map_err(|e| e.kind()))
}

/// Whether a new connection that sends `bytes` is reset: as it connects, as it writes or as it
/// reads (whichever the reset meets first).
async fn is_reset(addr: SocketAddr, bytes: &[u8]) -> bool {
    let read = match TcpStream::connect(addr).await {
        Ok(mut stream) => match stream.write_all(bytes).await {
            Ok(()) => read_within(&mut stream, Duration::from_secs(5)).await,
            Err(e) => Some(Err(e.kind())),
        },
        Err(e) => Some(Err(e.kind())),
    };
    match read {
        Some(Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)) => true,
        other => panic!("not reset: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_latency_holds_each_answer_and_leaves_another_edge_alone() {
    let p = proxied("lines", Some(line_backend(None).await), Protocol::Tcp);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["orders->lines", "reset"]).unwrap());
    faults.add(parse(&["lines", "latency=300ms", "method=GET"]).unwrap());
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    // Neither fault is this connection's: the one for `orders`, the one for GET requests
    // (told by their counts below, not by a clock).
    echoed(&mut stream, "PING\n").await;
    drop(stream);
    faults.add(parse(&["lines", "latency=300ms"]).unwrap());
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    for line in ["PING\n", "SET a b\n"] {
        // Never sooner than asked (how close to it: a bench's question, not a test's).
        let took = echoed(&mut stream, line).await;
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }
    drop(stream);
    let edge = p
        .edge_when(&Caller::External, "lines", |e| e.requests == 2)
        .await;
    assert_eq!((edge.injected, edge.errors), (1, 0));
    let touched: Vec<u64> = faults.list().iter().map(|f| f.touched).collect();
    assert_eq!(touched, [0, 0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_bandwidth_paces_the_bytes_to_its_rate() {
    const LEN: usize = 400_000;
    let p = proxied("bulk", Some(source_backend(LEN).await), Protocol::Tcp);
    p.proxy
        .stats()
        .faults()
        .add(parse(&["bulk", "bandwidth=200KB"]).unwrap());
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let first = stream.read(&mut buf).await.unwrap();
    let (started, mut got) = (Instant::now(), first);
    while got < LEN {
        match stream.read(&mut buf).await.unwrap() {
            0 => break,
            n => got += n,
        }
    }
    assert_eq!(got, LEN);
    drop(stream);
    // Paced: never faster than asked (how close it comes is benches/fault.sh's to measure,
    // not a test's on a shared machine).
    let rate = (LEN - first) as f64 / started.elapsed().as_secs_f64();
    assert!(rate <= 220_000.0, "{rate:.0} B/s");
    let edge = p
        .edge_when(&Caller::External, "bulk", |e| e.requests == 1)
        .await;
    assert_eq!((edge.injected, edge.bytes_out), (1, LEN as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_reset_resets_at_once_and_timeout_holds_until_the_caller_leaves() {
    let p = proxied("lines", Some(line_backend(None).await), Protocol::Tcp);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["lines", "reset", "first=1"]).unwrap());
    faults.add(parse(&["lines", "timeout", "first=1"]).unwrap());
    assert!(is_reset(p.addr, b"PING\n").await);
    let mut held = TcpStream::connect(p.addr).await.unwrap();
    held.write_all(b"PING\n").await.unwrap();
    let read = read_within(&mut held, Duration::from_millis(500)).await;
    assert_eq!(read, None, "nothing comes while it is held");
    // The caller leaves (shuts its side): the proxy lets the connection go.
    held.shutdown().await.unwrap();
    let read = read_within(&mut held, Duration::from_secs(5)).await;
    assert_eq!(read, Some(Ok(0)));
    // Both spent: the next connection goes through (its echo comes back).
    let mut fine = TcpStream::connect(p.addr).await.unwrap();
    echoed(&mut fine, "PING\n").await;
    drop(fine);
    let edge = p
        .edge_when(&Caller::External, "lines", |e| e.requests == 3)
        .await;
    assert_eq!((edge.injected, edge.errors), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_refuses_new_connections_while_open_ones_go_on() {
    let p = proxied("lines", Some(line_backend(None).await), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    let mut open = TcpStream::connect(p.addr).await.unwrap();
    echoed(&mut open, "PING\n").await;
    let id = faults.add(parse(&["lines", "cut"]).unwrap());
    assert!(is_reset(p.addr, b"PING\n").await);
    echoed(&mut open, "still here\n").await;
    assert!(faults.remove(id));
    let mut again = TcpStream::connect(p.addr).await.unwrap();
    echoed(&mut again, "PING\n").await;
    // HTTP alike: the connection is reset before any request is read.
    let (backend, _) = http_backend(false).await;
    let h = proxied("users", Some(backend), Protocol::Auto);
    h.proxy
        .stats()
        .faults()
        .add(parse(&["users", "cut"]).unwrap());
    assert!(is_reset(h.addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await);
    let edge = h
        .edge_when(&Caller::External, "users", |e| e.requests == 1)
        .await;
    assert_eq!((edge.injected, edge.errors), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_passes_the_service_s_close_on_late() {
    let p = proxied("bye", Some(source_backend(4).await), Protocol::Tcp);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["bye", "slow_close=600ms", "first=1"]).unwrap());
    for late in [true, false] {
        let mut stream = TcpStream::connect(p.addr).await.unwrap();
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).await.unwrap();
        let started = Instant::now();
        let read = read_within(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(read, Some(Ok(0)));
        let took = started.elapsed();
        // (The second, untouched, is told by the edge's count below, not by a clock.)
        if late {
            assert!(took >= Duration::from_millis(550), "{took:?}");
        }
    }
    let edge = p
        .edge_when(&Caller::External, "bye", |e| e.requests == 2)
        .await;
    assert_eq!(edge.injected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_on_a_redis_edge_answers_each_command_and_leaves_plain_tcp_alone() {
    let p = proxied("cache", Some(line_backend(None).await), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["cache", "error=500", "body=down for a test"]).unwrap());
    let mut redis = TcpStream::connect(p.addr).await.unwrap();
    // Two commands pipelined, then one in two pieces: one error each, none from the service.
    redis
        .write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        .await
        .unwrap();
    let error = b"-ERR down for a test\r\n";
    let mut got = vec![0u8; error.len() * 2];
    redis.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [&error[..], &error[..]].concat());
    redis.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    redis.write_all(b"NG\r\n").await.unwrap();
    let mut got = vec![0u8; error.len()];
    redis.read_exact(&mut got).await.unwrap();
    assert_eq!(got, error);
    drop(redis);
    // A byte stream that is not Redis has no error to say: it goes through.
    let mut plain = TcpStream::connect(p.addr).await.unwrap();
    echoed(&mut plain, "\x00plain\n").await;
    drop(plain);
    let edge = p
        .edge_when(&Caller::External, "cache", |e| e.requests == 4)
        .await;
    assert_eq!((edge.injected, edge.errors), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_on_a_postgres_edge_refuses_its_startup_with_a_sqlstate() {
    let p = proxied("db", Some(line_backend(None).await), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["db", "error=503"]).unwrap());
    let mut pg = TcpStream::connect(p.addr).await.unwrap();
    // An SSL request is declined, then the startup refused.
    pg.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    let mut no = [0u8; 1];
    pg.read_exact(&mut no).await.unwrap();
    assert_eq!(&no, b"N");
    let params = b"user\0app\0database\0app\0\0";
    let mut startup = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196_608u32.to_be_bytes());
    startup.extend_from_slice(params);
    pg.write_all(&startup).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), pg.read_to_end(&mut answer))
        .await
        .expect("the connection is closed after the error")
        .unwrap();
    assert_eq!(answer[0], b'E');
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("C57P03\0"), "{text:?}");
    assert!(
        text.contains("a fault set on db answered an error"),
        "{text:?}"
    );
    let edge = p
        .edge_when(&Caller::External, "db", |e| e.requests >= 1)
        .await;
    assert_eq!((edge.injected, edge.errors), (edge.requests, 0), "{edge:?}");
}
