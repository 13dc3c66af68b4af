//! Gateway keys and per-key limits: 401, 403, 429 with headers, isolation between keys, limits
//! shared through Redis and degrading to per-replica counts when Redis is down.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    FakeUpstream, NO_CACHE, RedisServer, TestGateway, chat_request, openai_config,
};
use serde_json::{Value, json};

const KEY_A: &str = "team-a-key-0123456789";
const KEY_B: &str = "team-b-key-0123456789";

/// `chat` (and `fast-one`, `secret`) on `upstream`; team-a may use `chat` and `fast-*`.
fn config(upstream: &FakeUpstream, cache: &str, limit_a: &str) -> String {
    let limit =
        if limit_a.is_empty() { String::new() } else { format!(", rate_limit: {{ {limit_a} }}") };
    openai_config(&upstream.base_url(), "").replace(NO_CACHE, cache).replace(
        "models:\n",
        &format!(
            "auth:
  keys:
    - {{ name: team-a, key: '{KEY_A}', models: ['chat', 'fast-*']{limit} }}
    - {{ name: team-b, key: '{KEY_B}' }}
models:
  fast-one: {{ targets: [ {{ provider: up, model: f }} ] }}
  secret: {{ targets: [ {{ provider: up, model: s }} ] }}
"
        ),
    )
}

async fn chat_as(
    gateway: &TestGateway,
    key: Option<(&str, &str)>,
    body: &Value,
) -> reqwest::Response {
    let mut request = gateway.client.post(gateway.url("/v1/chat/completions")).json(body);
    if let Some((header, value)) = key {
        request = request.header(header, value);
    }
    request.send().await.unwrap()
}

/// POSTs `body` to `/v1/chat/completions` with `key` as the bearer token.
async fn as_key(gateway: &TestGateway, key: &str, body: &Value) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn bearer(key: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {key}")))
}

async fn error_of(response: reqwest::Response) -> Value {
    response.json::<Value>().await.unwrap()["error"].clone()
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_401_and_reaches_no_upstream() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "")).await;

    for key in
        [None, bearer("wrong-key-0123456789"), Some(("authorization", "Basic dGVhbQ==".to_owned()))]
    {
        let response =
            chat_as(&gateway, key.as_ref().map(|(h, v)| (*h, v.as_str())), &chat_request(false))
                .await;
        assert_eq!(response.status(), 401, "{key:?}");
        let error = error_of(response).await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("authentication_error"), Some("invalid_api_key"))
        );
        assert!(!error.to_string().contains("wrong-key"), "the presented key is not echoed");
    }
    assert_eq!(upstream.hits(), 0);
    let models = gateway.client.get(gateway.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401, "the model list is not public either");
}

#[tokio::test]
async fn every_header_the_sdks_use_carries_the_key() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "")).await;

    for (header, value) in [
        ("authorization", format!("Bearer {KEY_A}")),
        ("api-key", KEY_A.to_owned()),
        ("x-api-key", KEY_B.to_owned()),
    ] {
        assert_eq!(
            chat_as(&gateway, Some((header, &value)), &chat_request(false)).await.status(),
            200,
            "{header}"
        );
    }
    for seen in upstream.requests() {
        assert!(
            !seen.headers.iter().any(|(_, v)| v.contains(KEY_A) || v.contains(KEY_B)),
            "gateway keys never go upstream"
        );
    }
}

#[tokio::test]
async fn a_model_outside_the_keys_allow_list_is_a_403() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "")).await;
    let auth = bearer(KEY_A).unwrap();
    let mut request = chat_request(false);

    for (model, status) in
        [("chat", 200), ("fast-one", 200), ("secret", 403), ("no-such-model", 403)]
    {
        request["model"] = json!(model);
        let response = chat_as(&gateway, Some((auth.0, &auth.1)), &request).await;
        assert_eq!(response.status(), status, "{model}");
        if status == 403 {
            assert_eq!(error_of(response).await["type"], "permission_error");
        }
    }
    let listed: Value = gateway
        .client
        .get(gateway.url("/v1/models"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fast-one", "chat"], "in config order, allowed ones only");
    request["model"] = json!("secret");
    assert_eq!(
        chat_as(&gateway, Some(("x-api-key", KEY_B)), &request).await.status(),
        200,
        "team-b may use all"
    );
}

#[tokio::test]
async fn requests_per_minute_are_limited_with_openai_style_headers() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "requests_per_minute: 3")).await;

    for remaining in ["2", "1", "0"] {
        let response = as_key(&gateway, KEY_A, &chat_request(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "3");
        assert_eq!(response.headers()["x-ratelimit-remaining-requests"], remaining);
        assert!(response.headers()["x-ratelimit-reset-requests"].to_str().unwrap().ends_with('s'));
    }
    let limited = as_key(&gateway, KEY_A, &chat_request(false)).await;

    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert!(limited.headers().contains_key("retry-after-ms"));
    assert_eq!(limited.headers()["x-ratelimit-remaining-requests"], "0");
    let error = error_of(limited).await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limit_exceeded"))
    );
    assert_eq!(upstream.hits(), 3);
    let other_key = as_key(&gateway, KEY_B, &chat_request(false)).await;
    assert_eq!(other_key.status(), 200, "limits are per key");
}

#[tokio::test]
async fn tokens_per_minute_count_the_estimate_then_the_real_usage() {
    let upstream = FakeUpstream::start().await;
    // Each request reserves its estimate (a quarter of its body's bytes) and settles at the 8
    // tokens the fake upstream reports. The limit lets two through, not three.
    let estimate = serde_json::to_vec(&chat_request(false)).unwrap().len().div_ceil(4);
    let limit = 16 + estimate - 1;
    let gateway =
        TestGateway::start(&config(&upstream, NO_CACHE, &format!("tokens_per_minute: {limit}")))
            .await;
    let request = chat_request(false);
    let send = || as_key(&gateway, KEY_A, &request);

    let first = send().await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], limit.to_string().as_str());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(send().await.status(), 200, "8 used + the estimate fits");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = send().await;

    assert_eq!(third.status(), 429, "16 used + the estimate does not");
    assert_eq!(third.headers()["x-ratelimit-remaining-tokens"], (limit - 16).to_string().as_str());
}

#[tokio::test]
async fn each_key_has_its_own_cache_space() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, "cache: { backend: memory }", "")).await;
    let request = chat_request(false);
    let ask = |key: &'static str| as_key(&gateway, key, &request);

    assert_eq!(ask(KEY_A).await.headers()["x-ballast-cache"], "miss");
    assert_eq!(ask(KEY_A).await.headers()["x-ballast-cache"], "hit");
    assert_eq!(
        ask(KEY_B).await.headers()["x-ballast-cache"],
        "miss",
        "team-b never sees team-a's answers"
    );
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_a_keys_limit() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let yaml = config(&upstream, &cache, "requests_per_minute: 3");
    let (first, second) = (TestGateway::start(&yaml).await, TestGateway::start(&yaml).await);
    let mut request = chat_request(false);

    for (index, gateway) in [&first, &second, &first].into_iter().enumerate() {
        request["messages"][0]["content"] = json!(format!("question {index}"));
        let response = as_key(gateway, KEY_A, &request).await;
        assert_eq!(response.status(), 200, "request {index}");
    }
    request["messages"][0]["content"] = json!("question 3");
    let limited = as_key(&second, KEY_A, &request).await;

    assert_eq!(limited.status(), 429, "the fourth request overall, whichever replica gets it");
}

#[tokio::test]
async fn with_redis_down_limits_fall_back_to_each_replica_and_never_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let upstream = FakeUpstream::start().await;
    let cache = format!("cache: {{ backend: redis, redis_url: 'redis://127.0.0.1:{closed}' }}");
    let gateway = TestGateway::start(&config(&upstream, &cache, "requests_per_minute: 2")).await;
    let mut request = chat_request(false);

    let mut statuses = Vec::new();
    for index in 0..3 {
        request["messages"][0]["content"] = json!(format!("question {index}"));
        let started = tokio::time::Instant::now();
        let response = as_key(&gateway, KEY_A, &request).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, [200, 200, 429]);
}
