//! A Messages request as a chat-completions request, for a target that speaks only chat (SPEC §4
//! "Dialects"). What carries over: system prompts (the `system` member, string or blocks, and
//! `system` turns inside `messages`, kept where they are), text, images (base64 as data URLs, or
//! URLs), PDF and plain-text documents, tool use and tool results (each result a `tool` message
//! ahead of the rest of its turn, as chat requires; an error result keeps its flag as an
//! `Error: ` prefix), tools with their `input_schema`, `tool_choice`, `stop_sequences`,
//! `max_tokens`, `temperature`, `top_p`, `metadata.user_id` (as `user`), a JSON-schema
//! `output_config.format`, and `stream` (asking for the usage chunk).
//!
//! What a chat target cannot express is either a *hint*, left out and named in
//! [`Translated::dropped`] (the answer's `x-ballast-dropped`): thinking (its config and the
//! thinking blocks of earlier turns), `top_k`, `context_management`, `output_config.effort`,
//! `service_tier`, cache-control marks, tool flags such as `defer_loading`, tools that only
//! Anthropic runs or defines, and any member this gateway does not know; or a *constraint*,
//! refused before any call: forcing such a tool, a document source chat has no part for,
//! `max_tokens: 0` (Anthropic's "only fill the prompt cache").

use serde_json::{Map, Value, json};

use crate::anthropic::MessagesRequest;
use crate::failure::Refusal;
use crate::translate::{Dropped, Translated};

/// Members this translation reads; any other is dropped and named.
const READ: [&str; 12] = [
    "model",
    "max_tokens",
    "messages",
    "system",
    "stream",
    "stop_sequences",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "metadata",
    "output_config",
];
/// Tool fields chat has no place for (also `field` label values of their drops).
pub const TOOL_HINTS: [&str; 6] = [
    "strict",
    "cache_control",
    "defer_loading",
    "input_examples",
    "eager_input_streaming",
    "allowed_callers",
];

/// Translates `request` for a chat target whose model is `upstream_model`.
pub fn to_chat(request: &MessagesRequest, upstream_model: &str) -> Result<Translated, Refusal> {
    let body = request.body();
    let mut dropped = Dropped::default();
    for (key, value) in body {
        let disabled_thinking = key == "thinking" && value["type"] == "disabled";
        if !READ.contains(&key.as_str()) && !disabled_thinking && !value.is_null() {
            dropped.add(key);
        }
    }
    if request.max_tokens == 0 {
        return Err(Refusal::new(
            "max_tokens",
            "max_tokens: 0 (fill the prompt cache without an answer) is Anthropic's alone; no \
             target of this model can serve it.",
        ));
    }
    let mut chat = Map::new();
    chat.insert("model".to_owned(), json!(upstream_model));
    chat.insert("max_completion_tokens".to_owned(), json!(request.max_tokens));
    let mut messages = Vec::new();
    if let Some(system) = body.get("system").and_then(|system| text_of(system, &mut dropped)) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for turn in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        turn_to_chat(turn, &mut messages, &mut dropped)?;
    }
    chat.insert("messages".to_owned(), Value::Array(messages));
    let forced = forced_tool(body.get("tool_choice"));
    let tools = tools_to_chat(body.get("tools"), forced, &mut dropped)?;
    let has_tools = !tools.is_empty();
    if has_tools {
        chat.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(choice) = body.get("tool_choice").filter(|choice| !choice.is_null()) {
        tool_choice_to_chat(choice, has_tools, &mut chat)?;
    }
    if let Some(stop) = body.get("stop_sequences").filter(|stop| !stop.is_null()) {
        chat.insert("stop".to_owned(), stop.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(value) = body.get(key).filter(|value| !value.is_null()) {
            chat.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(metadata) = body.get("metadata").and_then(Value::as_object) {
        for (key, value) in metadata {
            match (key.as_str(), value) {
                ("user_id", Value::String(user)) => {
                    chat.insert("user".to_owned(), json!(user));
                }
                (_, Value::Null) => {}
                _ => dropped.add(&format!("metadata.{key}")),
            }
        }
    }
    if let Some(config) = body.get("output_config").and_then(Value::as_object) {
        for (key, value) in config {
            match (key.as_str(), value) {
                ("format", format) if format["type"] == "json_schema" => {
                    let schema = format.get("schema").cloned().unwrap_or_else(|| json!({}));
                    chat.insert(
                        "response_format".to_owned(),
                        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
                    );
                }
                (_, Value::Null) => {}
                _ => dropped.add(&format!("output_config.{key}")),
            }
        }
    }
    if request.stream {
        chat.insert("stream".to_owned(), json!(true));
        chat.insert("stream_options".to_owned(), json!({"include_usage": true}));
    }
    let body = serde_json::to_vec(&chat)
        .map_err(|err| Refusal::new("messages", format!("the request cannot be written: {err}")))?;
    Ok(Translated { body, dropped: dropped.into_names() })
}

/// The text of a `system` value or a turn's content made only of text: a string, or text
/// blocks joined by a blank line (cache-control marks dropped).
fn text_of(value: &Value, dropped: &mut Dropped) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|block| {
                    if block.get("cache_control").is_some() {
                        dropped.add("cache_control");
                    }
                    block["text"].as_str()
                })
                .filter(|text| !text.is_empty())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n\n"))
        }
        _ => None,
    }
}

/// One Messages turn as chat messages, appended to `out`.
fn turn_to_chat(turn: &Value, out: &mut Vec<Value>, dropped: &mut Dropped) -> Result<(), Refusal> {
    let role = turn["role"].as_str().unwrap_or("user");
    let content = &turn["content"];
    if role == "system" {
        if let Some(text) = text_of(content, dropped) {
            out.push(json!({"role": "system", "content": text}));
        }
        return Ok(());
    }
    let blocks: Vec<Value> = match content {
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(blocks) => blocks.clone(),
        _ => Vec::new(),
    };
    if role == "assistant" {
        out.push(assistant_to_chat(&blocks, dropped));
        return Ok(());
    }
    // A user turn: its tool results first, each a `tool` message, as chat requires them right
    // after the assistant turn that called; then the rest of the turn, system blocks where
    // they stand.
    let mut parts = Vec::new();
    let mut later = Vec::new();
    for block in &blocks {
        if block.get("cache_control").is_some() {
            dropped.add("cache_control");
        }
        match block["type"].as_str().unwrap_or("") {
            "tool_result" => {
                let (text, images) = tool_result_content(block, dropped)?;
                out.push(
                    json!({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}),
                );
                parts.extend(images);
            }
            "mid_conv_system" => {
                flush_user(&mut parts, &mut later);
                if let Some(text) = text_of(&block["content"], dropped) {
                    later.push(json!({"role": "system", "content": text}));
                }
            }
            _ => {
                if let Some(part) = part_to_chat(block, dropped)? {
                    parts.push(part);
                }
            }
        }
    }
    flush_user(&mut parts, &mut later);
    out.extend(later);
    Ok(())
}

/// Moves the user parts gathered so far into a user message at the end of `later`.
fn flush_user(parts: &mut Vec<Value>, later: &mut Vec<Value>) {
    if !parts.is_empty() {
        later.push(json!({"role": "user", "content": std::mem::take(parts)}));
    }
}

/// A text, image or document block as a chat content part (none for an empty text).
fn part_to_chat(block: &Value, dropped: &mut Dropped) -> Result<Option<Value>, Refusal> {
    let source = &block["source"];
    Ok(match block["type"].as_str().unwrap_or("") {
        "text" => block["text"]
            .as_str()
            .filter(|text| !text.is_empty())
            .map(|text| json!({"type": "text", "text": text})),
        "image" => Some(match source["type"].as_str() {
            Some("base64") => {
                let url = format!(
                    "data:{};base64,{}",
                    source["media_type"].as_str().unwrap_or("image/png"),
                    source["data"].as_str().unwrap_or("")
                );
                json!({"type": "image_url", "image_url": {"url": url}})
            }
            Some("url") => json!({"type": "image_url", "image_url": {"url": source["url"]}}),
            other => return Err(unsupported("an image", other)),
        }),
        "document" => match (source["type"].as_str(), source["media_type"].as_str()) {
            (Some("text"), _) => {
                source["data"].as_str().map(|text| json!({"type": "text", "text": text}))
            }
            (Some("base64"), Some("application/pdf")) => {
                let data = format!(
                    "data:application/pdf;base64,{}",
                    source["data"].as_str().unwrap_or("")
                );
                let name = block["title"].as_str().unwrap_or("document.pdf");
                Some(json!({"type": "file", "file": {"filename": name, "file_data": data}}))
            }
            (other, _) => return Err(unsupported("a document", other)),
        },
        "thinking" | "redacted_thinking" => {
            dropped.add("thinking");
            None
        }
        other => return Err(unsupported("a content block", Some(other))),
    })
}

fn unsupported(what: &str, source: Option<&str>) -> Refusal {
    Refusal::new(
        "messages",
        format!(
            "{what} of type `{}` cannot be carried to this model's chat-completions targets.",
            source.unwrap_or("none")
        ),
    )
}

/// A tool result's text (text blocks joined; an error marked `Error: `) and its images, which a
/// chat `tool` message cannot hold and so follow in the user message.
fn tool_result_content(
    block: &Value,
    dropped: &mut Dropped,
) -> Result<(String, Vec<Value>), Refusal> {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    match &block["content"] {
        Value::String(text) => texts.push(text.clone()),
        Value::Array(parts) => {
            for part in parts {
                match part_to_chat(part, dropped)? {
                    Some(text) if text["type"] == "text" => {
                        texts.push(text["text"].as_str().unwrap_or("").to_owned());
                    }
                    Some(other) => images.push(other),
                    None => {}
                }
            }
        }
        _ => {}
    }
    let mut text = texts.join("\n\n");
    if block["is_error"] == true {
        text = format!("Error: {text}");
    }
    Ok((text, images))
}

/// An assistant turn: its text joined as `content`, its tool uses as `tool_calls`.
fn assistant_to_chat(blocks: &[Value], dropped: &mut Dropped) -> Value {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block["type"].as_str().unwrap_or("") {
            "text" => texts.extend(block["text"].as_str().filter(|text| !text.is_empty())),
            "tool_use" => {
                let arguments =
                    serde_json::to_string(&block["input"]).unwrap_or_else(|_| "{}".to_owned());
                calls.push(json!({
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }));
            }
            "thinking" | "redacted_thinking" => dropped.add("thinking"),
            other => dropped.add(other),
        }
    }
    let content = if texts.is_empty() { Value::Null } else { json!(texts.join("\n\n")) };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// The tool `tool_choice` forces, if any.
fn forced_tool(choice: Option<&Value>) -> Option<&str> {
    choice.filter(|choice| choice["type"] == "tool").and_then(|choice| choice["name"].as_str())
}

/// Client tools (those with an `input_schema`) as chat functions. Tools Anthropic defines or
/// runs itself (web search, code execution, bash, the text editor...) have no schema a chat
/// model could call: left out and named, or refused when `tool_choice` forces one.
fn tools_to_chat(
    tools: Option<&Value>,
    forced: Option<&str>,
    dropped: &mut Dropped,
) -> Result<Vec<Value>, Refusal> {
    let mut functions = Vec::new();
    for tool in tools.and_then(Value::as_array).into_iter().flatten() {
        let name = tool["name"].as_str().unwrap_or("");
        let custom = tool.get("input_schema").is_some()
            && tool["type"].as_str().is_none_or(|kind| kind == "custom");
        if !custom {
            if forced == Some(name) {
                return Err(Refusal::new(
                    "tool_choice",
                    format!(
                        "the tool `{name}` is run by Anthropic; this model's chat-completions targets cannot run it."
                    ),
                ));
            }
            dropped.add(&format!("tools.{name}"));
            continue;
        }
        for hint in TOOL_HINTS {
            if tool.get(hint).is_some_and(|value| !value.is_null() && *value != false) {
                dropped.add(hint);
            }
        }
        let mut function = json!({"name": name, "parameters": tool["input_schema"]});
        if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
            function["description"] = description.clone();
        }
        functions.push(json!({"type": "function", "function": function}));
    }
    Ok(functions)
}

fn tool_choice_to_chat(
    choice: &Value,
    has_tools: bool,
    chat: &mut Map<String, Value>,
) -> Result<(), Refusal> {
    let mapped = match choice["type"].as_str().unwrap_or("auto") {
        "auto" => json!("auto"),
        "none" => json!("none"),
        "any" => json!("required"),
        "tool" => json!({"type": "function", "function": {"name": choice["name"]}}),
        other => {
            return Err(Refusal::new(
                "tool_choice",
                format!("tool_choice type `{other}` is not known."),
            ));
        }
    };
    if !has_tools {
        if matches!(choice["type"].as_str(), Some("any" | "tool")) {
            return Err(Refusal::new(
                "tool_choice",
                "tool_choice asks for a tool, but no tool can be offered to this model's chat-completions targets.",
            ));
        }
        return Ok(());
    }
    chat.insert("tool_choice".to_owned(), mapped);
    if choice["disable_parallel_tool_use"] == true {
        chat.insert("parallel_tool_calls".to_owned(), json!(false));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Translated {
        let request = MessagesRequest::from_slice(body.to_string().as_bytes()).unwrap();
        to_chat(&request, "gpt-up").unwrap()
    }

    fn chat(body: Value) -> Value {
        serde_json::from_slice(&translate(body).body).unwrap()
    }

    fn refusal(body: Value) -> Refusal {
        let request = MessagesRequest::from_slice(body.to_string().as_bytes()).unwrap();
        to_chat(&request, "gpt-up").unwrap_err()
    }

    #[test]
    fn a_plain_request_carries_model_limits_sampling_stop_user_and_stream() {
        let chat = chat(json!({
            "model": "alias", "max_tokens": 300, "temperature": 0.5, "top_p": 0.9,
            "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
        }));
        assert_eq!(
            chat,
            json!({
                "model": "gpt-up", "max_completion_tokens": 300, "temperature": 0.5, "top_p": 0.9,
                "stop": ["END"], "user": "u-1", "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            })
        );
    }

    #[test]
    fn system_prompts_stay_where_they_are_as_system_messages() {
        let chat = chat(json!({
            "model": "m", "max_tokens": 1,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "Be kind."}],
            "messages": [
                {"role": "system", "content": "Claude Code's turn"},
                {"role": "user", "content": [{"type": "text", "text": "a"},
                    {"type": "mid_conv_system", "content": [{"type": "text", "text": "mid"}]},
                    {"type": "text", "text": "b"}]},
            ],
        }));
        let roles_and_text: Vec<(String, String)> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].to_string()))
            .collect();
        assert_eq!(
            roles_and_text[0],
            ("system".to_owned(), json!("Be brief.\n\nBe kind.").to_string())
        );
        assert_eq!(
            roles_and_text[1],
            ("system".to_owned(), json!("Claude Code's turn").to_string())
        );
        assert_eq!(roles_and_text[2].0, "user");
        assert_eq!(roles_and_text[3], ("system".to_owned(), json!("mid").to_string()));
        assert_eq!(roles_and_text[4].0, "user");
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_calls_then_tool_messages_ahead_of_the_turns_text() {
        let chat = chat(json!({
            "model": "m", "max_tokens": 1,
            "tools": [{"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "no data"}]}]},
            ],
        }));
        assert_eq!(
            chat["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
        );
        assert_eq!(chat["tool_choice"], "required");
        assert_eq!(chat["parallel_tool_calls"], false);
        let messages = chat["messages"].as_array().unwrap();
        assert_eq!(messages[1]["content"], "Checking.");
        assert_eq!(messages[1]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(messages[1]["tool_calls"][1]["function"]["arguments"], r#"{"city":"Rome"}"#);
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no data"})
        );
        assert_eq!(messages[4]["role"], "user", "the turn's text follows its tool results");
        assert_eq!(messages.len(), 5);
    }

    #[test]
    fn images_become_image_url_parts_and_a_pdf_a_file_part() {
        let chat = chat(json!({
            "model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}}]}],
        }));
        let parts = &chat["messages"][0]["content"];
        assert_eq!(
            parts[0],
            json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}})
        );
        assert_eq!(
            parts[1],
            json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
        );
        assert_eq!(parts[2]["file"]["file_data"], "data:application/pdf;base64,UERG");
        assert_eq!(parts[3], json!({"type": "text", "text": "plain"}));
    }

    #[test]
    fn hints_are_left_out_and_named_and_constraints_refused() {
        let translated = translate(json!({
            "model": "m", "max_tokens": 1, "top_k": 5, "thinking": {"type": "adaptive"},
            "context_management": {"edits": []}, "output_config": {"effort": "high"},
            "service_tier": "auto", "brand_new_field": 1,
            "tools": [{"name": "Read", "input_schema": {"type": "object"}, "defer_loading": true},
                      {"type": "web_search_20250305", "name": "web_search"}],
            "messages": [{"role": "user", "content": "hi"}],
        }));
        let mut dropped = translated.dropped.clone();
        dropped.sort();
        assert_eq!(
            dropped,
            [
                "brand_new_field",
                "context_management",
                "defer_loading",
                "output_config.effort",
                "service_tier",
                "thinking",
                "tools.web_search",
                "top_k"
            ]
        );
        let chat: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
        for key in ["top_k", "thinking", "context_management", "service_tier", "brand_new_field"] {
            assert!(chat.get(key).is_none(), "{key}");
        }
        let forced = refusal(json!({
            "model": "m", "max_tokens": 1,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "web_search"},
            "messages": [{"role": "user", "content": "hi"}],
        }));
        assert_eq!(forced.param, "tool_choice");
        let zero = refusal(
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(zero.param, "max_tokens");
        let none =
            translate(json!({"model": "m", "max_tokens": 1, "thinking": {"type": "disabled"},
            "messages": [{"role": "user", "content": "hi"}]}));
        assert!(none.dropped.is_empty(), "disabled thinking drops nothing: {:?}", none.dropped);
    }

    #[test]
    fn a_json_schema_output_format_becomes_response_format() {
        let chat = chat(json!({
            "model": "m", "max_tokens": 1,
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "messages": [{"role": "user", "content": "hi"}],
        }));
        assert_eq!(chat["response_format"]["type"], "json_schema");
        assert_eq!(
            chat["response_format"]["json_schema"]["schema"]["properties"]["a"]["type"],
            "string"
        );
    }
}
