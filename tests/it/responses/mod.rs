//! `/v1/responses` (OpenAI's Responses API) through the front door, one module per area:
//! `passthrough` (to an `openai` target with `native_responses` and to an `azure` one: the
//! client's bytes with the model swapped, the upstream's answer, stream and client errors
//! back unchanged, failover on a 503), `translation` (to chat targets and, through chat, to
//! Anthropic, whole and streamed), `streaming` (streams held until their first content, broken
//! streams ending with `error` and `response.failed`), `conversation` (`previous_response_id`
//! continued on whichever target is up), `tools` (built-in tools: native targets first, dropped
//! and named when unforced, refused when forced), `cache`, `errors` (the OpenAI error shape,
//! degraded replies) and `metrics`. The helpers they share are here: requests, native answers
//! and streams as OpenAI writes them, and a checker of Responses streams.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers: a failed unwrap or expect is a failed test"
)]

mod cache;
mod conversation;
mod errors;
mod metrics;
mod passthrough;
mod streaming;
mod tools;
mod translation;

use serde_json::{Value, json};

use crate::support::{CLIENT_KEY, UPSTREAM_KEY, read_body, sse_events};

/// The settings that make an `openai` provider at a fake upstream serve Responses itself.
pub(super) const NATIVE: &str = "native_responses: true";

/// An in-memory cache (conversations are kept in the cache's store).
pub(super) const MEMORY: &str = "cache: { backend: memory, ttl: 1h, stale_ttl: 1h }";

/// A Responses request for model `chat` with a string input.
pub(super) fn responses_request(stream: bool) -> Value {
    json!({"model": "chat", "input": "Hello there", "stream": stream})
}

/// A header's value, `""` when absent.
pub(super) fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map_or("", |v| v.to_str().unwrap())
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

/// Asserts OpenAI's error shape (`{"error":{"message","type","param","code"}}`, JSON, with
/// `x-request-id`) and `status`; returns `error`.
pub(super) async fn openai_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers().contains_key("x-request-id"), "errors carry x-request-id");
    assert!(
        header(&response, "content-type").starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert!(error["type"].is_string(), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    for key in ["param", "code"] {
        assert!(error.get(key).is_some(), "`{key}` is always there: {body}");
    }
    error
}

/// Asserts that no header of an upstream request carries the client's key, and that the
/// provider's own key arrived in `key_header` (`authorization` as a bearer token, or `api-key`).
pub(super) fn assert_provider_key_only(headers: &[(String, String)], key_header: &str) {
    for (name, value) in headers {
        assert!(!value.contains(CLIENT_KEY), "the client's key reached the upstream in `{name}`");
    }
    let key = headers.iter().find(|(name, _)| name == key_header).map(|(_, v)| v.as_str());
    let expected = if key_header == "authorization" {
        format!("Bearer {UPSTREAM_KEY}")
    } else {
        UPSTREAM_KEY.to_owned()
    };
    assert_eq!(key, Some(expected.as_str()), "the provider's key in {key_header}");
}

// === What a native upstream answers ===

/// The message item `msg_{id}` an OpenAI Response carries for `text`.
pub(super) fn message_item(id: &str, text: &str) -> Value {
    json!({"id": format!("msg_{id}"), "type": "message", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// A completed Response `id` whose output is one message of `text`, as OpenAI writes it
/// (12 input and 5 output tokens).
pub(super) fn response_body(id: &str, text: &str) -> Value {
    response_with(id, vec![message_item(id, text)])
}

/// A completed Response `id` with `output`.
pub(super) fn response_with(id: &str, output: Vec<Value>) -> Value {
    json!({
        "id": id, "object": "response", "created_at": 1_741_476_777u64, "status": "completed",
        "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null,
        "model": "gpt-4o-2024-08-06", "output": output, "parallel_tool_calls": true,
        "previous_response_id": null, "store": true, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled",
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 17},
        "user": null, "metadata": {}
    })
}

/// The opening of a native stream for Response `id`: `response.created` and
/// `response.in_progress` (sequence numbers 0 and 1).
pub(super) fn opening_events(id: &str) -> Vec<Value> {
    let mut opening = response_with(id, Vec::new());
    opening["status"] = json!("in_progress");
    opening["usage"] = Value::Null;
    vec![
        json!({"type": "response.created", "sequence_number": 0, "response": opening}),
        json!({"type": "response.in_progress", "sequence_number": 1, "response": opening}),
    ]
}

/// A native stream for Response `id` of one message whose text comes in `pieces`, in the order
/// OpenAI sends its events, numbered from 0: the opening, the message added empty, its part
/// added empty, a delta per piece, the text, part and item done, `response.completed`.
pub(super) fn response_events(id: &str, pieces: &[&str]) -> Vec<Value> {
    let text: String = pieces.concat();
    let item_id = format!("msg_{id}");
    let at = |event: Value| {
        let mut event = event;
        event["item_id"] = json!(item_id);
        event["output_index"] = json!(0);
        event
    };
    let mut events = opening_events(id);
    events.push(json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}));
    events.push(at(json!({"type": "response.content_part.added", "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})));
    for piece in pieces {
        events.push(at(json!({"type": "response.output_text.delta", "content_index": 0,
            "delta": piece, "logprobs": []})));
    }
    events.push(at(json!({"type": "response.output_text.done", "content_index": 0, "text": text,
        "logprobs": []})));
    events.push(at(json!({"type": "response.content_part.done", "content_index": 0,
        "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}})));
    events.push(json!({"type": "response.output_item.done", "output_index": 0,
        "item": message_item(id, &text)}));
    events.push(json!({"type": "response.completed", "response": response_body(id, &text)}));
    numbered(events)
}

/// `events` with their `sequence_number`s set to 0, 1, 2...
pub(super) fn numbered(events: Vec<Value>) -> Vec<Value> {
    events
        .into_iter()
        .enumerate()
        .map(|(number, mut event)| {
            event["sequence_number"] = json!(number);
            event
        })
        .collect()
}

/// One SSE event as OpenAI writes a Responses event (and the gateway passes it on): `event:
/// {type}` and the JSON.
pub(super) fn named_event(data: &Value) -> String {
    format!("event: {}\ndata: {data}", data["type"].as_str().unwrap())
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
    let content = if text.is_empty() { Value::Null } else { json!(text) };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": "chatcmpl-resptest", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    })
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

/// The texts of a Response's `output_text` parts, joined.
pub(super) fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter(|part| part["type"] == "output_text")
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .collect()
}

// === Responses streams ===

/// What a Responses stream said, as a client assembles it.
#[derive(Debug, Default)]
pub(super) struct ResponseStream {
    /// The `event:` names, in order.
    pub names: Vec<String>,
    /// `response.created`'s `response`.
    pub created: Value,
    /// The text of every `output_text` delta, concatenated.
    pub text: String,
    /// Each `function_call` item as `output_item.done` had it, and its argument deltas joined.
    pub calls: Vec<(Value, String)>,
    /// The data of the terminal event (`response.completed`, `.incomplete` or `.failed`).
    pub terminal: Option<Value>,
    /// The data of the `error` event, if one came.
    pub error: Option<Value>,
}

impl ResponseStream {
    /// Reads a whole streamed answer (within 10 s) and checks it with [`ResponseStream::of`].
    pub(super) async fn read(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert!(
            header(&response, "content-type").starts_with("text/event-stream"),
            "{:?}",
            response.headers()
        );
        Self::of(&sse_events(&read_body(response).await))
    }

    /// Checks the grammar the SDKs' stream helpers hold a Responses stream to (PROTOCOL §12.3,
    /// §12.4): every data is JSON whose `type` is its event's name; `sequence_number` is 0, 1,
    /// 2...; `response.created` first and `response.in_progress` second; items added at output
    /// index 0, 1... one open at a time, added without content, their parts and arguments as
    /// their own events on the open item (`item_id` its `id`), each closed by an
    /// `output_item.done` with the same id; a terminal event last (after an `error`, only
    /// `response.failed`), with the same response id as `response.created`. Assembles what it
    /// carried.
    pub(super) fn of(events: &[(String, String)]) -> Self {
        let mut stream = Self::default();
        // The open item: its id, its type, the index of its open part and that part's text.
        let mut open: Option<(String, String, Option<u64>, String)> = None;
        let mut arguments = String::new();
        let mut next_item = 0;
        let mut next_part = 0;
        let mut ended = false;
        assert!(!events.is_empty(), "an empty stream");
        for (position, (name, data)) in events.iter().enumerate() {
            assert!(!ended, "event `{name}` after the end: {events:#?}");
            let data: Value = serde_json::from_str(data)
                .unwrap_or_else(|err| panic!("event `{name}`: data is not JSON ({err}): {data}"));
            assert_eq!(data["type"], name.as_str(), "the event's name is its data's type");
            assert_eq!(
                data["sequence_number"], position,
                "sequence numbers are dense from 0: {events:#?}"
            );
            stream.names.push(name.clone());
            if stream.error.is_some() {
                assert_eq!(name, "response.failed", "only response.failed follows an error");
            }
            match (position, name.as_str()) {
                (0, "response.created") => {
                    stream.created = data["response"].clone();
                    assert_eq!(stream.created["status"], "in_progress", "{data}");
                    continue;
                }
                (0, other) => panic!("the stream starts with `{other}`: {events:#?}"),
                (1, "response.in_progress") => {
                    assert_eq!(data["response"]["id"], stream.created["id"]);
                    continue;
                }
                (1, other) => panic!("`{other}` second, not response.in_progress: {events:#?}"),
                _ => {}
            }
            let item_id = data["item_id"].as_str().map(str::to_owned);
            let on_open_item = |open: &Option<(String, String, Option<u64>, String)>| {
                let (id, ..) =
                    open.as_ref().unwrap_or_else(|| panic!("`{name}` with no item open"));
                assert_eq!(item_id.as_deref(), Some(id.as_str()), "`{name}` on the open item");
                assert_eq!(
                    data["output_index"],
                    next_item - 1,
                    "`{name}` at the open item's index"
                );
            };
            match name.as_str() {
                "response.output_item.added" => {
                    assert!(open.is_none(), "an item added while another is open: {events:#?}");
                    assert_eq!(data["output_index"], next_item, "items are added in order");
                    next_item += 1;
                    next_part = 0;
                    let item = &data["item"];
                    let id = item["id"].as_str().unwrap_or_default().to_owned();
                    let kind = item["type"].as_str().unwrap().to_owned();
                    match kind.as_str() {
                        "message" => {
                            assert!(!id.is_empty(), "a message has an id: {item}");
                            assert_eq!(item["content"], json!([]), "added without content");
                        }
                        "function_call" => {
                            assert_eq!(item["arguments"], "", "added without arguments");
                            assert!(item["call_id"].as_str().is_some_and(|c| !c.is_empty()));
                            arguments.clear();
                        }
                        _ => {}
                    }
                    open = Some((id, kind, None, String::new()));
                }
                "response.content_part.added" => {
                    on_open_item(&open);
                    let (_, kind, part, text) = open.as_mut().unwrap();
                    assert_eq!(kind, "message");
                    assert!(part.is_none(), "a part added while another is open");
                    assert_eq!(data["content_index"], next_part, "parts are added in order");
                    assert_eq!(data["part"]["text"], "", "a part is added empty: {data}");
                    *part = Some(next_part);
                    next_part += 1;
                    text.clear();
                }
                "response.output_text.delta" | "response.refusal.delta" => {
                    on_open_item(&open);
                    let (_, _, part, text) = open.as_mut().unwrap();
                    assert_eq!(data["content_index"], part.expect("a delta outside any part"));
                    let delta = data["delta"].as_str().unwrap();
                    text.push_str(delta);
                    if name == "response.output_text.delta" {
                        stream.text.push_str(delta);
                    }
                }
                "response.output_text.done" | "response.refusal.done" => {
                    on_open_item(&open);
                    let (_, _, part, text) = open.as_ref().unwrap();
                    assert_eq!(data["content_index"], part.expect("a done outside any part"));
                    let key = if name == "response.output_text.done" { "text" } else { "refusal" };
                    assert_eq!(data[key], text.as_str(), "the whole of the deltas: {data}");
                }
                "response.content_part.done" => {
                    on_open_item(&open);
                    let (_, _, part, _) = open.as_mut().unwrap();
                    assert_eq!(data["content_index"], part.take().expect("no part is open"));
                }
                "response.function_call_arguments.delta" => {
                    on_open_item(&open);
                    arguments.push_str(data["delta"].as_str().unwrap());
                }
                "response.function_call_arguments.done" => {
                    on_open_item(&open);
                    assert_eq!(data["arguments"], arguments.as_str(), "the whole of the deltas");
                }
                "response.output_item.done" => {
                    let (id, kind, part, _) = open.take().expect("an item done with none open");
                    assert!(part.is_none(), "an item done with a part open");
                    assert_eq!(data["output_index"], next_item - 1);
                    assert_eq!(data["item"]["id"].as_str().unwrap_or_default(), id);
                    if kind == "function_call" {
                        stream.calls.push((data["item"].clone(), arguments.clone()));
                    }
                }
                "response.completed" | "response.incomplete" | "response.failed" => {
                    if name != "response.failed" {
                        assert!(open.is_none(), "the end with an item still open: {events:#?}");
                    }
                    assert_eq!(data["response"]["id"], stream.created["id"], "one response id");
                    stream.terminal = Some(data.clone());
                    ended = true;
                }
                "error" => {
                    assert!(stream.error.is_none(), "one error");
                    stream.error = Some(data.clone());
                }
                other => panic!("an event type the SDKs do not know: `{other}`"),
            }
        }
        stream
    }

    /// The terminal event's type.
    pub(super) fn ending(&self) -> &str {
        self.terminal.as_ref().and_then(|t| t["type"].as_str()).unwrap_or("")
    }

    /// The Response the terminal event carries.
    pub(super) fn response(&self) -> &Value {
        &self.terminal.as_ref().expect("a terminal event")["response"]
    }

    /// Asserts a clean end: `response.completed` last, no error.
    pub(super) fn assert_complete(&self) {
        assert_eq!(self.error, None, "{:?}", self.names);
        assert_eq!(self.ending(), "response.completed", "{:?}", self.names);
        assert_eq!(self.response()["status"], "completed");
    }

    /// Asserts the end of a stream broken after content: an `error` event (its code
    /// `upstream_stream_error`, flat and nested) then `response.failed` last, and never
    /// `response.completed`.
    pub(super) fn assert_broken(&self) {
        let tail: Vec<&str> = self.names.iter().rev().take(2).rev().map(String::as_str).collect();
        assert_eq!(tail, ["error", "response.failed"], "{:?}", self.names);
        let error = self.error.as_ref().unwrap();
        assert_eq!(error["code"], "upstream_stream_error", "{error}");
        assert_eq!(error["error"]["code"], "upstream_stream_error", "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
        assert_eq!(self.response()["status"], "failed");
        assert!(self.response()["error"].is_object(), "the failed Response says why");
        assert!(!self.names.iter().any(|name| name == "response.completed"));
    }
}
