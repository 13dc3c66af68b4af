//! How many tokens a request's prompt is, one count for every use (SPEC §3 "Rate limits", §4
//! "Context windows"): OpenAI's `o200k_base` tokenizer over the prompt's text, plus a fixed cost
//! per media part and per turn. The per-key token limits admit by it and a target's
//! `context_window` is judged by it (with the answer's allowance, [`max_output_tokens`]).
//!
//! The text is every string of the body but the few members that are not prompt (`model`,
//! `user`, `metadata`...), with the conversation a Responses request continues: message texts,
//! system prompts, tool definitions and arguments, schemas. Media parts count
//! [`MEDIA_PART_TOKENS`] each (their bytes, a base64 data URL can be megabytes, are not text);
//! an embeddings input given as token ids counts one per id. Any provider's own tokenizer
//! differs somewhat, which is why a target's window is better configured a little under its
//! real size than over it.
//!
//! The tokenizer (tens of MiB) is loaded on first use, not at start-up: a gateway without token
//! limits or context windows never loads it. A long prompt's count runs off the async workers.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tiktoken_rs::CoreBPE;

use crate::dialect::Request;

/// What a media part (an image, audio, a file) counts for: OpenAI's cost of a low-detail image.
pub const MEDIA_PART_TOKENS: u64 = 85;
/// The framing of one turn (its role and separators).
pub const PER_TURN: u64 = 3;
/// Above this many bytes of text the count is made on a blocking thread.
const BLOCKING_ABOVE: usize = 64 * 1024;

/// The `type`s of the content parts that carry media rather than text.
const MEDIA_PARTS: [&str; 7] =
    ["image_url", "input_image", "input_audio", "input_file", "file", "image", "document"];
/// Top-level members that are not part of the prompt.
const NOT_PROMPT: [&str; 8] = [
    "model",
    "user",
    "metadata",
    "stream_options",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "previous_response_id",
];

/// The prompt's tokens; a long prompt is counted on a blocking thread. None only if the
/// tokenizer cannot be loaded (its data is built into the binary, so that is not expected).
pub async fn prompt_tokens(request: &Arc<Request>) -> Option<u64> {
    let text = Collected::of(request);
    if text.text.len() <= BLOCKING_ABOVE {
        return text.count();
    }
    tokio::task::spawn_blocking(move || text.count()).await.ok().flatten()
}

/// The answer's allowance the request asks for (`max_tokens`, `max_completion_tokens`,
/// `max_output_tokens`), which must fit the context window with the prompt; 0 when it names
/// none.
pub fn max_output_tokens(body: &Map<String, Value>) -> u64 {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|key| body.get(*key).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// A rough guess without the tokenizer, where a number is only a placeholder (a translated
/// Messages stream's `message_start` reports input tokens before the upstream's usage arrives):
/// a quarter of the bytes of every string in the body, plus [`MEDIA_PART_TOKENS`] per media
/// part.
pub fn rough_prompt_tokens(body: &Map<String, Value>) -> u64 {
    let (mut text, mut media) = (0u64, 0u64);
    let mut pending: Vec<&Value> = body.values().collect();
    // An explicit stack: the body's nesting is bounded by the parser, but recursion is not needed.
    while let Some(value) = pending.pop() {
        match value {
            Value::String(string) => text += string.len() as u64,
            Value::Array(items) => pending.extend(items),
            Value::Object(members) => {
                let kind = members.get("type").and_then(Value::as_str);
                if kind.is_some_and(|kind| MEDIA_PARTS.contains(&kind)) {
                    media += 1;
                } else {
                    pending.extend(members.values());
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    (text.div_ceil(4) + media * MEDIA_PART_TOKENS).max(1)
}

/// The tokenizer, loaded once.
pub fn tokenizer() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

/// A prompt's text, and what counts without the tokenizer.
struct Collected {
    text: String,
    fixed: u64,
}

impl Collected {
    fn of(request: &Request) -> Self {
        let mut collected = Self { text: String::new(), fixed: 0 };
        let body = request.body();
        let turns = ["messages", "input"]
            .iter()
            .find_map(|key| body.get(*key).and_then(Value::as_array))
            .map_or(1, Vec::len);
        collected.fixed += turns as u64 * PER_TURN;
        let ids_are_tokens = matches!(request, Request::Embeddings(_));
        collected.add_members(body, ids_are_tokens);
        if let Request::Responses(responses) = request
            && let Some(history) = &responses.history
        {
            collected.fixed += history.items.len() as u64 * PER_TURN;
            for item in &history.items {
                collected.add(item, false);
            }
        }
        collected
    }

    fn add_members(&mut self, body: &Map<String, Value>, ids_are_tokens: bool) {
        for (key, value) in body {
            if !NOT_PROMPT.contains(&key.as_str()) {
                self.add(value, ids_are_tokens);
            }
        }
    }

    /// Every string of `value`, one per line; an explicit stack, so depth costs no recursion.
    fn add(&mut self, value: &Value, ids_are_tokens: bool) {
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            match value {
                Value::String(string) => {
                    self.text.push_str(string);
                    self.text.push('\n');
                }
                Value::Array(items) => pending.extend(items.iter().rev()),
                Value::Object(members) => {
                    let kind = members.get("type").and_then(Value::as_str);
                    if kind.is_some_and(|kind| MEDIA_PARTS.contains(&kind)) {
                        self.fixed += MEDIA_PART_TOKENS;
                    } else {
                        pending.extend(members.values());
                    }
                }
                Value::Number(_) if ids_are_tokens => self.fixed += 1,
                Value::Number(_) | Value::Null | Value::Bool(_) => {}
            }
        }
    }

    fn count(&self) -> Option<u64> {
        let tokens = tokenizer()?.encode_ordinary(&self.text).len() as u64;
        Some(tokens + self.fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::ChatRequest;

    fn chat(body: &str) -> Arc<Request> {
        Arc::new(Request::Chat(ChatRequest::from_slice(body.as_bytes()).unwrap()))
    }

    async fn count(body: &str) -> u64 {
        prompt_tokens(&chat(body)).await.unwrap()
    }

    #[tokio::test]
    async fn counts_the_prompts_text_with_the_tokenizer() {
        // "Hello world" is two o200k tokens, and one line break after it; one turn.
        let hello =
            count(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello world"}]}"#)
                .await;
        let role_and_newlines = 4; // "user\n" and "Hello world\n": the role counts as text too
        assert!((2 + PER_TURN..=2 + PER_TURN + role_and_newlines).contains(&hello), "{hello}");
        let words = "lorem ipsum dolor sit amet ".repeat(2_000);
        let long = count(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}]}}"#
        ))
        .await;
        assert!((9_000..=12_000).contains(&long), "about 5 tokens per repetition: {long}");
    }

    #[tokio::test]
    async fn media_parts_count_a_fixed_cost_and_the_model_name_nothing() {
        let text =
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]}"#;
        let image = r#"{"model":"a-very-long-model-name-that-is-not-prompt","messages":[{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}}]}]}"#;
        assert_eq!(count(image).await, count(text).await + MEDIA_PART_TOKENS);
    }

    #[tokio::test]
    async fn a_long_prompt_is_counted_off_the_async_workers_all_the_same() {
        let words = "tokens ".repeat(20_000);
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}]}}"#);
        assert!(body.len() > BLOCKING_ABOVE);
        let counted = count(&body).await;
        assert!((20_000..=20_010).contains(&counted), "{counted}");
    }

    #[test]
    fn the_rough_guess_counts_text_bytes_and_a_fixed_amount_per_image() {
        let request = |body: &serde_json::Value| {
            rough_prompt_tokens(
                crate::openai::chat::ChatRequest::from_slice(body.to_string().as_bytes())
                    .unwrap()
                    .body(),
            )
        };
        let image = format!("data:image/png;base64,{}", "A".repeat(1_000_000));
        let with_image = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": image}},
        ]}]});
        // "m", "user", "text" and the question: 1 + 4 + 4 + 24 bytes.
        assert_eq!(request(&with_image), 33u64.div_ceil(4) + MEDIA_PART_TOKENS);
        let text = serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": "x".repeat(4000)}]});
        assert_eq!(request(&text), 4005u64.div_ceil(4));
    }

    #[test]
    fn the_answers_allowance_is_whichever_maximum_the_request_names() {
        let request = |body: &str| serde_json::from_str::<Map<String, Value>>(body).unwrap();
        assert_eq!(
            max_output_tokens(&request(r#"{"model":"m","messages":[],"max_tokens":500}"#)),
            500
        );
        assert_eq!(
            max_output_tokens(&request(r#"{"model":"m","messages":[],"max_completion_tokens":7}"#)),
            7
        );
        assert_eq!(max_output_tokens(&request(r#"{"model":"m","messages":[]}"#)), 0);
    }
}
