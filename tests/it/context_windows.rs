//! Context windows (SPEC §4): a target whose `context_window` the prompt (with its answer's
//! allowance) cannot fit is skipped without a call; an upstream that says the context was
//! exceeded is not retried, not counted by its breaker, and failed over only to a larger window.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use serde_json::{Value, json};

use crate::support::{FakeUpstream, Reply, TestGateway, UPSTREAM_KEY, chat_request, metric_sum};

/// Model `chat` over one openai target per `(name, upstream, context_window)`, in this order;
/// each provider retries twice (so a retry would show) and opens its circuit on one failure (so
/// a counted failure would show).
fn windows_config(targets: &[(&str, &FakeUpstream, Option<u64>)]) -> String {
    let mut providers = String::new();
    let mut list = Vec::new();
    for (name, upstream, window) in targets {
        providers.push_str(&format!(
            "  {name}: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 2, base_delay: 1ms }}, circuit_breaker: {{ consecutive_failures: 1, open_for: 60s }} }}\n",
            upstream.base_url()
        ));
        let window = window.map(|w| format!(", context_window: {w}")).unwrap_or_default();
        list.push(format!("{{ provider: {name}, model: {name}-model{window} }}"));
    }
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, max_body_size: 4MiB }}
cache: {{ backend: none }}
providers:
{providers}models:
  chat:
    targets: [ {} ]
",
        list.join(", ")
    )
}

/// A chat request whose prompt is about `tokens` o200k tokens (" word" is one token).
fn prompt_of(tokens: usize) -> Value {
    let mut request = chat_request(false);
    request["messages"][0]["content"] = json!(" word".repeat(tokens));
    request
}

fn context_error() -> Reply {
    Reply::json(
        400,
        &json!({"error": {"message": "This model's maximum context length is 32768 tokens. However, your messages resulted in 120012 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
    )
}

async fn circuit(gateway: &TestGateway, provider: &str) -> String {
    let status: Value =
        gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap();
    status["providers"][provider]["circuit"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_long_prompt_makes_one_call_to_the_large_window_and_the_small_one_stays_healthy() {
    let small = FakeUpstream::start().await;
    let large = FakeUpstream::start().await;
    let gateway = TestGateway::start(&windows_config(&[
        ("small", &small, Some(32_000)),
        ("large", &large, Some(200_000)),
    ]))
    .await;

    let long = gateway.chat(&prompt_of(120_000)).await;

    assert_eq!(long.status(), 200);
    assert_eq!(long.headers()["x-ballast-provider"], "large");
    assert_eq!(long.headers()["x-ballast-attempts"], "1");
    assert_eq!((small.hits(), large.hits()), (0, 1), "exactly one call, to the 200k target");
    let short = gateway.chat(&chat_request(false)).await;
    assert_eq!(short.headers()["x-ballast-provider"], "small");
    assert_eq!(short.headers()["x-ballast-route"], "primary");
    assert_eq!(circuit(&gateway, "small").await, "closed");
    let metrics = gateway.metrics().await;
    let skipped = [("model", "chat"), ("provider", "small")];
    assert_eq!(metric_sum(&metrics, "ballast_context_skips_total", &skipped), 1.0);
}

#[tokio::test]
async fn a_context_error_is_not_retried_nor_counted_and_fails_over_only_to_a_larger_window() {
    let first = FakeUpstream::scripted([context_error()]).await;
    let same_size = FakeUpstream::start().await;
    let larger = FakeUpstream::start().await;
    let config = windows_config(&[
        ("first", &first, Some(32_768)),
        ("same", &same_size, Some(32_768)),
        ("larger", &larger, Some(128_000)),
    ]);
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "larger");
    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!(
        (first.hits(), same_size.hits(), larger.hits()),
        (1, 0, 1),
        "no retry, no equal window"
    );
    assert_eq!(circuit(&gateway, "first").await, "closed", "not a failure of the provider");
    let metrics = gateway.metrics().await;
    let outcome = [("provider", "first"), ("outcome", "context_overflow")];
    assert_eq!(metric_sum(&metrics, "ballast_upstream_requests_total", &outcome), 1.0);
    assert_eq!(metric_sum(&metrics, "ballast_retries_total", &[]), 0.0);
    assert_eq!(metric_sum(&metrics, "ballast_context_skips_total", &[("provider", "first")]), 1.0);
    assert_eq!(metric_sum(&metrics, "ballast_context_skips_total", &[("provider", "same")]), 1.0);
}

#[tokio::test]
async fn when_no_larger_window_is_left_the_client_gets_the_upstreams_400() {
    let first = FakeUpstream::scripted([context_error()]).await;
    let smaller = FakeUpstream::start().await;
    let config =
        windows_config(&[("first", &first, Some(32_768)), ("smaller", &smaller, Some(8_192))]);
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("32768 tokens"), "{body}");
    assert_eq!((first.hits(), smaller.hits()), (1, 0));
}

#[tokio::test]
async fn an_unknown_window_is_tried_after_a_context_error() {
    let first = FakeUpstream::scripted([context_error()]).await;
    let unknown = FakeUpstream::start().await;
    let gateway = TestGateway::start(&windows_config(&[
        ("first", &first, Some(32_768)),
        ("unknown", &unknown, None),
    ]))
    .await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.headers()["x-ballast-provider"], "unknown");
}

#[tokio::test]
async fn a_prompt_that_fits_no_window_is_refused_before_any_call_in_the_routes_own_words() {
    let small = FakeUpstream::start().await;
    let smaller = FakeUpstream::start().await;
    let gateway = TestGateway::start(&windows_config(&[
        ("small", &small, Some(2_000)),
        ("smaller", &smaller, Some(1_000)),
    ]))
    .await;

    let chat = gateway.chat(&prompt_of(5_000)).await;
    assert_eq!(chat.status(), 400);
    let body: Value = chat.json().await.unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("maximum context length is 2000 tokens"), "{message}");

    let mut fits = prompt_of(1_500);
    fits["max_tokens"] = json!(1_000);
    let with_answer = gateway.chat(&fits).await;
    assert_eq!(with_answer.status(), 400, "the answer's allowance counts too");

    let messages = json!({"model": "chat", "max_tokens": 100,
        "messages": [{"role": "user", "content": " word".repeat(5_000)}]});
    let refused = gateway.messages(&messages).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("prompt is too long: "), "Claude Code compacts on it: {message}");
    assert_eq!((small.hits(), smaller.hits()), (0, 0));
}

#[tokio::test]
async fn a_context_error_in_a_responses_stream_is_a_context_overflow_too() {
    let created = json!({"type": "response.created", "sequence_number": 0,
        "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}});
    let error = json!({"type": "error", "sequence_number": 1, "code": "context_length_exceeded", "param": "input",
        "message": "Your input exceeds the context window of this model. Please adjust your input and try again."});
    let first = FakeUpstream::scripted([Reply::responses_stream(
        &[created, error],
        crate::support::StreamEnd::Finish,
    )])
    .await;
    let smaller = FakeUpstream::start().await;
    let config =
        windows_config(&[("first", &first, Some(32_768)), ("smaller", &smaller, Some(8_192))])
            .replace("retry: {", "native_responses: true, retry: {");
    let gateway = TestGateway::start(&config).await;

    let response =
        gateway.responses(&json!({"model": "chat", "input": "Hi", "stream": true})).await;

    assert_eq!(response.status(), 400, "nothing reached the client before the error");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["param"], "input");
    assert_eq!((first.hits(), smaller.hits()), (1, 0), "not retried, not sent to a smaller window");
    assert_eq!(circuit(&gateway, "first").await, "closed");
}
