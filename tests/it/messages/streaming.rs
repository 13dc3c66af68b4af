//! Streamed Messages answers: a chat stream translated into Anthropic's events (in order, named
//! by their type, text and tool arguments assembling to the answer, usage at the end), and a
//! stream that breaks after content ending with an `error` event, never a clean stop.

use std::time::Duration;

use serde_json::{Value, json};

use super::{MessageStream, header, messages_request, sse_blocks};
use crate::support::{
    FakeUpstream, Reply, StreamEnd, TestGateway, chunk_events, mixed_targets_config, openai_config,
    read_body,
};

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

#[tokio::test]
async fn a_streamed_messages_request_to_an_openai_target_gets_anthropics_events_in_order() {
    let mut events = chunk_events(&["Hel", "lo", " world"], false);
    events.push(usage_chunk(3));
    events.push("[DONE]".to_owned());
    let upstream = FakeUpstream::scripted([stream_of(events)]).await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;

    let response = gateway.messages(&messages_request(true)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-route"), "primary");
    assert_eq!(header(&response, "x-ballast-attempts"), "1");
    let stream = MessageStream::read(response).await;
    stream.assert_complete();
    assert_eq!(stream.names.first().map(String::as_str), Some("message_start"));
    assert_eq!(stream.start["model"], "chat", "the alias");
    assert_eq!(stream.start["role"], "assistant");
    assert_eq!(stream.start["content"], json!([]));
    assert!(stream.start["id"].as_str().unwrap().starts_with("msg_"));
    let mut shape: Vec<&str> =
        stream.names.iter().map(String::as_str).filter(|name| *name != "ping").collect();
    shape.dedup();
    assert_eq!(
        shape,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "one text block: {:?}",
        stream.names
    );
    assert_eq!(stream.text, "Hello world");
    assert!(stream.tools.is_empty());
    assert_eq!(stream.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(stream.output_tokens, Some(3), "the upstream's real count");
    let sent = &upstream.requests()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true, "usage is asked for");
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_a_tool_use_block_with_input_json_deltas() {
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
    let upstream = FakeUpstream::scripted([stream_of(events)]).await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;

    let stream = MessageStream::read(gateway.messages(&messages_request(true)).await).await;

    stream.assert_complete();
    assert_eq!(stream.text, "Checking.");
    assert_eq!(stream.tools.len(), 1, "{:?}", stream.names);
    let (block, arguments) = &stream.tools[0];
    assert_eq!(block["name"], "get_weather");
    assert!(block["id"].as_str().is_some_and(|id| !id.is_empty()), "{block}");
    let input: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(input, json!({"city": "Paris"}), "the input_json_deltas add up");
    assert_eq!(stream.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(stream.output_tokens, Some(21));
}

#[tokio::test]
async fn a_stream_broken_after_content_ends_with_an_error_event_and_no_message_stop() {
    let anthropic_partial = vec![
        json!({"type": "message_start", "message": {"id": "msg_partial", "type": "message", "role": "assistant",
               "model": "claude-test", "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial"}}),
    ];
    for (kind, end) in [
        ("openai", StreamEnd::Reset),
        ("openai", StreamEnd::Close),
        ("anthropic", StreamEnd::Reset),
        ("anthropic", StreamEnd::Close),
    ] {
        let broken = if kind == "openai" {
            let events = chunk_events(&["partial", " answer"], false)[..2].to_vec();
            Reply::Stream { events, gap: Duration::ZERO, end }
        } else {
            Reply::anthropic_stream(&anthropic_partial, end)
        };
        let primary = FakeUpstream::scripted([broken]).await;
        let backup = FakeUpstream::start().await;
        let gateway =
            TestGateway::start(&mixed_targets_config((kind, &primary), ("openai", &backup))).await;

        let response = gateway.messages(&messages_request(true)).await;

        assert_eq!(response.status(), 200, "{kind} {end:?}");
        let body = read_body(response).await;
        let stream = MessageStream::of(&crate::support::sse_events(&body));
        assert_eq!(stream.text, "partial", "{kind} {end:?}: what came before the break");
        stream.assert_broken();
        if kind == "anthropic" {
            let sent: Vec<String> = anthropic_partial.iter().map(Reply::anthropic_event).collect();
            let blocks = sse_blocks(&body);
            assert_eq!(blocks[..sent.len()], sent[..], "{end:?}: the upstream's events, unchanged");
        }
        assert_eq!(
            (primary.hits(), backup.hits()),
            (1, 0),
            "{kind} {end:?}: nothing is sent again once the client has content"
        );
    }
}
