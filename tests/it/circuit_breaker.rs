//! Circuit breakers: open after N consecutive failures, skip while open, one half-open trial.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    FakeUpstream, Reply, TestGateway, chat_request, openai_config, two_targets_config,
};
use serde_json::Value;

const BREAKER: &str = "circuit_breaker: { consecutive_failures: 2, open_for: 400ms }";

async fn status(gateway: &TestGateway) -> Value {
    gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn opens_after_consecutive_failures_and_skips_the_provider_while_open() {
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::error(503, "down"));
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, BREAKER, "")).await;

    for _ in 0..2 {
        assert_eq!(
            gateway.chat(&chat_request(false)).await.headers()["x-ballast-route"],
            "failover"
        );
    }
    assert_eq!(primary.hits(), 2);
    assert_eq!(status(&gateway).await["providers"]["primary"]["circuit"], "open");

    for _ in 0..5 {
        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.headers()["x-ballast-provider"], "backup");
        assert_eq!(
            response.headers()["x-ballast-attempts"],
            "1",
            "a skipped target costs no attempt"
        );
    }
    assert_eq!(primary.hits(), 2, "no call reaches an open circuit");
}

#[tokio::test]
async fn a_successful_half_open_trial_closes_the_circuit() {
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::error(503, "down"));
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, BREAKER, "")).await;
    for _ in 0..2 {
        gateway.chat(&chat_request(false)).await;
    }

    primary.heal();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(status(&gateway).await["providers"]["primary"]["circuit"], "half_open");
    let trial = gateway.chat(&chat_request(false)).await;

    assert_eq!(trial.headers()["x-ballast-provider"], "primary");
    assert_eq!(status(&gateway).await["providers"]["primary"]["circuit"], "closed");
    assert_eq!(gateway.chat(&chat_request(false)).await.headers()["x-ballast-provider"], "primary");
}

#[tokio::test]
async fn a_failed_half_open_trial_opens_the_circuit_again() {
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::error(503, "down"));
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, BREAKER, "")).await;
    for _ in 0..2 {
        gateway.chat(&chat_request(false)).await;
    }

    tokio::time::sleep(Duration::from_millis(450)).await;
    let trial = gateway.chat(&chat_request(false)).await;
    assert_eq!(trial.headers()["x-ballast-route"], "failover");
    assert_eq!(primary.hits(), 3, "exactly one trial");

    assert_eq!(status(&gateway).await["providers"]["primary"]["circuit"], "open");
    gateway.chat(&chat_request(false)).await;
    assert_eq!(primary.hits(), 3, "skipped again");
}

#[tokio::test]
async fn when_every_circuit_is_open_the_503_says_when_to_come_back() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::error(500, "down"));
    let config = openai_config(
        &upstream.base_url(),
        "circuit_breaker: { consecutive_failures: 1, open_for: 3s }",
    );
    let gateway = TestGateway::start(&config).await;
    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 503);

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert_eq!(upstream.hits(), 1);

    let ready = gateway.client.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let reasons: Value = ready.json().await.unwrap();
    assert!(reasons["reasons"][0].as_str().unwrap().contains("`chat`"), "{reasons}");
}

#[tokio::test]
async fn status_reports_circuits_error_rates_and_latency() {
    let primary = FakeUpstream::scripted([Reply::error(503, "x")]).await;
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", "")).await;
    gateway.chat(&chat_request(false)).await;
    gateway.chat(&chat_request(false)).await;

    let status = status(&gateway).await;

    let primary = &status["providers"]["primary"];
    assert_eq!(primary["circuit"], "closed");
    assert_eq!(primary["error_rate"], 0.5);
    assert!(primary["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(status["providers"]["backup"]["error_rate"], 0.0);
    assert_eq!(status["cache"]["backend"], "none");
}

#[tokio::test]
async fn a_full_bulkhead_skips_to_the_next_target_instead_of_queueing() {
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::Delay(Duration::from_millis(600), Box::new(Reply::completion("slow"))));
    let backup = FakeUpstream::start().await;
    let gateway =
        TestGateway::start(&two_targets_config(&primary, &backup, "max_concurrency: 1", "")).await;

    let request = chat_request(false);
    let (first, second) = tokio::join!(gateway.chat(&request), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        let response = gateway.chat(&chat_request(false)).await;
        (response, started.elapsed())
    });

    assert_eq!(first.headers()["x-ballast-provider"], "primary");
    let (second, waited) = second;
    assert_eq!(second.headers()["x-ballast-provider"], "backup");
    assert!(waited < Duration::from_millis(300), "did not queue behind the slow call: {waited:?}");
}

#[tokio::test]
async fn a_hanging_provider_opens_its_circuit_after_n_timed_out_attempts_and_gets_no_more_retries()
{
    let primary = FakeUpstream::start().await;
    primary.fallback(Reply::Hang);
    let backup = FakeUpstream::start().await;
    let settings = "timeouts: { total: 200ms }, retry: { max_retries: 3, base_delay: 1ms, max_delay: 2ms }, \
                    circuit_breaker: { consecutive_failures: 2, open_for: 30s }";
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, settings, "")).await;

    let first = gateway.chat(&chat_request(false)).await;

    assert_eq!(first.headers()["x-ballast-route"], "failover");
    assert_eq!(
        primary.hits(),
        2,
        "two timed-out attempts opened the circuit; the last two retries never started"
    );
    let second = gateway.chat(&chat_request(false)).await;
    assert_eq!(second.headers()["x-ballast-attempts"], "1");
    assert_eq!(primary.hits(), 2, "skipped while open");
}
