//! Anthropic Messages in the pipeline: the request as it travels (the checked body, the headers
//! an Anthropic target is given, and its translation for chat targets, made once), and what the
//! stages need to know of a Messages answer: how a stream's events are named and which carry
//! content, how a stream adds up to a Message (to store it) and how a Message is streamed again
//! (to replay it), and the Message a degraded reply is.

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::anthropic::MessagesRequest;
use crate::failure::Refusal;
use crate::openai::chat::ChatRequest;
use crate::translate::messages_chat::to_chat;

/// A Messages request on its way through the pipeline.
pub struct Messages {
    pub request: MessagesRequest,
    /// The client's `anthropic-version` and `anthropic-beta`: forwarded to Anthropic targets
    /// (SPEC §4's one exception to "client headers are never forwarded"), to no other.
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
    chat: OnceLock<Result<AsChat, Refusal>>,
    server_tool: OnceLock<bool>,
}

/// The request as a chat target is sent it.
pub struct AsChat {
    /// Names the alias as its model; the provider swaps in its upstream model.
    pub request: ChatRequest,
    /// What the translation left out, by name (`x-ballast-dropped`).
    pub dropped: Vec<String>,
}

impl Messages {
    pub fn new(request: MessagesRequest, forwarded: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self { request, forwarded, chat: OnceLock::new(), server_tool: OnceLock::new() }
    }

    /// The chat translation, made on first use and kept for every chat target and retry.
    pub fn as_chat(&self) -> Result<&AsChat, &Refusal> {
        self.chat.get_or_init(|| translate(&self.request)).as_ref()
    }

    /// Whether a tool is one only Anthropic runs (any tool with a `type` other than `custom`).
    /// Reads `tools` alone, once: a passthrough never parses the rest of the body.
    pub fn has_server_tool(&self) -> bool {
        *self.server_tool.get_or_init(|| {
            let Ok(Some(Value::Array(tools))) = self.request.member("tools") else { return false };
            tools.iter().any(|tool| {
                tool.get("type").and_then(Value::as_str).is_some_and(|kind| kind != "custom")
            })
        })
    }
}

fn translate(request: &MessagesRequest) -> Result<AsChat, Refusal> {
    let translated = to_chat(request, &request.model)?;
    let chat = ChatRequest::from_bytes(translated.body.into())
        .map_err(|invalid| Refusal::new(invalid.param.unwrap_or("messages"), invalid.message))?;
    Ok(AsChat { request: chat, dropped: translated.dropped })
}

/// Whether an event is past the stream's opening: anything but `message_start`, `ping` and
/// the start of an empty text block. A stream is held until one arrives (SPEC §4 "Streams
/// never lie"), so an upstream that opens and then fails is still an ordinary failed attempt.
pub fn carries_content(data: &str) -> bool {
    match super::event_type(data).as_deref() {
        Some("message_start" | "ping") | None => false,
        Some("content_block_start") => {
            let start: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let block = &start["content_block"];
            block["type"] != "text" || block["text"].as_str().is_some_and(|t| !t.is_empty())
        }
        Some(_) => true,
    }
}

/// Whether a whole answer is a Message (an upstream 200 that is not one is a failure).
pub fn is_message(body: &Value) -> bool {
    body["type"] == "message" && body["content"].is_array()
}

/// The Message a complete stream adds up to: `message_start`'s message, each block as started
/// and with its deltas applied (text, tool input JSON, thinking, signature, citations), the
/// `message_delta`'s stop reason and usage. `None` when the events do not add up (an unknown
/// delta, a tool input that is not JSON): such a stream is not stored.
pub fn assemble(events: &[String]) -> Option<Value> {
    let mut message: Option<Map<String, Value>> = None;
    let mut blocks: Vec<Value> = Vec::new();
    let mut inputs: Vec<Option<String>> = Vec::new();
    for data in events {
        let event: Value = serde_json::from_str(data).ok()?;
        match event["type"].as_str()? {
            "message_start" => message = Some(event.get("message")?.as_object()?.clone()),
            "content_block_start" => {
                let index = usize::try_from(event["index"].as_u64()?).ok()?;
                if index != blocks.len() {
                    return None;
                }
                let block = event.get("content_block")?.clone();
                let is_tool = block["type"].as_str().is_some_and(|t| t.ends_with("tool_use"));
                inputs.push(is_tool.then(String::new));
                blocks.push(block);
            }
            "content_block_delta" => {
                let index = usize::try_from(event["index"].as_u64()?).ok()?;
                let block = blocks.get_mut(index)?;
                let delta = &event["delta"];
                let (field, text) = match delta["type"].as_str()? {
                    "text_delta" => ("text", delta["text"].as_str()?),
                    "thinking_delta" => ("thinking", delta["thinking"].as_str()?),
                    "signature_delta" => ("signature", delta["signature"].as_str()?),
                    "input_json_delta" => {
                        inputs.get_mut(index)?.as_mut()?.push_str(delta["partial_json"].as_str()?);
                        continue;
                    }
                    "citations_delta" => {
                        let citations = block.as_object_mut()?.entry("citations");
                        let list = citations.or_insert_with(|| json!([]));
                        list.as_array_mut()?.push(delta.get("citation")?.clone());
                        continue;
                    }
                    _ => return None,
                };
                let slot = block.as_object_mut()?.entry(field).or_insert_with(|| json!(""));
                let mut joined = slot.as_str()?.to_owned();
                joined.push_str(text);
                *slot = Value::String(joined);
            }
            "content_block_stop" => {
                let index = usize::try_from(event["index"].as_u64()?).ok()?;
                if let Some(input) = inputs.get_mut(index)?.take() {
                    let parsed = if input.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&input).ok()?
                    };
                    blocks.get_mut(index)?.as_object_mut()?.insert("input".to_owned(), parsed);
                }
            }
            "message_delta" => {
                let message = message.as_mut()?;
                for (key, value) in event["delta"].as_object()? {
                    message.insert(key.clone(), value.clone());
                }
                if let Some(usage) = event["usage"].as_object() {
                    let total = message.entry("usage").or_insert_with(|| json!({}));
                    let total = total.as_object_mut()?;
                    for (key, value) in usage {
                        if !value.is_null() {
                            total.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            "ping" | "message_stop" => {}
            _ => return None,
        }
    }
    let mut message = message?;
    message.insert("content".to_owned(), Value::Array(blocks));
    Some(Value::Object(message))
}

/// A Message as the stream Anthropic would have sent for it: `message_start` (empty content,
/// the input usage), per block a start, one delta with its whole text or input, a stop, then
/// `message_delta` (stop reason, usage) and `message_stop`.
pub fn events_of(message: &Value) -> Vec<String> {
    let mut head = message.clone();
    let blocks = head.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
    let usage = head.get("usage").cloned().unwrap_or_else(|| json!({}));
    if let Some(head) = head.as_object_mut() {
        head.insert("content".to_owned(), json!([]));
        head.insert("stop_reason".to_owned(), Value::Null);
        head.insert("stop_sequence".to_owned(), Value::Null);
        let mut opening = usage.clone();
        if let Some(opening) = opening.as_object_mut() {
            opening.insert("output_tokens".to_owned(), json!(0));
        }
        head.insert("usage".to_owned(), opening);
    }
    let mut events = vec![json!({"type": "message_start", "message": head})];
    for (index, block) in blocks.iter().enumerate() {
        let (start, delta) = match block["type"].as_str() {
            Some("text") => (
                json!({"type": "text", "text": ""}),
                Some(json!({"type": "text_delta", "text": block["text"]})),
            ),
            Some("thinking") => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                Some(json!({"type": "thinking_delta", "thinking": block["thinking"]})),
            ),
            Some(kind) if kind.ends_with("tool_use") => {
                let mut start = block.clone();
                if let Some(start) = start.as_object_mut() {
                    start.insert("input".to_owned(), json!({}));
                }
                let input = block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string);
                (start, Some(json!({"type": "input_json_delta", "partial_json": input})))
            }
            _ => (block.clone(), None),
        };
        events.push(json!({"type": "content_block_start", "index": index, "content_block": start}));
        if let Some(delta) = delta {
            events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        }
        if block["type"] == "thinking"
            && let Some(signature) = block["signature"].as_str().filter(|s| !s.is_empty())
        {
            let delta = json!({"type": "signature_delta", "signature": signature});
            events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    events.push(json!({
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {"output_tokens": usage["output_tokens"]},
    }));
    events.push(json!({"type": "message_stop"}));
    events.iter().map(Value::to_string).collect()
}

/// The Message of a degraded reply: `text`, `end_turn`, no tokens.
pub fn degraded(model: &str, text: &str) -> Value {
    json!({
        "id": format!("msg_degraded_{:016x}", rand::random::<u64>()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    })
}

/// The client's Anthropic headers the gateway forwards to Anthropic targets.
pub const FORWARDED: [HeaderName; 2] =
    [HeaderName::from_static("anthropic-version"), HeaderName::from_static("anthropic-beta")];

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Value {
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "alias",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hello there"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 7},
        })
    }

    #[test]
    fn a_message_streamed_again_adds_up_to_the_same_message() {
        let events = events_of(&message());
        let names: Vec<String> =
            events.iter().map(|e| crate::dialect::event_type(e).unwrap().into_owned()).collect();
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
        assert_eq!(assemble(&events), Some(message()));
    }

    #[test]
    fn a_stream_with_an_unknown_delta_or_broken_tool_input_is_not_assembled() {
        let start = json!({"type": "message_start", "message": {"type": "message", "content": []}});
        let tool = json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}});
        let broken = json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}});
        let stop = json!({"type": "content_block_stop", "index": 0});
        let events: Vec<String> = [&start, &tool, &broken, &stop].map(Value::to_string).into();
        assert_eq!(assemble(&events), None);
        let odd =
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "new_delta"}});
        let events: Vec<String> = [&start, &tool, &odd].map(Value::to_string).into();
        assert_eq!(assemble(&events), None);
    }

    #[test]
    fn event_names_come_from_the_type_in_any_member_order() {
        assert_eq!(crate::dialect::event_type(r#"{"type":"ping"}"#).as_deref(), Some("ping"));
        assert_eq!(
            crate::dialect::event_type(r#"{"index":0,"type":"content_block_stop"}"#).as_deref(),
            Some("content_block_stop")
        );
        assert_eq!(crate::dialect::event_type(r#"{"index":0}"#), None);
    }

    #[test]
    fn only_events_past_the_opening_carry_content() {
        assert!(!carries_content(r#"{"type":"message_start","message":{}}"#));
        assert!(!carries_content(r#"{"type":"ping"}"#));
        let empty_text =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        assert!(!carries_content(empty_text));
        let tool = r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"x"}}"#;
        assert!(carries_content(tool));
        assert!(carries_content(r#"{"type":"content_block_delta","index":0,"delta":{}}"#));
        assert!(carries_content(r#"{"type":"message_stop"}"#));
    }
}
