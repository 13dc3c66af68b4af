//! Retries on the same provider: how many, how far apart, `Retry-After`, the retry budget.

use std::time::Duration;

use crate::support::{
    FakeUpstream, Reply, TestGateway, chat_request, openai_config, two_targets_config,
};

#[tokio::test]
async fn retries_the_same_provider_before_failing_over() {
    let primary = FakeUpstream::scripted([Reply::error(503, "blip")]).await;
    let backup = FakeUpstream::start().await;
    let config = two_targets_config(
        &primary,
        &backup,
        "retry: { max_retries: 2, base_delay: 10ms, max_delay: 50ms }",
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "primary");
    assert_eq!(response.headers()["x-ballast-route"], "primary");
    assert_eq!(response.headers()["x-ballast-attempts"], "2");
    assert_eq!((primary.hits(), backup.hits()), (2, 0));
}

#[tokio::test]
async fn makes_at_most_max_retries_then_fails_over() {
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::error(500, "down"));
    let backup = FakeUpstream::start().await;
    let config = two_targets_config(
        &primary,
        &backup,
        "retry: { max_retries: 2, base_delay: 1ms, max_delay: 5ms }",
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!(response.headers()["x-ballast-attempts"], "4");
    assert_eq!((primary.hits(), backup.hits()), (3, 1));
}

#[tokio::test]
async fn backoff_waits_are_bounded_by_the_growing_ceiling() {
    let upstream = FakeUpstream::scripted([
        Reply::error(503, "a"),
        Reply::error(503, "b"),
        Reply::error(503, "c"),
    ])
    .await;
    let config = openai_config(
        &upstream.base_url(),
        "retry: { max_retries: 3, base_delay: 100ms, max_delay: 150ms }",
    );
    let gateway = TestGateway::start(&config).await;

    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);

    let at: Vec<_> = upstream.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 4);
    // Full jitter: uniform in [0, min(max_delay, base × 2^k)], plus a little for the round trip.
    let slack = Duration::from_millis(60);
    assert!(at[1] - at[0] <= Duration::from_millis(100) + slack, "{:?}", at[1] - at[0]);
    assert!(at[2] - at[1] <= Duration::from_millis(150) + slack, "{:?}", at[2] - at[1]);
    assert!(at[3] - at[2] <= Duration::from_millis(150) + slack, "{:?}", at[3] - at[2]);
}

#[tokio::test]
async fn honours_retry_after_from_the_upstream() {
    for header in [("retry-after-ms", "400"), ("retry-after", "1")] {
        let limited = Reply::error(429, "wait").with_header(header.0, header.1);
        let upstream = FakeUpstream::scripted([limited]).await;
        let config = openai_config(
            &upstream.base_url(),
            "retry: { max_retries: 1, base_delay: 1ms, max_delay: 2s }",
        );
        let gateway = TestGateway::start(&config).await;

        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);

        let at: Vec<_> = upstream.requests().iter().map(|r| r.at).collect();
        let waited = at[1] - at[0];
        let asked = if header.0 == "retry-after" {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(400)
        };
        assert!(
            waited >= asked && waited < asked + Duration::from_millis(300),
            "{header:?}: waited {waited:?}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_max_delay_fails_over_at_once() {
    let primary = FakeUpstream::scripted([
        Reply::error(429, "come back in a minute").with_header("retry-after", "60")
    ])
    .await;
    let backup = FakeUpstream::start().await;
    let config = two_targets_config(
        &primary,
        &backup,
        "retry: { max_retries: 2, base_delay: 1ms, max_delay: 1s }",
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let started = tokio::time::Instant::now();
    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
}

#[tokio::test]
async fn the_retry_budget_caps_retries_during_a_sustained_outage() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::error(503, "outage"));
    // A breaker that never opens, so only the budget limits the retries.
    let config = openai_config(
        &upstream.base_url(),
        "retry: { max_retries: 4, base_delay: 1ms, max_delay: 1ms }, circuit_breaker: { consecutive_failures: 100000 }",
    );
    let gateway = TestGateway::start(&config).await;
    let requests = 200;

    let started = tokio::time::Instant::now();
    for _ in 0..requests {
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 503);
    }

    // Without a budget: 200 × 5 = 1000 calls. With it: 200 + 20% of 200 + the floor of 10/s
    // (100 per 10 s window; a slow run spans more than one window).
    let windows = 1 + started.elapsed().as_secs() / 10;
    let calls = upstream.hits();
    let bound = requests + requests / 5 + 100 * windows as usize;
    assert!(calls <= bound, "{calls} upstream calls for {requests} requests (bound {bound})");
    assert!(calls > requests, "some retries still happen: {calls}");
}

#[tokio::test]
async fn no_retry_starts_that_the_deadline_cannot_cover() {
    let upstream =
        FakeUpstream::scripted([Reply::error(503, "x").with_header("retry-after", "1")]).await;
    let config = openai_config(
        &upstream.base_url(),
        "retry: { max_retries: 2, base_delay: 1ms, max_delay: 5s }",
    )
    .replace("request_timeout: 10s", "request_timeout: 800ms");
    let gateway = TestGateway::start(&config).await;

    let started = tokio::time::Instant::now();
    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 503, "gave up at once instead of waiting past the deadline");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(upstream.hits(), 1);
}
