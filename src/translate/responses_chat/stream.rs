//! Responses stream events: a chat-completions stream translated chunk by chunk
//! ([`StreamTranslation`]), and a whole Response streamed again ([`events_of`], for a cached or
//! degraded answer). Both are written by one [`Writer`], so both obey one grammar, the one the
//! SDKs' stream helpers check (openai-python `ResponseStreamState`, openai-node's response
//! accumulator):
//!
//! * every event's JSON starts with its `type` (the gateway names SSE events by a prefix check)
//!   and has a `sequence_number`, 0, 1, 2... over the stream;
//! * `response.created` comes first and `response.in_progress` second, both with the same
//!   Response (`status: "in_progress"`, `output: []`, `usage: null`) as the terminal event;
//! * items are added in `output_index` order from 0, one open at a time, each closed by an
//!   `output_item.done` with the same `id` (and `call_id`) before the next one or the end;
//!   `output_item.added` carries no content (`content: []`, `arguments: ""`), the parts and
//!   arguments come as their own events, every `item_id` is its item's `id`;
//! * a message's parts (`output_text`, `refusal`) are added in `content_index` order from 0,
//!   each with an empty text, then deltas, then `output_text.done` / `refusal.done` and
//!   `content_part.done` with the whole part;
//! * a function call's arguments come as deltas, then `function_call_arguments.done` with the
//!   whole arguments and its name (`"{}"` when none came: an empty string is not JSON);
//! * the terminal event (`response.completed`, or `response.incomplete` for finish `length` and
//!   `content_filter`) carries the whole Response: the head, every item as it was done, usage.
//!
//! Chat tool calls are keyed by their `index`, and by their id as well (some servers give every
//! parallel call one index); a call's item is added once its name is known, with the arguments
//! that came before it sent as its first delta. A call without a name is never an item. Should
//! an upstream interleave two calls' arguments, the fragments of a call already closed cannot
//! be streamed any more: they are kept in its item in the terminal Response (which both SDKs
//! take as the final one). Reasoning text some OpenAI-compatible servers stream is not made an
//! item (see `response`). A broken upstream is not this module's: the caller ends the stream
//! with `response.failed` instead of [`StreamTranslation::finish`].

use serde_json::{Map, Value, json};

use super::response::{
    call_id, function_call, new_function_call_id, new_message_id, outcome, output_text, refusal,
    usage,
};

/// The state of one chat stream's translation into Responses events.
pub struct StreamTranslation {
    writer: Writer,
    started: bool,
    /// Tool calls seen, in the order met.
    calls: Vec<Call>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

struct Call {
    chat_index: u64,
    upstream_id: Option<String>,
    name: Option<String>,
    /// Its item's output index, once added (the name is needed for that).
    item: Option<usize>,
    call_id: Option<String>,
    /// Arguments that came before the name.
    pending: String,
}

impl StreamTranslation {
    /// A translation whose Response has the members of `head` (see `response::head`).
    pub fn new(head: Map<String, Value>) -> Self {
        Self {
            writer: Writer::new(head),
            started: false,
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The events (each one's `data:` JSON) for one chat chunk, given as its `data:` JSON;
    /// `None` when it is not a chat chunk.
    pub fn chunk(&mut self, data: &str) -> Option<Vec<String>> {
        let chunk: Value = serde_json::from_str(data).ok()?;
        let object = chunk.as_object()?;
        let choices = object.get("choices").and_then(Value::as_array);
        let usage = object.get("usage").filter(|usage| usage.is_object());
        if object.contains_key("error") || (choices.is_none() && usage.is_none()) {
            return None;
        }
        if !self.started {
            self.started = true;
            self.writer.start();
        }
        if let Some(usage) = usage {
            self.usage = Some(usage.clone());
        }
        if let Some(choice) = choices.and_then(|choices| choices.first()) {
            let delta = &choice["delta"];
            for (key, kind) in [("content", PartKind::Text), ("refusal", PartKind::Refusal)] {
                if let Some(text) = delta[key].as_str().filter(|text| !text.is_empty()) {
                    self.writer.text(kind, text);
                }
            }
            for (position, call) in delta["tool_calls"].as_array().into_iter().flatten().enumerate()
            {
                self.tool_call(call, position);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Some(self.writer.take())
    }

    /// The events that end the stream after the upstream's clean end: the open item closed,
    /// then the terminal event with the whole Response.
    pub fn finish(&mut self) -> Vec<String> {
        if !self.started {
            self.started = true;
            self.writer.start();
        }
        let (status, incomplete) = outcome(self.finish_reason.as_deref());
        let mut ending = Map::new();
        ending.insert("incomplete_details".to_owned(), incomplete);
        ending.insert("usage".to_owned(), usage(self.usage.as_ref().unwrap_or(&Value::Null)));
        self.writer.finish(status, ending);
        self.writer.take()
    }

    fn tool_call(&mut self, call: &Value, position: usize) {
        let index = call["index"].as_u64();
        let chat_index = index.unwrap_or(position as u64);
        let id = call["id"].as_str().filter(|id| !id.is_empty());
        // A fragment with an id belongs to the call of that id at that index, or to the call at
        // that index whose first fragments came without one; another id is another call, even
        // at the same index. A fragment without an id belongs to the last call at its index.
        let found = match id {
            Some(id) => self
                .calls
                .iter()
                .position(|known| {
                    known.upstream_id.as_deref() == Some(id)
                        && index.is_none_or(|index| known.chat_index == index)
                })
                .or_else(|| {
                    self.calls.iter().rposition(|known| {
                        known.chat_index == chat_index && known.upstream_id.is_none()
                    })
                }),
            None => self.calls.iter().rposition(|known| known.chat_index == chat_index),
        };
        let slot = match found {
            Some(slot) => slot,
            None => {
                self.calls.push(Call {
                    chat_index,
                    upstream_id: None,
                    name: None,
                    item: None,
                    call_id: None,
                    pending: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let function = &call["function"];
        let arguments = function["arguments"].as_str().unwrap_or("");
        let taken: Vec<String> =
            self.calls.iter().filter_map(|call| call.call_id.clone()).collect();
        let state = &mut self.calls[slot];
        if state.upstream_id.is_none() {
            state.upstream_id = id.map(str::to_owned);
        }
        if state.name.is_none() {
            state.name =
                function["name"].as_str().filter(|name| !name.is_empty()).map(str::to_owned);
        }
        match (state.item, state.name.as_deref()) {
            (Some(index), _) => {
                if !arguments.is_empty() {
                    self.writer.arguments(index, arguments);
                }
            }
            (None, Some(name)) => {
                let pending = std::mem::take(&mut state.pending) + arguments;
                let call_id = call_id(state.upstream_id.as_deref(), &taken);
                let item = function_call(&new_function_call_id(), &call_id, name);
                state.call_id = Some(call_id);
                state.item = Some(self.writer.open_call(item, "completed"));
                if !pending.is_empty() {
                    self.writer.call_delta(&pending);
                }
            }
            (None, None) => state.pending.push_str(arguments),
        }
    }
}

/// The events the Responses API would have streamed for the whole Response `response` (as the
/// cache keeps it, or a degraded reply): each message part and each function call's arguments
/// as one delta, items of other types (`reasoning`, built-in calls of a passthrough answer)
/// added and done as they are, the terminal event by the Response's `status`.
pub fn events_of(response: &Value) -> Vec<String> {
    let Some(whole) = response.as_object() else { return Vec::new() };
    let mut head = whole.clone();
    let mut ending = Map::new();
    for key in ["incomplete_details", "error", "usage"] {
        ending.insert(key.to_owned(), head.remove(key).unwrap_or(Value::Null));
    }
    let status = match head.remove("status") {
        Some(Value::String(status)) => status,
        _ => "completed".to_owned(),
    };
    let output = head.remove("output");
    let mut writer = Writer::new(head);
    writer.start();
    for item in output.as_ref().and_then(Value::as_array).into_iter().flatten() {
        let is_message = match item["type"].as_str() {
            Some("message") => true,
            Some("function_call") => false,
            _ => {
                writer.whole_item(item.clone());
                continue;
            }
        };
        let Some(fields) = item.as_object() else { continue };
        let mut template = fields.clone();
        let done_status = match template.remove("status") {
            Some(Value::String(status)) => status,
            _ => "completed".to_owned(),
        };
        // The SDKs need an item id for the events of its parts and arguments.
        if !matches!(template.get("id"), Some(Value::String(id)) if !id.is_empty()) {
            let id = if is_message { new_message_id() } else { new_function_call_id() };
            template.insert("id".to_owned(), json!(id));
        }
        if is_message {
            let content = template.remove("content");
            writer.open_message(template, &done_status);
            for part in content.as_ref().and_then(Value::as_array).into_iter().flatten() {
                let kind = match part["type"].as_str() {
                    Some("output_text") => PartKind::Text,
                    Some("refusal") => PartKind::Refusal,
                    _ => {
                        writer.whole_part(part.clone());
                        continue;
                    }
                };
                let mut part_template = part.as_object().cloned().unwrap_or_default();
                let text = part_template.remove(kind.field());
                writer.open_part(kind, part_template);
                if let Some(text) = text.as_ref().and_then(Value::as_str)
                    && !text.is_empty()
                {
                    writer.part_delta(text);
                }
            }
        } else {
            let arguments = template.remove("arguments");
            writer.open_call(template, &done_status);
            if let Some(arguments) = arguments.as_ref().and_then(Value::as_str)
                && !arguments.is_empty()
            {
                writer.call_delta(arguments);
            }
        }
    }
    writer.finish(&status, ending);
    writer.take()
}

/// A message part being streamed: text or refusal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

impl PartKind {
    /// The part's member that holds its text.
    fn field(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Refusal => "refusal",
        }
    }

    fn empty(self) -> Value {
        match self {
            Self::Text => output_text(""),
            Self::Refusal => refusal(""),
        }
    }
}

/// The Responses stream grammar (see the module docs), written once: what was sent so far,
/// the open item, the events not yet handed out.
struct Writer {
    sequence: u64,
    /// The Response's members but `output`, `status` and what the ending sets.
    head: Map<String, Value>,
    /// The items closed so far, as their `output_item.done` gave them.
    output: Vec<Value>,
    open: Option<Open>,
    events: Vec<String>,
}

enum Open {
    Message {
        /// The item but its `content` and `status`.
        item: Map<String, Value>,
        done_status: String,
        parts: Vec<Value>,
        part: Option<OpenPart>,
    },
    Call {
        /// The item but its `arguments` and `status`.
        item: Map<String, Value>,
        done_status: String,
        arguments: String,
    },
}

struct OpenPart {
    kind: PartKind,
    /// The part but its text.
    part: Map<String, Value>,
    text: String,
}

impl Writer {
    fn new(head: Map<String, Value>) -> Self {
        Self { sequence: 0, head, output: Vec::new(), open: None, events: Vec::new() }
    }

    /// The events written since the last call.
    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    /// Writes an event: `type` first, then its members and its `sequence_number`.
    fn emit(&mut self, kind: &str, mut members: Map<String, Value>) {
        members.insert("sequence_number".to_owned(), json!(self.sequence));
        self.sequence += 1;
        let rest = Value::Object(members).to_string();
        let mut data = String::with_capacity(rest.len() + kind.len() + 12);
        data.push_str("{\"type\":");
        data.push_str(&Value::from(kind).to_string());
        data.push(',');
        data.push_str(rest.strip_prefix('{').unwrap_or(&rest));
        self.events.push(data);
    }

    /// The Response as it stands, with `status`.
    fn response(&self, status: &str, ending: Map<String, Value>) -> Value {
        let mut response = self.head.clone();
        response.insert("status".to_owned(), json!(status));
        response.insert("output".to_owned(), Value::Array(self.output.clone()));
        for key in ["incomplete_details", "error", "usage"] {
            response.insert(key.to_owned(), Value::Null);
        }
        response.extend(ending);
        Value::Object(response)
    }

    fn start(&mut self) {
        let response = self.response("in_progress", Map::new());
        for kind in ["response.created", "response.in_progress"] {
            self.emit(kind, members([("response", response.clone())]));
        }
    }

    /// The open item's `output_index` and `id`.
    fn at(&self) -> (usize, Value) {
        let id = match &self.open {
            Some(Open::Message { item, .. } | Open::Call { item, .. }) => item.get("id").cloned(),
            None => None,
        };
        (self.output.len(), id.unwrap_or(Value::Null))
    }

    /// Adds an item: `item` without its content and status; its index.
    fn add(&mut self, added: Map<String, Value>, open: Open) -> usize {
        self.close();
        let index = self.output.len();
        self.emit(
            "response.output_item.added",
            members([("output_index", json!(index)), ("item", Value::Object(added))]),
        );
        self.open = Some(open);
        index
    }

    fn open_message(&mut self, item: Map<String, Value>, done_status: &str) -> usize {
        let mut added = item.clone();
        added.insert("status".to_owned(), json!("in_progress"));
        added.insert("content".to_owned(), json!([]));
        let open = Open::Message {
            item,
            done_status: done_status.to_owned(),
            parts: Vec::new(),
            part: None,
        };
        self.add(added, open)
    }

    fn open_call(&mut self, item: Map<String, Value>, done_status: &str) -> usize {
        let mut added = item.clone();
        added.insert("status".to_owned(), json!("in_progress"));
        added.insert("arguments".to_owned(), json!(""));
        let open =
            Open::Call { item, done_status: done_status.to_owned(), arguments: String::new() };
        self.add(added, open)
    }

    /// An item streamed as it is: added and done at once.
    fn whole_item(&mut self, item: Value) {
        self.close();
        let index = self.output.len();
        for kind in ["response.output_item.added", "response.output_item.done"] {
            self.emit(kind, members([("output_index", json!(index)), ("item", item.clone())]));
        }
        self.output.push(item);
    }

    /// Text of `kind` for the answer's message: opens a message (after any other item) and a
    /// part of that kind as needed.
    fn text(&mut self, kind: PartKind, delta: &str) {
        let in_part = match &self.open {
            Some(Open::Message { part, .. }) => Some(part.as_ref().map(|part| part.kind)),
            _ => None,
        };
        match in_part {
            Some(Some(open)) if open == kind => {}
            Some(_) => self.open_part(kind, Map::new()),
            None => {
                let item = message_item_template(&new_message_id());
                self.open_message(item, "completed");
                self.open_part(kind, Map::new());
            }
        }
        self.part_delta(delta);
    }

    /// Adds a part of `kind` to the open message; `part` is the whole part but its text (empty
    /// for the defaults).
    fn open_part(&mut self, kind: PartKind, part: Map<String, Value>) {
        self.close_part();
        let (index, id) = self.at();
        let Some(Open::Message { parts, part: open, .. }) = &mut self.open else { return };
        let content_index = parts.len();
        let part = if part.is_empty() {
            kind.empty().as_object().cloned().unwrap_or_default()
        } else {
            part
        };
        *open = Some(OpenPart { kind, part, text: String::new() });
        self.emit(
            "response.content_part.added",
            members([
                ("item_id", id),
                ("output_index", json!(index)),
                ("content_index", json!(content_index)),
                ("part", kind.empty()),
            ]),
        );
    }

    /// A part of another type than text or refusal, added and done at once.
    fn whole_part(&mut self, part: Value) {
        self.close_part();
        let (index, id) = self.at();
        let Some(Open::Message { parts, .. }) = &mut self.open else { return };
        let content_index = parts.len();
        parts.push(part.clone());
        for kind in ["response.content_part.added", "response.content_part.done"] {
            self.emit(
                kind,
                members([
                    ("item_id", id.clone()),
                    ("output_index", json!(index)),
                    ("content_index", json!(content_index)),
                    ("part", part.clone()),
                ]),
            );
        }
    }

    fn part_delta(&mut self, delta: &str) {
        let (index, id) = self.at();
        let Some(Open::Message { parts, part: Some(part), .. }) = &mut self.open else { return };
        part.text.push_str(delta);
        let content_index = parts.len();
        let kind = part.kind;
        let mut event = members([
            ("item_id", id),
            ("output_index", json!(index)),
            ("content_index", json!(content_index)),
            ("delta", json!(delta)),
        ]);
        match kind {
            PartKind::Text => {
                event.insert("logprobs".to_owned(), json!([]));
                self.emit("response.output_text.delta", event);
            }
            PartKind::Refusal => self.emit("response.refusal.delta", event),
        }
    }

    fn close_part(&mut self) {
        let (index, id) = self.at();
        let Some(Open::Message { parts, part: open, .. }) = &mut self.open else { return };
        let Some(OpenPart { kind, mut part, text }) = open.take() else { return };
        let content_index = parts.len();
        part.insert(kind.field().to_owned(), json!(text));
        let part = Value::Object(part);
        parts.push(part.clone());
        let mut done = members([
            ("item_id", id.clone()),
            ("output_index", json!(index)),
            ("content_index", json!(content_index)),
            (kind.field(), json!(text)),
        ]);
        match kind {
            PartKind::Text => {
                done.insert("logprobs".to_owned(), json!([]));
                self.emit("response.output_text.done", done);
            }
            PartKind::Refusal => self.emit("response.refusal.done", done),
        }
        self.emit(
            "response.content_part.done",
            members([
                ("item_id", id),
                ("output_index", json!(index)),
                ("content_index", json!(content_index)),
                ("part", part),
            ]),
        );
    }

    /// An arguments fragment for the call whose item is `index`: streamed while it is open,
    /// else kept in its closed item.
    fn arguments(&mut self, index: usize, delta: &str) {
        if matches!(self.open, Some(Open::Call { .. })) && index == self.output.len() {
            self.call_delta(delta);
        } else if let Some(Value::Object(item)) = self.output.get_mut(index) {
            let mut arguments = item.get("arguments").and_then(Value::as_str).unwrap_or("");
            if arguments == "{}" {
                arguments = "";
            }
            let arguments = format!("{arguments}{delta}");
            item.insert("arguments".to_owned(), json!(arguments));
        }
    }

    fn call_delta(&mut self, delta: &str) {
        let (index, id) = self.at();
        let Some(Open::Call { arguments, .. }) = &mut self.open else { return };
        arguments.push_str(delta);
        self.emit(
            "response.function_call_arguments.delta",
            members([("item_id", id), ("output_index", json!(index)), ("delta", json!(delta))]),
        );
    }

    /// Closes the open item, if any.
    fn close(&mut self) {
        if matches!(&self.open, Some(Open::Call { arguments, .. }) if arguments.is_empty()) {
            self.call_delta("{}");
        }
        self.close_part();
        let (index, id) = self.at();
        let done = match self.open.take() {
            None => return,
            Some(Open::Message { mut item, done_status, parts, .. }) => {
                item.insert("status".to_owned(), json!(done_status));
                item.insert("content".to_owned(), Value::Array(parts));
                item
            }
            Some(Open::Call { mut item, done_status, arguments }) => {
                let name = item.get("name").cloned().unwrap_or(Value::Null);
                self.emit(
                    "response.function_call_arguments.done",
                    members([
                        ("item_id", id),
                        ("output_index", json!(index)),
                        ("name", name),
                        ("arguments", json!(arguments)),
                    ]),
                );
                item.insert("status".to_owned(), json!(done_status));
                item.insert("arguments".to_owned(), json!(arguments));
                item
            }
        };
        let done = Value::Object(done);
        self.emit(
            "response.output_item.done",
            members([("output_index", json!(index)), ("item", done.clone())]),
        );
        self.output.push(done);
    }

    /// Closes the open item and writes the terminal event for `status`, the Response with the
    /// members of `ending` (usage, incomplete details, error).
    fn finish(&mut self, status: &str, ending: Map<String, Value>) {
        self.close();
        let kind = match status {
            "incomplete" => "response.incomplete",
            "failed" | "cancelled" => "response.failed",
            _ => "response.completed",
        };
        let response = self.response(status, ending);
        self.emit(kind, members([("response", response)]));
    }
}

fn message_item_template(id: &str) -> Map<String, Value> {
    let mut item = Map::new();
    item.insert("id".to_owned(), json!(id));
    item.insert("type".to_owned(), json!("message"));
    item.insert("role".to_owned(), json!("assistant"));
    item
}

fn members<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::responses_chat::response::{head, to_response};

    fn test_head() -> Map<String, Value> {
        let request = json!({"model": "alias", "input": "hi", "stream": true});
        head(request.as_object().unwrap(), "alias", "resp_test", 1_700_000_000)
    }

    fn play(chunks: &[Value]) -> Vec<String> {
        let mut translation = StreamTranslation::new(test_head());
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(translation.chunk(&chunk.to_string()).unwrap());
        }
        events.extend(translation.finish());
        events
    }

    fn parsed(events: &[String]) -> Vec<Value> {
        events.iter().map(|data| serde_json::from_str(data).unwrap()).collect()
    }

    fn types(events: &[String]) -> Vec<String> {
        parsed(events).iter().map(|event| event["type"].as_str().unwrap().to_owned()).collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-up",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn usage_chunk() -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}})
    }

    fn index(event: &Value, key: &str) -> usize {
        usize::try_from(event[key].as_u64().unwrap()).unwrap()
    }

    fn part_mut<'a>(snapshot: &'a mut Value, event: &Value) -> &'a mut Value {
        let content = index(event, "content_index");
        &mut snapshot["output"][index(event, "output_index")]["content"][content]
    }

    fn append(target: &mut Value, delta: &Value) {
        let text = format!("{}{}", target.as_str().unwrap(), delta.as_str().unwrap());
        *target = json!(text);
    }

    /// Folds a stream as the SDKs' stream helpers do (openai-python's `accumulate_event`,
    /// openai-node's response accumulator), checking on the way what they check and what the
    /// grammar promises: `type` first, `response.created` first, dense sequence numbers, items
    /// and parts appended at the next index, `item_id` equal to the item's id, no content in an
    /// added item, done items with the id and call_id they were added with, ids and call_ids
    /// unique, done events repeating what the deltas added up to, every item done before the
    /// terminal event, which comes last. The snapshot the events build, and the terminal
    /// event's Response.
    fn fold(events: &[String]) -> (Value, Value) {
        let mut snapshot: Option<Value> = None;
        let mut done: Vec<bool> = Vec::new();
        let mut terminal = None;
        for (number, data) in events.iter().enumerate() {
            assert!(data.starts_with("{\"type\":\""), "type first: {data}");
            assert!(terminal.is_none(), "nothing after the terminal event: {data}");
            let event: Value = serde_json::from_str(data).unwrap();
            assert_eq!(event["sequence_number"], number, "{data}");
            let kind = event["type"].as_str().unwrap();
            if kind == "response.created" {
                assert!(snapshot.is_none(), "response.created once, first");
                snapshot = Some(event["response"].clone());
                continue;
            }
            let snapshot = snapshot.as_mut().expect("response.created comes first");
            if kind != "response.output_item.added"
                && let Some(at) = event["output_index"].as_u64()
            {
                let at = usize::try_from(at).unwrap();
                let item = &snapshot["output"][at];
                assert!(item.is_object(), "an event for an item not added: {data}");
                if let Some(item_id) = event.get("item_id") {
                    assert_eq!(item_id, &item["id"], "item_id is the item's id: {data}");
                }
                assert!(!done[at], "an event for an item done: {data}");
            }
            match kind {
                "response.in_progress" => {
                    assert_eq!(event["response"], *snapshot, "the same Response as created");
                }
                "response.output_item.added" => {
                    let output = snapshot["output"].as_array_mut().unwrap();
                    assert_eq!(index(&event, "output_index"), output.len(), "appended: {data}");
                    let item = &event["item"];
                    assert!(!item["id"].as_str().unwrap().is_empty());
                    assert!(output.iter().all(|known| known["id"] != item["id"]), "ids unique");
                    match item["type"].as_str().unwrap() {
                        "function_call" => {
                            assert!(!item["call_id"].as_str().unwrap().is_empty());
                            assert!(output.iter().all(|known| known["call_id"] != item["call_id"]));
                            assert_eq!(item["arguments"], "", "no arguments before their deltas");
                            assert!(item["name"].is_string());
                            assert_eq!(item["status"], "in_progress");
                        }
                        "message" => {
                            assert_eq!(item["content"], json!([]), "no content before its parts");
                            assert_eq!(item["status"], "in_progress");
                        }
                        _ => {}
                    }
                    output.push(item.clone());
                    done.push(false);
                }
                "response.content_part.added" => {
                    let item = &mut snapshot["output"][index(&event, "output_index")];
                    let content = item["content"].as_array_mut().unwrap();
                    assert_eq!(index(&event, "content_index"), content.len(), "appended: {data}");
                    let part = &event["part"];
                    assert!(
                        ["text", "refusal"]
                            .iter()
                            .all(|key| part[*key].as_str().is_none_or(str::is_empty)),
                        "parts are added empty: {data}"
                    );
                    content.push(part.clone());
                }
                "response.output_text.delta" => {
                    assert!(event["logprobs"].is_array());
                    let part = part_mut(snapshot, &event);
                    assert_eq!(part["type"], "output_text", "{data}");
                    append(&mut part["text"], &event["delta"]);
                }
                "response.refusal.delta" => {
                    let part = part_mut(snapshot, &event);
                    assert_eq!(part["type"], "refusal", "{data}");
                    append(&mut part["refusal"], &event["delta"]);
                }
                "response.output_text.done" => {
                    assert!(event["logprobs"].is_array());
                    assert_eq!(part_mut(snapshot, &event)["text"], event["text"], "{data}");
                }
                "response.refusal.done" => {
                    assert_eq!(part_mut(snapshot, &event)["refusal"], event["refusal"], "{data}");
                }
                "response.content_part.done" => {
                    let part = part_mut(snapshot, &event);
                    assert_eq!(part["type"], event["part"]["type"]);
                    *part = event["part"].clone();
                }
                "response.function_call_arguments.delta" => {
                    let item = &mut snapshot["output"][index(&event, "output_index")];
                    assert_eq!(item["type"], "function_call");
                    append(&mut item["arguments"], &event["delta"]);
                }
                "response.function_call_arguments.done" => {
                    let item = &snapshot["output"][index(&event, "output_index")];
                    assert_eq!(item["arguments"], event["arguments"], "{data}");
                    assert_eq!(item["name"], event["name"], "{data}");
                }
                "response.output_item.done" => {
                    let at = index(&event, "output_index");
                    let item = &mut snapshot["output"][at];
                    for key in ["id", "type", "call_id"] {
                        assert_eq!(item.get(key), event["item"].get(key), "{key}: {data}");
                    }
                    *item = event["item"].clone();
                    done[at] = true;
                }
                "response.completed" | "response.incomplete" | "response.failed" => {
                    assert!(done.iter().all(|done| *done), "every item done before the end");
                    assert_eq!(event["response"]["id"], snapshot["id"]);
                    terminal = Some(event["response"].clone());
                }
                other => panic!("an event the SDKs do not know: {other}"),
            }
        }
        (snapshot.expect("events"), terminal.expect("a terminal event"))
    }

    /// Folds `events` and checks the folded output is the terminal Response's; that Response.
    fn folded(events: &[String]) -> Value {
        let (snapshot, terminal) = fold(events);
        assert_eq!(snapshot["output"], terminal["output"], "the events add up to the Response");
        terminal
    }

    #[test]
    fn a_text_stream_becomes_the_responses_events_in_order_and_adds_up_to_the_completed_response() {
        let mut translation = StreamTranslation::new(test_head());
        let opening = translation
            .chunk(&chunk(json!({"role": "assistant", "content": ""}), None).to_string());
        let mut events = opening.unwrap();
        assert_eq!(types(&events), ["response.created", "response.in_progress"]);
        assert!(
            events.iter().all(|data| !crate::dialect::responses::carries_content(data)),
            "the opening waits"
        );
        for data in [
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
        ] {
            events.extend(translation.chunk(&data.to_string()).unwrap());
        }
        events.extend(translation.finish());
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let parsed = parsed(&events);
        let created = &parsed[0]["response"];
        assert_eq!(
            (&created["id"], &created["status"], &created["output"], &created["usage"]),
            (&json!("resp_test"), &json!("in_progress"), &json!([]), &Value::Null)
        );
        assert_eq!(parsed[4]["delta"], "Hel");
        assert_eq!(parsed[6]["text"], "Hello");
        let response = folded(&events);
        assert_eq!(response["status"], "completed");
        assert_eq!(response["model"], "alias");
        let message = &response["output"][0];
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(message["status"], "completed");
        assert_eq!(
            message["content"],
            json!([{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}])
        );
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 40, "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 42})
        );
        let mut head = test_head();
        head.extend([
            ("status".to_owned(), json!("completed")),
            ("output".to_owned(), response["output"].clone()),
            ("usage".to_owned(), response["usage"].clone()),
        ]);
        assert_eq!(response, Value::Object(head), "the head and the answer, nothing else");
    }

    #[test]
    fn tool_calls_become_function_call_items_whose_name_may_come_after_arguments() {
        let events = play(&[
            chunk(json!({"role": "assistant", "content": "Checking."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                None,
            ),
            // A second call whose arguments come before its name.
            chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"tz\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": "1}"}}]}),
                None,
            ),
            // A third without arguments at all.
            chunk(
                json!({"tool_calls": [{"index": 2, "id": "call_c", "function": {"name": "ping"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(),
        ]);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let parsed = parsed(&events);
        assert_eq!(parsed[8]["output_index"], 1);
        assert_eq!(parsed[9]["delta"], "{\"city\":", "arguments with the name come as a delta");
        assert_eq!(parsed[14]["delta"], "{\"tz\":1}", "arguments held until the name");
        let response = folded(&events);
        assert_eq!(response["status"], "completed");
        let calls: Vec<(&str, &str, &str)> = response["output"].as_array().unwrap()[1..]
            .iter()
            .map(|item| {
                assert_eq!(item["type"], "function_call");
                assert_eq!(item["status"], "completed");
                assert!(item["id"].as_str().unwrap().starts_with("fc_"));
                (
                    item["call_id"].as_str().unwrap(),
                    item["name"].as_str().unwrap(),
                    item["arguments"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                ("call_a", "get_weather", "{\"city\":\"Paris\"}"),
                ("call_b", "get_time", "{\"tz\":1}"),
                ("call_c", "ping", "{}"),
            ]
        );
    }

    #[test]
    fn parallel_calls_sharing_an_index_are_told_apart_by_their_ids() {
        let events = play(&[
            chunk(
                json!({"tool_calls": [
                    {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{\"n\":1}"}},
                    {"index": 0, "id": "call_b", "function": {"name": "f", "arguments": "{\"n\":2}"}}]}),
                None,
            ),
            // And an upstream that reuses an id gets a fresh one: the SDKs key calls by it.
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_a", "function": {"name": "g"}}]}),
                Some("tool_calls"),
            ),
        ]);
        let response = folded(&events);
        let output = response["output"].as_array().unwrap();
        assert_eq!(output.len(), 3);
        assert_eq!(output[0]["arguments"], "{\"n\":1}");
        assert_eq!(output[1]["call_id"], "call_b");
        assert_eq!(output[1]["arguments"], "{\"n\":2}");
        assert_eq!(output[2]["name"], "g");
        assert_ne!(output[2]["call_id"], "call_a");
        assert_eq!(output[2]["arguments"], "{}");
    }

    #[test]
    fn a_fragment_for_a_call_already_closed_is_kept_in_the_final_response() {
        let events = play(&[
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{\"a\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                Some("tool_calls"),
            ),
        ]);
        let (_, terminal) = fold(&events);
        assert_eq!(terminal["output"][0]["arguments"], "{\"a\":1}");
        assert_eq!(terminal["output"][1]["arguments"], "{}");
    }

    #[test]
    fn a_stream_cut_by_length_is_incomplete_and_a_refusal_streams_as_a_refusal_part() {
        let cut = play(&[chunk(json!({"content": "a"}), Some("length"))]);
        assert_eq!(types(&cut).last().unwrap(), "response.incomplete");
        let response = folded(&cut);
        assert_eq!(response["status"], "incomplete");
        assert_eq!(response["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(response["usage"]["input_tokens"], 0, "no usage chunk: zeros");
        let refused = play(&[
            chunk(json!({"refusal": "I can't"}), None),
            chunk(json!({"refusal": " help."}), Some("stop")),
        ]);
        assert_eq!(
            types(&refused)[2..],
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.refusal.delta",
                "response.refusal.delta",
                "response.refusal.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let response = folded(&refused);
        assert_eq!(
            response["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't help."}])
        );
    }

    #[test]
    fn what_is_not_a_chat_chunk_is_refused_and_an_empty_stream_still_ends_well() {
        let mut translation = StreamTranslation::new(test_head());
        assert!(translation.chunk("not json").is_none());
        assert!(translation.chunk(r#"{"error": {"message": "overloaded"}}"#).is_none());
        assert!(translation.chunk("[1]").is_none());
        let events = translation.finish();
        assert_eq!(
            types(&events),
            ["response.created", "response.in_progress", "response.completed"]
        );
        assert_eq!(folded(&events)["output"], json!([]));
    }

    #[test]
    fn a_whole_response_streams_again_as_the_events_that_add_up_to_it() {
        let request = json!({"model": "alias", "input": "hi"});
        let head = head(request.as_object().unwrap(), "alias", "resp_whole", 1);
        let completion = json!({"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": ""}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}});
        let whole: Value =
            serde_json::from_slice(&to_response(completion.to_string().as_bytes(), &head).unwrap())
                .unwrap();
        let events = events_of(&whole);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(folded(&events), whole, "the replay adds up to the Response it came from");
    }

    #[test]
    fn a_passthrough_response_with_other_items_annotations_and_an_end_short_replays_as_is() {
        let whole = json!({
            "id": "resp_openai", "object": "response", "created_at": 5, "model": "gpt-5",
            "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
            "error": null, "tools": [], "tool_choice": "auto", "parallel_tool_calls": true,
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}],
                 "encrypted_content": "xyz"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed",
                 "action": {"type": "search", "query": "q"}},
                {"type": "message", "id": "msg_1", "status": "incomplete", "role": "assistant",
                 "content": [
                    {"type": "output_text", "text": "See [1].", "logprobs": [],
                     "annotations": [{"type": "url_citation", "url": "https://example.com",
                                      "title": "E", "start_index": 4, "end_index": 7}]},
                    {"type": "refusal", "refusal": "No more."}]},
            ],
            "usage": {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 1},
                      "total_tokens": 3},
        });
        let events = events_of(&whole);
        let types = types(&events);
        assert_eq!(
            types[2..6],
            [
                "response.output_item.added",
                "response.output_item.done",
                "response.output_item.added",
                "response.output_item.done",
            ]
        );
        assert_eq!(types.last().unwrap(), "response.incomplete");
        let parsed = parsed(&events);
        assert_eq!(parsed[2]["item"], whole["output"][0], "another item is added as it is");
        assert_eq!(folded(&events), whole);
    }

    #[test]
    fn events_with_content_are_told_from_the_opening() {
        let events = play(&[
            chunk(json!({"role": "assistant"}), None),
            chunk(json!({"content": "a"}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}),
                None,
            ),
        ]);
        let carrying: Vec<bool> =
            events.iter().map(|data| crate::dialect::responses::carries_content(data)).collect();
        assert_eq!(carrying[..5], [false, false, false, false, true], "{events:?}");
        assert!(carrying[5..].iter().all(|carries| *carries));
        for (data, carries) in [
            (
                r#"{"type":"response.output_item.added","item":{"type":"function_call","name":"f"}}"#,
                true,
            ),
            (
                r#"{"type":"response.output_item.added","item":{"type":"reasoning","summary":[]}}"#,
                false,
            ),
            (
                r#"{"type":"response.content_part.added","part":{"type":"output_text","text":"x"}}"#,
                true,
            ),
            (r#"{"sequence_number":0,"type":"response.created","response":{}}"#, false),
            (r#"{"sequence_number":9,"type":"response.failed","response":{}}"#, true),
            (r#"{"type":"error","code":"server_error"}"#, true),
            ("not json", false),
        ] {
            assert_eq!(crate::dialect::responses::carries_content(data), carries, "{data}");
        }
    }
}
