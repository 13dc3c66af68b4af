//! How one attempt fails: per-attempt timeouts (`first_byte`, `idle`, `total`), refused and
//! reset connections, and 200 answers that are not answers.

#![expect(clippy::unwrap_used, reason = "assertion helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use tokio::time::Instant;

use crate::support::{
    FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, metric_sum,
    openai_config, read_stream,
};
use serde_json::{Value, json};

/// The upstream attempts `gateway` counted with `outcome` (a failure class, or `ok`).
async fn attempts_that_ended(gateway: &TestGateway, outcome: &str) -> f64 {
    let metrics = gateway.metrics().await;
    metric_sum(&metrics, "ballast_upstream_requests_total", &[("outcome", outcome)])
}

/// At least `bound` went by since `started` (the timeout did its work), and less than `under`
/// (it did not wait for a longer one).
fn assert_took_from(started: Instant, bound: Duration, under: Duration) {
    let elapsed = started.elapsed();
    assert!(elapsed >= bound && elapsed < under, "{elapsed:?}");
}

async fn assert_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn total_bounds_a_non_streamed_attempt() {
    let upstream = FakeUpstream::scripted([Reply::Hang]).await;
    let gateway =
        TestGateway::start(&openai_config(&upstream.base_url(), "timeouts: { total: 300ms }"))
            .await;

    let started = Instant::now();
    assert_unavailable(gateway.chat(&chat_request(false)).await).await;

    assert_took_from(started, Duration::from_millis(300), Duration::from_secs(3));
}

#[tokio::test]
async fn first_byte_bounds_the_wait_for_a_streams_first_chunk() {
    let upstream = FakeUpstream::scripted([Reply::Hang]).await;
    let gateway = TestGateway::start(&openai_config(
        &upstream.base_url(),
        "timeouts: { first_byte: 300ms, total: 30s }",
    ))
    .await;

    let started = Instant::now();
    assert_unavailable(gateway.chat(&chat_request(true)).await).await;

    assert_took_from(started, Duration::from_millis(300), Duration::from_secs(3));
}

#[tokio::test]
async fn neither_first_byte_nor_idle_cuts_a_slow_non_streamed_answer() {
    // A whole answer's head comes when the model is done: `total` bounds that wait, not
    // `first_byte` (streams only) nor `idle` (the gaps of a body).
    let slow =
        Reply::Delay(Duration::from_millis(500), Box::new(Reply::completion("worth the wait")));
    let upstream = FakeUpstream::scripted([slow]).await;
    let gateway = TestGateway::start(&openai_config(
        &upstream.base_url(),
        "timeouts: { first_byte: 100ms, idle: 200ms, total: 5s }",
    ))
    .await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-attempts"], "1");
}

#[tokio::test]
async fn idle_ends_a_stream_that_stalls_mid_way_with_an_error_event() {
    let events = chunk_events(&["one"], false)[..2].to_vec();
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events,
        gap: Duration::ZERO,
        end: StreamEnd::Stall,
    }])
    .await;
    let gateway =
        TestGateway::start(&openai_config(&upstream.base_url(), "timeouts: { idle: 300ms }")).await;

    let started = Instant::now();
    let events = read_stream(gateway.chat(&chat_request(true)).await).await;

    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(events.len(), 3, "{events:?}");
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_stream_error");
}

#[tokio::test]
async fn idle_ends_a_non_streamed_answer_whose_body_stalls_mid_way() {
    // Headers and part of the body, then nothing: only `idle` can end the wait.
    let events = chunk_events(&["one"], false)[..2].to_vec();
    let stalled = Reply::Stream { events, gap: Duration::ZERO, end: StreamEnd::Stall };
    let upstream = FakeUpstream::scripted([stalled]).await;
    let gateway = TestGateway::start(&openai_config(
        &upstream.base_url(),
        "timeouts: { first_byte: 30s, idle: 300ms, total: 30s }",
    ))
    .await;

    let started = Instant::now();
    assert_unavailable(gateway.chat(&chat_request(false)).await).await;

    assert_took_from(started, Duration::from_millis(300), Duration::from_secs(3));
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_attempt() {
    // Bind a port, then free it: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let gateway = TestGateway::start(&openai_config(&format!("http://{closed}/v1"), "")).await;

    let started = Instant::now();
    assert_unavailable(gateway.chat(&chat_request(false)).await).await;
    assert!(started.elapsed() < Duration::from_secs(2), "refusal is immediate, no timeout wait");
    assert!(attempts_that_ended(&gateway, "connect").await >= 1.0, "classified as `connect`");
    assert_eq!(attempts_that_ended(&gateway, "server_error").await, 0.0);
}

#[tokio::test]
async fn a_reset_connection_is_a_failed_attempt() {
    let upstream = FakeUpstream::scripted([Reply::Reset, Reply::Reset]).await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    assert_unavailable(gateway.chat(&chat_request(false)).await).await;
    assert_unavailable(gateway.chat(&chat_request(true)).await).await;
    // The connection was made: what broke is the answer, a server error.
    assert!(attempts_that_ended(&gateway, "server_error").await >= 2.0);
    assert_eq!(attempts_that_ended(&gateway, "connect").await, 0.0);
}

#[tokio::test]
async fn a_200_that_is_not_a_completion_is_a_failed_attempt() {
    let bodies = [
        Reply::Respond { status: 200, headers: vec![], body: String::new() },
        Reply::Respond {
            status: 200,
            headers: vec![],
            body: "<html>proxy error</html>".to_owned(),
        },
        Reply::json(200, &json!({"error": {"message": "quota", "type": "server_error"}})),
        Reply::json(200, &json!({"object": "chat.completion"})),
    ];
    let messages =
        json!({"model": "chat", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]});
    let responses = json!({"model": "chat", "input": "Hi"});
    for reply in bodies {
        // One attempt per request: the gateway in front of it does not retry.
        let upstream = FakeUpstream::scripted([reply.clone(), reply.clone(), reply.clone()]).await;
        let gateway = TestGateway::in_front_of(&upstream).await;

        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.status(), 503, "{reply:?}");
        let failed = attempts_that_ended(&gateway, "server_error").await;
        assert!(failed >= 1.0, "{reply:?}: counted as a server error");
        // The same 200 answering a Messages or a Responses request (translated) fails too.
        assert_eq!(gateway.messages(&messages).await.status(), 529, "{reply:?}");
        assert_eq!(gateway.responses(&responses).await.status(), 503, "{reply:?}");
        assert!(attempts_that_ended(&gateway, "server_error").await >= failed + 2.0, "{reply:?}");
        assert_eq!(attempts_that_ended(&gateway, "ok").await, 0.0, "{reply:?}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = FakeUpstream::start().await;
    let redirect = Reply::Respond {
        status: 307,
        headers: vec![(
            "location".to_owned(),
            format!("{}/chat/completions", elsewhere.base_url()),
        )],
        body: "{}".to_owned(),
    };
    let upstream = FakeUpstream::scripted([redirect]).await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    assert_unavailable(gateway.chat(&chat_request(false)).await).await;
    assert_eq!(elsewhere.hits(), 0, "the key must not follow a redirect");
}

#[tokio::test]
async fn connect_bounds_establishing_the_connection() {
    // A listener whose accept queue is full drops new SYNs, so connecting hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let attempt =
            tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr))
                .await;
        match attempt {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let config =
        openai_config(&format!("http://{addr}/v1"), "timeouts: { connect: 300ms, total: 20s }");
    let gateway = TestGateway::start(&config).await;

    let started = Instant::now();
    assert_unavailable(gateway.chat(&chat_request(false)).await).await;

    assert_took_from(started, Duration::from_millis(300), Duration::from_secs(5));
    assert!(attempts_that_ended(&gateway, "connect").await >= 1.0, "a connect timeout");
    drop(listener);
}
