//! A Responses request as a chat-completions request, for a target that speaks only chat (SPEC
//! §4 "Dialects"). The caller has already expanded `previous_response_id`: `input` holds the
//! whole conversation.
//!
//! What carries over: `instructions` (a leading `system` message); `input` as a string (one user
//! message) or items: messages of every role (`developer` as `system`, which every chat server
//! knows and the Anthropic chat translation hoists alike) with their text, images (URLs and data
//! URLs, with `detail`) and files sent inline (`file_data`, as chat's `file` part); function
//! calls as an assistant message's `tool_calls` (consecutive calls, and the assistant text right
//! before them, make one message, as chat has it) keyed by `call_id`; their outputs as `tool`
//! messages (text; images and files in an output follow as a user message after the run of tool
//! messages, since a chat `tool` message holds only text); function tools (flat in Responses,
//! wrapped in `function` in chat); `tool_choice` (`allowed_tools` by keeping only the allowed
//! functions); `text.format` as `response_format`; `max_output_tokens` (as
//! `max_completion_tokens`), `temperature`, `top_p`, `parallel_tool_calls`, `safety_identifier`
//! or `user` (as `user`), and `stream` (asking for the usage chunk).
//!
//! What a chat target cannot express is either a *hint*, left out and named in
//! [`Translated::dropped`] (the answer's `x-ballast-dropped`): the members of [`HINTS`] when they
//! ask for something, reasoning items of earlier turns (named `reasoning`: they are only
//! meaningful to the model that wrote them), built-in tools offered without being forced and the
//! items of earlier built-in calls (named by type, [`BUILT_INS`]), and any member or item type
//! this gateway does not know (named as it is); or a *constraint*, refused before any call:
//! stored state the target cannot reach (`previous_response_id` still present, `item_reference`
//! items, images and files by `file_id`, a stored `prompt`, a `conversation`), `background`, a
//! forced built-in tool, a file by URL, content a chat message has no part for.
//!
//! `store` is not named: the gateway keeps responses itself. The JSON schema of a `json_schema`
//! format reaches the target with its members in key order, not the client's: the request comes
//! as a parsed `Map`, which without serde_json's `preserve_order` is sorted (the schema means the
//! same; only the order in which a model writes an object's members may follow it).

use serde_json::{Map, Value, json};

use crate::failure::Refusal;
use crate::translate::{Dropped, Translated};

/// Members this translation reads (carried over, refused, or deliberately not named); any other
/// is dropped and named.
const READ: [&str; 18] = [
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "max_output_tokens",
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "stream",
    "store",
    "background",
    "prompt",
    "conversation",
    "previous_response_id",
];

/// The hints this translation names when it leaves them out (also `field` label values of their
/// drops). `reasoning` also names reasoning items of earlier turns, `verbosity` is
/// `text.verbosity`.
pub const HINTS: [&str; 11] = [
    "reasoning",
    "include",
    "metadata",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "max_tool_calls",
    "top_logprobs",
    "truncation",
    "stream_options",
    "verbosity",
];

/// The tool types OpenAI defines or runs itself, and the input item types of their calls: left
/// out and named by type (a closed set for labels; a type not listed is named all the same).
pub const BUILT_INS: [&str; 33] = [
    // Tools.
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "computer",
    "computer_use_preview",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
    // Items of earlier turns.
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "code_interpreter_call",
    "image_generation_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call",
    "custom_tool_call_output",
    "compaction",
];

/// Translates the Responses request `body` for a chat target whose model is `upstream_model`.
pub fn to_chat(body: &Map<String, Value>, upstream_model: &str) -> Result<Translated, Refusal> {
    refuse_constraints(body)?;
    let mut dropped = Dropped::default();
    for (key, value) in body {
        if HINTS.contains(&key.as_str()) {
            if asks_for(key, value) {
                dropped.add(key);
            }
        } else if !READ.contains(&key.as_str()) && !value.is_null() {
            dropped.add(key);
        }
    }
    let mut chat = Map::new();
    chat.insert("model".to_owned(), json!(upstream_model));
    let mut messages = Vec::new();
    match body.get("instructions") {
        Some(Value::String(text)) if !text.is_empty() => {
            messages.push(json!({"role": "system", "content": text}));
        }
        Some(Value::Array(items)) => {
            items_to_chat(items, "instructions", &mut messages, &mut dropped)?
        }
        _ => {}
    }
    match body.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => items_to_chat(items, "input", &mut messages, &mut dropped)?,
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(Refusal::new("input", "input must be a string or an array of items."));
        }
    }
    chat.insert("messages".to_owned(), Value::Array(messages));
    let mut tools = tools_to_chat(body.get("tools"), &mut dropped);
    let choice = tool_choice_to_chat(body.get("tool_choice"), &mut tools)?;
    if !tools.is_empty() {
        chat.insert("tools".to_owned(), Value::Array(tools));
        if let Some(choice) = choice {
            chat.insert("tool_choice".to_owned(), choice);
        }
        if let Some(parallel) = body.get("parallel_tool_calls").filter(|v| v.is_boolean()) {
            chat.insert("parallel_tool_calls".to_owned(), parallel.clone());
        }
    }
    if let Some(text) = body.get("text").and_then(Value::as_object) {
        for (key, value) in text {
            match key.as_str() {
                "format" => {
                    if let Some(format) = format_to_chat(value)? {
                        chat.insert("response_format".to_owned(), format);
                    }
                }
                _ if value.is_null() => {}
                "verbosity" => dropped.add("verbosity"),
                other => dropped.add(&format!("text.{other}")),
            }
        }
    }
    if let Some(max) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_completion_tokens".to_owned(), max.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(value) = body.get(key).filter(|value| !value.is_null()) {
            chat.insert(key.to_owned(), value.clone());
        }
    }
    let user = ["safety_identifier", "user"].iter().find_map(|key| body.get(*key)?.as_str());
    if let Some(user) = user {
        chat.insert("user".to_owned(), json!(user));
    }
    if body.get("stream") == Some(&Value::Bool(true)) {
        chat.insert("stream".to_owned(), json!(true));
        chat.insert("stream_options".to_owned(), json!({"include_usage": true}));
    }
    let body = serde_json::to_vec(&chat)
        .map_err(|err| Refusal::new("input", format!("the request cannot be written: {err}")))?;
    Ok(Translated { body, dropped: dropped.into_names() })
}

/// Whether a hint member asks for anything: not null, `false`, empty or all nulls (the SDKs and
/// the Agents SDK send some of these empty), and `truncation` other than its default.
fn asks_for(key: &str, value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(text) if key == "truncation" => text != "disabled",
        Value::Array(values) => !values.is_empty(),
        Value::Object(members) => members.values().any(|value| asks_for("", value)),
        _ => true,
    }
}

/// The members no chat target can honour: stored state it cannot reach, and a run in the
/// background.
fn refuse_constraints(body: &Map<String, Value>) -> Result<(), Refusal> {
    let present = |key: &str| body.get(key).is_some_and(|value| !value.is_null());
    // An empty id continues nothing, as the gateway reads it (`ResponsesRequest`).
    if present("previous_response_id") && body.get("previous_response_id") != Some(&json!("")) {
        return Err(Refusal::new(
            "previous_response_id",
            "previous_response_id points at stored state this target cannot reach.",
        ));
    }
    if present("conversation") {
        return Err(Refusal::new(
            "conversation",
            "a conversation is stored state this target cannot reach.",
        ));
    }
    if present("prompt") {
        return Err(Refusal::new(
            "prompt",
            "a stored prompt template is stored state this target cannot reach.",
        ));
    }
    if body.get("background") == Some(&Value::Bool(true)) {
        return Err(Refusal::new(
            "background",
            "background: true (answer now, run later) cannot be served by this model's \
             chat-completions targets.",
        ));
    }
    Ok(())
}

/// Input items (`param` names where they are: `input` or `instructions`) as chat messages,
/// appended to `out`.
fn items_to_chat(
    items: &[Value],
    param: &str,
    out: &mut Vec<Value>,
    dropped: &mut Dropped,
) -> Result<(), Refusal> {
    // Images and files of tool outputs, for a user message after the run of tool messages.
    let mut held = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = format!("{param}[{index}]");
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        if kind != "function_call_output" {
            flush_held(&mut held, out);
        }
        match kind {
            "message" => message_to_chat(item, &at, out)?,
            "function_call" => function_call_to_chat(item, &at, out)?,
            "function_call_output" => {
                let Some(call_id) = item["call_id"].as_str() else {
                    return Err(Refusal::new(
                        format!("{at}.call_id"),
                        "a function_call_output needs the call_id of its call.",
                    ));
                };
                let text = tool_output(&item["output"], &at, &mut held)?;
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
            }
            "reasoning" => dropped.add("reasoning"),
            "item_reference" => {
                return Err(Refusal::new(
                    at,
                    "an item_reference points at stored state this target cannot reach.",
                ));
            }
            other => dropped.add(other),
        }
    }
    flush_held(&mut held, out);
    Ok(())
}

fn flush_held(held: &mut Vec<Value>, out: &mut Vec<Value>) {
    if !held.is_empty() {
        out.push(json!({"role": "user", "content": std::mem::take(held)}));
    }
}

/// A `message` item as a chat message (none for an assistant message without text).
fn message_to_chat(item: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), Refusal> {
    let content = &item["content"];
    match item["role"].as_str() {
        Some("user") => {
            let content = match content {
                Value::String(text) => json!(text),
                Value::Array(parts) => {
                    let mut chat_parts = Vec::with_capacity(parts.len());
                    for (index, part) in parts.iter().enumerate() {
                        chat_parts.push(part_to_chat(part, &format!("{at}.content[{index}]"))?);
                    }
                    if chat_parts.is_empty() {
                        return Ok(());
                    }
                    Value::Array(chat_parts)
                }
                _ => return Err(Refusal::new(format!("{at}.content"), "content is missing.")),
            };
            out.push(json!({"role": "user", "content": content}));
        }
        Some(role @ ("system" | "developer")) => {
            let text = text_of(content, at, role)?;
            out.push(json!({"role": "system", "content": text}));
        }
        Some("assistant") => {
            let text = text_of(content, at, "assistant")?;
            if !text.is_empty() {
                out.push(json!({"role": "assistant", "content": text}));
            }
        }
        _ => {
            return Err(Refusal::new(
                format!("{at}.role"),
                "a message's role must be user, assistant, system or developer.",
            ));
        }
    }
    Ok(())
}

/// The text of a message a chat target takes as text only (system and assistant): a string, or
/// its text and refusal parts joined by a blank line.
fn text_of(content: &Value, at: &str, role: &str) -> Result<String, Refusal> {
    let parts = match content {
        Value::String(text) => return Ok(text.clone()),
        Value::Array(parts) => parts,
        _ => return Err(Refusal::new(format!("{at}.content"), "content is missing.")),
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let text = match part["type"].as_str() {
            Some("input_text" | "output_text" | "text") => part["text"].as_str(),
            Some("refusal") => part["refusal"].as_str(),
            _ => None,
        };
        match text {
            Some(text) if !text.is_empty() => texts.push(text),
            Some(_) => {}
            None => {
                return Err(Refusal::new(
                    format!("{at}.content[{index}]"),
                    format!(
                        "a {role} message holds only text on this model's chat-completions targets."
                    ),
                ));
            }
        }
    }
    Ok(texts.join("\n\n"))
}

/// A user content part as a chat content part.
fn part_to_chat(part: &Value, at: &str) -> Result<Value, Refusal> {
    match part["type"].as_str().unwrap_or("") {
        "input_text" | "output_text" | "text" => {
            Ok(json!({"type": "text", "text": part["text"].as_str().unwrap_or("")}))
        }
        "refusal" => Ok(json!({"type": "text", "text": part["refusal"].as_str().unwrap_or("")})),
        "input_image" => {
            if let Some(url) = part["image_url"].as_str() {
                let mut image = json!({"url": url});
                if let Some(detail @ ("auto" | "low" | "high")) = part["detail"].as_str() {
                    image["detail"] = json!(detail);
                }
                return Ok(json!({"type": "image_url", "image_url": image}));
            }
            if part["file_id"].is_string() {
                return Err(stored_file(at, "an image"));
            }
            Err(Refusal::new(at, "an input_image needs an image_url."))
        }
        "input_file" => {
            if let Some(data) = part["file_data"].as_str() {
                let mut file = json!({"file_data": data});
                if let Some(name) = part["filename"].as_str() {
                    file["filename"] = json!(name);
                }
                return Ok(json!({"type": "file", "file": file}));
            }
            if part["file_id"].is_string() {
                return Err(stored_file(at, "a file"));
            }
            if part["file_url"].is_string() {
                return Err(Refusal::new(
                    at,
                    "a file by URL cannot be carried to this model's chat-completions targets; \
                     send it as file_data.",
                ));
            }
            Err(Refusal::new(at, "an input_file needs file_data."))
        }
        other => Err(Refusal::new(
            at,
            format!(
                "a content part of type `{other}` cannot be carried to this model's \
                 chat-completions targets."
            ),
        )),
    }
}

fn stored_file(at: &str, what: &str) -> Refusal {
    Refusal::new(
        at,
        format!("{what} by file_id is stored state this target cannot reach; send it inline."),
    )
}

/// A `function_call` item as a chat tool call: added to the assistant message right before it
/// (the assistant's text or earlier calls of the same turn), else in a message of its own.
fn function_call_to_chat(item: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), Refusal> {
    let Some(call_id) = item["call_id"].as_str() else {
        return Err(Refusal::new(format!("{at}.call_id"), "a function_call needs a call_id."));
    };
    let arguments = item["arguments"].as_str().filter(|a| !a.trim().is_empty()).unwrap_or("{}");
    let call = json!({
        "id": call_id,
        "type": "function",
        "function": {"name": item["name"].as_str().unwrap_or(""), "arguments": arguments},
    });
    if let Some(last) = out.last_mut().filter(|last| last["role"] == "assistant")
        && let Some(message) = last.as_object_mut()
    {
        match message.get_mut("tool_calls") {
            Some(Value::Array(calls)) => calls.push(call),
            _ => {
                message.insert("tool_calls".to_owned(), json!([call]));
            }
        }
        return Ok(());
    }
    out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    Ok(())
}

/// A function call's output as a `tool` message's text: a string as is, parts' text joined by
/// a blank line, their images and files moved to `held`.
fn tool_output(output: &Value, at: &str, held: &mut Vec<Value>) -> Result<String, Refusal> {
    match output {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for (index, part) in parts.iter().enumerate() {
                let part = part_to_chat(part, &format!("{at}.output[{index}]"))?;
                if part["type"] == "text" {
                    texts.push(part["text"].as_str().unwrap_or("").to_owned());
                } else {
                    held.push(part);
                }
            }
            Ok(texts.join("\n\n"))
        }
        Value::Null => Ok(String::new()),
        other => Ok(other.to_string()),
    }
}

/// Function tools as chat functions; any other tool is one OpenAI defines or runs, left out and
/// named by its type.
fn tools_to_chat(tools: Option<&Value>, dropped: &mut Dropped) -> Vec<Value> {
    let mut functions = Vec::new();
    for tool in tools.and_then(Value::as_array).into_iter().flatten() {
        let kind = tool["type"].as_str().unwrap_or("");
        if kind != "function" {
            dropped.add(if kind.is_empty() { "tools" } else { kind });
            continue;
        }
        let mut function = Map::new();
        function.insert("name".to_owned(), tool["name"].clone());
        for key in ["description", "parameters", "strict"] {
            if let Some(value) = tool.get(key).filter(|value| !value.is_null()) {
                function.insert(key.to_owned(), value.clone());
            }
        }
        functions.push(json!({"type": "function", "function": function}));
    }
    functions
}

/// `tool_choice` for chat; `allowed_tools` keeps only the allowed functions in `tools`. A choice
/// that forces a tool no chat target is offered (a built-in, or any tool when none is left) is
/// refused.
fn tool_choice_to_chat(
    choice: Option<&Value>,
    tools: &mut Vec<Value>,
) -> Result<Option<Value>, Refusal> {
    let no_tool = || {
        Refusal::new(
            "tool_choice",
            "tool_choice asks for a tool call, but no function tool can be offered to this \
             model's chat-completions targets.",
        )
    };
    let Some(choice) = choice.filter(|choice| !choice.is_null()) else { return Ok(None) };
    if let Some(mode) = choice.as_str() {
        return match mode {
            "auto" | "none" => Ok(Some(json!(mode))),
            "required" if tools.is_empty() => Err(no_tool()),
            "required" => Ok(Some(json!(mode))),
            other => {
                Err(Refusal::new("tool_choice", format!("tool_choice `{other}` is not known.")))
            }
        };
    }
    match choice["type"].as_str().unwrap_or("") {
        "function" => {
            if tools.is_empty() {
                return Err(no_tool());
            }
            Ok(Some(json!({"type": "function", "function": {"name": choice["name"]}})))
        }
        "allowed_tools" => {
            let allowed: Vec<&str> = choice["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|tool| tool["type"] == "function")
                .filter_map(|tool| tool["name"].as_str())
                .collect();
            tools.retain(|tool| {
                tool["function"]["name"].as_str().is_some_and(|name| allowed.contains(&name))
            });
            match choice["mode"].as_str().unwrap_or("auto") {
                "auto" => Ok(Some(json!("auto"))),
                "required" if tools.is_empty() => Err(no_tool()),
                "required" => Ok(Some(json!("required"))),
                other => Err(Refusal::new(
                    "tool_choice.mode",
                    format!("allowed_tools mode `{other}` is not known."),
                )),
            }
        }
        other => Err(Refusal::new(
            "tool_choice",
            format!(
                "tool_choice forces the tool type `{other}`, which this model's chat-completions \
                 targets cannot run."
            ),
        )),
    }
}

/// `text.format` as chat's `response_format` (none for plain text).
fn format_to_chat(format: &Value) -> Result<Option<Value>, Refusal> {
    match format["type"].as_str() {
        None if format.is_null() => Ok(None),
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert("name".to_owned(), json!(format["name"].as_str().unwrap_or("output")));
            schema.insert("schema".to_owned(), format.get("schema").cloned().unwrap_or(json!({})));
            for key in ["strict", "description"] {
                if let Some(value) = format.get(key).filter(|value| !value.is_null()) {
                    schema.insert(key.to_owned(), value.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        other => Err(Refusal::new(
            "text.format",
            format!("text.format type `{}` is not known.", other.unwrap_or("none")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn translate(value: Value) -> Translated {
        to_chat(&body(value), "gpt-up").unwrap()
    }

    fn chat_body(value: Value) -> Value {
        serde_json::from_slice(&translate(value).body).unwrap()
    }

    fn refusal(value: Value) -> Refusal {
        to_chat(&body(value), "gpt-up").unwrap_err()
    }

    #[test]
    fn a_string_input_is_one_user_message_and_the_settings_carry_over() {
        let chat = chat_body(json!({
            "model": "alias", "input": "hi", "instructions": "Be brief.",
            "max_output_tokens": 300, "temperature": 0.5, "top_p": 0.9,
            "safety_identifier": "u-1", "store": true, "stream": true,
        }));
        assert_eq!(
            chat,
            json!({
                "model": "gpt-up", "max_completion_tokens": 300, "temperature": 0.5, "top_p": 0.9,
                "user": "u-1", "stream": true, "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi"},
                ],
            })
        );
    }

    #[test]
    fn message_items_keep_their_text_images_and_files_and_developer_becomes_system() {
        let chat = chat_body(json!({
            "model": "m",
            "input": [
                {"role": "developer", "content": "Use French."},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
                    {"type": "input_image", "image_url": "data:image/png;base64,QUJD"},
                    {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,UERG"},
                ]},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "Une image.", "annotations": []}]},
            ],
        }));
        let messages = chat["messages"].as_array().unwrap();
        assert_eq!(messages[0], json!({"role": "system", "content": "Use French."}));
        assert_eq!(
            messages[1]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,UERG"}},
            ])
        );
        assert_eq!(messages[2], json!({"role": "assistant", "content": "Une image."}));
    }

    #[test]
    fn a_function_call_round_trip_becomes_one_assistant_message_with_tool_calls_then_tool_messages()
    {
        let chat = chat_body(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "get_weather", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_b", "output": [
                    {"type": "input_text", "text": "no data"},
                    {"type": "input_image", "image_url": "https://example.com/map.png"}]},
                {"role": "user", "content": "Thanks."},
            ],
        }));
        let messages = chat["messages"].as_array().unwrap();
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ]})
        );
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "call_a", "content": "18C"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "call_b", "content": "no data"})
        );
        assert_eq!(
            messages[4],
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/map.png"}}]}),
            "an output's image follows the run of tool messages"
        );
        assert_eq!(messages[5], json!({"role": "user", "content": "Thanks."}));
        assert_eq!(messages.len(), 6);
        let dropped =
            translate(json!({"model": "m", "input": [{"type": "reasoning", "summary": []}]}));
        assert_eq!(dropped.dropped, ["reasoning"]);
    }

    #[test]
    fn a_call_without_text_before_it_is_an_assistant_message_of_its_own() {
        let chat = chat_body(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "ok"},
                {"type": "function_call", "call_id": "call_b", "name": "f", "arguments": "{}"},
            ],
        }));
        let messages = chat["messages"].as_array().unwrap();
        assert_eq!(messages[1]["content"], Value::Null);
        assert_eq!(messages[1]["tool_calls"].as_array().unwrap().len(), 1);
        assert_eq!(messages[3]["tool_calls"][0]["id"], "call_b", "a tool message ends the turn");
    }

    #[test]
    fn function_tools_are_wrapped_and_tool_choice_follows() {
        let chat = chat_body(json!({
            "model": "m", "input": "hi", "parallel_tool_calls": false,
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather.",
                       "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"},
        }));
        assert_eq!(
            chat["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                "parameters": {"type": "object"}, "strict": true}}])
        );
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(chat["parallel_tool_calls"], false);
        for mode in ["auto", "none", "required"] {
            let chat = chat_body(json!({"model": "m", "input": "hi", "tool_choice": mode,
                "tools": [{"type": "function", "name": "f", "parameters": {}}]}));
            assert_eq!(chat["tool_choice"], mode);
        }
    }

    #[test]
    fn allowed_tools_keeps_only_the_allowed_functions_and_uses_the_mode() {
        let chat = chat_body(json!({
            "model": "m", "input": "hi",
            "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"},
                      {"type": "function", "name": "c"}],
            "tool_choice": {"type": "allowed_tools", "mode": "required",
                            "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "c"}]},
        }));
        let names: Vec<&str> = chat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tool| tool["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(chat["tool_choice"], "required");
        let none_left = refusal(json!({
            "model": "m", "input": "hi", "tools": [{"type": "function", "name": "a"}, {"type": "web_search"}],
            "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "web_search"}]},
        }));
        assert_eq!(none_left.param, "tool_choice");
    }

    #[test]
    fn a_built_in_tool_offered_is_dropped_and_named_and_a_forced_one_refused() {
        let translated = translate(json!({
            "model": "m", "input": "hi", "tool_choice": "auto",
            "tools": [{"type": "web_search"}, {"type": "function", "name": "f"},
                      {"type": "mcp", "server_label": "x"}],
        }));
        assert_eq!(translated.dropped, ["web_search", "mcp"]);
        let chat: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
        let only_built_in = chat_body(json!({"model": "m", "input": "hi", "tool_choice": "auto",
            "parallel_tool_calls": true, "tools": [{"type": "web_search"}]}));
        for key in ["tools", "tool_choice", "parallel_tool_calls"] {
            assert!(only_built_in.get(key).is_none(), "{key} without tools is a chat 400");
        }
        for choice in [
            json!({"type": "web_search_preview"}),
            json!({"type": "mcp", "server_label": "x"}),
            json!({"type": "custom", "name": "x"}),
            json!("required"),
        ] {
            let refused = refusal(json!({"model": "m", "input": "hi",
                "tools": [{"type": "web_search_preview"}], "tool_choice": choice}));
            assert_eq!(refused.param, "tool_choice", "{choice}");
        }
    }

    #[test]
    fn text_formats_become_response_format() {
        let schema =
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
        let chat = chat_body(json!({
            "model": "m", "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema,
                                "strict": true, "description": "The answer."}},
        }));
        assert_eq!(
            chat["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                "strict": true, "description": "The answer."}})
        );
        let object = chat_body(
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}),
        );
        assert_eq!(object["response_format"], json!({"type": "json_object"}));
        let text = translate(json!({"model": "m", "input": "hi",
            "text": {"format": {"type": "text"}, "verbosity": "low"}}));
        let plain: Value = serde_json::from_slice(&text.body).unwrap();
        assert!(plain.get("response_format").is_none());
        assert_eq!(text.dropped, ["verbosity"]);
    }

    #[test]
    fn hints_are_left_out_and_named_when_they_ask_for_something() {
        let translated = translate(json!({
            "model": "m", "input": "hi", "store": false,
            "reasoning": {"effort": "high", "summary": null}, "include": ["reasoning.encrypted_content"],
            "metadata": {"k": "v"}, "service_tier": "flex", "prompt_cache_key": "p",
            "prompt_cache_retention": "24h", "max_tool_calls": 3, "top_logprobs": 2,
            "truncation": "auto", "stream_options": {"include_obfuscation": true},
            "brand_new": 1,
        }));
        let mut dropped = translated.dropped.clone();
        dropped.sort();
        assert_eq!(
            dropped,
            [
                "brand_new",
                "include",
                "max_tool_calls",
                "metadata",
                "prompt_cache_key",
                "prompt_cache_retention",
                "reasoning",
                "service_tier",
                "stream_options",
                "top_logprobs",
                "truncation",
            ]
        );
        let quiet = translate(json!({
            "model": "m", "input": "hi", "store": true, "background": false,
            "reasoning": {"effort": null, "summary": null}, "include": [], "metadata": {},
            "truncation": "disabled", "previous_response_id": null, "user": null,
        }));
        assert!(quiet.dropped.is_empty(), "{:?}", quiet.dropped);
    }

    #[test]
    fn earlier_built_in_calls_are_left_out_by_type() {
        let translated = translate(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "search"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
                {"type": "mcp_call", "id": "mcp_1"},
                {"type": "something_new", "id": "x"},
                {"role": "assistant", "content": "Found it."},
            ],
        }));
        assert_eq!(translated.dropped, ["web_search_call", "mcp_call", "something_new"]);
        let chat: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(chat["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn stored_state_background_and_uncarriable_content_are_refused() {
        for (body, param) in [
            (json!({"model": "m", "input": "hi", "background": true}), "background"),
            (
                json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (json!({"model": "m", "input": "hi", "prompt": {"id": "pmpt_1"}}), "prompt"),
            (json!({"model": "m", "input": "hi", "conversation": "conv_1"}), "conversation"),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
                "input[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [
                    {"type": "input_text", "text": "a"}, {"type": "input_image", "file_id": "file-1"}]}]}),
                "input[0].content[1]",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [
                    {"type": "input_file", "file_id": "file-1"}]}]}),
                "input[0].content[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [
                    {"type": "input_file", "file_url": "https://example.com/a.pdf"}]}]}),
                "input[0].content[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "system", "content": [
                    {"type": "input_image", "image_url": "https://example.com/a.png"}]}]}),
                "input[0].content[0]",
            ),
            (
                json!({"model": "m", "input": "hi", "text": {"format": {"type": "grammar"}}}),
                "text.format",
            ),
        ] {
            assert_eq!(refusal(body.clone()).param, param, "{body}");
        }
    }

    #[test]
    fn instructions_as_items_come_before_the_input() {
        let chat = chat_body(json!({
            "model": "m", "input": "hi",
            "instructions": [{"role": "developer", "content": [{"type": "input_text", "text": "Rules."}]}],
        }));
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Rules."}));
        assert_eq!(chat["messages"][1], json!({"role": "user", "content": "hi"}));
    }
}
