//! Redis as an accelerator, never a dependency: down, hung or absent, it never fails or stalls
//! a request; caching resumes when it returns; replicas on one Redis share the cache.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Backend, cached_gateway, header, settle};
use crate::support::{FakeUpstream, RedisServer, chat_request};

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
