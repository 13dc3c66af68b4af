//! `/v1/embeddings` through the front door: a passthrough to `openai` and `azure` targets (the
//! client's bytes with the model swapped, the upstream's answer and client errors unchanged),
//! the mock's deterministic unit vectors, an answer in the encoding the client asked for when
//! the upstream ignored it, the cache (on by default), failover within the alias's targets,
//! `anthropic` targets skipped, and no degraded reply (a vector cannot be made up).

#![expect(clippy::unwrap_used, reason = "tests: a failed unwrap is a failed test")]

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{
    CLIENT_KEY, FakeUpstream, NO_CACHE, RedisServer, Reply, TestGateway, UPSTREAM_KEY, metric_sum,
    targets_config,
};

const MEMORY: &str = "cache: { backend: memory, ttl: 1h, stale_ttl: 1h }";

/// A client body written the way no serializer would: escapes, odd spacing, a number spelled
/// unusually and a member no API knows yet.
const CLIENT_BODY: &str = r#"{"model":"chat","input":["caf\u00e9", "second  text"],"encoding_format":"float","dimensions":3,"user":"u-1","x_future":1.50}"#;

/// An upstream's embeddings answer as it might write it, floats `[0.1,-0.2,0.5]` twice.
const ANSWER: &str = r#"{
  "object": "list",
  "data": [
    {"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.5]},
    {"object": "embedding", "index": 1, "embedding": [0.1,-0.2,0.5]}
  ],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 4, "total_tokens": 4}
}"#;

/// `[0.1, -0.2, 0.5]` as the API's base64 (PROTOCOL §13).
const BASE64: &str = "zczMPc3MTL4AAAA/";

fn answer() -> Reply {
    Reply::Respond { status: 200, headers: Vec::new(), body: ANSWER.to_owned() }
}

/// An embeddings request for model `chat`.
fn embeddings_request(input: Value) -> Value {
    json!({"model": "chat", "input": input})
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

/// The `f32`s of an API base64 embedding.
fn decode(text: &str) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    bytes.chunks_exact(4).map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]])).collect()
}

/// The `f32`s of a float embedding.
fn floats(embedding: &Value) -> Vec<f32> {
    embedding.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// POSTs `body` as it is to `/v1/embeddings` with the client's key.
async fn post_bytes(gateway: &TestGateway, body: &'static str) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/v1/embeddings"))
        .timeout(Duration::from_secs(10))
        .bearer_auth(CLIENT_KEY)
        .header("api-key", CLIENT_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_embeddings_request_reaches_an_openai_target_as_the_clients_bytes_and_its_answer_comes_back_unchanged()
 {
    let upstream = FakeUpstream::scripted([answer()]).await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], NO_CACHE, "")).await;

    let response = post_bytes(&gateway, CLIENT_BODY).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-route"), "primary");
    assert_eq!(header(&response, "x-ballast-attempts"), "1");
    assert_eq!(header(&response, "x-ballast-cache"), "off");
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), ANSWER, "the upstream's bytes, unchanged");
    let seen = &upstream.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/embeddings"));
    let expected = CLIENT_BODY.replacen(r#""model":"chat""#, r#""model":"up-model""#, 1);
    assert_eq!(String::from_utf8_lossy(&seen.bytes), expected);
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {UPSTREAM_KEY}").as_str()));
    for (name, value) in &seen.headers {
        assert!(!value.contains(CLIENT_KEY), "the client's key reached the upstream in `{name}`");
    }
}

#[tokio::test]
async fn an_azure_target_gets_the_request_on_its_deployment_url_with_its_api_key() {
    let upstream = FakeUpstream::scripted([answer()]).await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", "azure", &upstream, "")], NO_CACHE, "")).await;

    let response = post_bytes(&gateway, CLIENT_BODY).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), ANSWER);
    let seen = &upstream.requests()[0];
    assert_eq!(seen.path, "/openai/deployments/up-model/embeddings?api-version=2024-10-21");
    let expected = CLIENT_BODY.replacen(r#""model":"chat""#, r#""model":"up-model""#, 1);
    assert_eq!(String::from_utf8_lossy(&seen.bytes), expected);
    assert_eq!(seen.header("api-key"), Some(UPSTREAM_KEY));
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn an_upstream_client_error_comes_back_verbatim_and_a_503_fails_over() {
    let body = r#"{"error": {"message": "'input' contains an invalid token id.", "type": "invalid_request_error", "param": "input", "code": null}}"#;
    let primary = FakeUpstream::scripted([
        Reply::Respond { status: 400, headers: Vec::new(), body: body.to_owned() },
        Reply::error(503, "overloaded"),
    ])
    .await;
    let backup = FakeUpstream::scripted([answer()]).await;
    let config = targets_config(
        &[
            ("primary", "openai", &primary, "retry: { max_retries: 0 }"),
            ("backup", "azure", &backup, ""),
        ],
        NO_CACHE,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let rejected = gateway.embeddings(&embeddings_request(json!("bad ids"))).await;
    assert_eq!(rejected.status(), 400);
    assert_eq!(rejected.text().await.unwrap(), body, "the upstream's body, verbatim");
    assert_eq!((primary.hits(), backup.hits()), (1, 0), "a client error is not failed over");

    let failed_over = gateway.embeddings(&embeddings_request(json!("fine"))).await;

    assert_eq!(failed_over.status(), 200);
    assert_eq!(header(&failed_over, "x-ballast-provider"), "backup");
    assert_eq!(header(&failed_over, "x-ballast-route"), "failover");
    assert_eq!(header(&failed_over, "x-ballast-attempts"), "2");
    assert_eq!(failed_over.text().await.unwrap(), ANSWER);
    assert_eq!(backup.requests()[0].body["model"], "backup-model", "the deployment, replicas");
}

#[tokio::test]
async fn the_mock_answers_deterministic_unit_vectors_drawn_from_each_input_alone() {
    let config = "server: { listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }
cache: { backend: none }
providers:
  demo: { kind: mock, latency: 1ms }
models:
  chat:
    targets: [ { provider: demo, model: mock-embed } ]
";
    let gateway = TestGateway::start(config).await;
    let embed = |body: Value| {
        let gateway = &gateway;
        async move {
            let response = gateway.embeddings(&body).await;
            assert_eq!(response.status(), 200, "{body}");
            assert_eq!(header(&response, "x-ballast-provider"), "demo");
            response.json::<Value>().await.unwrap()
        }
    };

    let first = embed(embeddings_request(json!(["alpha", "beta"]))).await;
    let second = embed(embeddings_request(json!(["beta", "gamma", "alpha"]))).await;
    let short = embed(json!({"model": "chat", "input": "alpha", "dimensions": 8})).await;
    let encoded =
        embed(json!({"model": "chat", "input": ["alpha"], "encoding_format": "base64"})).await;

    assert_eq!(first["object"], "list");
    assert_eq!(first["model"], "mock-embed");
    assert!(first["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{}", first["usage"]);
    let vector = |answer: &Value, index: usize| {
        assert_eq!(answer["data"][index]["index"], index);
        assert_eq!(answer["data"][index]["object"], "embedding");
        floats(&answer["data"][index]["embedding"])
    };
    let alpha = vector(&first, 0);
    assert_eq!(alpha.len(), 1536, "text-embedding-3-small's dimensions by default");
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm(&alpha) - 1.0).abs() < 1e-4, "a unit vector: {}", norm(&alpha));
    assert_eq!(vector(&second, 2), alpha, "the same text, the same vector, wherever it stands");
    assert_eq!(vector(&second, 0), vector(&first, 1));
    assert_ne!(vector(&first, 1), alpha, "different texts differ");
    let shortened = vector(&short, 0);
    assert_eq!(shortened.len(), 8);
    assert!((norm(&shortened) - 1.0).abs() < 1e-4);
    let head = norm(&alpha[..8]);
    for (x, y) in shortened.iter().zip(&alpha[..8]) {
        assert!((x - y / head).abs() < 1e-4, "the same direction's first entries, normalised");
    }
    let decoded = decode(encoded["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(decoded, alpha, "base64 is the same f32s");
}

#[tokio::test]
async fn an_answer_in_the_other_encoding_is_converted_to_the_one_the_client_asked_for() {
    let base64_answer = ANSWER
        .replace("[0.1, -0.2, 0.5]", &format!("\"{BASE64}\""))
        .replace("[0.1,-0.2,0.5]", &format!("\"{BASE64}\""));
    let upstream = FakeUpstream::scripted([
        answer(),
        Reply::Respond { status: 200, headers: Vec::new(), body: base64_answer.clone() },
        Reply::Respond { status: 200, headers: Vec::new(), body: base64_answer },
    ])
    .await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], NO_CACHE, "")).await;

    let wants_base64 = gateway
        .embeddings(&json!({"model": "chat", "input": ["a", "b"], "encoding_format": "base64"}))
        .await;
    let wants_floats = gateway
        .embeddings(&json!({"model": "chat", "input": ["a", "b"], "encoding_format": "float"}))
        .await;
    let says_nothing = gateway.embeddings(&embeddings_request(json!(["a", "b"]))).await;

    assert_eq!(wants_base64.status(), 200);
    let converted: Value = wants_base64.json().await.unwrap();
    for item in converted["data"].as_array().unwrap() {
        assert_eq!(item["embedding"], BASE64, "floats written as base64: {converted}");
    }
    assert_eq!(converted["usage"]["prompt_tokens"], 4, "the rest as the upstream wrote it");
    assert_eq!(upstream.requests()[0].body["encoding_format"], "base64", "the upstream was asked");
    for response in [wants_floats, says_nothing] {
        assert_eq!(response.status(), 200);
        let converted: Value = response.json().await.unwrap();
        for item in converted["data"].as_array().unwrap() {
            assert_eq!(floats(&item["embedding"]), [0.1, -0.2, 0.5], "base64 written as floats");
        }
    }
}

#[tokio::test]
async fn a_repeated_embeddings_request_is_a_cache_hit_by_default_whoever_the_user() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(answer());
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], MEMORY, "")).await;
    let request = |user: &str| json!({"model": "chat", "input": ["a", "b"], "user": user});

    let first = gateway.embeddings(&request("alice")).await;
    assert_eq!(header(&first, "x-ballast-cache"), "miss");
    assert_eq!(first.text().await.unwrap(), ANSWER);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let again = gateway.embeddings(&request("bob")).await;

    assert_eq!(again.status(), 200);
    assert_eq!(header(&again, "x-ballast-cache"), "hit", "`user` does not change an embedding");
    assert_eq!(header(&again, "x-ballast-route"), "cache");
    assert_eq!(header(&again, "x-ballast-attempts"), "0");
    assert_eq!(header(&again, "x-ballast-provider"), "up");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, serde_json::from_str::<Value>(ANSWER).unwrap());
    assert_eq!(upstream.hits(), 1);
    let base64 = json!({"model": "chat", "input": ["a", "b"], "encoding_format": "base64"});
    let other = gateway.embeddings(&base64).await;
    assert_eq!(header(&other, "x-ballast-cache"), "miss", "another encoding is another entry");
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["data"][0]["embedding"], BASE64);
}

#[tokio::test]
async fn an_anthropic_target_is_skipped_without_counting_as_a_failure() {
    let claude = FakeUpstream::start().await;
    let up = FakeUpstream::scripted([answer()]).await;
    let config = targets_config(
        &[("claude", "anthropic", &claude, ""), ("up", "openai", &up, "")],
        NO_CACHE,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.embeddings(&embeddings_request(json!("hello"))).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-attempts"), "1", "no attempt on the skipped target");
    assert_eq!(claude.hits(), 0);
    let metrics = gateway.metrics().await;
    let claude_calls = [("provider", "claude")];
    assert_eq!(metric_sum(&metrics, "ballast_upstream_requests_total", &claude_calls), 0.0);
    assert_eq!(metric_sum(&metrics, "ballast_failovers_total", &[]), 0.0, "{metrics}");

    let only_claude =
        TestGateway::start(&targets_config(&[("claude", "anthropic", &claude, "")], NO_CACHE, ""))
            .await;
    let refused = only_claude.embeddings(&embeddings_request(json!("hello"))).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert_eq!(error["error"]["param"], "model", "{error}");
    assert_eq!(claude.hits(), 0);
}

#[tokio::test]
async fn a_failed_embeddings_request_is_a_503_even_with_a_degraded_response() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::error(503, "down"));
    let config = targets_config(
        &[("up", "openai", &upstream, "")],
        NO_CACHE,
        "degraded_response: \"Busy, try again.\"",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.embeddings(&embeddings_request(json!("hello"))).await;

    assert_eq!(response.status(), 503, "a vector cannot be made up");
    assert_eq!(header(&response, "x-should-retry"), "false");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_unavailable", "{error}");
    let metrics = gateway.metrics().await;
    let labels = [("api", "embeddings"), ("route", "error"), ("status", "503")];
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &labels), 1.0, "{metrics}");
}

#[tokio::test]
async fn malformed_embeddings_requests_are_400s_naming_the_member() {
    let upstream = FakeUpstream::start().await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], NO_CACHE, "")).await;

    for (body, param) in [
        (json!({"input": "x"}), "model"),
        (json!({"model": "chat"}), "input"),
        (json!({"model": "chat", "input": ""}), "input"),
        (json!({"model": "chat", "input": []}), "input"),
        (json!({"model": "chat", "input": ["a", 1]}), "input"),
        (json!({"model": "chat", "input": "x", "encoding_format": "hex"}), "encoding_format"),
        (json!({"model": "chat", "input": "x", "dimensions": 0}), "dimensions"),
    ] {
        let response = gateway.embeddings(&body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}: {error}");
        assert_eq!(error["error"]["param"], param, "{body}: {error}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn embeddings_requests_are_counted_with_api_embeddings_and_their_prompt_tokens() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(answer());
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], NO_CACHE, "")).await;
    for _ in 0..2 {
        assert_eq!(gateway.embeddings(&embeddings_request(json!("x"))).await.status(), 200);
    }

    let metrics = gateway.metrics().await;

    let labels =
        [("api", "embeddings"), ("model", "chat"), ("route", "primary"), ("status", "200")];
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &labels), 2.0, "{metrics}");
    let prompt = [("model", "chat"), ("provider", "up"), ("kind", "prompt")];
    assert_eq!(metric_sum(&metrics, "ballast_tokens_total", &prompt), 8.0, "{metrics}");
}

#[tokio::test]
async fn warm_with_api_embeddings_fills_the_shared_cache() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    upstream.fallback(answer());
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let config = targets_config(&[("up", "openai", &upstream, "")], &cache, "");
    let dir = tempfile::tempdir().unwrap();
    let (config_path, file) = (dir.path().join("config.yaml"), dir.path().join("requests.jsonl"));
    std::fs::write(&config_path, &config).unwrap();
    let lines = [embeddings_request(json!("first text")), embeddings_request(json!(["a", "b"]))];
    let lines: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["warm", "--api", "embeddings", "--config"])
        .arg(&config_path)
        .arg(&file)
        .output()
        .await
        .unwrap();

    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("2 stored, 0 already fresh, 0 failed"), "{out}");
    assert_eq!(upstream.hits(), 2);
    upstream.fallback(Reply::error(503, "down"));
    let gateway = TestGateway::start(&config).await;
    let response = gateway.embeddings(&embeddings_request(json!("first text"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-cache"), "hit");
    assert_eq!(response.text().await.unwrap(), ANSWER, "stored as the upstream answered");
    assert_eq!(upstream.hits(), 2, "the gateway never asked the upstream");
}
