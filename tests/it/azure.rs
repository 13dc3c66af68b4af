//! The `azure` provider through the front door: deployment URLs with `api-version`, the
//! `api-key` header, Azure's error shapes and retry headers, and its stream quirks normalised
//! (PROTOCOL.md §9, §4.2).

use std::time::Duration;

use crate::support::{
    CLIENT_KEY, FakeUpstream, Reply, StreamEnd, TestGateway, UPSTREAM_KEY, azure_config,
    chat_request, chat_request_with_usage, json_fixture, mixed_targets_config, read_stream,
    sse_fixture, streamed_text, tokens_counted,
};
use serde_json::{Value, json};

const DEPLOYMENT_PATH: &str = "/openai/deployments/gpt4o-deploy/chat/completions";

async fn gateway_for(upstream: &FakeUpstream) -> TestGateway {
    TestGateway::start(&azure_config(upstream, "")).await
}

fn azure_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &json!({"error": {"code": code, "message": message}}))
}

#[tokio::test]
async fn a_request_goes_to_the_deployment_url_with_the_api_version_and_api_key() {
    let upstream =
        FakeUpstream::scripted([Reply::json(200, &json_fixture("azure_completion.json"))]).await;
    let gateway = gateway_for(&upstream).await;
    let mut request = chat_request(false);
    request["top_k"] = json!(3);
    request["seed"] = json!(11);

    let response = gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("api-key", CLIENT_KEY)
        .json(&request)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let seen = &upstream.requests()[0];
    assert_eq!(seen.path, format!("{DEPLOYMENT_PATH}?api-version=2024-10-21"));
    assert_eq!(seen.header("api-key"), Some(UPSTREAM_KEY));
    assert_eq!(seen.header("authorization"), None);
    for (name, value) in &seen.headers {
        assert!(!value.contains(CLIENT_KEY), "client credential leaked upstream in `{name}`");
    }
    let mut expected = request.clone();
    expected["model"] = json!("gpt4o-deploy");
    assert_eq!(seen.body, expected, "the body is OpenAI's, unknown fields included");
}

#[tokio::test]
async fn the_api_version_and_extra_headers_come_from_the_config() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &json_fixture("azure_completion.json")));
    let config = azure_config(
        &upstream,
        "api_version: 2025-01-01-preview, headers: { x-ms-client-request-id: team-a }",
    );
    let gateway = TestGateway::start(&config).await;

    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);

    let seen = &upstream.requests()[0];
    assert_eq!(seen.path, format!("{DEPLOYMENT_PATH}?api-version=2025-01-01-preview"));
    assert_eq!(seen.header("x-ms-client-request-id"), Some("team-a"));
}

#[tokio::test]
async fn a_completion_passes_through_with_its_content_filter_annotations() {
    let fixture = json_fixture("azure_completion.json");
    let upstream = FakeUpstream::scripted([Reply::json(200, &fixture)]).await;
    let gateway = gateway_for(&upstream).await;

    let body: Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();

    assert_eq!(body, fixture);
}

#[tokio::test]
async fn a_stream_loses_the_prompt_filter_chunk_and_trailing_chunks_without_delta() {
    let upstream = FakeUpstream::scripted([Reply::sse("azure_stream.sse")]).await;
    let gateway = gateway_for(&upstream).await;

    let events = read_stream(gateway.chat(&chat_request(true)).await).await;

    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(streamed_text(&events), "Hello from Azure");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks.len(), 4, "role, two pieces, finish: {events:#?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-AAzure1ZmQ2kPq0fV7nXo");
        assert!(chunk["choices"][0]["delta"].is_object(), "{chunk}");
    }
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(upstream.requests()[0].body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_stream_keeps_its_usage_chunk_for_a_client_that_asks() {
    let upstream = FakeUpstream::scripted([Reply::sse("azure_stream.sse")]).await;
    let gateway = gateway_for(&upstream).await;
    let events = read_stream(gateway.chat(&chat_request_with_usage()).await).await;

    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 12);
    let empty = events.iter().filter(|e| e.contains("\"choices\":[]")).count();
    assert_eq!(empty, 1, "only the usage chunk has no choices");
}

#[tokio::test]
async fn whole_and_streamed_answers_count_the_same_tokens() {
    let upstream = FakeUpstream::scripted([
        Reply::json(200, &json_fixture("azure_completion.json")),
        Reply::sse("azure_stream.sse"),
    ])
    .await;
    let gateway = gateway_for(&upstream).await;

    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    let after_whole = tokens_counted(&gateway.metrics().await, "azure");
    read_stream(gateway.chat(&chat_request(true)).await).await;
    let after_stream = tokens_counted(&gateway.metrics().await, "azure");

    assert_eq!(after_whole, (9.0, 3.0));
    assert_eq!(after_stream, (18.0, 6.0));
}

#[tokio::test]
async fn a_stream_that_breaks_after_only_the_prompt_filter_chunk_fails_over() {
    let prompt_filter = sse_fixture("azure_stream.sse")[0].clone();
    let azure = FakeUpstream::scripted([Reply::Events {
        events: vec![prompt_filter],
        gap: Duration::ZERO,
        end: StreamEnd::Reset,
    }])
    .await;
    let openai = FakeUpstream::scripted([Reply::chunks(&["from", " openai"])]).await;
    let gateway =
        TestGateway::start(&mixed_targets_config(("azure", &azure), ("openai", &openai))).await;

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!(streamed_text(&read_stream(response).await), "from openai");
}

#[tokio::test]
async fn retry_after_ms_and_x_ms_retry_after_ms_are_honoured() {
    for header in ["retry-after-ms", "x-ms-retry-after-ms"] {
        let throttled = azure_error(
            429,
            "429",
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds.",
        )
        .with_header(header, "400")
        .with_header("retry-after", "86400");
        let upstream = FakeUpstream::scripted([throttled]).await;
        let config =
            azure_config(&upstream, "retry: { max_retries: 1, base_delay: 1ms, max_delay: 5s }");
        let gateway = TestGateway::start(&config).await;

        let response = gateway.chat(&chat_request(false)).await;

        assert_eq!(response.status(), 200, "{header}");
        let seen = upstream.requests();
        let waited = seen[1].at - seen[0].at;
        assert!(
            (Duration::from_millis(350)..Duration::from_secs(3)).contains(&waited),
            "{header}: 400 ms asked, waited {waited:?}"
        );
    }
}

#[tokio::test]
async fn client_errors_keep_azures_message_with_a_type_filled_in() {
    let cases = [
        (
            400,
            json!({"error": {"code": "content_filter", "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "param": "prompt", "status": 400}}),
        ),
        (404, json!({"error": {"code": "404", "message": "Resource not found"}})),
    ];
    for (status, error) in cases {
        let upstream = FakeUpstream::scripted([Reply::json(status, &error)]).await;
        let gateway = gateway_for(&upstream).await;

        let response = gateway.chat(&chat_request(false)).await;

        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["message"], error["error"]["message"]);
        assert_eq!(body["error"]["code"], error["error"]["code"]);
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn fails_over_between_azure_and_openai_in_both_directions() {
    for (failure, fails_first) in [
        (azure_error(503, "503", "Service Unavailable"), "azure"),
        (azure_error(429, "429", "Rate limit is exceeded."), "azure"),
        (Reply::error(503, "down"), "openai"),
    ] {
        let azure = FakeUpstream::start().await;
        let openai = FakeUpstream::start().await;
        azure.fallback(Reply::json(200, &json_fixture("azure_completion.json")));
        let config = if fails_first == "azure" {
            azure.push(failure.clone());
            mixed_targets_config(("azure", &azure), ("openai", &openai))
        } else {
            openai.push(failure.clone());
            mixed_targets_config(("openai", &openai), ("azure", &azure))
        };
        let gateway = TestGateway::start(&config).await;

        let response = gateway.chat(&chat_request(false)).await;

        assert_eq!(response.status(), 200, "{failure:?}");
        assert_eq!(response.headers()["x-ballast-route"], "failover");
        assert_eq!((azure.hits(), openai.hits()), (1, 1));
        if fails_first == "openai" {
            let path = &azure.requests()[0].path;
            assert!(path.starts_with("/openai/deployments/backup-model/"), "{path}");
        }
    }
}
