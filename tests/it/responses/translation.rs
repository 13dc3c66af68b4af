//! A Responses request to a target that serves only chat (an `openai` provider without
//! `native_responses`, the `mock`) becomes a chat completion, and to an `anthropic` target a
//! chat completion and then a Message; the answer comes back as a Response, or as Responses
//! events in the order the SDKs check.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ResponseStream, chat_completion, dropped, header, output_text};
use crate::support::{
    FakeUpstream, NO_CACHE, Reply, StreamEnd, TestGateway, chunk_events, json_fixture,
    targets_config,
};

/// A gateway in front of one chat target, provider `up` of `kind` (`openai` without
/// `native_responses`, or `anthropic`), answering `replies`.
async fn translated(kind: &str, replies: Vec<Reply>) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::scripted(replies).await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", kind, &upstream, "")], NO_CACHE, "")).await;
    (upstream, gateway)
}

/// A chat chunk carrying `delta` and `finish`.
fn chunk(delta: Value, finish: Value) -> String {
    json!({"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
           "model": "upstream-model",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    .to_string()
}

/// The usage chunk the gateway asks a chat upstream for: 9 prompt, `completion` completion.
fn usage_chunk(completion: u64) -> String {
    json!({"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
           "model": "upstream-model", "choices": [],
           "usage": {"prompt_tokens": 9, "completion_tokens": completion, "total_tokens": 9 + completion}})
    .to_string()
}

fn stream_of(events: Vec<String>) -> Reply {
    Reply::Stream { events, gap: Duration::ZERO, end: StreamEnd::Finish }
}

/// The weather tool as Responses writes a function tool: flat.
fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
           "strict": true})
}

#[tokio::test]
async fn a_responses_request_to_a_chat_target_becomes_the_chat_completion_it_means() {
    let (upstream, gateway) = translated(
        "openai",
        vec![Reply::json(200, &chat_completion("{\"summary\":\"Rain\"}", &[], "stop"))],
    )
    .await;
    let schema = json!({"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]});
    let request = json!({
        "model": "chat",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 18C and sunny."}]},
            {"role": "user", "content": "And tomorrow?"}
        ],
        "tools": [weather_tool()],
        "tool_choice": "auto",
        "text": {"format": {"type": "json_schema", "name": "forecast", "schema": schema, "strict": true}},
        "max_output_tokens": 300,
        "temperature": 0.2,
        "store": true
    });

    let response = gateway.responses(&request).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(dropped(&response), Vec::<String>::new(), "everything carried over");
    let seen = &upstream.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(
        seen.body,
        json!({
            "model": "up-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
                {"role": "assistant", "content": "It is 18C and sunny."},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "The weather in a city.",
                "parameters": weather_tool()["parameters"], "strict": true}}],
            "tool_choice": "auto",
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "forecast", "schema": schema, "strict": true}},
            "max_completion_tokens": 300,
            "temperature": 0.2
        }),
        "instructions → system, function tools wrapped, calls and outputs paired by call_id"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert!(answer["id"].as_str().unwrap().starts_with("resp_"), "{answer}");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["model"], "chat", "the alias");
    assert_eq!(answer["instructions"], "Be brief.", "the request's settings are echoed");
    assert_eq!(answer["text"]["format"]["name"], "forecast");
    assert_eq!(answer["output"].as_array().unwrap().len(), 1, "{answer}");
    let message = &answer["output"][0];
    assert_eq!((&message["type"], &message["role"]), (&json!("message"), &json!("assistant")));
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(output_text(&answer), "{\"summary\":\"Rain\"}");
    assert_eq!(answer["usage"]["input_tokens"], 11, "Responses' names for chat's usage");
    assert_eq!(answer["usage"]["output_tokens"], 7);
    assert_eq!(answer["usage"]["total_tokens"], 18);
}

#[tokio::test]
async fn a_chat_targets_tool_calls_come_back_as_function_call_items() {
    let calls = [("call_a", "get_weather", "{\"city\":\"Paris\"}"), ("call_b", "get_time", "")];
    let (_upstream, gateway) = translated(
        "openai",
        vec![Reply::json(200, &chat_completion("Let me check.", &calls, "tool_calls"))],
    )
    .await;
    let request = json!({"model": "chat", "input": "Weather and time in Paris?", "tools": [weather_tool(),
        {"type": "function", "name": "get_time", "parameters": {"type": "object"}}]});

    let response = gateway.responses(&request).await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let output = answer["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|item| item["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message", "function_call", "function_call"], "{answer}");
    assert_eq!(output_text(&answer), "Let me check.");
    for (item, (call_id, name, arguments)) in output[1..].iter().zip(calls) {
        assert_eq!(item["call_id"], call_id, "the upstream's id is the call_id: {item}");
        assert_eq!(item["name"], name);
        let arguments = if arguments.is_empty() { "{}" } else { arguments };
        assert_eq!(item["arguments"], arguments, "empty arguments are written as {{}}");
        assert_eq!(item["status"], "completed");
        assert!(item["id"].as_str().unwrap().starts_with("fc_"), "{item}");
    }
    assert_eq!(answer["status"], "completed");
}

#[tokio::test]
async fn a_streamed_responses_request_to_a_chat_target_gets_responses_events_in_order() {
    let mut events = chunk_events(&["Hel", "lo", " world"], false);
    events.push(usage_chunk(3));
    events.push("[DONE]".to_owned());
    let (upstream, gateway) = translated("openai", vec![stream_of(events)]).await;

    let response =
        gateway.responses(&json!({"model": "chat", "input": "Hello there", "stream": true})).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-route"), "primary");
    let stream = ResponseStream::read(response).await;
    stream.assert_complete();
    let mut shape: Vec<&str> = stream.names.iter().map(String::as_str).collect();
    shape.dedup();
    assert_eq!(
        shape,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ],
        "one message, one part"
    );
    assert_eq!(stream.text, "Hello world");
    assert_eq!(stream.created["model"], "chat", "the alias");
    assert!(stream.created["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(output_text(stream.response()), "Hello world", "the terminal Response is whole");
    assert_eq!(stream.response()["usage"]["input_tokens"], 9, "the upstream's real count");
    assert_eq!(stream.response()["usage"]["output_tokens"], 3);
    let sent = &upstream.requests()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true, "usage is asked for");
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_a_function_call_item_with_argument_deltas() {
    let call = |arguments: &str, head: bool| {
        let mut call = json!({"index": 0, "function": {"arguments": arguments}});
        if head {
            call["id"] = json!("call_w1");
            call["type"] = json!("function");
            call["function"]["name"] = json!("get_weather");
        }
        chunk(json!({"tool_calls": [call]}), Value::Null)
    };
    let events = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Checking."}), Value::Null),
        call("", true),
        call("{\"city\":", false),
        call(" \"Paris\"}", false),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(21),
        "[DONE]".to_owned(),
    ];
    let (_upstream, gateway) = translated("openai", vec![stream_of(events)]).await;
    let request =
        json!({"model": "chat", "input": "Weather?", "tools": [weather_tool()], "stream": true});

    let stream = ResponseStream::read(gateway.responses(&request).await).await;

    stream.assert_complete();
    assert_eq!(stream.text, "Checking.");
    assert_eq!(stream.calls.len(), 1, "{:?}", stream.names);
    let (item, arguments) = &stream.calls[0];
    assert_eq!(item["name"], "get_weather");
    assert_eq!(item["call_id"], "call_w1");
    let input: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(input, json!({"city": "Paris"}), "the argument deltas add up");
    assert_eq!(item["arguments"], arguments.as_str());
    let output = stream.response()["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "the message and the call, in the terminal Response");
    assert_eq!(output[1]["call_id"], "call_w1");
    assert_eq!(stream.response()["usage"]["output_tokens"], 21);
}

#[tokio::test]
async fn a_responses_request_to_an_anthropic_target_goes_through_chat_to_a_message_and_back() {
    let (upstream, gateway) = translated(
        "anthropic",
        vec![
            Reply::json(200, &json_fixture("anthropic_message.json")),
            Reply::sse("anthropic_stream.sse"),
        ],
    )
    .await;
    let request = |stream: bool| {
        json!({"model": "chat", "instructions": "Be brief.", "input": "Who are you?",
               "max_output_tokens": 200, "temperature": 0.5, "stream": stream})
    };

    let whole = gateway.responses(&request(false)).await;
    let streamed = gateway.responses(&request(true)).await;

    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "x-ballast-provider"), "up");
    let answer: Value = whole.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(output_text(&answer), "Hi! My name is Claude.");
    assert_eq!(answer["usage"]["output_tokens"], 12);
    let stream = ResponseStream::read(streamed).await;
    stream.assert_complete();
    assert_eq!(stream.text, "Hi! My name is Claude.");
    assert_eq!(output_text(stream.response()), "Hi! My name is Claude.");
    assert_eq!(stream.response()["usage"]["output_tokens"], 12);
    let seen = upstream.requests();
    for (sent, stream) in seen.iter().zip([false, true]) {
        assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/messages"));
        assert_eq!(sent.body["model"], "up-model");
        assert_eq!(sent.body["system"], "Be brief.", "instructions → system → Anthropic's system");
        assert_eq!(
            sent.body["max_tokens"], 200,
            "max_output_tokens → max_completion_tokens → max_tokens"
        );
        assert_eq!(sent.body["temperature"], 0.5);
        assert_eq!(
            sent.body["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "Who are you?"}]}])
        );
        assert_eq!(sent.body.get("stream").and_then(Value::as_bool).unwrap_or(false), stream);
    }
}

#[tokio::test]
async fn the_mock_provider_answers_responses_whole_and_streamed() {
    let config = "server: { listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }
cache: { backend: none }
providers:
  demo: { kind: mock, latency: 1ms }
models:
  chat:
    targets: [ { provider: demo, model: mock-model } ]
";
    let gateway = TestGateway::start(config).await;

    let whole =
        gateway.responses(&json!({"model": "chat", "input": "Tell me about caching"})).await;
    let streamed = gateway
        .responses(&json!({"model": "chat", "input": "Tell me about caching", "stream": true}))
        .await;

    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "x-ballast-provider"), "demo");
    let answer: Value = whole.json().await.unwrap();
    assert_eq!(answer["status"], "completed");
    let text = output_text(&answer);
    assert!(!text.is_empty(), "{answer}");
    let stream = ResponseStream::read(streamed).await;
    stream.assert_complete();
    assert_eq!(stream.text, text, "the mock's answer is the prompt's, streamed or not");
    assert!(stream.response()["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn hints_a_chat_target_cannot_carry_are_left_out_and_named_and_store_is_not() {
    let (upstream, gateway) =
        translated("openai", vec![Reply::json(200, &chat_completion("ok", &[], "stop"))]).await;
    let request = json!({
        "model": "chat",
        "input": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB"},
            {"role": "user", "content": "Think hard."}
        ],
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "metadata": {"trace": "t-1"},
        "service_tier": "flex",
        "truncation": "auto",
        "text": {"verbosity": "low"},
        "parallel_tool_calls": false,
        "store": true,
        "safety_identifier": "user-42"
    });

    let response = gateway.responses(&request).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        dropped(&response),
        ["include", "metadata", "reasoning", "service_tier", "truncation", "verbosity"],
        "each hint named once, reasoning items and settings alike; store never"
    );
    assert_eq!(
        upstream.requests()[0].body,
        json!({"model": "up-model", "messages": [{"role": "user", "content": "Think hard."}],
               "user": "user-42"}),
        "nothing of the hints reaches the chat target"
    );
    let metrics = gateway.metrics().await;
    let drops = |field| {
        let labels = [("api", "responses"), ("provider", "up"), ("field", field)];
        crate::support::metric_sum(&metrics, "ballast_translation_drops_total", &labels)
    };
    assert_eq!((drops("reasoning"), drops("verbosity"), drops("store")), (1.0, 1.0, 0.0));
}

#[tokio::test]
async fn an_anthropic_targets_tool_use_comes_back_as_a_function_call_item_whole_and_streamed() {
    let (upstream, gateway) = translated(
        "anthropic",
        vec![
            Reply::json(200, &json_fixture("anthropic_tool_use.json")),
            Reply::sse("anthropic_tool_stream.sse"),
        ],
    )
    .await;
    let tool = json!({"type": "function", "name": "get_weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}}});
    let request = |stream: bool| json!({"model": "chat", "input": "Weather in SF?", "tools": [tool], "stream": stream});

    let whole = gateway.responses(&request(false)).await;
    let streamed = gateway.responses(&request(true)).await;

    assert_eq!(whole.status(), 200);
    let answer: Value = whole.json().await.unwrap();
    let stream = ResponseStream::read(streamed).await;
    stream.assert_complete();
    assert_eq!(stream.calls.len(), 1, "{:?}", stream.names);
    for output in [&answer["output"], &stream.response()["output"]] {
        let kinds: Vec<&str> =
            output.as_array().unwrap().iter().map(|item| item["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message", "function_call"], "{output}");
        let call = &output[1];
        assert_eq!(call["call_id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["name"], "get_weather");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"location": "San Francisco, CA", "unit": "celsius"}));
    }
    assert_eq!(output_text(&answer), "I'll check the weather in San Francisco.");
    assert_eq!(stream.text, "I'll check the weather in San Francisco.");
    let sent = &upstream.requests()[0].body;
    assert_eq!(sent["tools"][0]["name"], "get_weather", "the function, as Anthropic's tool");
    assert!(sent["tools"][0]["input_schema"].is_object(), "{sent}");
}
