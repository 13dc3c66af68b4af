//! Streamed chat-completion chunks (`chat.completion.chunk`) and the `[DONE]` terminator.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

use super::chat::{ChatCompletion, Usage};
use super::chunk::ChunkFacts;

/// The payload of the last SSE event of a successful stream.
pub const DONE: &str = "[DONE]";

/// Whether a chunk is past the stream's opening (SPEC §4 "Streams never lie"): a choice with
/// text, a refusal, reasoning text or a tool-call delta, or with its finish reason, or the usage
/// chunk (which follows the finish). A role-only first chunk, and an empty one, wait: a stream is
/// held until content, so an upstream that opens a stream and then fails is still an ordinary
/// failed attempt. A chunk that is not a chunk counts as content: it is not this check's to
/// refuse.
pub fn carries_content(data: &str) -> bool {
    ChunkFacts::read(data).is_none_or(|facts| facts.carries_content())
}

/// The key of a chunk's usage, as it is found without parsing.
const USAGE_KEY: &[u8] = b"\"usage\"";

/// Its searcher, built once: every chunk of a stream whose client did not ask for usage is
/// searched.
static USAGE_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(USAGE_KEY));

/// Whether a chunk payload is the final usage chunk (usage and no choices). Chunks without a
/// non-null usage are recognised without parsing.
pub fn is_usage_only(data: &str) -> bool {
    let bytes = data.as_bytes();
    let opens_usage = |at: usize| {
        let after = bytes[at + USAGE_KEY.len()..].iter().filter(|b| !b.is_ascii_whitespace());
        after.take(2).eq(b":{")
    };
    if !USAGE_FINDER.find_iter(bytes).any(opens_usage) {
        return false;
    }
    #[derive(Deserialize)]
    struct Probe {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<Probe>(data)
        .is_ok_and(|probe| probe.usage.is_some() && probe.choices.is_none_or(|c| c.is_empty()))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// `null` on every chunk but the usage chunk (which has no choices).
    pub usage: Option<Usage>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<serde_json::Value>,
    pub finish_reason: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: FunctionDelta,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

/// The stream of chunks that carries `completion`: per choice a role chunk, one chunk per word
/// (or tool-argument fragment), a finish chunk; then the usage chunk when asked for.
pub fn chunks_of(completion: &ChatCompletion, include_usage: bool) -> Vec<ChatCompletionChunk> {
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatCompletionChunk {
        id: completion.id.clone(),
        object: "chat.completion.chunk".to_owned(),
        created: completion.created,
        model: completion.model.clone(),
        choices,
        usage,
    };
    let delta = |index: u32, delta: Delta, finish_reason: Option<String>| {
        vec![ChunkChoice { index, delta, logprobs: None, finish_reason }]
    };
    let mut chunks = Vec::new();
    for choice in &completion.choices {
        let first = Delta {
            role: Some("assistant".to_owned()),
            content: Some(String::new()),
            ..Delta::default()
        };
        chunks.push(chunk(delta(choice.index, first, None), None));
        let content = choice.message.content.as_deref().unwrap_or("");
        for (position, word) in content.split(' ').filter(|w| !w.is_empty()).enumerate() {
            let text = if position == 0 { word.to_owned() } else { format!(" {word}") };
            let piece = Delta { content: Some(text), ..Delta::default() };
            chunks.push(chunk(delta(choice.index, piece, None), None));
        }
        if let Some(refusal) = choice.message.refusal.clone().filter(|text| !text.is_empty()) {
            let piece = Delta { refusal: Some(refusal), ..Delta::default() };
            chunks.push(chunk(delta(choice.index, piece, None), None));
        }
        for (call_index, call) in choice.message.tool_calls.iter().enumerate() {
            let call_index = u32::try_from(call_index).unwrap_or(u32::MAX);
            let opening = ToolCallDelta {
                index: call_index,
                id: Some(call.id.clone()),
                kind: Some("function".to_owned()),
                function: FunctionDelta {
                    name: Some(call.function.name.clone()),
                    arguments: String::new(),
                },
            };
            let opening = Delta { tool_calls: vec![opening], ..Delta::default() };
            chunks.push(chunk(delta(choice.index, opening, None), None));
            let characters: Vec<char> = call.function.arguments.chars().collect();
            for piece in characters.chunks(8) {
                let fragment = ToolCallDelta {
                    index: call_index,
                    id: None,
                    kind: None,
                    function: FunctionDelta { name: None, arguments: piece.iter().collect() },
                };
                let fragment = Delta { tool_calls: vec![fragment], ..Delta::default() };
                chunks.push(chunk(delta(choice.index, fragment, None), None));
            }
        }
        let finish = delta(choice.index, Delta::default(), Some(choice.finish_reason.clone()));
        chunks.push(chunk(finish, None));
    }
    if include_usage {
        chunks.push(chunk(Vec::new(), Some(completion.usage)));
    }
    chunks
}

#[cfg(test)]
mod content_tests {
    use super::{carries_content, is_usage_only};

    #[test]
    fn only_a_chunk_with_a_usage_and_no_choices_is_usage_only() {
        for usage_only in [
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"choices":null, "usage" : {"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":1}}"#,
        ] {
            assert!(is_usage_only(usage_only), "{usage_only}");
        }
        for other in [
            r#"{"choices":[{"delta":{"content":"\"usage\":{"}}],"usage":null}"#,
            r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"choices":[],"usage":null}"#,
        ] {
            assert!(!is_usage_only(other), "{other}");
        }
    }

    #[test]
    fn only_chunks_past_the_opening_carry_content() {
        for opening in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[]},"finish_reason":null}]}"#,
            r#"{"choices":[]}"#,
        ] {
            assert!(!carries_content(opening), "{opening}");
        }
        for content in [
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"\u0048i"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"refusal":"no"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            "not a chunk",
        ] {
            assert!(carries_content(content), "{content}");
        }
    }
}
