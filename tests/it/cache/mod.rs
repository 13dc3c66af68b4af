//! The cache through the front door, on both backends, one module per area: `entries` (hits
//! and misses, streams and whole answers sharing entries, what is never stored, stale-on-error),
//! `cache_control` (the request's directives, and what a re-roll may not change in a shared
//! space), `single_flight`, `redis_outages` and `managed_redis` (TLS, Cluster). The helpers they share are here.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

mod cache_control;
mod entries;
mod managed_redis;
mod redis_outages;
mod single_flight;

use std::time::Duration;

use crate::support::{self, FakeUpstream, NO_CACHE, RedisServer, TestGateway};
use serde_json::Value;

/// A backend under test: memory, a Redis this backend owns, a Redis at a URL, or a Redis
/// given by its `redis_*` keys (TLS, a cluster).
pub(super) enum Backend {
    Memory,
    Redis(RedisServer),
    RedisAt(String),
    RedisKeys(String),
}

impl Backend {
    pub(super) async fn both() -> [Backend; 2] {
        [Backend::Memory, Backend::Redis(RedisServer::start().await)]
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(_) | Self::RedisAt(_) | Self::RedisKeys(_) => "redis",
        }
    }

    pub(super) fn yaml(&self, ttl: &str, stale_ttl: &str) -> String {
        match self {
            Self::Memory => {
                format!("cache: {{ backend: memory, ttl: {ttl}, stale_ttl: {stale_ttl} }}")
            }
            Self::Redis(server) => Self::RedisAt(server.url()).yaml(ttl, stale_ttl),
            Self::RedisAt(url) => {
                Self::RedisKeys(format!("redis_url: '{url}'")).yaml(ttl, stale_ttl)
            }
            Self::RedisKeys(keys) => {
                format!("cache: {{ backend: redis, {keys}, ttl: {ttl}, stale_ttl: {stale_ttl} }}")
            }
        }
    }
}

/// A gateway with model `chat` → `upstream` (one attempt), caching on `backend`.
pub(super) async fn cached_gateway(
    upstream: &FakeUpstream,
    backend: &Backend,
    ttl: &str,
    stale_ttl: &str,
) -> TestGateway {
    let config = support::openai_config(&upstream.base_url(), "")
        .replace(NO_CACHE, &backend.yaml(ttl, stale_ttl));
    TestGateway::start(&config).await
}

pub(super) async fn chat_with(
    gateway: &TestGateway,
    body: &Value,
    cache_control: &str,
) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .header("cache-control", cache_control)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(super) fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

/// Lets a background write land (Redis writes are not on the request path).
pub(super) async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

/// The text of a whole answer.
pub(super) async fn content(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned()
}
