//! Anthropic → OpenAI for streams: the state machine that turns Messages API events into chunks.
//!
//! One event in, zero or more `chat.completion.chunk` payloads out (PROTOCOL.md §8.6). The
//! stream must open with `message_start`; `message_stop` ends it with the usage chunk, which
//! every backend's stream ends with; an `error` event or an unreadable one fails it.

use serde_json::json;

use super::response::{finish_reason, openai_usage};
use super::wire::{Block, BlockDelta, Event, MessagesUsage};
use crate::openai::stream::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionDelta, ToolCallDelta,
};
use crate::providers::sse::{SseEvent, Step};

/// The streaming translation (PROTOCOL.md §8.6): one Anthropic event in, OpenAI chunks out.
pub(super) struct StreamState {
    created: u64,
    id: String,
    model: String,
    started: bool,
    finished: bool,
    usage: MessagesUsage,
    calls: Vec<OpenCall>,
}

/// A `tool_use` block of the stream and the OpenAI tool call it became.
struct OpenCall {
    block: u64,
    call: u32,
    has_arguments: bool,
}

impl StreamState {
    pub(super) fn new(created: u64) -> Self {
        Self {
            created,
            id: String::new(),
            model: String::new(),
            started: false,
            finished: false,
            usage: MessagesUsage::default(),
            calls: Vec::new(),
        }
    }

    pub(super) fn event(&mut self, event: &SseEvent) -> Step {
        let Ok(event) = serde_json::from_str::<Event>(&event.data) else {
            return Step::Fail(
                "upstream sent a stream event that is not a valid Anthropic event".to_owned(),
            );
        };
        let none = || Step::Chunks(Vec::new());
        match event {
            Event::Ignored => none(),
            Event::Error { error } => Step::Fail(format!(
                "upstream sent an error event (`{}`) in its stream",
                printable(&error.kind)
            )),
            Event::MessageStart { message } => {
                if self.started {
                    return none();
                }
                self.started = true;
                self.id = message.id;
                self.model = message.model;
                self.usage = message.usage;
                let role = Delta {
                    role: Some("assistant".to_owned()),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                Step::Chunks(vec![self.chunk(role, None)])
            }
            _ if !self.started => {
                Step::Fail("upstream stream did not begin with message_start".to_owned())
            }
            Event::ContentBlockStart { index, content_block } => match content_block {
                Block::Text { text } => Step::Chunks(self.text(text).into_iter().collect()),
                Block::ToolUse { id, name, .. } => {
                    let call = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                    self.calls.push(OpenCall { block: index, call, has_arguments: false });
                    let opening = ToolCallDelta {
                        index: call,
                        id: Some(id),
                        kind: Some("function".to_owned()),
                        function: FunctionDelta { name: Some(name), arguments: String::new() },
                    };
                    Step::Chunks(vec![self.tool_chunk(opening)])
                }
                Block::Other => none(),
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => {
                    Step::Chunks(self.text(text).into_iter().collect())
                }
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    Step::Chunks(self.arguments(index, partial_json).into_iter().collect())
                }
                BlockDelta::InputJsonDelta { .. } | BlockDelta::Other => none(),
            },
            Event::ContentBlockStop { index } => {
                // A call without arguments still gets valid JSON ones, as in a whole answer.
                let empty = self.calls.iter().any(|c| c.block == index && !c.has_arguments);
                let chunk = empty.then(|| self.arguments(index, "{}".to_owned())).flatten();
                Step::Chunks(chunk.into_iter().collect())
            }
            Event::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage.update(usage);
                }
                Step::Chunks(self.finish(delta.stop_reason.as_deref()).into_iter().collect())
            }
            Event::MessageStop => {
                let mut last: Vec<String> = self.finish(None).into_iter().collect();
                last.push(self.usage_chunk());
                Step::End(last)
            }
        }
    }

    fn text(&self, text: String) -> Option<String> {
        (!text.is_empty())
            .then(|| self.chunk(Delta { content: Some(text), ..Delta::default() }, None))
    }

    fn arguments(&mut self, block: u64, fragment: String) -> Option<String> {
        // Only client tools' blocks: a server tool's input is not an OpenAI tool call.
        let call = self.calls.iter_mut().find(|c| c.block == block)?;
        call.has_arguments = true;
        let fragment = ToolCallDelta {
            index: call.call,
            id: None,
            kind: None,
            function: FunctionDelta { name: None, arguments: fragment },
        };
        Some(self.tool_chunk(fragment))
    }

    /// The finish chunk, once.
    fn finish(&mut self, stop_reason: Option<&str>) -> Option<String> {
        if self.finished {
            return None;
        }
        self.finished = true;
        Some(self.chunk(Delta::default(), Some(finish_reason(stop_reason))))
    }

    fn tool_chunk(&self, call: ToolCallDelta) -> String {
        self.chunk(Delta { tool_calls: vec![call], ..Delta::default() }, None)
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<&str>) -> String {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish_reason.map(str::to_owned),
            }],
            usage: None,
        };
        serde_json::to_string(&chunk).unwrap_or_default()
    }

    fn usage_chunk(&self) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": openai_usage(&self.usage),
        })
        .to_string()
    }
}

/// An upstream-chosen word fit for a log line: Anthropic's error types are snake_case.
fn printable(kind: &str) -> &str {
    let fits = kind.len() <= 64 && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if fits { kind } else { "unrecognised" }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn play(events: &[Value]) -> (Vec<Value>, Option<Step>) {
        let mut state = StreamState::new(5);
        let mut chunks = Vec::new();
        for event in events {
            let event = SseEvent {
                event: event["type"].as_str().unwrap_or("").to_owned(),
                data: event.to_string(),
            };
            match state.event(&event) {
                Step::Chunks(more) => chunks.extend(more),
                end => {
                    if let Step::End(more) = &end {
                        chunks.extend(more.iter().cloned());
                    }
                    let chunks = chunks.iter().map(|c| serde_json::from_str(c).unwrap()).collect();
                    return (chunks, Some(end));
                }
            }
        }
        (chunks.iter().map(|c| serde_json::from_str(c).unwrap()).collect(), None)
    }

    fn start() -> Value {
        json!({"type": "message_start", "message": {"id": "msg_9", "type": "message", "role": "assistant",
            "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5, "output_tokens": 1}}})
    }

    #[test]
    fn a_streamed_tool_call_is_translated_event_by_event() {
        let events = [
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"Paris\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "some_future_event", "payload": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 42}}),
            json!({"type": "message_stop"}),
        ];
        let (chunks, end) = play(&events);
        assert!(matches!(end, Some(Step::End(_))));
        let deltas: Vec<&Value> =
            chunks.iter().filter_map(|c| c["choices"].get(0)).map(|c| &c["delta"]).collect();
        assert_eq!(
            deltas,
            [
                &json!({"role": "assistant", "content": ""}),
                &json!({"content": "Checking"}),
                &json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"Paris\"}"}}]}),
                &json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
                &json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                &json!({}),
            ]
        );
        for chunk in &chunks {
            assert_eq!(
                (&chunk["id"], &chunk["created"], &chunk["model"]),
                (&json!("msg_9"), &json!(5), &json!("claude-x"))
            );
            assert_eq!(chunk["object"], "chat.completion.chunk");
        }
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(finish["usage"], Value::Null);
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 30, "completion_tokens": 42, "total_tokens": 72, "prompt_tokens_details": {"cached_tokens": 5}})
        );
    }

    #[test]
    fn an_error_event_or_a_missing_start_fails_the_stream() {
        let overloaded = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        let (_, end) = play(&[start(), overloaded]);
        assert_eq!(
            end,
            Some(Step::Fail(
                "upstream sent an error event (`overloaded_error`) in its stream".to_owned()
            ))
        );
        let (chunks, end) = play(&[
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}),
        ]);
        assert!(chunks.is_empty());
        assert!(matches!(end, Some(Step::Fail(_))));
        let mut state = StreamState::new(0);
        let garbage = SseEvent { event: "message_start".into(), data: "{not json".into() };
        assert!(matches!(state.event(&garbage), Step::Fail(_)));
    }

    #[test]
    fn a_stop_without_message_delta_still_finishes_and_reports_usage() {
        let (chunks, end) = play(&[start(), json!({"type": "message_stop"})]);
        assert!(matches!(end, Some(Step::End(_))));
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[2]["usage"]["prompt_tokens"], 30);
        assert_eq!(chunks[2]["usage"]["completion_tokens"], 1);
    }
}
