//! Non-streamed chat completions through an OpenAI-compatible upstream and the mock provider.

use crate::support::{
    self, CLIENT_KEY, FakeUpstream, Reply, TestGateway, UPSTREAM_KEY, chat_request,
};
use serde_json::{Value, json};

#[tokio::test]
async fn forwards_a_completion_and_reports_where_it_came_from() {
    let upstream = FakeUpstream::scripted([Reply::completion("Hi from upstream")]).await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-ballast-provider"], "up");
    assert_eq!(headers["x-ballast-route"], "primary");
    assert_eq!(headers["x-ballast-attempts"], "1");
    assert_eq!(headers["x-ballast-cache"], "off");
    assert!(headers["x-request-id"].to_str().unwrap().starts_with("req_"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hi from upstream");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn upstream_gets_the_target_model_and_the_providers_key_and_nothing_of_the_clients() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let response = gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("api-key", CLIENT_KEY)
        .header("x-api-key", CLIENT_KEY)
        .header("cookie", format!("session={CLIENT_KEY}"))
        .header("openai-organization", "org-client")
        .header("x-stainless-retry-count", "0")
        .header("proxy-authorization", format!("Basic {CLIENT_KEY}"))
        .header("x-request-id", "client-chosen-id-1")
        .json(&chat_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let seen = &upstream.requests()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "upstream-model");
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {UPSTREAM_KEY}").as_str()));
    assert_eq!(seen.header("x-request-id"), Some("client-chosen-id-1"));
    for (name, value) in &seen.headers {
        assert!(!value.contains(CLIENT_KEY), "client credential leaked upstream in `{name}`");
    }
    for name in [
        "cookie",
        "api-key",
        "x-api-key",
        "openai-organization",
        "proxy-authorization",
        "x-stainless-retry-count",
    ] {
        assert_eq!(seen.header(name), None, "`{name}` must not be forwarded");
    }
}

#[tokio::test]
async fn unknown_request_fields_reach_the_upstream_unchanged() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut request = chat_request(false);
    request["top_k"] = json!(40);
    request["repetition_penalty"] = json!(1.1);
    request["response_format"] = json!({"type": "json_object"});
    request["tools"] =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);

    assert_eq!(gateway.chat(&request).await.status(), 200);

    let body = &upstream.requests()[0].body;
    for key in ["top_k", "repetition_penalty", "response_format", "tools", "messages", "stream"] {
        assert_eq!(body[key], request[key], "`{key}` changed on the way");
    }
}

#[tokio::test]
async fn provider_headers_from_the_config_are_sent() {
    let upstream = FakeUpstream::start().await;
    let config = support::openai_config(
        &upstream.base_url(),
        "headers: { x-team: platform, OpenAI-Project: proj_1 }",
    );
    let gateway = TestGateway::start(&config).await;

    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);

    let seen = &upstream.requests()[0];
    assert_eq!(seen.header("x-team"), Some("platform"));
    assert_eq!(seen.header("openai-project"), Some("proj_1"));
}

#[tokio::test]
async fn the_upstream_gets_ballasts_host_and_user_agent_unless_the_config_sets_its_own() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&support::openai_config(&upstream.base_url(), "")).await;
    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
    let seen = &upstream.requests()[0];
    let authority = upstream.base_url().split('/').nth(2).unwrap().to_owned();
    assert_eq!(seen.header("host"), Some(authority.as_str()));
    assert!(seen.header("user-agent").is_some_and(|agent| agent.starts_with("ballast/")));

    let upstream = FakeUpstream::start().await;
    let own = "headers: { Host: llm.internal, User-Agent: team-gateway }";
    let gateway = TestGateway::start(&support::openai_config(&upstream.base_url(), own)).await;
    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
    let seen = &upstream.requests()[0];
    let all = |name: &str| seen.headers.iter().filter(|(n, _)| n == name).count();
    assert_eq!((seen.header("host"), all("host")), (Some("llm.internal"), 1));
    assert_eq!((seen.header("user-agent"), all("user-agent")), (Some("team-gateway"), 1));
}

const MOCK_CONFIG: &str = "
cache: { backend: none }
providers:
  offline: { kind: mock, latency: 1ms }
models:
  chat:
    targets: [ { provider: offline, model: mock-model } ]
";

#[tokio::test]
async fn the_mock_provider_answers_deterministically_with_usage() {
    let gateway = TestGateway::start(MOCK_CONFIG).await;

    let first: Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();
    let again: Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();

    let content = first["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.split(' ').count() >= 12, "{content}");
    assert_eq!(content, again["choices"][0]["message"]["content"]);
    assert_eq!(first["model"], "mock-model");
    assert_eq!(first["object"], "chat.completion");
    let usage = &first["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["completion_tokens"].as_u64().unwrap(), content.split(' ').count() as u64);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
}

#[tokio::test]
async fn the_mock_provider_fails_at_its_configured_rate() {
    let gateway = TestGateway::start(
        &MOCK_CONFIG.replace("latency: 1ms", "failure_rate: 1.0, failure_status: 500"),
    )
    .await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}
