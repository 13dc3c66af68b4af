//! `/v1/messages` (Anthropic's Messages API) through the front door, one module per area:
//! `translation` (to an OpenAI-compatible target and back, whole answers, hints dropped and
//! named), `streaming` (translated streams as Anthropic's events, broken streams),
//! `passthrough` (to an `anthropic` target: the client's bytes, headers and the upstream's
//! answers untouched), `failover` (across dialects, before a stream's first content),
//! `cache`, `errors` (SPEC §3's table in Anthropic's shape), `count_tokens` and `metrics`.
//! The helpers they share are here: requests, the error shape, a checker of Messages streams
//! and a reader of a JSON object's members as written.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers: a failed unwrap or expect is a failed test"
)]

mod cache;
mod count_tokens;
mod errors;
mod failover;
mod metrics;
mod passthrough;
mod streaming;
mod translation;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::{CLIENT_KEY, UPSTREAM_KEY, read_body, sse_events};

/// A Messages request for model `chat`: one user turn, `max_tokens: 256`.
pub(super) fn messages_request(stream: bool) -> Value {
    json!({"model": "chat", "max_tokens": 256, "stream": stream,
           "messages": [{"role": "user", "content": "Hello there"}]})
}

/// `future` (a call through a harness helper without a limit of its own), within 10 s.
pub(super) async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future).await.expect("answered within 10 s")
}

/// A header's value, `""` when absent.
pub(super) fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

/// Asserts Anthropic's error shape (`{"type":"error","error":{"type","message"}}`, JSON, with
/// `x-request-id`) and `status`; returns `error`.
pub(super) async fn anthropic_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers().contains_key("x-request-id"), "errors carry x-request-id");
    assert!(
        header(&response, "content-type").starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    let error = body["error"].clone();
    assert!(error["type"].is_string(), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    error
}

/// The names in `x-ballast-dropped`, sorted; empty when there is no such header.
pub(super) fn dropped(response: &reqwest::Response) -> Vec<String> {
    let mut names: Vec<String> = header(response, "x-ballast-dropped")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// The text of a chat message's `content`: the string, or its text parts joined by a newline.
pub(super) fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part["type"] == "text")
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A `chat.completion` whose message carries `text` (none when empty) and `calls`
/// (`(id, name, arguments)`), ending with `finish_reason`; usage 11 prompt, 7 completion.
pub(super) fn chat_completion(text: &str, calls: &[(&str, &str, &str)], finish: &str) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": "chatcmpl-msgtest", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    })
}

/// The top-level members of the JSON object `bytes`, in order, each value as its raw text.
pub(super) fn raw_members(bytes: &[u8]) -> Vec<(String, String)> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                members.push((key, value.get().to_owned()));
            }
            Ok(members)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    deserializer.deserialize_map(Members).unwrap()
}

/// Asserts that no header of an upstream request (`headers`, as recorded) carries the client's
/// key, and that the provider's own key arrived in `key_header`.
pub(super) fn assert_provider_key_only(headers: &[(String, String)], key_header: &str) {
    for (name, value) in headers {
        assert!(!value.contains(CLIENT_KEY), "the client's key reached the upstream in `{name}`");
    }
    let key = headers.iter().find(|(name, _)| name == key_header).map(|(_, v)| v.as_str());
    assert_eq!(key, Some(UPSTREAM_KEY), "the provider's key in {key_header}");
}

// === Messages streams ===

/// What a Messages stream said, as a client assembles it.
#[derive(Debug, Default)]
pub(super) struct MessageStream {
    /// The `event:` names, in order.
    pub names: Vec<String>,
    /// `message_start`'s `message`.
    pub start: Value,
    /// The text of every text block, concatenated.
    pub text: String,
    /// Each `tool_use` block: its `content_block` and its `input_json_delta`s concatenated.
    pub tools: Vec<(Value, String)>,
    pub stop_reason: Option<String>,
    pub output_tokens: Option<u64>,
    /// The data of the `error` event, if one ended the stream.
    pub error: Option<Value>,
}

impl MessageStream {
    /// Reads a whole streamed answer (within 10 s) and checks it with [`MessageStream::of`].
    pub(super) async fn read(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert!(
            header(&response, "content-type").starts_with("text/event-stream"),
            "{:?}",
            response.headers()
        );
        Self::of(&sse_events(&read_body(response).await))
    }

    /// Checks the grammar of Anthropic's stream (every data is JSON whose `type` is its event's
    /// name; `message_start` first and once; blocks numbered from 0, one open at a time, deltas
    /// and stops on the open one; `message_delta` with no block open; `message_stop` or an
    /// `error` last, and nothing after either) and assembles what it carried.
    pub(super) fn of(events: &[(String, String)]) -> Self {
        let mut stream = Self::default();
        let mut open: Option<(u64, Value)> = None;
        let mut next_block = 0;
        let mut ended = false;
        assert!(!events.is_empty(), "an empty stream");
        for (position, (name, data)) in events.iter().enumerate() {
            assert!(!ended, "event `{name}` after the end: {events:?}");
            let data: Value = serde_json::from_str(data)
                .unwrap_or_else(|err| panic!("event `{name}`: data is not JSON ({err}): {data}"));
            assert_eq!(data["type"], name.as_str(), "the event's name is its data's type");
            stream.names.push(name.clone());
            match name.as_str() {
                "message_start" => {
                    assert_eq!(position, 0, "message_start comes first: {events:?}");
                    stream.start = data["message"].clone();
                }
                _ if position == 0 && name != "error" => {
                    panic!("the stream starts with `{name}`, not message_start: {events:?}")
                }
                "ping" => {}
                "content_block_start" => {
                    assert!(open.is_none(), "a block starts while another is open: {events:?}");
                    assert_eq!(data["index"], next_block, "blocks are numbered from 0");
                    next_block += 1;
                    let block = data["content_block"].clone();
                    if block["type"] == "tool_use" {
                        stream.tools.push((block.clone(), String::new()));
                    } else {
                        assert_eq!(block["type"], "text", "{data}");
                        stream.text.push_str(block["text"].as_str().unwrap_or(""));
                    }
                    open = Some((data["index"].as_u64().unwrap(), block));
                }
                "content_block_delta" => {
                    let (index, block) = open.as_ref().expect("a delta outside any block");
                    assert_eq!(data["index"], *index, "a delta on the open block");
                    let delta = &data["delta"];
                    match (block["type"].as_str(), delta["type"].as_str()) {
                        (Some("text"), Some("text_delta")) => {
                            stream.text.push_str(delta["text"].as_str().unwrap());
                        }
                        (Some("tool_use"), Some("input_json_delta")) => {
                            let tool = stream.tools.last_mut().unwrap();
                            tool.1.push_str(delta["partial_json"].as_str().unwrap());
                        }
                        other => panic!("delta {other:?} in block {block}"),
                    }
                }
                "content_block_stop" => {
                    let (index, _) = open.take().expect("a stop outside any block");
                    assert_eq!(data["index"], index, "the stop of the open block");
                }
                "message_delta" => {
                    assert!(open.is_none(), "message_delta while a block is open");
                    stream.stop_reason = data["delta"]["stop_reason"].as_str().map(str::to_owned);
                    stream.output_tokens = data["usage"]["output_tokens"].as_u64();
                }
                "message_stop" => ended = true,
                "error" => {
                    stream.error = Some(data.clone());
                    ended = true;
                }
                other => panic!("unknown event `{other}`: {events:?}"),
            }
        }
        stream
    }

    /// Asserts a clean end: one `message_start`, a `message_delta`, `message_stop` last, no error.
    pub(super) fn assert_complete(&self) {
        assert_eq!(self.error, None, "{:?}", self.names);
        assert_eq!(self.names.last().map(String::as_str), Some("message_stop"), "{:?}", self.names);
        assert_eq!(self.count("message_start"), 1, "{:?}", self.names);
        assert_eq!(self.count("message_stop"), 1, "{:?}", self.names);
        assert_eq!(self.count("message_delta"), 1, "{:?}", self.names);
    }

    /// Asserts the end of a stream broken after content: an `error` event of type `api_error`
    /// last, and no `message_stop`.
    pub(super) fn assert_broken(&self) {
        assert_eq!(self.names.last().map(String::as_str), Some("error"), "{:?}", self.names);
        let error = self.error.as_ref().unwrap();
        assert_eq!(error["error"]["type"], "api_error", "{error}");
        assert!(error["error"]["message"].is_string(), "{error}");
        assert_eq!(self.count("message_stop"), 0, "a broken stream never ends cleanly");
        assert_eq!(self.count("error"), 1);
    }

    pub(super) fn count(&self, name: &str) -> usize {
        self.names.iter().filter(|n| *n == name).count()
    }
}

/// The blocks of an SSE body (the text between blank lines) without comment lines: how a
/// passthrough is compared with what the upstream sent.
pub(super) fn sse_blocks(body: &str) -> Vec<String> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .map(|event| {
            event.lines().filter(|line| !line.starts_with(':')).collect::<Vec<_>>().join("\n")
        })
        .filter(|event| !event.trim().is_empty())
        .collect()
}
