//! Failover across a model's targets: which failures move on to the next target, which do not,
//! and what the headers say about it. Streams fail over only before their first byte.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, read_stream,
    streamed_text, two_targets_config,
};
use serde_json::{Value, json};

/// Sends one request with the primary failing as `failing` does; asserts the backup answered.
async fn assert_fails_over(failing: Reply, primary_extra: &str) -> (FakeUpstream, FakeUpstream) {
    let primary = FakeUpstream::scripted([failing]).await;
    let backup = FakeUpstream::scripted([Reply::completion("from backup")]).await;
    let gateway =
        TestGateway::start(&two_targets_config(&primary, &backup, primary_extra, "")).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "backup");
    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!(response.headers()["x-ballast-attempts"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from backup");
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
    assert_eq!(backup.requests()[0].body["model"], "backup-model");
    (primary, backup)
}

#[tokio::test]
async fn fails_over_to_next_target_on_503() {
    assert_fails_over(Reply::error(503, "overloaded"), "").await;
}

#[tokio::test]
async fn fails_over_to_next_target_on_500() {
    assert_fails_over(Reply::error(500, "boom"), "").await;
}

#[tokio::test]
async fn fails_over_to_next_target_on_429() {
    assert_fails_over(Reply::error(429, "slow down"), "").await;
}

#[tokio::test]
async fn fails_over_to_next_target_on_timeout() {
    assert_fails_over(Reply::Hang, "timeouts: { total: 300ms }").await;
}

#[tokio::test]
async fn fails_over_to_next_target_on_connection_reset() {
    assert_fails_over(Reply::Reset, "").await;
}

#[tokio::test]
async fn fails_over_to_next_target_when_the_connection_is_refused() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let backup = FakeUpstream::start().await;
    let config = two_targets_config(&backup, &backup, "", "").replacen(
        &backup.base_url(),
        &format!("http://{closed}/v1"),
        1,
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!(backup.hits(), 1);
}

#[tokio::test]
async fn fails_over_on_401_without_retrying_the_same_provider() {
    let (primary, _) = assert_fails_over(
        Reply::error(401, "bad key"),
        "retry: { max_retries: 3, base_delay: 1ms }",
    )
    .await;
    assert_eq!(primary.hits(), 1, "auth failures are never retried");
}

#[tokio::test]
async fn never_retries_or_fails_over_on_400_and_422() {
    for status in [400, 422] {
        let primary = FakeUpstream::scripted([Reply::error(status, "your request is wrong")]).await;
        let backup = FakeUpstream::start().await;
        let config =
            two_targets_config(&primary, &backup, "retry: { max_retries: 3, base_delay: 1ms }", "");
        let gateway = TestGateway::start(&config).await;

        let response = gateway.chat(&chat_request(false)).await;

        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["message"], "your request is wrong");
        assert_eq!((primary.hits(), backup.hits()), (1, 0), "{status}");
    }
}

#[tokio::test]
async fn every_target_failing_is_a_503_after_trying_each() {
    let primary = FakeUpstream::scripted([Reply::error(503, "down")]).await;
    let backup = FakeUpstream::scripted([Reply::error(500, "also down")]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", "")).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert!(response.headers().get("retry-after").is_none(), "no circuit is open");
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_byte() {
    let error_event =
        json!({"error": {"message": "overloaded", "type": "server_error"}}).to_string();
    let failures = [
        Reply::error(503, "down"),
        Reply::Stream { events: vec![error_event], gap: Duration::ZERO, end: StreamEnd::Finish },
        Reply::Hang,
    ];
    for failing in failures {
        let primary = FakeUpstream::scripted([failing.clone()]).await;
        let backup = FakeUpstream::scripted([Reply::chunks(&["clean", " answer"])]).await;
        let gateway = TestGateway::start(&two_targets_config(
            &primary,
            &backup,
            "timeouts: { first_byte: 300ms }",
            "",
        ))
        .await;

        let response = gateway.chat(&chat_request(true)).await;

        assert_eq!(response.status(), 200, "{failing:?}");
        assert_eq!(response.headers()["x-ballast-route"], "failover");
        let events = read_stream(response).await;
        assert_eq!(streamed_text(&events), "clean answer");
        assert_eq!(events.iter().filter(|e| *e == "[DONE]").count(), 1);
        assert!(!events.iter().any(|e| e.contains("\"error\"")), "{failing:?}: {events:?}");
    }
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_byte_is_never_failed_over() {
    let partial = chunk_events(&["half"], false)[..2].to_vec();
    let primary = FakeUpstream::scripted([Reply::Stream {
        events: partial,
        gap: Duration::ZERO,
        end: StreamEnd::Reset,
    }])
    .await;
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(
        &primary,
        &backup,
        "retry: { max_retries: 2, base_delay: 1ms }",
        "",
    ))
    .await;

    let events = read_stream(gateway.chat(&chat_request(true)).await).await;

    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_error");
    assert_eq!(
        (primary.hits(), backup.hits()),
        (1, 0),
        "nothing is sent twice once the client has bytes"
    );
}

/// SPEC §4 "Streams never lie": a stream is held until its first content, so an upstream that
/// opens with a role-only chunk and then sends an error event, stalls past `first_byte`, closes
/// or resets is an ordinary failed attempt, and the client gets one clean stream from the next
/// target.
#[tokio::test]
async fn a_role_chunk_then_a_failure_fails_over_before_the_client_sees_a_byte() {
    let role = chunk_events(&[], false)[0].clone();
    let error = json!({"error": {"message": "overloaded", "type": "server_error"}}).to_string();
    for (case, events, end) in [
        ("error event", vec![role.clone(), error], StreamEnd::Finish),
        ("stall", vec![role.clone()], StreamEnd::Stall),
        ("close", vec![role.clone()], StreamEnd::Close),
        ("reset", vec![role.clone()], StreamEnd::Reset),
    ] {
        let primary =
            FakeUpstream::scripted([Reply::Stream { events, gap: Duration::ZERO, end }]).await;
        let backup = FakeUpstream::scripted([Reply::chunks(&["from", " the backup"])]).await;
        let config = two_targets_config(&primary, &backup, "timeouts: { first_byte: 300ms }", "");
        let gateway = TestGateway::start(&config).await;

        let response = gateway.chat(&chat_request(true)).await;

        assert_eq!(response.status(), 200, "{case}");
        assert_eq!(response.headers()["x-ballast-route"], "failover", "{case}");
        let events = read_stream(response).await;
        assert_eq!(streamed_text(&events), "from the backup", "{case}: one clean stream");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{case}");
        assert!(events.iter().all(|e| !e.contains("\"error\"")), "{case}: {events:?}");
        assert_eq!((primary.hits(), backup.hits()), (1, 1), "{case}");
    }
}

#[tokio::test]
async fn degraded_response_answers_when_every_target_failed() {
    let primary = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    primary.fallback(Reply::error(503, "down"));
    backup.fallback(Reply::error(503, "down"));
    let text = "The assistant is busy right now; please try again shortly.";
    let config = two_targets_config(&primary, &backup, "", &format!("degraded_response: '{text}'"));
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-route"], "degraded");
    assert_eq!(response.headers()["x-ballast-attempts"], "2");
    assert!(response.headers().get("x-ballast-provider").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], text);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["object"], "chat.completion");

    let streamed = gateway.chat(&chat_request(true)).await;
    assert_eq!(streamed.headers()["x-ballast-route"], "degraded");
    let events = read_stream(streamed).await;
    assert_eq!(streamed_text(&events), text);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn degraded_response_is_not_used_for_client_errors() {
    let primary = FakeUpstream::scripted([Reply::error(400, "bad request")]).await;
    let backup = FakeUpstream::start().await;
    let gateway =
        TestGateway::start(&two_targets_config(&primary, &backup, "", "degraded_response: busy"))
            .await;

    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 400);
}

#[tokio::test]
async fn least_latency_routing_prefers_the_faster_target() {
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::Delay(Duration::from_millis(150), Box::new(Reply::completion("slow"))));
    let backup = FakeUpstream::start().await;
    let gateway =
        TestGateway::start(&two_targets_config(&primary, &backup, "", "routing: least_latency"))
            .await;

    // Both start unmeasured, so the configured order decides the first request.
    let first = gateway.chat(&chat_request(false)).await;
    assert_eq!(first.headers()["x-ballast-provider"], "primary");
    let second = gateway.chat(&chat_request(false)).await;
    assert_eq!(second.headers()["x-ballast-provider"], "backup", "unmeasured 0 ms beats 150 ms");
    for _ in 0..5 {
        let next = gateway.chat(&chat_request(false)).await;
        assert_eq!(next.headers()["x-ballast-provider"], "backup");
        assert_eq!(
            next.headers()["x-ballast-route"],
            "primary",
            "the first in this request's order"
        );
    }
}

#[tokio::test]
async fn weighted_routing_sends_traffic_in_proportion_to_weight() {
    let primary = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    let config = two_targets_config(&primary, &backup, "", "routing: weighted")
        .replace("model: primary-model }", "model: primary-model, weight: 1 }")
        .replace("model: backup-model }", "model: backup-model, weight: 9 }");
    let gateway = TestGateway::start(&config).await;

    for _ in 0..60 {
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
    }

    let (light, heavy) = (primary.hits(), backup.hits());
    assert_eq!(light + heavy, 60);
    assert!(heavy >= 44, "about 54 of 60 expected for weight 9 of 10, got {heavy}");
}
