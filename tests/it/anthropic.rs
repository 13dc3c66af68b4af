//! The `anthropic` provider through the front door: OpenAI requests reach a fake Anthropic
//! upstream as Messages API requests (PROTOCOL.md §8.5), its answers, streams and errors come
//! back in OpenAI's shape (§8.6), and it fails over with OpenAI targets in both directions.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    CLIENT_KEY, FakeUpstream, Reply, StreamEnd, TestGateway, UPSTREAM_KEY, anthropic_config,
    chat_request, chat_request_with_usage, json_fixture, metric_sum, mixed_targets_config,
    read_stream, sse_fixture, streamed_text, tokens_counted,
};
use serde_json::{Value, json};

async fn gateway_for(upstream: &FakeUpstream) -> TestGateway {
    TestGateway::start(&anthropic_config(upstream, "")).await
}

/// A fake Anthropic that answers once with `reply`, and a gateway in front of it.
async fn answering(reply: Reply) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::scripted([reply]).await;
    let gateway = gateway_for(&upstream).await;
    (upstream, gateway)
}

/// The body the fake Anthropic received for `request`, which must succeed.
async fn translated(request: &Value) -> Value {
    let (upstream, gateway) = answering(message_reply("anthropic_message.json")).await;
    assert_eq!(gateway.chat(request).await.status(), 200);
    upstream.requests()[0].body.clone()
}

fn message_reply(name: &str) -> Reply {
    Reply::json(200, &json_fixture(name))
}

fn parse(events: &[String]) -> Vec<Value> {
    events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect()
}

/// Tool-call arguments of streamed chunks, concatenated per call index.
fn streamed_tool_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in chunks {
        for call in chunk["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = usize::try_from(call["index"].as_u64().unwrap()).unwrap();
            if index == calls.len() {
                calls.push(Default::default());
            }
            let (id, name, arguments) = &mut calls[index];
            id.push_str(call["id"].as_str().unwrap_or(""));
            name.push_str(call["function"]["name"].as_str().unwrap_or(""));
            arguments.push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    calls
}

// === Requests ===

#[tokio::test]
async fn a_request_reaches_anthropic_as_a_messages_call_with_its_key_and_version() {
    let (upstream, gateway) = answering(message_reply("anthropic_message.json")).await;
    let request = json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there"},
            {"role": "developer", "content": "Answer in English."},
        ],
        "temperature": 1.6, "top_p": 0.8, "stop": "###", "user": "user-7",
        "seed": 42, "presence_penalty": 0.5, "logit_bias": {"50256": -100}, "store": false,
    });

    let response = gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "1999-01-01")
        .json(&request)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-provider"], "claude");
    let seen = &upstream.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/messages"));
    assert_eq!(seen.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("authorization"), None, "Anthropic takes its key in x-api-key");
    for (name, value) in &seen.headers {
        assert!(!value.contains(CLIENT_KEY), "client credential leaked upstream in `{name}`");
    }
    assert_eq!(
        seen.body,
        json!({
            "model": "claude-test",
            "max_tokens": 4096,
            "system": "You are terse.\nAnswer in English.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
            "temperature": 1.0, "top_p": 0.8, "stop_sequences": ["###"],
            "metadata": {"user_id": "user-7"},
        }),
        "OpenAI-only fields are dropped, temperature is clamped to Anthropic's range"
    );
}

#[tokio::test]
async fn max_tokens_comes_from_the_request_or_the_providers_default() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(message_reply("anthropic_message.json"));
    let gateway = TestGateway::start(&anthropic_config(&upstream, "default_max_tokens: 256")).await;

    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    let mut explicit = chat_request(false);
    explicit["max_tokens"] = json!(100);
    gateway.chat(&explicit).await.text().await.unwrap();
    explicit["max_completion_tokens"] = json!(50);
    gateway.chat(&explicit).await.text().await.unwrap();

    let sent: Vec<Value> =
        upstream.requests().iter().map(|r| r.body["max_tokens"].clone()).collect();
    assert_eq!(sent, [json!(256), json!(100), json!(50)]);
}

#[tokio::test]
async fn a_tool_round_trip_reaches_anthropic_as_tool_use_then_leading_tool_results() {
    let request = json!({
        "model": "chat",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": [
                {"id": "call_p", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_r", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Rome"}},
            ]},
            {"role": "tool", "tool_call_id": "call_p", "content": "18C and sunny"},
            {"role": "tool", "tool_call_id": "call_r", "content": "21C"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
    });

    let body = translated(&request).await;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "call_p", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_r", "name": "get_weather", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_p", "content": "18C and sunny"},
                {"type": "tool_result", "tool_use_id": "call_r", "content": "21C"},
            ]},
        ]),
        "one user turn answers the whole batch; invalid arguments are sent as {{}}"
    );
    assert_eq!(
        body["tools"],
        json!([{"name": "get_weather", "description": "Weather for a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
}

#[tokio::test]
async fn images_and_json_schema_output_are_translated() {
    let schema = json!({"type": "object", "properties": {"animal": {"type": "string"}}, "required": ["animal"], "additionalProperties": false});
    let request = json!({
        "model": "chat",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Which animal?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
        ]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "animal", "schema": schema, "strict": true}},
    });

    let body = translated(&request).await;
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Which animal?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        ])
    );
    assert_eq!(body["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
}

#[tokio::test]
async fn what_anthropic_cannot_serve_is_a_400_without_any_upstream_call() {
    let upstream = FakeUpstream::start().await;
    let gateway = gateway_for(&upstream).await;
    let mut several = chat_request(false);
    several["n"] = json!(3);
    let audio = json!({"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]});

    for (request, param) in [(several, "n"), (audio, "messages[0].content[0]")] {
        let response = gateway.chat(&request).await;

        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], param);
        assert!(body["error"]["message"].as_str().unwrap().contains("Anthropic"), "{body}");
    }
    assert_eq!(upstream.hits(), 0);
}

// === Answers ===

#[tokio::test]
async fn a_message_comes_back_as_a_chat_completion_with_all_input_tokens_counted() {
    let (_upstream, gateway) = answering(message_reply("anthropic_message.json")).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "logprobs": null, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null}}])
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 27, "completion_tokens": 12, "total_tokens": 39,
               "prompt_tokens_details": {"cached_tokens": 4}}),
        "prompt tokens are input + cache writes + cache reads"
    );
}

#[tokio::test]
async fn an_answer_reporting_u64_max_tokens_is_still_answered_with_saturated_usage() {
    let mut message = json_fixture("anthropic_message.json");
    message["usage"] = json!({"input_tokens": u64::MAX, "output_tokens": u64::MAX,
        "cache_creation_input_tokens": u64::MAX, "cache_read_input_tokens": 5});
    let (_upstream, gateway) = answering(Reply::json(200, &message)).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX,
               "total_tokens": u64::MAX, "prompt_tokens_details": {"cached_tokens": 5}})
    );
}

#[tokio::test]
async fn a_tool_use_answer_comes_back_as_tool_calls() {
    let (_upstream, gateway) = answering(message_reply("anthropic_tool_use.json")).await;

    let body: Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();

    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "I'll check the weather in San Francisco.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "San Francisco, CA", "unit": "celsius"}));
}

#[tokio::test]
async fn a_stream_is_translated_into_openai_chunks_ending_with_done() {
    let (upstream, gateway) = answering(Reply::sse("anthropic_stream.sse")).await;

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_stream(response).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(events.iter().filter(|e| *e == "[DONE]").count(), 1);
    assert_eq!(streamed_text(&events), "Hi! My name is Claude.");
    let chunks = parse(&events);
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "msg_013Zva2CMHLNnXjNJJKqJ2EF");
        assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1, "no usage chunk unless asked");
    }
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"][0],
        json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
    );
    let sent = &upstream.requests()[0];
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body.get("stream_options"), None, "Anthropic always reports usage");
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn a_stream_ends_with_the_usage_chunk_when_the_client_asks() {
    let (_upstream, gateway) = answering(Reply::sse("anthropic_stream.sse")).await;
    let events = read_stream(gateway.chat(&chat_request_with_usage()).await).await;

    let chunks = parse(&events);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 27, "completion_tokens": 12, "total_tokens": 39,
               "prompt_tokens_details": {"cached_tokens": 4}})
    );
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_tool_call_deltas_that_add_up() {
    let (_upstream, gateway) = answering(Reply::sse("anthropic_tool_stream.sse")).await;

    let events = read_stream(gateway.chat(&chat_request(true)).await).await;

    let chunks = parse(&events);
    assert_eq!(streamed_text(&events), "I'll check the weather in San Francisco.");
    let calls = streamed_tool_calls(&chunks);
    assert_eq!(calls.len(), 1);
    let (id, name, arguments) = &calls[0];
    assert_eq!((id.as_str(), name.as_str()), ("toolu_01A09q90qw90lq917835lq9", "get_weather"));
    let arguments: Value = serde_json::from_str(arguments).unwrap();
    let whole = json_fixture("anthropic_tool_use.json");
    assert_eq!(arguments, whole["content"][1]["input"], "streamed and whole calls agree");
    let finish = chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn whole_and_streamed_answers_count_the_same_tokens_and_cost() {
    let upstream = FakeUpstream::scripted([
        message_reply("anthropic_message.json"),
        Reply::sse("anthropic_stream.sse"),
    ])
    .await;
    let config = format!(
        "{}pricing:\n  claude-test: {{ input: 3.0, output: 15.0 }}\n",
        anthropic_config(&upstream, "")
    );
    let gateway = TestGateway::start(&config).await;
    let cost = |text: &str| {
        metric_sum(text, "ballast_cost_usd_total", &[("model", "chat"), ("provider", "claude")])
    };

    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    let after_whole = gateway.metrics().await;
    let events = read_stream(gateway.chat(&chat_request(true)).await).await;
    let after_stream = gateway.metrics().await;

    let priced = (27.0 * 3.0 + 12.0 * 15.0) / 1_000_000.0;
    assert_eq!(tokens_counted(&after_whole, "claude"), (27.0, 12.0));
    assert!((cost(&after_whole) - priced).abs() < 1e-12);
    assert_eq!(tokens_counted(&after_stream, "claude"), (54.0, 24.0));
    assert!((cost(&after_stream) - 2.0 * priced).abs() < 1e-12);
    assert!(!events.iter().any(|e| e.contains("\"choices\":[]")), "usage chunk stripped");
}

// === Errors ===

#[tokio::test]
async fn an_invalid_request_error_is_a_400_with_anthropics_message() {
    let message = "messages.0.content: text content blocks must be non-empty";
    let upstream =
        FakeUpstream::scripted([Reply::anthropic_error(400, "invalid_request_error", message)])
            .await;
    let gateway = gateway_for(&upstream).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], message);
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn an_authentication_error_is_never_shown_to_the_client() {
    let unauthorized =
        Reply::anthropic_error(401, "authentication_error", "invalid x-api-key sk-ant-123");
    let upstream = FakeUpstream::scripted([unauthorized.clone()]).await;
    let gateway = gateway_for(&upstream).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 503);
    let body = response.text().await.unwrap();
    assert!(!body.contains("x-api-key") && !body.contains("sk-ant"), "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");

    let answer = Reply::completion("from openai");
    let (text, _) = failed_over(("anthropic", unauthorized), ("openai", answer), false).await;
    assert_eq!(text, "from openai", "an auth failure fails over");
}

#[tokio::test]
async fn a_rate_limit_waits_for_retry_after_before_the_next_attempt() {
    let upstream = FakeUpstream::scripted([
        Reply::anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        )
        .with_header("retry-after", "1"),
        message_reply("anthropic_message.json"),
    ])
    .await;
    let config =
        anthropic_config(&upstream, "retry: { max_retries: 1, base_delay: 1ms, max_delay: 5s }");
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-attempts"], "2");
    let seen = upstream.requests();
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_millis(900), "retry-after: 1 honoured, waited {waited:?}");
    let text = gateway.metrics().await;
    let outcome = |outcome| {
        metric_sum(
            &text,
            "ballast_upstream_requests_total",
            &[("provider", "claude"), ("outcome", outcome)],
        )
    };
    assert_eq!((outcome("rate_limit"), outcome("ok")), (1.0, 1.0));
}

#[tokio::test]
async fn an_error_event_before_the_first_chunk_fails_over() {
    let overloaded = Reply::anthropic_event(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let first_event_is_an_error =
        Reply::Events { events: vec![overloaded], gap: Duration::ZERO, end: StreamEnd::Finish };
    let answer = Reply::chunks(&["from", " openai"]);

    let (text, _) =
        failed_over(("anthropic", first_event_is_an_error), ("openai", answer), true).await;

    assert_eq!(text, "from openai");
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_it_with_an_error_event_and_no_done() {
    let mut events = sse_fixture("anthropic_stream.sse")[..4].to_vec();
    events.push(Reply::anthropic_event(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    let upstream = FakeUpstream::scripted([Reply::Events {
        events,
        gap: Duration::ZERO,
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = gateway_for(&upstream).await;

    let received = read_stream(gateway.chat(&chat_request(true)).await).await;

    assert_eq!(streamed_text(&received), "Hi!");
    let last: Value = serde_json::from_str(received.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_error");
    assert!(!received.contains(&"[DONE]".to_owned()));
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_ends_with_an_error_event() {
    let events = sse_fixture("anthropic_stream.sse");
    for end in [StreamEnd::Finish, StreamEnd::Close] {
        let upstream = FakeUpstream::scripted([Reply::Events {
            events: events[..events.len() - 1].to_vec(),
            gap: Duration::ZERO,
            end,
        }])
        .await;
        let gateway = gateway_for(&upstream).await;

        let received = read_stream(gateway.chat(&chat_request(true)).await).await;

        let last: Value = serde_json::from_str(received.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_stream_error", "{end:?}");
        assert_eq!(streamed_text(&received), "Hi! My name is Claude.", "{end:?}");
    }
}

// === Failover between OpenAI and Anthropic ===

/// The primary target (`kind`, failing with `failure`) fails over to the backup, which
/// answers with `answer`; returns the text the client got.
async fn failed_over(
    primary: (&str, Reply),
    backup: (&str, Reply),
    stream: bool,
) -> (String, FakeUpstream) {
    let first = FakeUpstream::scripted([primary.1.clone()]).await;
    let second = FakeUpstream::scripted([backup.1]).await;
    let config = mixed_targets_config((primary.0, &first), (backup.0, &second));
    let gateway = TestGateway::start(&config).await;

    let response = gateway.chat(&chat_request(stream)).await;

    assert_eq!(response.status(), 200, "{:?}", primary.1);
    assert_eq!(response.headers()["x-ballast-provider"], "backup");
    assert_eq!(response.headers()["x-ballast-route"], "failover");
    assert_eq!((first.hits(), second.hits()), (1, 1));
    let text = if stream {
        streamed_text(&read_stream(response).await)
    } else {
        let body: Value = response.json().await.unwrap();
        body["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
    };
    (text, second)
}

#[tokio::test]
async fn fails_over_from_openai_to_anthropic_and_back_on_529_503_and_429() {
    let cases = [
        (Reply::error(503, "down"), Reply::anthropic_error(529, "overloaded_error", "Overloaded")),
        (
            Reply::error(429, "slow down"),
            Reply::anthropic_error(429, "rate_limit_error", "slow down"),
        ),
        (Reply::error(500, "boom"), Reply::anthropic_error(503, "api_error", "Internal")),
    ];
    for stream in [false, true] {
        let (claude_answer, openai_answer) = if stream {
            (Reply::sse("anthropic_stream.sse"), Reply::chunks(&["from", " openai"]))
        } else {
            (message_reply("anthropic_message.json"), Reply::completion("from openai"))
        };
        for (openai_failure, anthropic_failure) in &cases {
            let directions = [
                (
                    ("openai", openai_failure),
                    ("anthropic", &claude_answer),
                    "Hi! My name is Claude.",
                ),
                (("anthropic", anthropic_failure), ("openai", &openai_answer), "from openai"),
            ];
            for ((failing, failure), (answering, answer), expected) in directions {
                let (text, backup) =
                    failed_over((failing, failure.clone()), (answering, answer.clone()), stream)
                        .await;
                assert_eq!(text, expected, "{failing} failing with {failure:?}, stream: {stream}");
                assert_eq!(backup.requests()[0].body["model"], "backup-model");
            }
        }
    }
}
