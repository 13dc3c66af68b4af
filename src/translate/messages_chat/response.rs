//! A whole chat completion as a Message, for a Messages client answered by a chat target.
//!
//! The first choice's text becomes a `text` block (none when empty: a replayed empty text block
//! is a 400 at Anthropic), a refusal a `text` block with `stop_reason: "refusal"`, and each tool
//! call a `tool_use` block whose `input` is the call's arguments parsed (empty arguments are
//! `{}`; arguments that are not a JSON object are kept whole under `"arguments"` rather than
//! lost). Ids are kept when they fit Anthropic's `^[a-zA-Z0-9_-]+$`, else cleaned, since the
//! client sends them back and the next turn may go to an Anthropic target. `stop_reason` is
//! `tool_use` whenever a tool call is there (whatever `finish_reason` said), `max_tokens` for
//! `length`, `refusal` for `content_filter`, else `end_turn`. Usage: `input_tokens` is the
//! prompt less its cached part, which is `cache_read_input_tokens`. Reasoning text some
//! OpenAI-compatible servers add is not turned into a `thinking` block: it would carry no
//! signature, and an unsigned thinking block sent back to Anthropic is refused.

use serde_json::{Value, json};

/// The Message for the chat completion `body`, naming the configured alias `model`; `None`
/// when `body` is not a chat completion (a failure of the upstream that sent it).
pub fn to_message(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let completion: Value = serde_json::from_slice(body).ok()?;
    let choice = completion.get("choices")?.as_array()?.first()?;
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|text| !text.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    let refusal = message["refusal"].as_str().filter(|text| !text.is_empty());
    if let Some(text) = refusal {
        content.push(json!({"type": "text", "text": text}));
    }
    let mut calls = 0;
    for (index, call) in message["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let function = &call["function"];
        let Some(name) = function["name"].as_str().filter(|name| !name.is_empty()) else {
            continue;
        };
        calls += 1;
        content.push(json!({
            "type": "tool_use",
            "id": tool_use_id(call["id"].as_str(), index),
            "name": name,
            "input": tool_input(function["arguments"].as_str().unwrap_or("")),
        }));
    }
    let stop_reason = match choice["finish_reason"].as_str() {
        _ if calls > 0 => "tool_use",
        _ if refusal.is_some() => "refusal",
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    };
    let message = json!({
        "id": message_id(completion["id"].as_str()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage(&completion["usage"]),
    });
    serde_json::to_vec(&message).ok()
}

/// Anthropic's usage for OpenAI's `usage` (absent: zeros).
pub fn usage(usage: &Value) -> Value {
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let prompt = count(&usage["prompt_tokens"]);
    let cached = count(&usage["prompt_tokens_details"]["cached_tokens"]).min(prompt);
    json!({
        "input_tokens": prompt - cached,
        "output_tokens": count(&usage["completion_tokens"]),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// `msg_` and the upstream's id, cleaned to Anthropic's id characters.
pub fn message_id(upstream: Option<&str>) -> String {
    let cleaned = clean(upstream.unwrap_or(""));
    if cleaned.is_empty() { "msg_ballast".to_owned() } else { format!("msg_{cleaned}") }
}

/// A tool call's id as Anthropic accepts it: kept when it fits, cleaned when not, made up from
/// its position when absent.
pub fn tool_use_id(upstream: Option<&str>, index: usize) -> String {
    let cleaned = clean(upstream.unwrap_or(""));
    if cleaned.is_empty() { format!("toolu_ballast_{index}") } else { cleaned }
}

fn clean(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect()
}

/// A tool call's arguments as a `tool_use` input: the JSON object they hold, `{}` when empty,
/// or, when they are not an object, the text kept whole under `arguments`.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({"arguments": arguments}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(completion: Value) -> Value {
        serde_json::from_slice(&to_message(completion.to_string().as_bytes(), "alias").unwrap())
            .unwrap()
    }

    #[test]
    fn a_text_answer_becomes_a_message_with_anthropic_usage() {
        let message = message(json!({
            "id": "chatcmpl-abc.1", "object": "chat.completion", "model": "gpt-up",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                      "prompt_tokens_details": {"cached_tokens": 60}},
        }));
        assert_eq!(
            message,
            json!({
                "id": "msg_chatcmpl-abc_1", "type": "message", "role": "assistant", "model": "alias",
                "content": [{"type": "text", "text": "Hello."}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 40, "output_tokens": 5,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60},
            })
        );
    }

    #[test]
    fn tool_calls_become_tool_use_blocks_and_the_stop_reason_says_so() {
        let message = message(json!({
            "id": "x", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "functions.Bash:0", "type": "function", "function": {"name": "bash", "arguments": ""}},
                    {"type": "function", "function": {"name": "odd", "arguments": "[1,2]"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }));
        assert_eq!(message["stop_reason"], "tool_use", "a tool call wins over finish_reason stop");
        let content = message["content"].as_array().unwrap();
        assert_eq!(content.len(), 3, "no empty text block");
        assert_eq!(
            content[0],
            json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
        );
        assert_eq!(content[1]["id"], "functions_Bash_0");
        assert_eq!(content[1]["input"], json!({}));
        assert_eq!(content[2]["id"], "toolu_ballast_2");
        assert_eq!(content[2]["input"], json!({"arguments": "[1,2]"}));
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
            ("tool_calls", "end_turn"),
        ] {
            let message =
                message(json!({"id": "x", "choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": "t"}}]}));
            assert_eq!(message["stop_reason"], stop, "{finish}");
        }
        let refused = message(json!({"id": "x", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]}));
        assert_eq!(refused["stop_reason"], "refusal");
        assert_eq!(refused["content"][0]["text"], "I can't help with that.");
    }

    #[test]
    fn a_body_that_is_not_a_completion_is_refused() {
        for body in [&b"not json"[..], br#"{"choices": []}"#, br#"{"error": {"message": "x"}}"#] {
            assert!(to_message(body, "alias").is_none(), "{}", String::from_utf8_lossy(body));
        }
    }
}
