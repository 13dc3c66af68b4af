//! One test per row of SPEC §3's error table that this version covers: every error is
//! OpenAI-shaped, carries `x-request-id`, and leaves the upstream untouched when it is ours.

#![expect(clippy::unwrap_used, reason = "assertion helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{FakeUpstream, Reply, TestGateway, chat_request, openai_config};
use serde_json::{Value, json};

/// Asserts the OpenAI error shape and returns `error`.
async fn openai_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers().contains_key("x-request-id"), "errors carry x-request-id");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some() && error.get("code").is_some(), "{body}");
    error
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let error = openai_error(gateway.post_raw("{not json").await, 400).await;

    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_json");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_body_without_model_or_messages_is_a_400_naming_the_field() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    for (body, param) in [
        (json!({"messages": [{"role": "user", "content": "hi"}]}), "model"),
        (json!({"model": "chat"}), "messages"),
        (json!({"model": "chat", "messages": []}), "messages"),
        (json!({"model": 7, "messages": [{"role": "user", "content": "hi"}]}), "model"),
    ] {
        let error = openai_error(gateway.chat(&body).await, 400).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], param, "{body}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_unknown_model_is_a_404_model_not_found() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut request = chat_request(false);
    request["model"] = json!("gpt-nonexistent");

    let error = openai_error(gateway.chat(&request).await, 404).await;

    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_body_over_max_body_size_is_a_413() {
    let upstream = FakeUpstream::start().await;
    let config = openai_config(&upstream.base_url(), "")
        .replace("request_timeout: 10s", "request_timeout: 10s, max_body_size: 1KiB");
    let gateway = TestGateway::start(&config).await;
    let mut request = chat_request(false);
    request["messages"][0]["content"] = json!("x".repeat(2048));

    let error = openai_error(gateway.chat(&request).await, 413).await;

    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "request_too_large");
    assert_eq!(upstream.hits(), 0);
    // Just under the limit passes.
    request["messages"][0]["content"] = json!("x".repeat(800));
    assert_eq!(gateway.chat(&request).await.status(), 200);
}

#[tokio::test]
async fn upstream_client_errors_come_back_with_their_status_and_message() {
    for status in [400, 404, 413, 422] {
        let message = format!("upstream says {status}");
        let upstream = FakeUpstream::scripted([Reply::error(status, &message)]).await;
        let gateway = TestGateway::in_front_of(&upstream).await;

        let error = openai_error(gateway.chat(&chat_request(false)).await, status).await;

        assert_eq!(error["message"], message.as_str());
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn an_upstream_client_error_in_another_shape_is_rewritten_in_openais() {
    let azure_style = json!({"error": {"code": "content_filter", "message": "filtered"}});
    let upstream = FakeUpstream::scripted([Reply::json(400, &azure_style)]).await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let error = openai_error(gateway.chat(&chat_request(false)).await, 400).await;

    assert_eq!(error["message"], "filtered");
    assert_eq!(error["code"], "content_filter");
    assert_eq!(error["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_failed_upstream_is_a_503_upstream_unavailable_that_sdks_must_not_retry() {
    for status in [500, 502, 503, 429, 401] {
        let upstream =
            FakeUpstream::scripted([Reply::error(status, "upstream trouble with key sk-upstream")])
                .await;
        let gateway = TestGateway::in_front_of(&upstream).await;

        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.headers()["x-should-retry"], "false");
        let error = openai_error(response, 503).await;

        assert_eq!(error["type"], "api_error");
        assert_eq!(error["code"], "upstream_unavailable");
        assert!(
            !error["message"].as_str().unwrap().contains("sk-upstream"),
            "upstream messages of failures stay inside"
        );
    }
}

#[tokio::test]
async fn passing_request_timeout_is_a_504() {
    let upstream = FakeUpstream::scripted([Reply::Hang]).await;
    let config = openai_config(&upstream.base_url(), "")
        .replace("request_timeout: 10s", "request_timeout: 300ms");
    let gateway = TestGateway::start(&config).await;

    let started = tokio::time::Instant::now();
    let response = gateway.chat(&chat_request(false)).await;
    let elapsed = started.elapsed();

    assert_eq!(response.headers()["x-should-retry"], "false");
    let error = openai_error(response, 504).await;
    assert_eq!(error["type"], "api_error");
    assert_eq!(error["code"], "timeout");
    assert!(elapsed < Duration::from_secs(3), "answered after {elapsed:?}");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_openai_shaped_errors() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let missing = gateway.client.get(gateway.url("/v1/completions-typo")).send().await.unwrap();
    assert_eq!(openai_error(missing, 404).await["code"], "unknown_url");
    let wrong_method =
        gateway.client.get(gateway.url("/v1/chat/completions")).send().await.unwrap();
    assert_eq!(openai_error(wrong_method, 405).await["code"], "method_not_allowed");
}
