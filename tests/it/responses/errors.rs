//! `/v1/responses` errors in OpenAI's shape (SPEC §3's table), a chat target's client error
//! passed on in it, and the last resort: when every target failed, the model's
//! `degraded_response` as a Response, whole or streamed.

use std::time::Duration;

use serde_json::{Value, json};

use super::{NATIVE, ResponseStream, header, openai_error, output_text, responses_request};
use crate::support::{
    CLIENT_KEY, FakeUpstream, NO_CACHE, Reply, TestGateway, metric_sum, targets_config,
};

async fn one_target(extra: &str, model_extra: &str) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start().await;
    let config = targets_config(&[("up", "openai", &upstream, extra)], NO_CACHE, model_extra);
    (upstream, TestGateway::start(&config).await)
}

#[tokio::test]
async fn malformed_requests_and_unknown_models_are_refused_in_openais_shape() {
    let (upstream, gateway) = one_target(NATIVE, "").await;
    let post = |body: &'static str| {
        gateway
            .client
            .post(gateway.url("/v1/responses"))
            .bearer_auth(CLIENT_KEY)
            .header("content-type", "application/json")
            .timeout(Duration::from_secs(10))
            .body(body)
            .send()
    };

    for (body, status, param) in [
        ("{not json", 400, None),
        (r#"{"input": "hi"}"#, 400, Some("model")),
        (r#"{"model": "chat", "input": 3}"#, 400, Some("input")),
        (r#"{"model": "chat", "input": {"role": "user"}}"#, 400, Some("input")),
        (r#"{"model": "chat", "input": "hi", "stream": "yes"}"#, 400, Some("stream")),
        (
            r#"{"model": "chat", "input": "hi", "previous_response_id": 7}"#,
            400,
            Some("previous_response_id"),
        ),
        (r#"{"model": "no-such-model", "input": "hi"}"#, 404, Some("model")),
    ] {
        let error = openai_error(post(body).await.unwrap(), status).await;
        assert_eq!(error["type"], "invalid_request_error", "{body}: {error}");
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{body}: {error}");
        }
        if status == 404 {
            assert_eq!(error["code"], "model_not_found");
        }
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn every_target_failing_is_a_503_the_sdk_is_told_not_to_retry() {
    let (upstream, gateway) = one_target(NATIVE, "").await;
    upstream.fallback(Reply::error(503, "overloaded"));

    let response = gateway.responses(&responses_request(false)).await;

    assert_eq!(header(&response, "x-should-retry"), "false");
    let error = openai_error(response, 503).await;
    assert_eq!(error["type"], "api_error");
    assert_eq!(error["code"], "upstream_unavailable");
    let metrics = gateway.metrics().await;
    let labels = [("api", "responses"), ("route", "error"), ("status", "503")];
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &labels), 1.0, "{metrics}");
}

#[tokio::test]
async fn a_chat_targets_client_error_reaches_a_responses_client_in_openais_shape_without_failover()
{
    let primary =
        FakeUpstream::scripted([Reply::error(400, "Invalid schema for response_format")]).await;
    let backup = FakeUpstream::start().await;
    let config = targets_config(
        &[("primary", "openai", &primary, ""), ("backup", "openai", &backup, NATIVE)],
        NO_CACHE,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.responses(&responses_request(false)).await;

    let error = openai_error(response, 400).await;
    assert_eq!(error["message"], "Invalid schema for response_format", "the upstream's words");
    assert_eq!((primary.hits(), backup.hits()), (1, 0));
}

#[tokio::test]
async fn a_degraded_reply_to_a_responses_request_is_a_response_whole_and_streamed() {
    let degraded = "The assistant is busy right now; please try again shortly.";
    let (upstream, gateway) =
        one_target(NATIVE, &format!("degraded_response: \"{degraded}\"")).await;
    upstream.fallback(Reply::error(503, "down"));
    let mut request = responses_request(false);
    request["instructions"] = json!("Be brief.");

    let whole = gateway.responses(&request).await;
    request["stream"] = json!(true);
    let streamed = gateway.responses(&request).await;

    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "x-ballast-route"), "degraded");
    assert_eq!(header(&whole, "x-ballast-provider"), "", "nobody produced it");
    assert_eq!(header(&whole, "x-ballast-attempts"), "1");
    let answer: Value = whole.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert!(answer["id"].as_str().unwrap().starts_with("resp_"), "{answer}");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["model"], "chat");
    assert_eq!(answer["instructions"], "Be brief.", "the request's settings are echoed");
    assert_eq!(output_text(&answer), degraded);
    assert_eq!(answer["usage"]["output_tokens"], 0);
    assert_eq!(header(&streamed, "x-ballast-route"), "degraded");
    let stream = ResponseStream::read(streamed).await;
    stream.assert_complete();
    assert_eq!(stream.text, degraded);
    assert_eq!(output_text(stream.response()), degraded);
}

#[tokio::test]
async fn an_anthropic_targets_client_error_reaches_a_responses_client_in_openais_shape() {
    let upstream = FakeUpstream::scripted([Reply::anthropic_error(
        400,
        "invalid_request_error",
        "messages: text content blocks must be non-empty",
    )])
    .await;
    let config = targets_config(&[("claude", "anthropic", &upstream, "")], NO_CACHE, "");
    let gateway = TestGateway::start(&config).await;

    let response = gateway.responses(&responses_request(false)).await;

    let error = openai_error(response, 400).await;
    assert_eq!(error["type"], "invalid_request_error", "{error}");
    assert_eq!(error["message"], "messages: text content blocks must be non-empty");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_missing_key_or_a_model_the_key_may_not_use_is_refused_before_any_call() {
    const KEY: &str = "sk-gw-team-a-0123456789";
    let upstream = FakeUpstream::start().await;
    let config = targets_config(&[("up", "openai", &upstream, NATIVE)], NO_CACHE, "").replacen(
        "providers:",
        &format!(
            "auth:\n  keys:\n    - {{ name: a, key: {KEY}, models: [\"other-*\"] }}\nproviders:"
        ),
        1,
    );
    let gateway = TestGateway::start(&config).await;
    let post = |path: &str, key: Option<&str>, body: Value| {
        let request = gateway.client.post(gateway.url(path)).timeout(Duration::from_secs(10));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        request.json(&body).send()
    };
    let embeddings = json!({"model": "chat", "input": "x"});

    for (path, body) in
        [("/v1/responses", responses_request(false)), ("/v1/embeddings", embeddings)]
    {
        let missing = openai_error(post(path, None, body.clone()).await.unwrap(), 401).await;
        assert_eq!(missing["type"], "authentication_error", "{path}: {missing}");
        assert_eq!(missing["code"], "invalid_api_key");
        let wrong =
            openai_error(post(path, Some(CLIENT_KEY), body.clone()).await.unwrap(), 401).await;
        assert_eq!(wrong["code"], "invalid_api_key", "{path}");
        let forbidden = openai_error(post(path, Some(KEY), body).await.unwrap(), 403).await;
        assert_eq!(forbidden["type"], "permission_error", "{path}: {forbidden}");
    }
    assert_eq!(upstream.hits(), 0);
}
