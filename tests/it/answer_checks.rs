//! Answer checks (SPEC §4): a 200 that is empty, not the JSON asked for, or a refusal is a
//! `bad_answer` failure, retried and failed over like a 503, counted by the breaker, never
//! cached; when every target answered badly, a stale entry or else the last bad answer is the
//! answer.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, completion_body,
    metric_sum, read_stream, streamed_text, targets_config, two_targets_config,
};

const EMPTY: &str = "answer_checks: [empty]";
const ALL: &str = "answer_checks: [empty, invalid_json, refusal]";

/// A `chat.completion` whose message is `message` (role added).
fn answer_with(mut message: Value) -> Reply {
    let mut body = completion_body("");
    message["role"] = json!("assistant");
    body["choices"][0]["message"] = message;
    Reply::json(200, &body)
}

async fn sends(gateway: &TestGateway, request: &Value) -> (reqwest::header::HeaderMap, Value) {
    let response = gateway.chat(request).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.json().await.unwrap())
}

fn content(body: &Value) -> &Value {
    &body["choices"][0]["message"]["content"]
}

/// The primary answers `bad`, the backup well: the client gets the backup's answer, and the
/// primary's bad answer is counted under `check`.
async fn assert_rescued(bad: Reply, request: &Value, model_extra: &str, check: &str) {
    let primary = FakeUpstream::scripted([bad]).await;
    let backup = FakeUpstream::scripted([Reply::completion("{\"city\": \"Oslo\"}")]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", model_extra)).await;

    let (headers, body) = sends(&gateway, request).await;

    assert_eq!(headers["x-ballast-provider"], "backup", "{check}");
    assert_eq!(headers["x-ballast-route"], "failover");
    assert_eq!(content(&body), "{\"city\": \"Oslo\"}");
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
    let metrics = gateway.metrics().await;
    let failed = [("model", "chat"), ("provider", "primary"), ("check", check)];
    assert_eq!(metric_sum(&metrics, "ballast_answer_check_failures_total", &failed), 1.0);
    let outcome = [("provider", "primary"), ("outcome", "bad_answer")];
    assert_eq!(metric_sum(&metrics, "ballast_upstream_requests_total", &outcome), 1.0);
}

#[tokio::test]
async fn an_empty_answer_fails_over_and_is_counted() {
    let empty = answer_with(json!({"content": ""}));
    assert_rescued(empty, &chat_request(false), EMPTY, "empty").await;
}

#[tokio::test]
async fn a_refusal_fails_over_and_is_counted() {
    let refusal = answer_with(json!({"content": null, "refusal": "I can't help with that."}));
    assert_rescued(refusal, &chat_request(false), ALL, "refusal").await;
}

#[tokio::test]
async fn prose_where_a_json_object_was_asked_for_fails_over() {
    let mut request = chat_request(false);
    request["response_format"] = json!({"type": "json_object"});
    let prose = Reply::completion("Sure! The city is Oslo.");
    assert_rescued(prose, &request, ALL, "invalid_json").await;
}

#[tokio::test]
async fn json_that_does_not_validate_against_the_requests_schema_fails_over() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    let mut request = chat_request(false);
    request["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "place", "strict": true, "schema": schema}});
    let wrong_shape = Reply::completion("{\"town\": \"Oslo\"}");
    assert_rescued(wrong_shape, &request, ALL, "invalid_json").await;
}

#[tokio::test]
async fn with_checks_off_an_empty_answer_is_answered_as_before() {
    let primary = FakeUpstream::scripted([answer_with(json!({"content": ""}))]).await;
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", "")).await;

    let (headers, body) = sends(&gateway, &chat_request(false)).await;

    assert_eq!(headers["x-ballast-route"], "primary");
    assert_eq!(content(&body), "");
    assert_eq!(backup.hits(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(metric_sum(&metrics, "ballast_answer_check_failures_total", &[]), 0.0);
}

#[tokio::test]
async fn a_bad_answer_is_retried_on_the_same_provider_first() {
    let primary =
        FakeUpstream::scripted([answer_with(json!({"content": ""})), Reply::completion("Hi")])
            .await;
    let backup = FakeUpstream::start().await;
    let config =
        two_targets_config(&primary, &backup, "retry: { max_retries: 1, base_delay: 1ms }", EMPTY);
    let gateway = TestGateway::start(&config).await;

    let (headers, body) = sends(&gateway, &chat_request(false)).await;

    assert_eq!(headers["x-ballast-route"], "primary");
    assert_eq!(headers["x-ballast-attempts"], "2");
    assert_eq!(content(&body), "Hi");
    assert_eq!((primary.hits(), backup.hits()), (2, 0));
}

#[tokio::test]
async fn bad_answers_count_for_the_breaker_like_server_errors() {
    let primary = FakeUpstream::start().await;
    primary.fallback(answer_with(json!({"content": ""})));
    let backup = FakeUpstream::start().await;
    let breaker = "circuit_breaker: { consecutive_failures: 2, open_for: 30s }";
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, breaker, EMPTY)).await;

    for _ in 0..3 {
        let (headers, _) = sends(&gateway, &chat_request(false)).await;
        assert_eq!(headers["x-ballast-provider"], "backup");
    }

    assert_eq!(primary.hits(), 2, "the circuit opened after two bad answers");
    let status: Value =
        gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["providers"]["primary"]["circuit"], "open");
}

#[tokio::test]
async fn when_every_target_answers_badly_the_client_gets_the_last_bad_answer_uncached() {
    let primary = FakeUpstream::start().await;
    primary.fallback(answer_with(json!({"content": ""})));
    let backup = FakeUpstream::start().await;
    backup.fallback(answer_with(json!({"content": " "})));
    let config = two_targets_config(&primary, &backup, "", EMPTY)
        .replace("cache: { backend: none }", "cache: { backend: memory }");
    let gateway = TestGateway::start(&config).await;

    for round in 1..=2 {
        let (headers, body) = sends(&gateway, &chat_request(false)).await;

        assert_eq!(headers["x-ballast-provider"], "backup", "round {round}");
        assert_eq!(headers["x-ballast-route"], "failover");
        assert_eq!(content(&body), " ", "the backup's answer, as it gave it");
        assert_eq!((primary.hits(), backup.hits()), (round, round), "never answered from cache");
    }
    let metrics = gateway.metrics().await;
    let empty = [("check", "empty")];
    assert_eq!(metric_sum(&metrics, "ballast_answer_check_failures_total", &empty), 4.0);
    let answered = [("route", "failover"), ("status", "200")];
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &answered), 2.0);
}

#[tokio::test]
async fn a_stale_answer_beats_the_last_bad_answer() {
    let primary = FakeUpstream::scripted([Reply::completion("good then")]).await;
    primary.fallback(answer_with(json!({"content": ""})));
    let backup = FakeUpstream::start().await;
    backup.fallback(answer_with(json!({"content": ""})));
    let config = two_targets_config(&primary, &backup, "", EMPTY)
        .replace("cache: { backend: none }", "cache: { backend: memory, ttl: 1s, stale_ttl: 1h }");
    let gateway = TestGateway::start(&config).await;
    let (_, first) = sends(&gateway, &chat_request(false)).await;
    assert_eq!(content(&first), "good then");
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let (headers, body) = sends(&gateway, &chat_request(false)).await;

    assert_eq!(headers["x-ballast-route"], "stale");
    assert_eq!(headers["x-ballast-cache"], "stale");
    assert_eq!(content(&body), "good then");
    assert_eq!((primary.hits(), backup.hits()), (2, 1), "both were asked first");
}

#[tokio::test]
async fn a_stream_whose_first_content_is_a_bare_finish_is_empty_and_fails_over() {
    let empty = Reply::Stream {
        events: chunk_events(&[], true),
        gap: Duration::ZERO,
        end: StreamEnd::Finish,
    };
    let primary = FakeUpstream::scripted([empty]).await;
    let backup = FakeUpstream::scripted([Reply::chunks(&["Hello", " there"])]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", EMPTY)).await;

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.headers()["x-ballast-provider"], "backup");
    let events = read_stream(response).await;
    assert_eq!(streamed_text(&events), "Hello there");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
}

#[tokio::test]
async fn an_empty_messages_answer_from_an_anthropic_target_fails_over() {
    let message = |text: &str| {
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
               "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}})
    };
    let primary = FakeUpstream::scripted([Reply::json(200, &message(""))]).await;
    let backup = FakeUpstream::scripted([Reply::json(200, &message("Hello"))]).await;
    let config = targets_config(
        &[("first", "anthropic", &primary, ""), ("second", "anthropic", &backup, "")],
        crate::support::NO_CACHE,
        EMPTY,
    );
    let gateway = TestGateway::start(&config).await;
    let request =
        json!({"model": "chat", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]});

    let response = gateway.messages(&request).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "second");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "Hello");
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
}

#[tokio::test]
async fn when_every_stream_is_empty_the_client_gets_the_last_one_whole() {
    let empty = || Reply::Stream {
        events: chunk_events(&[], true),
        gap: Duration::ZERO,
        end: StreamEnd::Finish,
    };
    let primary = FakeUpstream::scripted([empty()]).await;
    let backup = FakeUpstream::scripted([empty()]).await;
    let gateway = TestGateway::start(&two_targets_config(&primary, &backup, "", EMPTY)).await;

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "backup");
    let events = read_stream(response).await;
    assert_eq!(streamed_text(&events), "");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "a whole stream, not an error");
    assert_eq!((primary.hits(), backup.hits()), (1, 1));
}

#[tokio::test]
async fn the_mock_provider_answers_badly_on_command_and_the_checks_rescue_each_kind() {
    for (kind, check, format) in [
        ("empty", "empty", Value::Null),
        ("invalid_json", "invalid_json", json!({"type": "json_object"})),
        ("refusal", "refusal", Value::Null),
    ] {
        let config = format!(
            "server: {{ listen: 127.0.0.1:0 }}
cache: {{ backend: none }}
providers:
  broken: {{ kind: mock, bad_answer: {kind}, retry: {{ max_retries: 0 }} }}
  sound: {{ kind: mock }}
models:
  chat:
    {ALL}
    targets: [ {{ provider: broken, model: m }}, {{ provider: sound, model: m }} ]
"
        );
        let gateway = TestGateway::start(&config).await;
        let mut request = chat_request(false);
        if !format.is_null() {
            request["response_format"] = format;
        }

        let (headers, body) = sends(&gateway, &request).await;

        assert_eq!(headers["x-ballast-provider"], "sound", "{kind}");
        if kind == "invalid_json" {
            let text = content(&body).as_str().unwrap();
            assert!(serde_json::from_str::<Value>(text).is_ok(), "the mock answers JSON: {text}");
        }
        let metrics = gateway.metrics().await;
        let failed = [("provider", "broken"), ("check", check)];
        assert_eq!(metric_sum(&metrics, "ballast_answer_check_failures_total", &failed), 1.0);
        let sound = [("provider", "sound")];
        let good = metric_sum(&metrics, "ballast_answer_check_failures_total", &sound);
        assert_eq!(good, 0.0, "{kind}: a good answer, not the last bad one");
    }
}

#[tokio::test]
async fn the_mock_providers_context_limit_is_a_context_error_that_fails_over() {
    let config = "server: { listen: 127.0.0.1:0 }
cache: { backend: none }
providers:
  short: { kind: mock, context_limit: 50 }
  long: { kind: mock }
models:
  chat:
    targets: [ { provider: short, model: m }, { provider: long, model: m } ]
";
    let gateway = TestGateway::start(config).await;
    let mut request = chat_request(false);
    request["messages"][0]["content"] = json!("words ".repeat(200));

    let (headers, _) = sends(&gateway, &request).await;

    assert_eq!(headers["x-ballast-provider"], "long");
    let metrics = gateway.metrics().await;
    let outcome = [("provider", "short"), ("outcome", "context_overflow")];
    assert_eq!(metric_sum(&metrics, "ballast_upstream_requests_total", &outcome), 1.0);
    let (short, _) = sends(&gateway, &chat_request(false)).await;
    assert_eq!(short["x-ballast-provider"], "short", "a short prompt fits it");
}
