//! Hostile input: slow clients, oversized headers, absurd bodies. Each gets a clear 4xx (or the
//! connection closed, for slow-loris), and the gateway stays healthy for everyone else.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{self, FakeUpstream, RawConnection, TestGateway, chat_request, h2};
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

// === Connections that hold a socket without a request (issue #18) ===

/// `header_timeout: 300ms`: a closed connection must be closed by that timer, so no earlier than
/// this, and no later than `CLOSED_BY`.
const CUT_AFTER: Duration = Duration::from_millis(250);
const CLOSED_BY: Duration = Duration::from_secs(2);

fn assert_cut_by_the_header_timeout(closed: Option<Duration>, what: &str) {
    assert!(closed.is_some(), "{what}: still open after {CLOSED_BY:?}");
    assert!(
        closed >= Some(CUT_AFTER),
        "{what}: closed after {closed:?}, before the header timeout"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut idle = RawConnection::open(gateway.addr).await;

    assert_cut_by_the_header_timeout(idle.closed_within(CLOSED_BY).await, "silent connection");
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed_after_the_header_timeout() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut partial = RawConnection::open(gateway.addr).await;
    // A prefix of the preface: the gateway cannot tell HTTP/1 from HTTP/2 yet.
    partial.send(&h2::PREFACE[..16]).await;

    assert_cut_by_the_header_timeout(partial.closed_within(CLOSED_BY).await, "partial preface");
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn an_http2_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut h2c = RawConnection::open(gateway.addr).await;
    h2c.send(&h2::handshake()).await;

    let (frames, closed) = h2c.h2_frames_until_closed(CLOSED_BY).await;

    assert_eq!(frames.first(), Some(&h2::SETTINGS), "the gateway spoke HTTP/2: {frames:?}");
    assert_cut_by_the_header_timeout(closed, "h2c connection without a request");
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_sent_goaway_and_closed() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut h2c = RawConnection::open(gateway.addr).await;
    h2c.send(&h2::handshake()).await;
    h2c.send(&h2::get("/healthz")).await;

    // Idle from the answer on: GOAWAY within two header timeouts, then the close.
    let (frames, closed) = h2c.h2_frames_until_closed(Duration::from_secs(3)).await;

    let answer = frames.iter().position(|&kind| kind == h2::HEADERS);
    let goaway = frames.iter().position(|&kind| kind == h2::GOAWAY);
    assert!(answer.is_some() && goaway > answer, "an answer, then GOAWAY: {frames:?}");
    let closed = closed.unwrap_or_else(|| panic!("still open after GOAWAY: {frames:?}"));
    assert!(closed >= CUT_AFTER, "closed after {closed:?}, before the idle time");
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_header_timeout() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway(&upstream).await;
    let mut kept = RawConnection::open(gateway.addr).await;
    let status = kept.http1_get("/healthz", CLOSED_BY).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    let answered = tokio::time::Instant::now();

    let closed = kept.closed_within(CLOSED_BY).await;

    assert!(closed.is_some(), "an idle keep-alive connection is closed");
    assert!(answered.elapsed() >= CUT_AFTER, "closed before the header timeout");
    still_healthy(&gateway).await;
}

#[tokio::test]
async fn beyond_max_connections_a_connection_waits_until_one_closes() {
    let upstream = FakeUpstream::start().await;
    // Two workers share the one limit; the header timeout is long enough not to cut the idle.
    let config = support::openai_config(&upstream.base_url(), "").replace(
        "shutdown_grace: 2s",
        "shutdown_grace: 2s, header_timeout: 5s, max_connections: 4, workers: 2",
    );
    let gateway = TestGateway::start(&config).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        // An answered request proves the connection was accepted; it then idles, kept alive.
        let mut connection = RawConnection::open(gateway.addr).await;
        let status = connection.http1_get("/healthz", CLOSED_BY).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
        held.push(connection);
    }

    let mut extra = RawConnection::open(gateway.addr).await;
    let waiting = extra.http1_get("/healthz", Duration::from_millis(500)).await;
    assert_eq!(waiting, None, "a fifth connection is not served while four are open");

    drop(held.pop());
    let status = extra.response_head(CLOSED_BY).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"), "served once one closed");

    drop(held);
    drop(extra);
    let response =
        tokio::time::timeout(CLOSED_BY, gateway.client.get(gateway.url("/healthz")).send())
            .await
            .expect("answered within the bound")
            .unwrap();
    assert_eq!(response.status(), 200);
    gateway.stop().await;
}

#[tokio::test]
async fn idle_connections_do_not_hold_up_a_shutdown() {
    let upstream = FakeUpstream::start().await;
    let config = support::openai_config(&upstream.base_url(), "")
        .replace("shutdown_grace: 2s", "shutdown_grace: 5s, header_timeout: 5s, workers: 2");
    let gateway = TestGateway::start(&config).await;
    let _silent = RawConnection::open(gateway.addr).await;
    let mut partial = RawConnection::open(gateway.addr).await;
    partial.send(&h2::PREFACE[..16]).await;
    let mut kept = RawConnection::open(gateway.addr).await;
    let status = kept.http1_get("/healthz", CLOSED_BY).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));

    let started = tokio::time::Instant::now();
    gateway.stop().await;

    // Well within the grace (5 s) and the header timeout (5 s): none of them was waited for.
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(kept.closed_within(CLOSED_BY).await.is_some(), "the idle keep-alive one is closed");
}

#[tokio::test]
async fn a_full_public_listener_leaves_the_operator_listener_served() {
    let upstream = FakeUpstream::start().await;
    let config = support::openai_config(&upstream.base_url(), "").replace(
        "shutdown_grace: 2s",
        "shutdown_grace: 2s, header_timeout: 5s, max_connections: 2, metrics_listen: 127.0.0.1:0",
    );
    let parsed = ballast::config::from_yaml(&config, &|_| None).unwrap();
    let gateway = ballast::server::Gateway::bind(parsed, None).await.unwrap();
    let (public, operator) = (gateway.local_addr().unwrap(), gateway.operator_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = RawConnection::open(public).await;
        let status = connection.http1_get("/healthz", CLOSED_BY).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
        held.push(connection);
    }
    let mut extra = RawConnection::open(public).await;
    assert_eq!(extra.http1_get("/healthz", Duration::from_millis(300)).await, None, "full");

    let mut scrape = RawConnection::open(operator).await;
    let status = scrape.http1_get("/metrics", CLOSED_BY).await;

    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"), "the operator listener is apart");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
}
