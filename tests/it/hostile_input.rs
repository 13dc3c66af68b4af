//! Hostile input: slow clients, oversized headers, absurd bodies. Each gets a clear 4xx (or the
//! connection closed, for slow-loris), and the gateway stays healthy for everyone else.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{self, FakeUpstream, TestGateway, chat_request};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway(upstream: &FakeUpstream) -> TestGateway {
    let config = support::openai_config(&upstream.base_url(), "")
        .replace("shutdown_grace: 2s", "shutdown_grace: 2s, header_timeout: 300ms");
    TestGateway::start(&config).await
}

async fn still_healthy(gateway: &TestGateway) {
    assert_eq!(
        gateway.chat(&chat_request(false)).await.status(),
        200,
        "other clients are unaffected"
    );
}

async fn post(
    gateway: &TestGateway,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = gateway.client.post(gateway.url("/v1/chat/completions")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

async fn openai_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"].clone()
}

#[tokio::test]
async fn a_slow_loris_client_is_cut_off_after_the_header_timeout() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut slow = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n").await.unwrap();

    let started = tokio::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        if slow.write_all(b"x").await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // hyper may answer 408 before closing; the next read sees the close.
            }
            Err(_) => {}
        }
    }

    assert!(closed, "the connection was closed");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;

    let response = gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .header("x-padding", "a".repeat(100_000))
        .json(&chat_request(false))
        .send()
        .await;

    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(err) => assert!(err.is_request() || err.is_connect() || err.is_body(), "{err}"),
    }
    assert_eq!(upstream.hits(), 0);
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_clean_400() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let depth = 100_000;
    let body =
        format!("{{\"model\":\"chat\",\"messages\":[{}{}]}}", "[".repeat(depth), "]".repeat(depth));

    let error = openai_error(post(&gateway, Some("application/json"), body).await, 400).await;

    assert_eq!(error["code"], "invalid_json");
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn invalid_utf8_is_a_clean_400() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut body = br#"{"model":"chat","messages":[{"role":"user","content":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#""}]}"#);

    let error = openai_error(post(&gateway, Some("application/json"), body).await, 400).await;

    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(upstream.hits(), 0);
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_by_its_content_type_is_a_415() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let json = chat_request(false).to_string();

    for content_type in
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    {
        let error = openai_error(post(&gateway, Some(content_type), json.clone()).await, 415).await;
        assert_eq!(error["code"], "unsupported_media_type", "{content_type}");
    }
    for content_type in
        [None, Some("application/json; charset=utf-8"), Some("application/vnd.api+json")]
    {
        assert_eq!(
            post(&gateway, content_type, json.clone()).await.status(),
            200,
            "{content_type:?}"
        );
    }
}

#[tokio::test]
async fn absurd_n_and_max_tokens_are_refused_before_any_upstream_call() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;

    for (key, value) in [
        ("n", json!(-1)),
        ("n", json!(100_000)),
        ("max_tokens", json!(-5)),
        ("max_tokens", json!(1e15)),
        ("max_completion_tokens", json!("many")),
        ("n", json!(1.5)),
    ] {
        let mut request = chat_request(false);
        request[key] = value.clone();
        let error = openai_error(gateway.chat(&request).await, 400).await;
        assert_eq!(error["param"], key, "{key}={value}");
    }
    assert_eq!(upstream.hits(), 0);
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn a_flood_of_garbage_connections_leaves_the_gateway_healthy() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;

    for garbage in [
        &b"\x00\x01\x02 not http\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut buffer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buffer)).await;
    }

    still_healthy(&gateway).await;
}
