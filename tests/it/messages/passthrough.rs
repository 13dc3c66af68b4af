//! A Messages request to an `anthropic` target is a passthrough: the client's bytes with only
//! `model` swapped, its `anthropic-version` and `anthropic-beta` forwarded (never its key), and
//! the upstream's answer, stream and client errors back to the client unchanged.

use std::time::Duration;

use serde_json::Value;

use super::{
    MessageStream, assert_provider_key_only, header, messages_request, raw_members, sse_blocks,
};
use crate::support::{
    CLIENT_KEY, FakeUpstream, Reply, TestGateway, anthropic_config, json_fixture,
    mixed_targets_config, read_body, sse_events, sse_fixture,
};

/// A client body written the way no serializer would: escapes, odd spacing inside members,
/// numbers spelled unusually, hints and a member no API knows yet.
const CLIENT_BODY: &str = r#"{"model":"chat","max_tokens":512,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00  two  spaces \"quoted\""}],"temperature":1.50,"thinking":{ "type" : "adaptive" },"context_management":{"edits":[]},"tools":[{"name":"Read","input_schema":{"type":"object"},"defer_loading":true}],"x_future_field":[1e2, 0.10]}"#;

async fn answering(reply: Reply) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::scripted([reply]).await;
    let gateway = TestGateway::start(&anthropic_config(&upstream, "")).await;
    (upstream, gateway)
}

#[tokio::test]
async fn a_messages_request_reaches_an_anthropic_target_as_the_clients_bytes_with_the_model_swapped()
 {
    let (upstream, gateway) =
        answering(Reply::json(200, &json_fixture("anthropic_message.json"))).await;

    let response = gateway
        .anthropic_post("/v1/messages")
        .header("x-api-key", CLIENT_KEY)
        .header("content-type", "application/json")
        .body(CLIENT_BODY)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "claude");
    assert!(
        response.headers().get("x-ballast-dropped").is_none(),
        "nothing is dropped on the same API"
    );
    let seen = &upstream.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/messages"));
    let without_model = |bytes: &[u8]| {
        let mut members = raw_members(bytes);
        let model = members.iter().position(|(name, _)| name == "model").unwrap();
        (members.remove(model).1, members)
    };
    let (model, members) = without_model(&seen.bytes);
    assert_eq!(model, r#""claude-test""#, "the target's upstream model");
    assert_eq!(members, without_model(CLIENT_BODY.as_bytes()).1, "each member as written");
    let expected = CLIENT_BODY.replacen(r#""model":"chat""#, r#""model":"claude-test""#, 1);
    assert_eq!(
        String::from_utf8_lossy(&seen.bytes),
        expected,
        "every member but `model` as the client wrote it"
    );
}

#[tokio::test]
async fn the_clients_anthropic_version_and_beta_headers_are_forwarded_but_never_its_key() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &json_fixture("anthropic_message.json")));
    let gateway = TestGateway::start(&anthropic_config(&upstream, "")).await;
    let beta = "context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14";

    let with_headers = gateway
        .client
        .post(gateway.url("/v1/messages"))
        .timeout(Duration::from_secs(10))
        .header("x-api-key", CLIENT_KEY)
        .bearer_auth(CLIENT_KEY)
        .header("anthropic-version", "2023-01-01")
        .header("anthropic-beta", beta)
        .header("x-custom-client", "not-for-upstream")
        .json(&messages_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(with_headers.status(), 200);
    let without = gateway
        .client
        .post(gateway.url("/v1/messages"))
        .timeout(Duration::from_secs(10))
        .header("x-api-key", CLIENT_KEY)
        .json(&messages_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 200);

    let seen = upstream.requests();
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-01-01"), "the client's version");
    assert_eq!(seen[0].header("anthropic-beta"), Some(beta));
    assert_eq!(seen[0].header("x-custom-client"), None, "only the two Anthropic headers pass");
    assert!(seen[1].header("anthropic-version").is_some(), "Anthropic requires a version");
    assert_eq!(seen[1].header("anthropic-beta"), None);
    for request in &seen {
        assert_provider_key_only(&request.headers, "x-api-key");
        assert_eq!(request.header("authorization"), None, "Anthropic takes its key in x-api-key");
    }
}

#[tokio::test]
async fn an_anthropic_targets_answer_reaches_the_client_byte_for_byte() {
    let answer = "{\n  \"id\": \"msg_01XFDUDYJgAACzvnptvVoYEL\",\n  \"type\": \"message\",\n  \"role\": \"assistant\",\n  \"model\": \"claude-sonnet-4-5-20250929\",\n  \"content\": [{\"type\": \"text\", \"text\": \"Caf\\u00e9 \\u2014 ok\"}],\n  \"stop_reason\": \"end_turn\",\n  \"stop_sequence\": null,\n  \"usage\": {\"input_tokens\": 10, \"output_tokens\": 4, \"service_tier\": \"standard\"},\n  \"container\": null\n}";
    let (_upstream, gateway) =
        answering(Reply::Respond { status: 200, headers: Vec::new(), body: answer.to_owned() })
            .await;

    let response = gateway.messages(&messages_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "claude");
    assert_eq!(header(&response, "x-ballast-route"), "primary");
    assert_eq!(header(&response, "x-ballast-attempts"), "1");
    assert_eq!(header(&response, "x-ballast-cache"), "off");
    assert!(response.headers().contains_key("x-request-id"));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&bytes), answer, "the upstream's bytes, unchanged");
}

#[tokio::test]
async fn an_anthropic_targets_stream_reaches_the_client_event_for_event() {
    let (upstream, gateway) = answering(Reply::sse("anthropic_tool_stream.sse")).await;

    let response = gateway.messages(&messages_request(true)).await;

    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    assert_eq!(header(&response, "x-ballast-provider"), "claude");
    let body = read_body(response).await;
    assert_eq!(
        sse_blocks(&body),
        sse_fixture("anthropic_tool_stream.sse"),
        "every event: and data: line as the upstream sent it"
    );
    let stream = MessageStream::of(&sse_events(&body));
    stream.assert_complete();
    assert_eq!(stream.start["model"], "claude-sonnet-4-5-20250929", "passed through");
    let sent = &upstream.requests()[0];
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["model"], "claude-test");
}

#[tokio::test]
async fn an_anthropic_targets_client_error_comes_back_verbatim_without_retry_or_failover() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
    ] {
        let body = format!(
            r#"{{"type": "error", "error": {{"type": "{kind}", "message": "upstream says {status}"}}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}}"#
        );
        let primary = FakeUpstream::scripted([Reply::Respond {
            status,
            headers: Vec::new(),
            body: body.clone(),
        }])
        .await;
        let backup = FakeUpstream::start().await;
        let config = mixed_targets_config(("anthropic", &primary), ("openai", &backup)).replacen(
            "retry: { max_retries: 0 }",
            "retry: { max_retries: 3, base_delay: 1ms }",
            1,
        );
        assert!(config.contains("max_retries: 3"), "{config}");
        let gateway = TestGateway::start(&config).await;

        let response = gateway.messages(&messages_request(false)).await;

        assert_eq!(response.status(), status);
        assert!(response.headers().contains_key("x-request-id"));
        let text = response.text().await.unwrap();
        assert_eq!(text, body, "{status}: the upstream's body, verbatim");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["error"]["type"], kind);
        assert_eq!(
            (primary.hits(), backup.hits()),
            (1, 0),
            "{status}: never retried or failed over"
        );
    }
}

#[tokio::test]
async fn a_clients_anthropic_beta_replaces_the_configured_one_rather_than_adding_a_second() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &json_fixture("anthropic_message.json")));
    let configured = "headers: { anthropic-beta: configured-2025-01-01 }";
    let gateway = TestGateway::start(&anthropic_config(&upstream, configured)).await;

    let own = gateway
        .anthropic_post("/v1/messages")
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-beta", "client-2025-02-02")
        .json(&messages_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(gateway.messages(&messages_request(false)).await.status(), 200);

    let seen = upstream.requests();
    let betas = |at: usize| -> Vec<String> {
        seen[at]
            .headers
            .iter()
            .filter(|(name, _)| name == "anthropic-beta")
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(betas(0), ["client-2025-02-02"], "one value: the client's");
    assert_eq!(betas(1), ["configured-2025-01-01"], "without one, the configured header");
}
