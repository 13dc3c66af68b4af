//! SPEC §3's error table on `/v1/messages`, every row in Anthropic's shape and types
//! (`{"type":"error","error":{"type","message"}}`), and the gateway key in both of the headers
//! Anthropic clients send it in.

use std::time::Duration;

use serde_json::json;

use super::{anthropic_error, header, messages_request};
use crate::support::{FakeUpstream, Reply, TestGateway, openai_config, two_targets_config};

const KEY: &str = "team-a-key-0123456789";

/// `chat` (and `secret`) on `upstream`, behind one gateway key allowed only `chat`, with
/// `limit` (e.g. `requests_per_minute: 1`) when not empty.
fn keyed_config(upstream: &FakeUpstream, limit: &str) -> String {
    let limit =
        if limit.is_empty() { String::new() } else { format!(", rate_limit: {{ {limit} }}") };
    openai_config(&upstream.base_url(), "").replace(
        "models:\n",
        &format!(
            "auth:
  keys:
    - {{ name: team-a, key: '{KEY}', models: ['chat']{limit} }}
models:
  secret: {{ targets: [ {{ provider: up, model: s }} ] }}
"
        ),
    )
}

/// POSTs `body` to `/v1/messages` with the credential header `(name, value)`, if any.
async fn messages_as(
    gateway: &TestGateway,
    credential: Option<(&str, String)>,
    body: &serde_json::Value,
) -> reqwest::Response {
    let mut request = gateway.anthropic_post("/v1/messages").json(body);
    if let Some((name, value)) = credential {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// POSTs `body` as it is, as JSON, to `/v1/messages`.
async fn post_raw(gateway: &TestGateway, body: &str) -> reqwest::Response {
    gateway
        .anthropic_post("/v1/messages")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_invalid_request_error() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    for body in ["{not json", "", "[1, 2]"] {
        let error = anthropic_error(post_raw(&gateway, body).await, 400).await;
        assert_eq!(error["type"], "invalid_request_error", "{body:?}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_body_without_model_messages_or_max_tokens_is_a_400_invalid_request_error() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let turn = json!([{"role": "user", "content": "hi"}]);

    for body in [
        json!({"max_tokens": 10, "messages": turn}),
        json!({"model": "chat", "max_tokens": 10}),
        json!({"model": "chat", "max_tokens": 10, "messages": []}),
        json!({"model": "chat", "messages": turn}),
        json!({"model": 7, "max_tokens": 10, "messages": turn}),
    ] {
        let error = anthropic_error(gateway.messages(&body).await, 400).await;
        assert_eq!(error["type"], "invalid_request_error", "{body}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_unknown_model_is_a_404_not_found_error() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut request = messages_request(false);
    request["model"] = json!("claude-nonexistent");

    let error = anthropic_error(gateway.messages(&request).await, 404).await;

    assert_eq!(error["type"], "not_found_error");
    assert!(error["message"].as_str().unwrap().contains("claude-nonexistent"), "{error}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_401_authentication_error_in_either_header() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&keyed_config(&upstream, "")).await;
    let wrong = "wrong-key-0123456789";

    for credential in [
        None,
        Some(("x-api-key", wrong.to_owned())),
        Some(("authorization", format!("Bearer {wrong}"))),
    ] {
        let response = messages_as(&gateway, credential.clone(), &messages_request(false)).await;
        let error = anthropic_error(response, 401).await;
        assert_eq!(error["type"], "authentication_error", "{credential:?}");
        assert!(!error.to_string().contains(wrong), "the presented key is not echoed");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn the_gateway_key_is_accepted_as_x_api_key_and_as_a_bearer_token() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&keyed_config(&upstream, "")).await;

    for credential in [("x-api-key", KEY.to_owned()), ("authorization", format!("Bearer {KEY}"))] {
        let response =
            messages_as(&gateway, Some(credential.clone()), &messages_request(false)).await;
        assert_eq!(response.status(), 200, "{credential:?}");
    }
    assert_eq!(upstream.hits(), 2);
    for seen in upstream.requests() {
        assert!(
            !seen.headers.iter().any(|(_, value)| value.contains(KEY)),
            "the gateway key never goes upstream"
        );
    }
}

#[tokio::test]
async fn a_model_outside_the_keys_allow_list_is_a_403_permission_error() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&keyed_config(&upstream, "")).await;
    let mut request = messages_request(false);
    request["model"] = json!("secret");

    let response = messages_as(&gateway, Some(("x-api-key", KEY.to_owned())), &request).await;

    let error = anthropic_error(response, 403).await;
    assert_eq!(error["type"], "permission_error");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_body_over_max_body_size_is_a_413_request_too_large() {
    let upstream = FakeUpstream::start().await;
    let config = openai_config(&upstream.base_url(), "")
        .replace("request_timeout: 10s", "request_timeout: 10s, max_body_size: 1KiB");
    let gateway = TestGateway::start(&config).await;
    let mut request = messages_request(false);
    request["messages"][0]["content"] = json!("x".repeat(2048));

    let error = anthropic_error(gateway.messages(&request).await, 413).await;

    assert_eq!(error["type"], "request_too_large");
    assert_eq!(upstream.hits(), 0);
    request["messages"][0]["content"] = json!("x".repeat(700));
    assert_eq!(gateway.messages(&request).await.status(), 200, "just under the limit passes");
}

#[tokio::test]
async fn the_keys_rate_limit_is_a_429_rate_limit_error_with_retry_after() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&keyed_config(&upstream, "requests_per_minute: 1")).await;
    let credential = || Some(("x-api-key", KEY.to_owned()));

    assert_eq!(messages_as(&gateway, credential(), &messages_request(false)).await.status(), 200);
    let limited = messages_as(&gateway, credential(), &messages_request(false)).await;

    let retry_after: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let error = anthropic_error(limited, 429).await;
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_request_larger_than_the_keys_whole_token_limit_is_a_429_that_says_not_to_retry() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&keyed_config(&upstream, "tokens_per_minute: 1000")).await;
    let mut request = messages_request(false);
    request["messages"][0]["content"] = json!("x".repeat(8000));

    let refused = messages_as(&gateway, Some(("x-api-key", KEY.to_owned())), &request).await;

    assert!(refused.headers().get("retry-after").is_none());
    assert_eq!(header(&refused, "x-should-retry"), "false");
    let error = anthropic_error(refused, 429).await;
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_openai_targets_client_error_comes_back_in_anthropics_shape_with_its_status() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
    ] {
        let message = format!("upstream says {status}");
        let upstream = FakeUpstream::scripted([Reply::error(status, &message)]).await;
        let gateway = TestGateway::in_front_of(&upstream).await;

        let error = anthropic_error(gateway.messages(&messages_request(false)).await, status).await;

        assert_eq!(error["type"], kind, "{status}");
        assert_eq!(error["message"], message.as_str(), "the upstream's message");
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn every_target_failing_is_a_529_overloaded_error_that_sdks_must_not_retry() {
    let primary = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    primary.fallback(Reply::error(503, "upstream trouble with key sk-upstream"));
    backup.fallback(Reply::error(500, "also down"));
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", "")).await;

    for stream in [false, true] {
        let response = gateway.messages(&messages_request(stream)).await;

        assert_eq!(header(&response, "x-should-retry"), "false", "stream: {stream}");
        let error = anthropic_error(response, 529).await;
        assert_eq!(error["type"], "overloaded_error");
        assert!(
            !error["message"].as_str().unwrap().contains("sk-upstream"),
            "the messages of upstream failures stay inside"
        );
    }
    assert_eq!((primary.hits(), backup.hits()), (2, 2));
}

#[tokio::test]
async fn passing_request_timeout_is_a_504_timeout_error() {
    let upstream = FakeUpstream::scripted([Reply::Hang]).await;
    let config = openai_config(&upstream.base_url(), "")
        .replace("request_timeout: 10s", "request_timeout: 300ms");
    let gateway = TestGateway::start(&config).await;

    let started = tokio::time::Instant::now();
    let response = gateway.messages(&messages_request(false)).await;
    let elapsed = started.elapsed();

    let error = anthropic_error(response, 504).await;
    assert_eq!(error["type"], "timeout_error");
    assert!(elapsed < Duration::from_secs(3), "answered after {elapsed:?}");
}
