//! `POST /v1/messages/count_tokens`: forwarded to the model's first `anthropic` target with the
//! model swapped, or, when the model has none, counted by the gateway and marked as an estimate.

use serde_json::{Value, json};

use super::{assert_provider_key_only, header};
use crate::support::{
    CLIENT_KEY, FakeUpstream, Reply, TestGateway, mixed_targets_config, openai_config,
};

fn count_request(text: &str) -> Value {
    json!({"model": "chat", "system": "You are terse.",
           "messages": [{"role": "user", "content": text}]})
}

async fn count(gateway: &TestGateway, body: &Value) -> reqwest::Response {
    gateway
        .anthropic_post("/v1/messages/count_tokens")
        .header("x-api-key", CLIENT_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_the_first_anthropic_target_with_the_model_swapped() {
    let first = FakeUpstream::start().await;
    let claude = FakeUpstream::scripted([Reply::json(200, &json!({"input_tokens": 42}))]).await;
    let gateway =
        TestGateway::start(&mixed_targets_config(("openai", &first), ("anthropic", &claude))).await;
    let request = count_request("How many tokens is this?");

    let response = count(&gateway, &request).await;

    assert_eq!(response.status(), 200);
    assert_ne!(header(&response, "x-ballast-estimate"), "true", "Anthropic's own count");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"input_tokens": 42}));
    assert_eq!(first.hits(), 0, "an openai target cannot count");
    let seen = &claude.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/messages/count_tokens"));
    let mut expected = request;
    expected["model"] = json!("backup-model");
    assert_eq!(seen.body, expected);
    assert_provider_key_only(&seen.headers, "x-api-key");
}

#[tokio::test]
async fn count_tokens_without_an_anthropic_target_is_counted_by_the_gateway_as_an_estimate() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;

    let short = count(&gateway, &count_request("Hello there")).await;
    assert_eq!(short.status(), 200);
    assert_eq!(header(&short, "x-ballast-estimate"), "true");
    let short: Value = short.json().await.unwrap();
    let long: Value =
        count(&gateway, &count_request(&"hello world ".repeat(200))).await.json().await.unwrap();

    let short = short["input_tokens"].as_u64().unwrap();
    let long = long["input_tokens"].as_u64().unwrap();
    assert!(short > 0, "{short}");
    assert!(long > short + 300, "the text is counted, not a constant: {short} then {long}");
    assert_eq!(upstream.hits(), 0, "counted without any upstream call");
}

#[tokio::test]
async fn count_tokens_whose_anthropic_target_fails_is_estimated_by_the_gateway() {
    let claude = FakeUpstream::start().await;
    claude.fallback(Reply::anthropic_error(529, "overloaded_error", "Overloaded"));
    let gateway = TestGateway::start(&crate::support::anthropic_config(&claude, "")).await;

    let response = count(&gateway, &count_request("How many tokens is this?")).await;

    assert_eq!(response.status(), 200, "a count is answered while Anthropic is down");
    assert_eq!(header(&response, "x-ballast-estimate"), "true");
    let counted: Value = response.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    assert_eq!(claude.hits(), 1, "the Anthropic target was asked first");
}
