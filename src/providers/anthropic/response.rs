//! Anthropic → OpenAI for whole answers: a Messages API message as a `chat.completion`.
//!
//! Also the two mappings the stream translation shares: stop reasons to finish reasons, and
//! Anthropic's usage to OpenAI's (every input token in the prompt, cache writes and reads
//! included).

use serde_json::{Value, json};

use super::wire::{Block, Message, MessagesUsage};
use crate::openai::chat::{AssistantMessage, Choice, FunctionCall, ToolCall};

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
        "usage": openai_usage(&message.usage),
    });
    Ok(completion.to_string())
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
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

/// OpenAI's usage: the prompt is every input token, cache writes and reads included.
pub(super) fn openai_usage(usage: &MessagesUsage) -> Value {
    let cached = usage.cache_read_input_tokens.unwrap_or(0);
    let (prompt, completion) = (usage.input(), usage.output());
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
