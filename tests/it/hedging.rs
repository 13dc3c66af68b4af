//! Hedging (SPEC §4): a first attempt that is slow to answer (or to stream its first content) is
//! raced by the next target on another provider; the first good answer wins, the loser's
//! connection is dropped, an attempt that loses to a hedge counts against its provider's
//! breaker, and hedges are capped at `max_share` of the model's recent requests.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;

use crate::support::{
    FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, metric_sum,
    read_stream, streamed_text, two_targets_config,
};

const ALWAYS: &str = "hedge: { delay: 100ms, max_share: 100% }";

fn slow(after: Duration, text: &str) -> Reply {
    Reply::Delay(after, Box::new(Reply::completion(text)))
}

fn hedges(metrics: &str, outcome: &str) -> f64 {
    metric_sum(metrics, "ballast_hedges_total", &[("model", "chat"), ("outcome", outcome)])
}

async fn content(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_slow_first_attempt_is_hedged_after_the_delay_and_the_hedge_wins() {
    // It never answers: the fake upstream sees when the gateway hangs up.
    let primary = FakeUpstream::scripted([Reply::Hang]).await;
    let backup = FakeUpstream::scripted([Reply::completion("fast")]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", ALWAYS)).await;
    let started = Instant::now();

    let response = gateway.chat(&chat_request(false)).await;

    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "backup");
    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!(response.headers()["x-ballast-hedged"], "true");
    assert_eq!(response.headers()["x-ballast-attempts"], "2");
    assert_eq!(content(response).await, "fast");
    assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(2), "{took:?}");
    assert!(primary.wait_for_hang_up(Duration::from_secs(2)).await, "the loser was cancelled");
    assert_eq!(hedges(&gateway.metrics().await, "won"), 1.0);
}

#[tokio::test]
async fn the_first_attempt_wins_and_the_hedge_is_cancelled() {
    let primary = FakeUpstream::scripted([slow(Duration::from_millis(400), "first")]).await;
    let backup = FakeUpstream::scripted([Reply::Hang]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", ALWAYS)).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.headers()["x-ballast-provider"], "primary");
    assert_eq!(response.headers()["x-ballast-route"], "primary");
    assert_eq!(response.headers()["x-ballast-hedged"], "true");
    assert_eq!(content(response).await, "first");
    assert_eq!(backup.hits(), 1, "the hedge was started");
    assert!(backup.wait_for_hang_up(Duration::from_secs(2)).await, "and then cancelled");
    let metrics = gateway.metrics().await;
    assert_eq!(hedges(&metrics, "lost"), 1.0);
    let status: Value =
        gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        status["providers"]["backup"]["circuit"], "closed",
        "a lost hedge counts as nothing"
    );
}

#[tokio::test]
async fn no_hedge_starts_once_the_share_is_spent() {
    let primary = FakeUpstream::scripted([slow(Duration::from_millis(400), "first")]).await;
    let backup = FakeUpstream::start().await;
    let share = "hedge: { delay: 100ms, max_share: 10% }";
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", share)).await;

    // The first request of the window: one hedge would be 100 % of its requests.
    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.headers()["x-ballast-provider"], "primary");
    assert!(!response.headers().contains_key("x-ballast-hedged"));
    assert_eq!(backup.hits(), 0);
    assert_eq!(metric_sum(&gateway.metrics().await, "ballast_hedges_total", &[]), 0.0);
}

#[tokio::test]
async fn a_fast_first_attempt_is_never_hedged() {
    let primary = FakeUpstream::scripted([Reply::completion("quick")]).await;
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", ALWAYS)).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert!(!response.headers().contains_key("x-ballast-hedged"));
    assert_eq!(backup.hits(), 0);
}

#[tokio::test]
async fn a_stream_is_hedged_until_its_first_content_not_its_role_chunk() {
    // The role chunk comes at once, the content two seconds later.
    let late = Reply::Stream {
        events: chunk_events(&["late"], true),
        gap: Duration::from_secs(2),
        end: StreamEnd::Finish,
    };
    let primary = FakeUpstream::scripted([late]).await;
    let backup = FakeUpstream::scripted([Reply::chunks(&["hedged", " answer"])]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", ALWAYS)).await;
    let started = Instant::now();

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.headers()["x-ballast-provider"], "backup");
    assert_eq!(response.headers()["x-ballast-hedged"], "true");
    let events = read_stream(response).await;
    assert_eq!(streamed_text(&events), "hedged answer");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(primary.wait_for_hang_up(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn races_lost_to_hedges_open_the_slow_providers_circuit() {
    let primary = FakeUpstream::start().await;
    primary.fallback(slow(Duration::from_secs(5), "slow"));
    let backup = FakeUpstream::start().await;
    let breaker = "circuit_breaker: { consecutive_failures: 2, open_for: 30s }";
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, breaker, ALWAYS)).await;

    for round in 1..=3 {
        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.headers()["x-ballast-provider"], "backup", "round {round}");
    }

    assert_eq!(primary.hits(), 2, "skipped once two races were lost");
    let metrics = gateway.metrics().await;
    assert_eq!(hedges(&metrics, "won"), 2.0, "the third needed no hedge");
    let status: Value =
        gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["providers"]["primary"]["circuit"], "open");
}

#[tokio::test]
async fn when_both_fail_the_hedge_is_counted_as_failed_and_the_client_gets_the_503() {
    let primary = FakeUpstream::scripted([Reply::Delay(
        Duration::from_millis(300),
        Box::new(Reply::error(503, "overloaded")),
    )])
    .await;
    let backup = FakeUpstream::scripted([Reply::error(503, "overloaded too")]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", ALWAYS)).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 503);
    assert_eq!((primary.hits(), backup.hits()), (1, 1), "the backup is not tried a second time");
    assert_eq!(hedges(&gateway.metrics().await, "failed"), 1.0);
}

#[tokio::test]
async fn identical_concurrent_requests_share_one_race_inside_single_flight() {
    let primary = FakeUpstream::scripted([Reply::Hang]).await;
    let backup = FakeUpstream::scripted([Reply::Delay(
        Duration::from_millis(200),
        Box::new(Reply::completion("once")),
    )])
    .await;
    let config = two_targets_config(&primary, &backup, "", ALWAYS)
        .replace("cache: { backend: none }", "cache: { backend: memory }");
    let gateway = TestGateway::start(&config).await;

    let request = chat_request(false);
    let (first, second) = tokio::join!(gateway.chat(&request), gateway.chat(&request));

    assert_eq!(content(first).await, "once");
    assert_eq!(content(second).await, "once");
    assert_eq!((primary.hits(), backup.hits()), (1, 1), "one race for both");
    assert_eq!(hedges(&gateway.metrics().await, "won"), 1.0);
}
