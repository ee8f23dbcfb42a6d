//! Faults on a Redis edge, asked command by command, through the real proxy to a real
//! `redis-server`: a command a fault names (`method=GET`) answered `-ERR` or held while the
//! others are the service's, in the order asked; `first` counting commands; pub/sub going
//! on plain after `SUBSCRIBE`.

use crate::decode::redis::redis_server;
use crate::traffic::proxied;
use devstack::traffic::fault::read;
use devstack::traffic::stats::Kind;
use devstack::traffic::{Caller, Protocol};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Commands as clients send them, pipelined in one write.
fn commands(lines: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in lines {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in *args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    out
}

/// Exactly `want`'s length read back, within 10 s.
async fn answer(conn: &mut TcpStream, want: &str) -> String {
    let mut got = vec![0u8; want.len()];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut got));
    read.await.expect("answered").expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_faults_touch_the_commands_they_name_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_server(dir.path());
    let backend = SocketAddr::from(([127, 0, 0, 1], redis.port));
    let p = proxied("cache", Some(backend), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    faults.add(read(r#"cache error=500 method=GET body="no GET today""#).unwrap());
    faults.add(read("cache latency=300ms method=SET").unwrap());
    faults.add(read("cache error=500 method=PING first=2").unwrap());
    let mut conn = TcpStream::connect(p.addr).await.unwrap();
    let started = Instant::now();
    let sent = commands(&[
        &["SET", "k", "v"],
        &["GET", "k"],
        &["INCR", "n"],
        &["STRLEN", "k"],
    ]);
    conn.write_all(&sent).await.unwrap();
    let want = "+OK\r\n-ERR no GET today\r\n:1\r\n:1\r\n";
    assert_eq!(answer(&mut conn, want).await, want);
    assert!(started.elapsed() >= Duration::from_millis(300), "SET held");
    // The SET reached the service; the GET never did (STRLEN says `k` holds "v").
    let pings = commands(&[&["PING"], &["PING"], &["PING"]]);
    conn.write_all(&pings).await.unwrap();
    let want = "-ERR devstack: a fault set on cache answered an error\r\n";
    let want = format!("{want}{want}+PONG\r\n");
    assert_eq!(answer(&mut conn, &want).await, want);
    drop(conn);
    let edge = p
        .edge_when(&Caller::External, "cache", |e| e.requests >= 7)
        .await;
    assert_eq!((edge.requests, edge.injected), (7, 4));
    let seen: Vec<(String, Option<String>)> = (p.proxy.stats().recent().iter())
        .map(|r| match &r.kind {
            Kind::Redis(d) => (d.command.clone(), r.injected.clone()),
            other => panic!("not Redis: {other:?}"),
        })
        .collect();
    let error = Some("error 500".to_string());
    assert_eq!(seen[0], ("SET k".into(), Some("latency 300ms".into())));
    assert_eq!(seen[1], ("GET k".into(), error.clone()));
    assert_eq!(seen[2], ("INCR n".into(), None));
    assert_eq!(
        seen[4..],
        [
            ("PING".into(), error.clone()),
            ("PING".into(), error),
            ("PING".into(), None)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_goes_on_plain_while_faults_are_asked_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_server(dir.path());
    let backend = SocketAddr::from(([127, 0, 0, 1], redis.port));
    let p = proxied("cache", Some(backend), Protocol::Auto);
    p.proxy
        .stats()
        .faults()
        .add(read("cache error=500 method=GET").unwrap());
    let mut sub = TcpStream::connect(p.addr).await.unwrap();
    sub.write_all(&commands(&[&["SUBSCRIBE", "news"]]))
        .await
        .unwrap();
    let subscribed = "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n";
    assert_eq!(answer(&mut sub, subscribed).await, subscribed);
    let mut publisher = TcpStream::connect(p.addr).await.unwrap();
    let publish = commands(&[&["PUBLISH", "news", "hello"]]);
    publisher.write_all(&publish).await.unwrap();
    assert_eq!(answer(&mut publisher, ":1\r\n").await, ":1\r\n");
    // Said by the service unasked, and passed on at once.
    let message = "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
    assert_eq!(answer(&mut sub, message).await, message);
}
