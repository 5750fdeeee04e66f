//! Every answer of the HTTP listeners carries the security headers, including those no route
//! writes: hyper's own `400` (a garbage request) and `431` (a head too large), and the `408`
//! of a request past its time. Raw TCP on 127.0.0.1, as a scanner or a broken client sends.

use axum::routing::get;
use axum::Router;
use std::time::Duration;
use studio_role_sync_engine::http::{serve_router, HttpLimits, SECURITY_HEADERS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` on a fresh connection and reads the whole answer (the server closes).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it read everything (431): a write error is fine.
    let _ = s.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && request.starts_with(b"GET /")
                    {
                        break;
                    }
                }
            }
        }
    });
    read.await.expect("an answer in time");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_headed(answer: &str, status: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer}"
    );
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    for (name, value) in SECURITY_HEADERS {
        assert!(
            head.contains(&format!("\r\n{name}: {}", value.to_ascii_lowercase())),
            "{status}: no {name}: {answer}"
        );
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let router = Router::new().route("/fast", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let (addr, _task) = serve_router(
        "127.0.0.1:0".parse().unwrap(),
        router,
        "(test)",
        limits,
        std::future::pending(),
    )
    .await
    .unwrap();

    assert_headed(
        &exchange(addr, b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n").await,
        "200",
    );
    assert_headed(
        &exchange(addr, b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n").await,
        "404",
    );
    assert_headed(
        &exchange(addr, b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await,
        "408",
    );
    assert_headed(
        &exchange(addr, b"\x01\x02 garbage \x7f\r\n\r\n").await,
        "400",
    );
    let mut big = b"GET /fast HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    assert_headed(&exchange(addr, &big).await, "431");
}
