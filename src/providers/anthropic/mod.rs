//! Anthropic's Messages API behind OpenAI's chat completions (PROTOCOL.md §8).
//!
//! `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`. The
//! client's OpenAI request is translated ([`to_messages`], §8.5): system and developer turns
//! are hoisted into `system`, tool calls become `tool_use` blocks and `tool` turns `tool_result`
//! blocks at the start of one user turn, `max_tokens` is always set, fields Anthropic has no
//! use for are dropped. A request Anthropic cannot serve (`n > 1`, audio or file parts) is
//! refused before any call, as a `client_error` with its [`Refusal`]. Answers come back in
//! OpenAI's shape: whole messages through [`to_completion`], streams through [`StreamState`]
//! (§8.6), which always ends with the usage chunk the gateway's accounting reads.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::sse::{self, SseEvent, Step};
use super::{Connect, MAX_ANSWER_BYTES, Reply, Upstream, endpoint, first_chunk_ready, unix_now};
use crate::config::AnthropicSettings;
use crate::failure::{Failure, FailureClass, Refusal};
use crate::openai::chat::{AssistantMessage, ChatRequest, Choice, FunctionCall, ToolCall};
use crate::openai::stream::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionDelta, ToolCallDelta,
};

/// The API version every request names.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The image types Anthropic accepts in base64 sources.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

pub(super) struct Anthropic {
    upstream: Upstream,
    url: reqwest::Url,
    default_max_tokens: u32,
}

impl Anthropic {
    pub(super) fn new(settings: &AnthropicSettings, connect: Connect<'_>) -> Result<Self, String> {
        let credential =
            (HeaderName::from_static("x-api-key"), settings.api_key.expose().to_owned());
        let version = (
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let headers = std::iter::once(version).chain(settings.headers.iter().cloned()).collect();
        Ok(Self {
            upstream: connect(Some(credential), headers)?,
            url: endpoint(&settings.base_url, "v1/messages")?,
            default_max_tokens: settings.default_max_tokens,
        })
    }

    pub(super) async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let name = &self.upstream.name;
        let body = to_messages(request, model, self.default_max_tokens)
            .map_err(|refusal| Failure::refused(name, refusal))?;
        let body = serde_json::to_vec(&body).map_err(|err| {
            Failure::new(FailureClass::ClientError, name, format!("cannot encode: {err}"))
        })?;
        let response =
            self.upstream.post(self.url.clone(), body, request.stream, request_id).await?;
        if request.stream {
            let mut state = StreamState::new(unix_now());
            let chunks = sse::translate(Arc::clone(name), response.bytes_stream(), move |event| {
                state.event(&event)
            });
            first_chunk_ready(name, Box::pin(chunks)).await
        } else {
            let body = self.upstream.read(response, MAX_ANSWER_BYTES).await?;
            let completion = to_completion(&body, unix_now())
                .map_err(|problem| Failure::new(FailureClass::ServerError, name, problem))?;
            Ok(Reply::Complete(completion.into()))
        }
    }
}

// === OpenAI → Anthropic ===

/// The Messages API body for `request`, naming `model`.
pub(super) fn to_messages(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<Map<String, Value>, Refusal> {
    let body = request.body();
    let given = |key: &str| body.get(key).filter(|value| !value.is_null());
    if given("n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(Refusal::new(
            "n",
            "This model's provider (Anthropic) returns one choice per request: `n` must be 1.",
        ));
    }
    let mut out = Map::new();
    out.insert("model".to_owned(), json!(model));
    let max_tokens = given("max_completion_tokens")
        .or_else(|| given("max_tokens"))
        .cloned()
        .unwrap_or_else(|| json!(default_max_tokens));
    out.insert("max_tokens".to_owned(), max_tokens);
    let (system, messages) = translate_messages(request.messages())?;
    if !system.is_empty() {
        out.insert("system".to_owned(), json!(system));
    }
    out.insert("messages".to_owned(), Value::Array(messages));
    if let Some(temperature) = given("temperature") {
        // Anthropic's range is 0–1; its own OpenAI compatibility layer clamps the same way.
        let clamped = temperature.as_f64().filter(|t| *t > 1.0).map(|_| json!(1.0));
        out.insert("temperature".to_owned(), clamped.unwrap_or_else(|| temperature.clone()));
    }
    for key in ["top_p", "top_k"] {
        if let Some(value) = given(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(stops) = given("stop").map(stop_sequences).filter(|stops| !stops.is_empty()) {
        out.insert("stop_sequences".to_owned(), json!(stops));
    }
    if let Some(user) = given("user") {
        out.insert("metadata".to_owned(), json!({"user_id": user}));
    }
    if request.stream {
        out.insert("stream".to_owned(), json!(true));
    }
    let tools = match given("tools") {
        Some(tools) => translate_tools(tools)?,
        None => Vec::new(),
    };
    let mut tool_choice = given("tool_choice").map(translate_tool_choice).transpose()?;
    if given("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".to_owned(), choice);
    }
    if let Some(schema) = given("response_format").map(json_schema).transpose()?.flatten() {
        out.insert("output_config".to_owned(), json!({"format": schema}));
    }
    Ok(out)
}

/// `system` (the text of every system and developer turn, joined with `\n`) and the
/// user/assistant turns, consecutive turns of one role merged, so that the results of one
/// batch of tool calls arrive as one user turn that starts with them.
fn translate_messages(messages: &[Value]) -> Result<(String, Vec<Value>), Refusal> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let at = |field: &str| format!("messages[{index}].{field}");
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, blocks) = match message.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => {
                let blocks = content.map(|c| content_blocks(c, &at("content"))).transpose()?;
                let text = blocks.iter().flatten().filter_map(|b| b["text"].as_str());
                system.extend(text.map(str::to_owned));
                continue;
            }
            Some("user") => {
                ("user", content.map(|c| content_blocks(c, &at("content"))).transpose()?)
            }
            Some("assistant") => ("assistant", Some(assistant_blocks(message, content, index)?)),
            Some("tool") => ("user", Some(vec![tool_result(message, content, index)?])),
            Some(other) => {
                return Err(Refusal::new(
                    at("role"),
                    format!(
                        "The role `{other}` cannot be sent to this model's provider (Anthropic)."
                    ),
                ));
            }
            None => return Err(Refusal::new(at("role"), "Every message needs a `role`.")),
        };
        let blocks = blocks.unwrap_or_default();
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    // A turn left empty (an empty string, only a refusal) would be refused as a whole.
    let turns = turns
        .into_iter()
        .filter(|(_, blocks)| !blocks.is_empty())
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect();
    Ok((system.join("\n"), turns))
}

/// Content as blocks: a string is one text block; parts are translated one by one. Empty text
/// is left out (Anthropic refuses empty text blocks); refusal parts are dropped.
fn content_blocks(content: &Value, param: &str) -> Result<Vec<Value>, Refusal> {
    let parts = match content {
        Value::String(text) if text.is_empty() => return Ok(Vec::new()),
        Value::String(text) => return Ok(vec![json!({"type": "text", "text": text})]),
        Value::Array(parts) => parts,
        _ => return Err(Refusal::new(param, "`content` must be a string or an array of parts.")),
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let param = format!("{param}[{index}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some("") => {}
                Some(text) => blocks.push(json!({"type": "text", "text": text})),
                None => return Err(Refusal::new(param, "A text part needs `text`.")),
            },
            Some("image_url") => {
                let url = part.pointer("/image_url/url").and_then(Value::as_str);
                let url = url.ok_or_else(|| Refusal::new(&param, "An image part needs a URL."))?;
                blocks.push(image_block(url).map_err(|message| Refusal::new(param, message))?);
            }
            Some("refusal") => {}
            Some(kind @ ("input_audio" | "file")) => {
                return Err(Refusal::new(
                    param,
                    format!(
                        "Content parts of type `{kind}` are not supported by this model's provider (Anthropic)."
                    ),
                ));
            }
            _ => {
                return Err(Refusal::new(
                    param,
                    "Only text and image_url content parts can be sent to this model's provider (Anthropic).",
                ));
            }
        }
    }
    Ok(blocks)
}

/// A data URL becomes a base64 source (jpeg, png, gif, webp); an http(s) URL a URL source.
fn image_block(url: &str) -> Result<Value, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').unwrap_or((rest, ""));
        let media_type = meta.strip_suffix(";base64").map(str::to_ascii_lowercase);
        return match media_type {
            Some(media_type) if IMAGE_TYPES.contains(&media_type.as_str()) => Ok(json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}
            })),
            Some(_) => Err(format!(
                "Images must be one of {} for this model's provider (Anthropic).",
                IMAGE_TYPES.join(", ")
            )),
            None => Err("Image data URLs must be base64-encoded.".to_owned()),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err("An image URL must be an http(s) URL or a base64 data URL.".to_owned())
}

/// An assistant turn: its text, then one `tool_use` block per tool call.
fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    index: usize,
) -> Result<Vec<Value>, Refusal> {
    let param = format!("messages[{index}]");
    if message.get("function_call").is_some_and(|call| !call.is_null()) {
        return Err(Refusal::new(
            format!("{param}.function_call"),
            "The legacy `function_call` cannot be sent to this model's provider (Anthropic); use `tool_calls`.",
        ));
    }
    let mut blocks = match content {
        Some(content) => content_blocks(content, &format!("{param}.content"))?,
        None => Vec::new(),
    };
    let calls = message.get("tool_calls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    for (call_index, call) in calls.iter().enumerate() {
        let param = format!("{param}.tool_calls[{call_index}]");
        let id = call.get("id").and_then(Value::as_str);
        let name = call.pointer("/function/name").and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(Refusal::new(param, "A tool call needs an `id` and a `function.name`."));
        };
        let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
        blocks.push(
            json!({"type": "tool_use", "id": id, "name": name, "input": tool_input(arguments)}),
        );
    }
    Ok(blocks)
}

/// A tool call's arguments as the object Anthropic needs; `{}` when they are not a JSON object
/// (models do produce invalid arguments, and refusing the whole conversation helps nobody).
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => {
            tracing::warn!(
                "a tool call's arguments are not a JSON object; sent to Anthropic as {{}}"
            );
            json!({})
        }
    }
}

fn tool_result(message: &Value, content: Option<&Value>, index: usize) -> Result<Value, Refusal> {
    let param = format!("messages[{index}]");
    let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
        return Err(Refusal::new(
            format!("{param}.tool_call_id"),
            "A tool message needs `tool_call_id`.",
        ));
    };
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    match content {
        Some(Value::String(text)) => block["content"] = json!(text),
        Some(content) => {
            block["content"] = json!(content_blocks(content, &format!("{param}.content"))?)
        }
        None => {}
    }
    Ok(block)
}

fn translate_tools(tools: &Value) -> Result<Vec<Value>, Refusal> {
    let Some(tools) = tools.as_array() else {
        return Err(Refusal::new("tools", "`tools` must be an array."));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let param = format!("tools[{index}]");
        let function = tool.get("function").filter(|_| tool["type"] == "function");
        let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
            return Err(Refusal::new(
                param,
                "Only `function` tools with a name can be sent to this model's provider (Anthropic).",
            ));
        };
        let mut schema = match function.and_then(|f| f.get("parameters")) {
            Some(Value::Object(schema)) => schema.clone(),
            _ => Map::new(),
        };
        schema.entry("type").or_insert_with(|| json!("object"));
        let mut translated = json!({"name": name, "input_schema": schema});
        if let Some(description) =
            function.and_then(|f| f.get("description")).filter(|d| d.is_string())
        {
            translated["description"] = description.clone();
        }
        out.push(translated);
    }
    Ok(out)
}

fn translate_tool_choice(choice: &Value) -> Result<Value, Refusal> {
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            _ => Err(Refusal::new("tool_choice", format!("Unknown tool_choice `{mode}`."))),
        },
        Value::Object(_) if choice["type"] == "function" => {
            match choice.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => Ok(json!({"type": "tool", "name": name})),
                None => Err(Refusal::new("tool_choice", "`tool_choice.function.name` is missing.")),
            }
        }
        _ => Err(Refusal::new(
            "tool_choice",
            "This tool_choice cannot be sent to this model's provider (Anthropic); use auto, none, required or a function.",
        )),
    }
}

/// `json_schema` becomes Anthropic's structured output format; `text` and `json_object` (which
/// Anthropic has no equivalent for) send nothing.
fn json_schema(format: &Value) -> Result<Option<Value>, Refusal> {
    if format["type"] != "json_schema" {
        return Ok(None);
    }
    match format.pointer("/json_schema/schema") {
        Some(schema @ Value::Object(_)) => {
            Ok(Some(json!({"type": "json_schema", "schema": schema})))
        }
        _ => Err(Refusal::new(
            "response_format",
            "`response_format.json_schema.schema` must be a JSON Schema object.",
        )),
    }
}

/// `stop` as a list, without the whitespace-only sequences Anthropic does not honour.
fn stop_sequences(stop: &Value) -> Vec<String> {
    let all = match stop {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    all.into_iter().filter(|s| !s.trim().is_empty()).map(str::to_owned).collect()
}

// === Anthropic → OpenAI ===

#[derive(Debug, Default, Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Takes every count `later` has (`message_delta` counts are cumulative).
    fn update(&mut self, later: Usage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens =
            later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens =
            later.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    /// OpenAI's usage: the prompt is every input token, cache writes and reads included.
    fn to_openai(&self) -> Value {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + self.cache_creation_input_tokens.unwrap_or(0) + cached;
        let completion = self.output_tokens.unwrap_or(0);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tools, citations...: not part of an OpenAI answer.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Usage,
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        Some("pause_turn") => {
            tracing::info!("Anthropic paused a server-tool turn; answered as finish_reason stop");
            "stop"
        }
        _ => "stop",
    }
}

/// A whole Messages API answer as a `chat.completion`.
pub(super) fn to_completion(body: &[u8], created: u64) -> Result<String, &'static str> {
    let message: Message = serde_json::from_slice(body)
        .map_err(|_| "upstream answered 200 with a body that is not an Anthropic message")?;
    if message.kind != "message" {
        return Err("upstream answered 200 with something other than a message");
    }
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: piece } => text.push_str(&piece),
            Block::ToolUse { id, name, input } => {
                let arguments = if input.is_object() { input.to_string() } else { "{}".to_owned() };
                let function = FunctionCall { name, arguments };
                tool_calls.push(ToolCall { id, kind: "function".to_owned(), function });
            }
            Block::Other => {}
        }
    }
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let message_out =
        AssistantMessage { role: "assistant".to_owned(), content, refusal: None, tool_calls };
    let choice = Choice {
        index: 0,
        message: message_out,
        logprobs: None,
        finish_reason: finish_reason(message.stop_reason.as_deref()).to_owned(),
    };
    let completion = json!({
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [choice],
        "usage": message.usage.to_openai(),
    });
    Ok(completion.to_string())
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: StopDelta,
        usage: Option<Usage>,
    },
    MessageStop,
    Error {
        error: ErrorInfo,
    },
    /// `ping`, and event types added later (Anthropic's versioning policy: ignore them).
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct StartedMessage {
    id: String,
    model: String,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking, signatures, citations.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StopDelta {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorInfo {
    #[serde(rename = "type")]
    kind: String,
}

/// A `tool_use` block of the stream and the OpenAI tool call it became.
struct OpenCall {
    block: u64,
    call: u32,
    has_arguments: bool,
}

/// The streaming translation (PROTOCOL.md §8.6): one Anthropic event in, OpenAI chunks out.
pub(super) struct StreamState {
    created: u64,
    id: String,
    model: String,
    started: bool,
    finished: bool,
    usage: Usage,
    calls: Vec<OpenCall>,
}

impl StreamState {
    pub(super) fn new(created: u64) -> Self {
        Self {
            created,
            id: String::new(),
            model: String::new(),
            started: false,
            finished: false,
            usage: Usage::default(),
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
            "usage": self.usage.to_openai(),
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
    use super::*;

    fn request(body: Value) -> ChatRequest {
        ChatRequest::from_slice(body.to_string().as_bytes()).unwrap()
    }

    fn translate(body: Value) -> Value {
        Value::Object(to_messages(&request(body), "claude-x", 4096).unwrap())
    }

    fn refused(body: Value) -> Refusal {
        to_messages(&request(body), "claude-x", 4096).unwrap_err()
    }

    #[test]
    fn a_plain_request_gets_the_model_max_tokens_and_its_turns() {
        let body =
            translate(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}));
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
        );
    }

    #[test]
    fn system_and_developer_turns_are_hoisted_wherever_they_are() {
        let body = translate(json!({"model": "chat", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Again"},
        ]}));
        assert_eq!(body["system"], "Be brief.\nUse French.");
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Again"}]}]),
            "consecutive user turns become one"
        );
    }

    #[test]
    fn empty_text_and_turns_left_empty_are_left_out() {
        let body = translate(json!({"model": "chat", "messages": [
            {"role": "system", "content": ""},
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        ]}));
        assert_eq!(body["system"], "Be kind.");
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
        );
    }

    #[test]
    fn sampling_fields_are_mapped_and_openai_only_ones_dropped() {
        let body = translate(
            json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 1.7, "top_p": 0.9, "top_k": 5, "stop": ["END", "  ", "\n\n##"], "user": "u-1",
            "max_tokens": 50, "max_completion_tokens": 70, "seed": 4, "presence_penalty": 1,
            "frequency_penalty": 1, "logit_bias": {"1": 2}, "logprobs": true, "stream": true,
            "stream_options": {"include_usage": true}, "store": true, "service_tier": "auto",
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 70, "temperature": 1.0, "top_p": 0.9, "top_k": 5,
                   "stop_sequences": ["END", "\n\n##"], "metadata": {"user_id": "u-1"}, "stream": true,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
        );
        let kept = translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.3, "max_tokens": 9, "stop": "STOP"}));
        assert_eq!((&kept["temperature"], &kept["max_tokens"]), (&json!(0.3), &json!(9)));
        assert_eq!(kept["stop_sequences"], json!(["STOP"]));
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_use_then_leading_tool_results() {
        let body = translate(json!({"model": "chat", "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": Rome"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks; which is warmer?"},
        ]}));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                    {"type": "text", "text": "Thanks; which is warmer?"},
                ]},
            ])
        );
    }

    #[test]
    fn tools_and_tool_choice_are_translated() {
        let tools = json!([
            {"type": "function", "function": {"name": "f", "description": "Does f.", "strict": true,
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
            {"type": "function", "function": {"name": "g"}},
        ]);
        let cases = [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (json!("required"), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "g"}}),
                json!({"type": "tool", "name": "g"}),
            ),
        ];
        for (choice, expected) in cases {
            let body =
                translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
                                        "tools": tools, "tool_choice": choice}));
            assert_eq!(body["tool_choice"], expected);
            assert_eq!(
                body["tools"],
                json!([
                    {"name": "f", "description": "Does f.",
                     "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}},
                    {"name": "g", "input_schema": {"type": "object"}},
                ])
            );
        }
        let serial =
            translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
                                      "tools": tools, "parallel_tool_calls": false}));
        assert_eq!(
            serial["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let forced =
            translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "tools": tools, "tool_choice": "required", "parallel_tool_calls": false}));
        assert_eq!(
            forced["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn json_schema_response_format_becomes_output_config() {
        let schema =
            json!({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]});
        let body = translate(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": true}}}));
        assert_eq!(
            body["output_config"],
            json!({"format": {"type": "json_schema", "schema": schema}})
        );
    }

    #[test]
    fn what_anthropic_cannot_serve_is_refused_naming_the_parameter() {
        let user = |content: Value| json!({"model": "c", "messages": [{"role": "user", "content": content}]});
        let mut several = user(json!("x"));
        several["n"] = json!(2);
        assert_eq!(refused(several).param, "n");
        let audio =
            user(json!([{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]));
        assert_eq!(refused(audio).param, "messages[0].content[0]");
        let svg = user(
            json!([{"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}}]),
        );
        assert!(refused(svg).message.contains("image/png"));
        let tool = json!({"model": "c", "messages": [{"role": "tool", "content": "x"}]});
        assert_eq!(refused(tool).param, "messages[0].tool_call_id");
        let function =
            json!({"model": "c", "messages": [{"role": "function", "name": "f", "content": "x"}]});
        assert_eq!(refused(function).param, "messages[0].role");
        let mut one = user(json!("x"));
        one["n"] = json!(1);
        assert!(to_messages(&request(one), "c", 1).is_ok(), "n = 1 is fine");
    }

    #[test]
    fn a_message_becomes_a_completion_with_tool_calls_and_all_input_tokens() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 7, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 20}});
        let completion: Value =
            serde_json::from_str(&to_completion(body.to_string().as_bytes(), 99).unwrap()).unwrap();
        assert_eq!(
            completion,
            json!({"id": "msg_1", "object": "chat.completion", "created": 99, "model": "claude-x",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": "Let me check.", "refusal": null,
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
                "usage": {"prompt_tokens": 33, "completion_tokens": 7, "total_tokens": 40,
                          "prompt_tokens_details": {"cached_tokens": 20}}})
        );
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            ("something_new", "stop"),
        ];
        for (stop, finish) in cases {
            assert_eq!(finish_reason(Some(stop)), finish, "{stop}");
        }
    }

    #[test]
    fn a_200_that_is_not_a_message_is_refused() {
        let error =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(to_completion(error, 1).is_err());
        assert!(to_completion(b"", 1).is_err());
        assert!(to_completion(b"<html>", 1).is_err());
    }

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
