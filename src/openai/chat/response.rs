//! The chat-completions answer as the gateway writes it (mock, Anthropic, degraded answers).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<Value>,
    pub finish_reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AssistantMessage {
    pub role: String,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    pub arguments: String,
}

/// OpenAI's `usage` object: on a completion, and on a stream's final usage chunk.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Absent from some OpenAI-compatible servers' usage, which must still be read: 0 then
    /// (accounting reads the other two).
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        // Saturating: the counts come from an upstream, which must not be able to wrap them.
        let total_tokens = prompt_tokens.saturating_add(completion_tokens);
        Self { prompt_tokens, completion_tokens, total_tokens }
    }
}

/// A 200 that is an error object (`{"error": …}`), whatever else it holds.
pub const AN_ERROR_OBJECT: &str = "upstream answered 200 with an error object";
/// A 200 without `choices` (or with `"choices": null`).
pub const NO_CHOICES: &str = "upstream answered 200 without choices";

/// Why a 200's body is not a chat completion (empty, not JSON, an error object, no `choices`);
/// none when it is one. Such a 200 is a failed attempt, not an answer (SPEC §4).
pub fn completion_problem(body: &[u8]) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Probe {
        choices: Option<serde::de::IgnoredAny>,
        error: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe { error: Some(_), .. }) => Some(AN_ERROR_OBJECT),
        Ok(Probe { choices: None, .. }) => Some(NO_CHOICES),
        Ok(_) => None,
        Err(_) if body.is_empty() => Some("upstream answered 200 with an empty body"),
        Err(_) => Some("upstream answered 200 with a body that is not a JSON completion"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_totals_its_tokens_and_reads_without_a_total() {
        assert_eq!(Usage::new(7, 2).total_tokens, 9);
        let usage: Usage =
            serde_json::from_str(r#"{"prompt_tokens": 7, "completion_tokens": 2}"#).unwrap();
        assert_eq!(usage, Usage { prompt_tokens: 7, completion_tokens: 2, total_tokens: 0 });
    }

    #[test]
    fn a_usage_total_saturates_instead_of_wrapping() {
        assert_eq!(Usage::new(u64::MAX, 7).total_tokens, u64::MAX);
    }
}
