//! A chat-completions stream as Messages stream events, chunk by chunk.
//!
//! Nothing is sent for chunks without content (a role-only first chunk): the first text, tool
//! call or refusal opens the message (`message_start`, then a `ping`, as Anthropic sends).
//! `message_start` carries the prompt's token count as the gateway estimated it, since chat
//! reports usage only at the end and a 0 there breaks clients that watch their context (Claude
//! Code's compaction); the real counts come in `message_delta`, which the SDKs take over. Blocks
//! are numbered from 0 over the whole message and one is open at a time: text deltas go to a
//! `text` block, each tool call (by its chat `index`) opens a `tool_use` block once its name is
//! known (arguments that came first are sent then) and its argument fragments follow as
//! `input_json_delta`. At the upstream's clean end the open block is closed, and
//! `message_delta` (the stop reason, `tool_use` whenever a tool was called, and usage) and
//! `message_stop` follow. A broken upstream is not this module's: the caller ends the stream
//! with an `error` event instead of [`StreamTranslation::finish`].

use serde_json::{Value, json};

use super::response::{message_id, tool_use_id, usage};

/// One Messages SSE event: its `event:` name and its `data:` JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub name: &'static str,
    pub data: String,
}

impl Event {
    fn new(name: &'static str, data: &Value) -> Self {
        Self { name, data: data.to_string() }
    }
}

/// The state of one stream's translation.
pub struct StreamTranslation {
    /// The configured alias the client asked for.
    model: String,
    /// The gateway's estimate of the prompt, for `message_start`.
    estimated_input: u64,
    id: Option<String>,
    started: bool,
    /// The index of the next block.
    next_block: usize,
    open: Option<Open>,
    /// Tool calls seen, by their chat `index`.
    tools: Vec<Tool>,
    finish_reason: Option<String>,
    refused: bool,
    usage: Option<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Tool(usize),
}

struct Tool {
    chat_index: u64,
    id: Option<String>,
    name: Option<String>,
    /// Its block, once opened (the name is needed for that).
    block: Option<usize>,
    /// Arguments that came before the name.
    pending: String,
}

impl StreamTranslation {
    pub fn new(model: &str, estimated_input: u64) -> Self {
        Self {
            model: model.to_owned(),
            estimated_input,
            id: None,
            started: false,
            next_block: 0,
            open: None,
            tools: Vec::new(),
            finish_reason: None,
            refused: false,
            usage: None,
        }
    }

    /// The events for one chat chunk (its `data:` JSON); `None` when it is not a chunk.
    pub fn chunk(&mut self, data: &str) -> Option<Vec<Event>> {
        let chunk: Value = serde_json::from_str(data).ok()?;
        chunk.as_object()?;
        let mut events = Vec::new();
        if self.id.is_none() {
            self.id = chunk["id"].as_str().map(str::to_owned);
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|choices| choices.first()) else {
            return Some(events);
        };
        let delta = &choice["delta"];
        for key in ["content", "refusal"] {
            if let Some(text) = delta[key].as_str().filter(|text| !text.is_empty()) {
                self.refused |= key == "refusal";
                self.text(text, &mut events);
            }
        }
        for (position, call) in delta["tool_calls"].as_array().into_iter().flatten().enumerate() {
            self.tool_call(call, position, &mut events);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
        Some(events)
    }

    /// The events that end the stream after the upstream's clean end.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.start(&mut events);
        self.close(&mut events);
        let stop_reason = match self.finish_reason.as_deref() {
            _ if self.tools.iter().any(|tool| tool.block.is_some()) => "tool_use",
            _ if self.refused => "refusal",
            Some("length") => "max_tokens",
            Some("content_filter") => "refusal",
            _ => "end_turn",
        };
        let usage = match &self.usage {
            Some(reported) => usage(reported),
            None => json!({"input_tokens": self.estimated_input, "output_tokens": 0}),
        };
        events.push(Event::new(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": usage,
            }),
        ));
        events.push(Event::new("message_stop", &json!({"type": "message_stop"})));
        events
    }

    fn start(&mut self, events: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "type": "message_start",
            "message": {
                "id": message_id(self.id.as_deref()),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": self.estimated_input, "output_tokens": 0},
            },
        });
        events.push(Event::new("message_start", &message));
        events.push(Event::new("ping", &json!({"type": "ping"})));
    }

    fn close(&mut self, events: &mut Vec<Event>) {
        if let Some(Open::Text(index) | Open::Tool(index)) = self.open.take() {
            events.push(Event::new(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Opens the next block with `block` as its start; its index.
    fn open_block(&mut self, block: Value, events: &mut Vec<Event>) -> usize {
        self.start(events);
        self.close(events);
        let index = self.next_block;
        self.next_block += 1;
        events.push(Event::new(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn text(&mut self, text: &str, events: &mut Vec<Event>) {
        let index = match self.open {
            Some(Open::Text(index)) => index,
            _ => {
                let index = self.open_block(json!({"type": "text", "text": ""}), events);
                self.open = Some(Open::Text(index));
                index
            }
        };
        events.push(delta(index, json!({"type": "text_delta", "text": text})));
    }

    fn tool_call(&mut self, call: &Value, position: usize, events: &mut Vec<Event>) {
        let chat_index = call["index"].as_u64().unwrap_or(position as u64);
        let slot = match self.tools.iter().position(|tool| tool.chat_index == chat_index) {
            Some(slot) => slot,
            None => {
                self.tools.push(Tool {
                    chat_index,
                    id: None,
                    name: None,
                    block: None,
                    pending: String::new(),
                });
                self.tools.len() - 1
            }
        };
        let function = &call["function"];
        let tool = &mut self.tools[slot];
        if tool.id.is_none() {
            tool.id = call["id"].as_str().filter(|id| !id.is_empty()).map(str::to_owned);
        }
        if tool.name.is_none() {
            tool.name =
                function["name"].as_str().filter(|name| !name.is_empty()).map(str::to_owned);
        }
        let arguments = function["arguments"].as_str().unwrap_or("");
        match (tool.block, tool.name.clone()) {
            (Some(index), _) => {
                if !arguments.is_empty() {
                    events.push(delta(
                        index,
                        json!({"type": "input_json_delta", "partial_json": arguments}),
                    ));
                }
            }
            (None, Some(name)) => {
                let pending = std::mem::take(&mut tool.pending) + arguments;
                let id = tool_use_id(tool.id.as_deref(), slot);
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let index = self.open_block(block, events);
                self.open = Some(Open::Tool(index));
                self.tools[slot].block = Some(index);
                if !pending.is_empty() {
                    events.push(delta(
                        index,
                        json!({"type": "input_json_delta", "partial_json": pending}),
                    ));
                }
            }
            (None, None) => tool.pending.push_str(arguments),
        }
    }
}

fn delta(index: usize, delta: Value) -> Event {
    Event::new(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(chunks: &[Value]) -> Vec<(String, Value)> {
        let mut translation = StreamTranslation::new("alias", 42);
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(translation.chunk(&chunk.to_string()).unwrap());
        }
        events.extend(translation.finish());
        events
            .into_iter()
            .map(|event| (event.name.to_owned(), serde_json::from_str(&event.data).unwrap()))
            .collect()
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn a_text_stream_becomes_messages_events_in_order_with_the_real_usage_at_the_end() {
        let events = play(&[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(json!({}), Some("stop")),
            json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 2}}),
        ]);
        assert_eq!(
            names(&events),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &events[0].1["message"];
        assert_eq!(
            (start["id"].as_str(), start["model"].as_str()),
            (Some("msg_chatcmpl-1"), Some("alias"))
        );
        assert_eq!(
            start["usage"]["input_tokens"], 42,
            "the gateway's estimate until the real count"
        );
        assert_eq!(events[3].1["delta"], json!({"type": "text_delta", "text": "Hel"}));
        assert_eq!(events[6].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(events[6].1["usage"]["input_tokens"], 40);
        assert_eq!(events[6].1["usage"]["output_tokens"], 2);
    }

    #[test]
    fn role_only_chunks_send_nothing_until_content() {
        let mut translation = StreamTranslation::new("alias", 1);
        let role = chunk(json!({"role": "assistant"}), None).to_string();
        assert_eq!(translation.chunk(&role), Some(Vec::new()));
        assert!(translation.chunk("not json").is_none());
    }

    #[test]
    fn tool_calls_open_tool_use_blocks_after_the_text_and_stream_their_arguments() {
        let events = play(&[
            chunk(json!({"content": "Checking."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                None,
            ),
            // A second call whose arguments come before its name.
            chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}), None),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call:b", "function": {"name": "get_time"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ]);
        assert_eq!(
            names(&events),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            events[5].1["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
        );
        assert_eq!(events[5].1["index"], 1);
        let arguments: String = events[6..8]
            .iter()
            .map(|(_, event)| event["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        assert_eq!(events[9].1["content_block"]["id"], "call_b");
        assert_eq!(events[9].1["index"], 2);
        assert_eq!(events[10].1["delta"]["partial_json"], "{}", "arguments held until the name");
        assert_eq!(events[12].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn a_stream_cut_by_length_or_refused_says_so() {
        let cut = play(&[chunk(json!({"content": "a"}), Some("length"))]);
        assert_eq!(cut[cut.len() - 2].1["delta"]["stop_reason"], "max_tokens");
        let refused = play(&[chunk(json!({"refusal": "No."}), Some("stop"))]);
        assert_eq!(refused[refused.len() - 2].1["delta"]["stop_reason"], "refusal");
        let without_usage = play(&[chunk(json!({"content": "a"}), Some("stop"))]);
        assert_eq!(without_usage[without_usage.len() - 2].1["usage"]["input_tokens"], 42);
    }
}
