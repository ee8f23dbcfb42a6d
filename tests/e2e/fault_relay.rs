//! Faults (issue 26) through the real proxy on its sockets: what a fault set on the stack's
//! `Faults` does to HTTP/1 and h2c requests (latency, an error answered here, a reset, a hold
//! without answer; on HTTP/1 an answer paced, a close made late), that it touches only its own
//! edge, and that the edge counts what it did apart from the service's own errors.

use crate::traffic::{full, h2_client, http_backend, proxied};
use devstack::traffic::fault::{parse, read};
use devstack::traffic::stats::Kind;
use devstack::traffic::{Caller, Protocol};
use http_body_util::BodyExt;
use hyper::Request;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 GET of `path` on a connection of its own: what came back, or the read's error.
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_faults_answer_delay_reset_and_hold_only_the_requests_they_match() {
    let (backend, _) = http_backend(false).await;
    let p = proxied("users", Some(backend), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["users", "error=503", "body=down", "path=/fail"]).unwrap());
    faults.add(parse(&["users", "latency=250ms", "path=/slow"]).unwrap());
    faults.add(parse(&["users", "reset", "path=/reset"]).unwrap());
    faults.add(parse(&["orders->users", "error=500"]).unwrap());
    let failed = get(p.addr, "/fail").await.unwrap();
    assert!(failed.starts_with("HTTP/1.1 503"), "{failed}");
    assert!(failed.ends_with("\r\n\r\ndown"), "{failed}");
    let started = Instant::now();
    let slow = get(p.addr, "/slow/bytes/10").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(slow.starts_with("HTTP/1.1 404") || slow.starts_with("HTTP/1.1 200"));
    let reset = get(p.addr, "/reset").await;
    assert_eq!(
        reset.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "{reset:?}"
    );
    // Another path, and the fault for `orders` alone, leave an external caller's request be.
    let fine = get(p.addr, "/bytes/10").await.unwrap();
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    let edge = p
        .edge_when(&Caller::External, "users", |e| e.requests >= 4)
        .await;
    assert_eq!(
        (edge.injected, edge.errors),
        (3, 0),
        "a fault's errors are not the service's"
    );
    let listed = faults.list();
    let touched: Vec<u64> = listed.iter().map(|f| f.touched).collect();
    assert_eq!(touched, [1, 1, 1, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_bandwidth_paces_the_answer_and_slow_close_makes_its_close_late() {
    const LEN: usize = 100_000;
    let (backend, _) = http_backend(false).await;
    let p = proxied("users", Some(backend), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["users", "bandwidth=100KB", "path=/bytes"]).unwrap());
    faults.add(parse(&["users", "slow_close=500ms", "path=/late"]).unwrap());
    let mut conn = TcpStream::connect(p.addr).await.unwrap();
    let request = format!("GET /bytes/{LEN} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let first = conn.read(&mut buf).await.unwrap();
    let (started, mut rest) = (Instant::now(), 0);
    loop {
        match conn.read(&mut buf).await.unwrap() {
            0 => break,
            n => rest += n,
        }
    }
    assert!(first + rest > LEN, "the head and the whole body came");
    // Paced: never faster than asked (how close it comes is benches/fault.sh's to measure).
    let rate = rest as f64 / started.elapsed().as_secs_f64();
    assert!(rate <= 110_000.0, "{rate:.0} B/s");
    // The answer comes at once, the close half a second later.
    let started = Instant::now();
    let late = get(p.addr, "/late").await.unwrap();
    assert!(late.starts_with("HTTP/1.1 404"), "{late}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let edge = p
        .edge_when(&Caller::External, "users", |e| e.requests >= 2)
        .await;
    assert_eq!((edge.injected, edge.errors), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_faults_answer_delay_pace_and_reset_a_stream() {
    let (backend, _) = http_backend(true).await;
    let p = proxied("grpc", Some(backend), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    faults.add(parse(&["grpc", "error=503", "path=/fail"]).unwrap());
    faults.add(parse(&["grpc", "latency=250ms", "path=/slow"]).unwrap());
    faults.add(parse(&["grpc", "reset", "path=/reset"]).unwrap());
    faults.add(parse(&["grpc", "bandwidth=100KB", "path=/bytes"]).unwrap());
    let mut sender = h2_client(p.addr).await;
    let mut send = async |path: &str| {
        let req = Request::post(format!("http://{}{path}", p.addr))
            .body(full("request"))
            .unwrap();
        match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                Ok((status, String::from_utf8_lossy(&body).into_owned()))
            }
            Err(e) => Err(e),
        }
    };
    let (status, body) = send("/fail").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("a fault set on grpc answered 503"), "{body}");
    let started = Instant::now();
    let (status, _) = send("/slow/echo").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_ne!(status, 503);
    // 200 KB at 100 KB/s, frame by frame (the first goes at once): about 2 s.
    let started = Instant::now();
    let (status, _) = send("/bytes/200000").await.unwrap();
    assert_eq!(status, 200);
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(1600),
        "paced, not at once: {took:?}"
    );
    let reset = send("/reset").await;
    assert!(reset.is_err(), "the stream is reset: {reset:?}");
    // The connection goes on: only that stream was reset.
    let (status, body) = send("/echo").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "request"));
    let edge = p
        .edge_when(&Caller::External, "grpc", |e| e.requests >= 5)
        .await;
    assert_eq!((edge.injected, edge.errors), (4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_an_error_fault_touches_gets_a_grpc_status_and_message() {
    let (backend, _) = http_backend(true).await;
    let p = proxied("grpc", Some(backend), Protocol::Auto);
    let faults = p.proxy.stats().faults();
    let said = read(r#"grpc error=grpc:unavailable body="users is down: 100%" path=/a"#).unwrap();
    faults.add(said);
    // An HTTP status on a gRPC call: the code gRPC reads off it (503: UNAVAILABLE).
    faults.add(read("grpc error=404 path=/b").unwrap());
    let mut sender = h2_client(p.addr).await;
    let mut call = async |path: &str, grpc: bool| {
        let mut req = Request::post(format!("http://{}{path}", p.addr));
        if grpc {
            req = req.header("content-type", "application/grpc");
        }
        let resp = sender
            .send_request(req.body(full("request")).unwrap())
            .await;
        let resp = resp.unwrap();
        let field = |name: &str| {
            let value = resp.headers().get(name)?.to_str().ok()?;
            Some(value.to_string())
        };
        let said = (
            resp.status().as_u16(),
            field("grpc-status"),
            field("grpc-message"),
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (said, String::from_utf8_lossy(&body).into_owned())
    };
    let (said, body) = call("/a", true).await;
    let message = Some("users is down: 100%25".to_string());
    assert_eq!(said, (200, Some("14".into()), message));
    assert_eq!(body, "", "trailers only");
    let (said, _) = call("/b", true).await;
    assert_eq!((said.0, said.1.as_deref()), (200, Some("12")));
    // The same fault on a call that is not gRPC: the HTTP status nearest the code.
    let (said, body) = call("/a", false).await;
    assert_eq!((said.0, body.as_str()), (503, "users is down: 100%"));
    let edge = p
        .edge_when(&Caller::External, "grpc", |e| e.requests >= 3)
        .await;
    assert_eq!((edge.injected, edge.errors), (3, 0));
    let seen: Vec<_> = (p.proxy.stats().recent().iter())
        .map(|r| match &r.kind {
            Kind::Http { grpc_status, .. } => (*grpc_status, r.injected.clone()),
            other => panic!("not HTTP: {other:?}"),
        })
        .collect();
    let unavailable = Some("error grpc 14 UNAVAILABLE".to_string());
    assert_eq!(seen[0], (Some(14), unavailable));
    assert_eq!(seen[1], (Some(12), Some("error 404".into())));
}
