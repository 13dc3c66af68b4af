//! Request bodies within the gateway's limits (docs/security.md): a body that trickles in is cut
//! off at `body_timeout` (408), bodies together may hold at most `max_body_bytes_in_flight`
//! (503 beyond, with `Retry-After`), and a body that would parse into far more memory than it
//! takes is a 400 before anything parses it. Each time the gateway stays healthy for the others.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers: a failed unwrap is a failed test"
)]

use std::time::Duration;

use crate::support::{self, FakeUpstream, RawConnection, TestGateway, chat_request};
use serde_json::Value;
use tokio::time::Instant;

async fn gateway(upstream: &FakeUpstream, server: &str) -> TestGateway {
    let config = support::openai_config(&upstream.base_url(), "")
        .replace("shutdown_grace: 2s", &format!("shutdown_grace: 2s, {server}"));
    TestGateway::start(&config).await
}

/// Opens a connection and sends a request head announcing `length` body bytes, and `sent` of
/// them.
async fn start_request(gateway: &TestGateway, length: usize, sent: &[u8]) -> RawConnection {
    let mut connection = RawConnection::open(gateway.addr).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n\r\n"
    );
    connection.send(head.as_bytes()).await;
    connection.send(sent).await;
    connection
}

/// The head and body of the response on `connection`, within 5 s.
async fn response(connection: &mut RawConnection) -> (String, String) {
    connection.response(Duration::from_secs(5)).await.expect("an answer within 5 s")
}

fn error_code(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap()["error"]["code"].clone()
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_a_408_at_the_body_timeout() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream, "body_timeout: 300ms").await;
    let started = Instant::now();
    let mut slow = start_request(&gateway, 100, br#"{"model":"chat","#).await;
    let (head, body) = response(&mut slow).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(error_code(&body), "request_timeout");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(upstream.hits(), 0);
    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
}

#[tokio::test]
async fn bodies_beyond_the_gateway_wide_budget_get_a_503_until_one_is_done() {
    let upstream = FakeUpstream::start().await;
    let gateway =
        gateway(&upstream, "max_body_size: 64KiB, max_body_bytes_in_flight: 100KiB").await;
    // Two bodies of 48 KiB on their way take 96 KiB of the budget...
    let mut first = start_request(&gateway, 48 << 10, b"{").await;
    let second = start_request(&gateway, 48 << 10, b"{").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so a third is refused at once, before a byte of it is read.
    let mut third = start_request(&gateway, 48 << 10, b"").await;
    let (head, body) = response(&mut third).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    assert_eq!(error_code(&body), "gateway_overloaded");
    // A small request still fits in what is left.
    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
    // The first body is finished (with junk: a 400), and its share comes back.
    first.send(&vec![b' '; (48 << 10) - 1]).await;
    let (head, _) = response(&mut first).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let mut fourth = start_request(&gateway, 48 << 10, b"{").await;
    fourth.send(&vec![b' '; (48 << 10) - 1]).await;
    let (head, _) = response(&mut fourth).await;
    assert!(head.starts_with("HTTP/1.1 400"), "read, not refused: {head}");
    drop(second);
    assert_eq!(upstream.hits(), 1, "only the small request reached the upstream");
}

#[tokio::test]
async fn a_body_that_would_parse_into_far_more_than_its_size_is_a_400_before_parsing() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream, "max_body_size: 10MiB").await;
    let bodies = [
        // Duplicate keys: each would be a member in memory.
        format!(
            r#"{{"model":"chat","messages":[{{"role":"user","content":"hi"}}]{}}}"#,
            r#","a":0"#.repeat(10_001)
        ),
        // Short values by the million.
        format!(
            r#"{{"model":"chat","messages":[{{"role":"user","content":"hi"}}],"x":[{}0]}}"#,
            "0,".repeat(600_000)
        ),
    ];
    for body in bodies {
        let response = gateway.post_raw(body).await;
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "request_too_complex", "{error}");
    }
    assert_eq!(upstream.hits(), 0);
    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
}
