//! The cache through the front door, on both backends: hits and misses, streams and whole
//! answers sharing entries, Cache-Control, stale-on-error, single-flight, and Redis outages.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    self, FakeUpstream, NO_CACHE, RedisServer, Reply, StreamEnd, TestGateway, chat_request,
    chunk_events, read_stream, streamed_text, two_targets_config,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// A backend under test: memory, a Redis this backend owns, or a Redis at a URL.
enum Backend {
    Memory,
    Redis(RedisServer),
    RedisAt(String),
}

impl Backend {
    async fn both() -> [Backend; 2] {
        [Backend::Memory, Backend::Redis(RedisServer::start().await)]
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(_) | Self::RedisAt(_) => "redis",
        }
    }

    fn yaml(&self, ttl: &str, stale_ttl: &str) -> String {
        match self {
            Self::Memory => {
                format!("cache: {{ backend: memory, ttl: {ttl}, stale_ttl: {stale_ttl} }}")
            }
            Self::Redis(server) => Self::RedisAt(server.url()).yaml(ttl, stale_ttl),
            Self::RedisAt(url) => {
                format!(
                    "cache: {{ backend: redis, redis_url: '{url}', ttl: {ttl}, stale_ttl: {stale_ttl} }}"
                )
            }
        }
    }
}

/// A gateway with model `chat` → `upstream` (one attempt), caching on `backend`.
async fn cached_gateway(
    upstream: &FakeUpstream,
    backend: &Backend,
    ttl: &str,
    stale_ttl: &str,
) -> TestGateway {
    let config = support::openai_config(&upstream.base_url(), "")
        .replace(NO_CACHE, &backend.yaml(ttl, stale_ttl));
    TestGateway::start(&config).await
}

async fn chat_with(gateway: &TestGateway, body: &Value, cache_control: &str) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .header("cache-control", cache_control)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

/// Lets a background write land (Redis writes are not on the request path).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

#[tokio::test]
async fn a_second_identical_request_is_a_hit_that_skips_the_upstream() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted([Reply::completion("cached words")]).await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;

        let first = gateway.chat(&chat_request(false)).await;
        assert_eq!(
            (header(&first, "x-ballast-cache"), header(&first, "x-ballast-route")),
            ("miss", "primary")
        );
        let first: Value = first.json().await.unwrap();
        settle().await;
        let second = gateway.chat(&chat_request(false)).await;

        let b = backend.name();
        assert_eq!(header(&second, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(header(&second, "x-ballast-route"), "cache", "{b}");
        assert_eq!(header(&second, "x-ballast-attempts"), "0", "{b}");
        assert_eq!(header(&second, "x-ballast-provider"), "up", "{b}: who produced it first");
        assert!(second.headers().contains_key("age"), "{b}");
        assert_eq!(second.json::<Value>().await.unwrap(), first, "{b}");
        assert_eq!(upstream.hits(), 1, "{b}");
        let mut other = chat_request(false);
        other["messages"][0]["content"] = json!("a different question");
        assert_eq!(header(&gateway.chat(&other).await, "x-ballast-cache"), "miss", "{b}");
    }
}

#[tokio::test]
async fn a_streamed_answer_serves_whole_requests_and_replays_with_its_chunking() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted([Reply::chunks(&["one", " two", " three"])]).await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        let original = read_stream(gateway.chat(&chat_request(true)).await).await;
        settle().await;

        let whole = gateway.chat(&chat_request(false)).await;
        assert_eq!(header(&whole, "x-ballast-cache"), "hit", "{}", backend.name());
        let whole: Value = whole.json().await.unwrap();
        assert_eq!(whole["choices"][0]["message"]["content"], "one two three");
        assert_eq!(whole["object"], "chat.completion");
        let replay = gateway.chat(&chat_request(true)).await;
        assert_eq!(header(&replay, "x-ballast-cache"), "hit");
        let replayed = read_stream(replay).await;
        assert_eq!(replayed, original, "{}: the same chunks, the same [DONE]", backend.name());
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn a_whole_answer_serves_stream_requests_as_a_valid_stream() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted([Reply::completion("a whole cached answer")]).await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        gateway.chat(&chat_request(false)).await.text().await.unwrap();
        settle().await;

        let events = read_stream(gateway.chat(&chat_request(true)).await).await;

        assert_eq!(streamed_text(&events), "a whole cached answer", "{}", backend.name());
        assert_eq!(events.last().unwrap(), "[DONE]");
        assert!(events.len() > 4, "replayed in pieces, not one giant chunk");
        assert!(
            !events.iter().any(|e| e.contains("\"choices\":[]")),
            "no usage chunk unless asked for"
        );
        let mut with_usage = chat_request(true);
        with_usage["stream_options"] = json!({"include_usage": true});
        let events = read_stream(gateway.chat(&with_usage).await).await;
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 8);
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn cache_control_no_cache_no_store_and_max_age_are_honoured() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::start().await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        let b = backend.name();

        let stored = chat_with(&gateway, &chat_request(false), "no-store").await;
        assert_eq!(header(&stored, "x-ballast-cache"), "bypass", "{b}");
        settle().await;
        let after_no_store = gateway.chat(&chat_request(false)).await;
        assert_eq!(
            header(&after_no_store, "x-ballast-cache"),
            "miss",
            "{b}: no-store stored nothing"
        );
        settle().await;
        let fresh = chat_with(&gateway, &chat_request(false), "no-cache").await;
        assert_eq!(header(&fresh, "x-ballast-cache"), "bypass", "{b}: no-cache does not read");
        assert_eq!(upstream.hits(), 3, "{b}");

        tokio::time::sleep(Duration::from_millis(1100)).await;
        let too_old = chat_with(&gateway, &chat_request(false), "max-age=1").await;
        assert_eq!(header(&too_old, "x-ballast-cache"), "miss", "{b}: older than max-age");
        settle().await;
        let young_enough = chat_with(&gateway, &chat_request(false), "max-age=60").await;
        assert_eq!(header(&young_enough, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(upstream.hits(), 4, "{b}");
    }
}

#[tokio::test]
async fn errors_and_broken_streams_are_never_cached() {
    for backend in Backend::both().await {
        let cut = Reply::Stream {
            events: chunk_events(&["partial"], false)[..2].to_vec(),
            gap: Duration::ZERO,
            end: StreamEnd::Close,
        };
        let upstream =
            FakeUpstream::scripted([Reply::error(500, "boom"), Reply::error(400, "bad"), cut])
                .await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;

        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 503);
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 400);
        read_stream(gateway.chat(&chat_request(true)).await).await;
        settle().await;
        let next = gateway.chat(&chat_request(false)).await;

        assert_eq!(header(&next, "x-ballast-cache"), "miss", "{}", backend.name());
        assert_eq!(upstream.hits(), 4);
    }
}

#[tokio::test]
async fn a_stale_answer_is_served_when_every_target_fails_but_not_after_stale_ttl() {
    for backend in Backend::both().await {
        let primary = FakeUpstream::scripted([Reply::completion("remembered")]).await;
        let backup = FakeUpstream::start().await;
        let config = two_targets_config(&primary, &backup, "", "")
            .replace(NO_CACHE, &backend.yaml("300ms", "1s"));
        let gateway = TestGateway::start(&config).await;
        gateway.chat(&chat_request(false)).await.text().await.unwrap();
        primary.fallback(Reply::error(503, "down"));
        backup.fallback(Reply::Reset);
        tokio::time::sleep(Duration::from_millis(400)).await;

        let stale = gateway.chat(&chat_request(false)).await;

        let b = backend.name();
        assert_eq!(stale.status(), 200, "{b}");
        assert_eq!(header(&stale, "x-ballast-cache"), "stale", "{b}");
        assert_eq!(header(&stale, "x-ballast-route"), "stale", "{b}");
        assert_eq!(header(&stale, "x-ballast-attempts"), "2", "{b}: both targets were tried first");
        assert!(stale.headers().contains_key("age"));
        assert_eq!(
            stale.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
            "remembered"
        );

        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 503, "{b}: past stale_ttl");
    }
}

#[tokio::test]
async fn a_stale_answer_never_replaces_a_client_error() {
    let upstream = FakeUpstream::scripted([Reply::completion("old")]).await;
    let gateway = cached_gateway(&upstream, &Backend::Memory, "200ms", "1h").await;
    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    upstream.fallback(Reply::error(400, "now your request is wrong"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 400);
}

#[tokio::test]
async fn fifty_identical_concurrent_misses_make_one_upstream_call() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::start().await;
        upstream.fallback(Reply::Delay(
            Duration::from_millis(300),
            Box::new(Reply::completion("shared")),
        ));
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        let request = chat_request(false);

        let answers = futures_util::future::join_all((0..50).map(|_| gateway.chat(&request))).await;

        for answer in answers {
            assert_eq!(answer.status(), 200);
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], "shared");
        }
        assert_eq!(upstream.hits(), 1, "{}", backend.name());
        let metrics =
            gateway.client.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("ballast_coalesced_requests_total{model=\"chat\"} 49"),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_model_with_cache_false_is_not_cached() {
    let upstream = FakeUpstream::start().await;
    let config = support::openai_config(&upstream.base_url(), "")
        .replace(NO_CACHE, "cache: { backend: memory }")
        .replace("  chat:\n", "  chat:\n    cache: false\n");
    let gateway = TestGateway::start(&config).await;

    for _ in 0..2 {
        assert_eq!(header(&gateway.chat(&chat_request(false)).await, "x-ballast-cache"), "off");
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_redis_outage_never_fails_or_stalls_a_request_and_caching_resumes() {
    let mut redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &Backend::RedisAt(redis.url()), "1h", "1h").await;
    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    settle().await;
    assert_eq!(header(&gateway.chat(&chat_request(false)).await, "x-ballast-cache"), "hit");

    redis.kill();
    for round in 0..10 {
        let started = Instant::now();
        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.status(), 200, "round {round}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: {:?}",
            started.elapsed()
        );
    }
    let status: Value =
        gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["cache"], json!({"backend": "redis", "reachable": false}));

    redis.restart().await;
    let mut resumed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = gateway.chat(&chat_request(false)).await;
        if header(&response, "x-ballast-cache") == "hit" {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "caching resumes once Redis is back (a miss stores, the next request hits)");
}

#[tokio::test]
async fn a_hung_redis_costs_each_request_at_most_its_call_timeout() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &Backend::RedisAt(redis.url()), "1h", "1h").await;
    gateway.chat(&chat_request(false)).await.text().await.unwrap();

    redis.pause(true);
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        let mut request = chat_request(false);
        request["messages"][0]["content"] = json!(format!("question {round}"));
        let started = Instant::now();
        assert_eq!(gateway.chat(&request).await.status(), 200, "round {round}");
        slowest = slowest.max(started.elapsed());
    }
    redis.pause(false);

    assert!(slowest < Duration::from_millis(500), "slowest request {slowest:?}");
}

#[tokio::test]
async fn the_gateway_starts_and_serves_while_redis_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(
        &upstream,
        &Backend::RedisAt(format!("redis://127.0.0.1:{closed}")),
        "1h",
        "1h",
    )
    .await;

    let started = Instant::now();
    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_the_cache() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let backend = Backend::RedisAt(redis.url());
    let first = cached_gateway(&upstream, &backend, "1h", "1h").await;
    let second = cached_gateway(&upstream, &backend, "1h", "1h").await;

    first.chat(&chat_request(false)).await.text().await.unwrap();
    settle().await;
    let from_other_replica = second.chat(&chat_request(false)).await;

    assert_eq!(header(&from_other_replica, "x-ballast-cache"), "hit");
    assert_eq!(upstream.hits(), 1);
}
