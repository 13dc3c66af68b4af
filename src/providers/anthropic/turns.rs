//! OpenAI → Anthropic for the conversation: messages as `system` and turns of content blocks.
//!
//! System and developer turns are hoisted into `system`; content parts become text and image
//! blocks; tool calls become `tool_use` blocks and `tool` turns `tool_result` blocks, which land
//! at the start of the next user turn because consecutive turns of one role are merged.

use serde_json::{Value, json};

use super::wire::IMAGE_TYPES;
use crate::failure::Refusal;

/// `system` (the text of every system and developer turn, joined with `\n`) and the
/// user/assistant turns, consecutive turns of one role merged, so that the results of one
/// batch of tool calls arrive as one user turn that starts with them.
pub(super) fn translate_messages(messages: &[Value]) -> Result<(String, Vec<Value>), Refusal> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Counted and logged once below: one line per invalid call let a single request with 10^5
    // of them write 10^5 log lines.
    let mut invalid_arguments = 0_usize;
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
            Some("assistant") => (
                "assistant",
                Some(assistant_blocks(message, content, index, &mut invalid_arguments)?),
            ),
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
    if invalid_arguments > 0 {
        tracing::warn!(
            count = invalid_arguments,
            "tool calls' arguments are not JSON objects; sent to Anthropic as {{}}"
        );
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

/// An assistant turn: its text, then one `tool_use` block per tool call. Calls whose arguments
/// are not a JSON object are counted in `invalid_arguments`.
fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    index: usize,
    invalid_arguments: &mut usize,
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
        let input = tool_input(arguments).unwrap_or_else(|| {
            *invalid_arguments += 1;
            json!({})
        });
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

/// A tool call's arguments as the object Anthropic needs; `None` when they are not a JSON
/// object, which is then sent as `{}` (models do produce invalid arguments, and refusing the
/// whole conversation helps nobody).
fn tool_input(arguments: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => Some(object),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `system` and the turns of `messages`.
    fn translate(messages: Value) -> (String, Value) {
        let (system, turns) = translate_messages(messages.as_array().unwrap()).unwrap();
        (system, Value::Array(turns))
    }

    /// Everything a `warn` subscriber wrote while `run` ran.
    #[test]
    fn system_and_developer_turns_are_hoisted_wherever_they_are() {
        let (system, turns) = translate(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Again"},
        ]));
        assert_eq!(system, "Be brief.\nUse French.");
        assert_eq!(
            turns,
            json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Again"}]}]),
            "consecutive user turns become one"
        );
    }

    #[test]
    fn empty_text_and_turns_left_empty_are_left_out() {
        let (system, turns) = translate(json!([
            {"role": "system", "content": ""},
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        ]));
        assert_eq!(system, "Be kind.");
        assert_eq!(turns, json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]));
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_use_then_leading_tool_results() {
        let (_, turns) = translate(json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": Rome"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks; which is warmer?"},
        ]));
        assert_eq!(
            turns,
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
}
