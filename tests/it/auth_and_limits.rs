//! Gateway keys and per-key limits: 401, 403, 429 with headers, isolation between keys, limits
//! shared through Redis and degrading to per-replica counts when Redis is down.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    self, FakeUpstream, NO_CACHE, RedisCluster, RedisServer, Reply, TestGateway, chat_request,
    openai_config,
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
    // Each request reserves its estimate (a quarter of the bytes of its text: "chat", "user" and
    // "Hello there") and settles at the 8 tokens the fake upstream reports. The limit lets two
    // through, not three.
    let estimate = 19usize.div_ceil(4);
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
async fn an_upstream_reporting_u64_max_tokens_is_answered_and_settled_as_the_most_there_is() {
    let hostile = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX,
                  "total_tokens": u64::MAX}});
    let upstream =
        FakeUpstream::scripted([Reply::json(200, &hostile), Reply::json(200, &hostile)]).await;
    let gateway =
        TestGateway::start(&config(&upstream, NO_CACHE, "tokens_per_minute: 1000000")).await;
    let request = chat_request(false);

    let first = as_key(&gateway, KEY_A, &request).await;
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], u64::MAX);
    // The settling runs off the request path; before, its `prompt + completion` overflowed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = as_key(&gateway, KEY_A, &request).await;

    assert_eq!(second.status(), 429, "the reported usage was settled, saturated");
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

/// Two gateways with `cache` (one Redis, or a cluster) share team-a's 3 requests a minute: the
/// fourth request overall is limited, whichever replica gets it.
async fn two_gateways_share_a_keys_limit(cache: &str) {
    let upstream = FakeUpstream::start().await;
    let yaml = config(&upstream, cache, "requests_per_minute: 3");
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
async fn two_gateways_on_one_redis_share_a_keys_limit() {
    let redis = RedisServer::start().await;
    two_gateways_share_a_keys_limit(&format!(
        "cache: {{ backend: redis, redis_url: '{}' }}",
        redis.url()
    ))
    .await;
}

#[tokio::test]
async fn two_gateways_on_one_redis_cluster_share_a_keys_limit() {
    let cluster = RedisCluster::start(3, None).await;
    let seeds: Vec<String> = cluster.seeds().iter().map(|url| format!("'{url}'")).collect();
    two_gateways_share_a_keys_limit(&format!(
        "cache: {{ backend: redis, redis_cluster: [{}] }}",
        seeds.join(", ")
    ))
    .await;
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

/// Runs `redis-cli` against `redis` and returns its output, trimmed.
fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_refund_settled_after_its_windows_key_expired_leaves_zero_with_an_expiry_in_redis() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::scripted([Reply::Delay(
        Duration::from_millis(400),
        Box::new(Reply::completion("ok")),
    )])
    .await;
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let gateway = TestGateway::start(&config(&upstream, &cache, "tokens_per_minute: 100000")).await;
    let mut request = chat_request(false);
    // An estimate far above the 8 tokens the upstream reports: the settlement is a refund.
    request["messages"][0]["content"] = json!("words ".repeat(1000));

    let answer = tokio::spawn({
        let (client, url) = (gateway.client.clone(), gateway.url("/v1/chat/completions"));
        async move { client.post(url).bearer_auth(KEY_A).json(&request).send().await.unwrap() }
    });
    // Admission comes first (counting a long prompt takes a while the first time in a process);
    // the upstream then holds the answer for 400 ms.
    let mut keys = String::new();
    for _ in 0..250 {
        keys = redis_cli(&redis, &["--scan", "--pattern", "ballast:rl:v1:team-a:tokens:*"]);
        if !keys.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(keys.lines().count(), 1, "the admission counted its estimate: {keys}");
    // The window's key expires while the answer is still on its way.
    redis_cli(&redis, &["DEL", &keys]);
    assert_eq!(answer.await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(redis_cli(&redis, &["GET", &keys]), "0", "a refund never goes below zero");
    let ttl: i64 = redis_cli(&redis, &["PTTL", &keys]).parse().unwrap();
    assert!(ttl > 0, "the settled key expires ({ttl})");
}

#[tokio::test]
async fn a_request_larger_than_the_whole_token_limit_is_a_429_that_says_not_to_retry() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "tokens_per_minute: 1000")).await;
    let mut request = chat_request(false);
    // About 1,200 tokens of prose (two per repetition): over the whole limit.
    request["messages"][0]["content"] = json!("ballast counts ".repeat(600));

    let refused = as_key(&gateway, KEY_A, &request).await;

    assert_eq!(refused.status(), 429);
    assert!(!refused.headers().contains_key("retry-after"));
    assert!(!refused.headers().contains_key("retry-after-ms"));
    assert_eq!(refused.headers()["x-should-retry"], "false");
    let error = error_of(refused).await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("rate_limit_error"), Some("request_exceeds_limit"))
    );
    assert_eq!(upstream.hits(), 0);
    let fits = as_key(&gateway, KEY_A, &chat_request(false)).await;
    assert_eq!(fits.status(), 200);
    // "user" and "Hello there", one per line: 5 o200k tokens, and 3 for the turn; the refusal
    // took none.
    assert_eq!(fits.headers()["x-ratelimit-remaining-tokens"], "992");
}

#[tokio::test]
async fn an_image_counts_as_a_few_tokens_not_as_its_base64_bytes() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "tokens_per_minute: 1000")).await;
    let image = format!("data:image/png;base64,{}", "iVBORw0K".repeat(125_000));
    let request = json!({"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
    ]}]});

    let answered = as_key(&gateway, KEY_A, &request).await;

    assert_eq!(answered.status(), 200, "a 1 MB image is not 250,000 tokens");
    let remaining: u64 =
        answered.headers()["x-ratelimit-remaining-tokens"].to_str().unwrap().parse().unwrap();
    assert!(remaining > 800, "the image and the question cost little ({remaining} left)");
}

/// The tokens a request's admission left, as its `x-ratelimit-remaining-tokens` says.
fn remaining_tokens(response: &reqwest::Response) -> u64 {
    response.headers()["x-ratelimit-remaining-tokens"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_stream_without_usage_is_charged_the_text_it_streamed() {
    // The fake upstream's streams carry no usage chunk; 4000 bytes of text are 1000 tokens.
    let text = "x".repeat(4000);
    let upstream = FakeUpstream::scripted([Reply::chunks(&[&text]), Reply::chunks(&["a"])]).await;
    let gateway =
        TestGateway::start(&config(&upstream, NO_CACHE, "tokens_per_minute: 100000")).await;

    let first = as_key(&gateway, KEY_A, &chat_request(true)).await;
    let before = remaining_tokens(&first);
    assert_eq!(support::streamed_text(&support::read_stream(first).await), text);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = as_key(&gateway, KEY_A, &chat_request(true)).await;

    let estimate = 100_000 - before;
    assert_eq!(remaining_tokens(&second), before - 1000 - estimate);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_charged_what_it_was_sent() {
    let text = "x".repeat(4000);
    let mut events = support::chunk_events(&[&text], false);
    events.pop(); // no finish chunk: the upstream is still generating.
    let stalled = Reply::Stream { events, gap: Duration::ZERO, end: support::StreamEnd::Stall };
    let upstream = FakeUpstream::scripted([stalled, Reply::completion("ok")]).await;
    let gateway =
        TestGateway::start(&config(&upstream, NO_CACHE, "tokens_per_minute: 100000")).await;

    let mut first = as_key(&gateway, KEY_A, &chat_request(true)).await;
    let before = remaining_tokens(&first);
    let mut received = 0;
    while received < text.len() {
        received += first.chunk().await.unwrap().unwrap().len();
    }
    drop(first);
    assert!(upstream.wait_for_hang_up(Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = as_key(&gateway, KEY_A, &chat_request(false)).await;

    let estimate = 100_000 - before;
    assert_eq!(remaining_tokens(&second), before - 1000 - estimate);
}

#[tokio::test]
async fn with_auth_on_metrics_and_status_need_a_gateway_key_while_health_stays_open() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&config(&upstream, NO_CACHE, "")).await;
    let get = |path: &str, key: Option<&str>| {
        let mut request = gateway.client.get(gateway.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    for path in ["/metrics", "/status"] {
        for key in [None, Some("wrong-key-0123456789")] {
            let refused = get(path, key).await.unwrap();
            assert_eq!(refused.status(), 401, "{path} with {key:?}");
            let error = error_of(refused).await;
            assert_eq!(error["type"], "authentication_error", "{path}");
        }
        assert_eq!(get(path, Some(KEY_B)).await.unwrap().status(), 200, "{path} with a key");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(path, None).await.unwrap().status(), 200, "{path} stays open");
    }
}

#[tokio::test]
async fn with_auth_on_metrics_listen_serves_metrics_and_status_without_a_key() {
    let upstream = FakeUpstream::start().await;
    let yaml = config(&upstream, NO_CACHE, "")
        .replace("shutdown_grace: 2s", "shutdown_grace: 2s, metrics_listen: 127.0.0.1:0");
    let parsed = ballast::config::from_yaml(&yaml, &|_| None).unwrap();
    let gateway = ballast::server::Gateway::bind(parsed, None).await.unwrap();
    let operator = gateway.operator_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/metrics", "/status"] {
        let private = client.get(format!("http://{operator}{path}")).send().await.unwrap();
        assert_eq!(private.status(), 200, "{path}: the private listener is the operator's own");
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}
