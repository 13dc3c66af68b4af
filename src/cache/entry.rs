//! `Entry`: a stored answer, in its request's dialect (a `chat.completion`, a Message, a
//! Response or an embeddings list; the cache key tells the dialects apart, so an entry does not
//! say which it is). It keeps the whole
//! answer as JSON (for whole-answer requests) and, when it was streamed, the stream's event
//! data as they came (for stream requests, replayed with their original granularity), so
//! streamed and whole requests share one entry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::anthropic::Usage;
use crate::config::Price;
use crate::dialect::{Api, messages, responses};
use crate::openai::chat::ChatCompletion;
use crate::openai::stream::chunks_of;
use crate::providers::Reply;

/// The largest answer stored (its JSON and chunks together), to protect Redis and memory.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix time in milliseconds (wall clock: entries are shared between replicas).
    pub stored_at_ms: u64,
    /// The configured provider that produced it.
    pub provider: String,
    /// What producing it cost upstream, for `ballast_cache_saved_usd_total`.
    pub cost_usd: f64,
    /// The whole answer's JSON: a `chat.completion` or a Message.
    pub completion: String,
    /// The chunks (or Messages events) it was streamed as, usage chunk included; none when it
    /// came whole.
    pub chunks: Option<Vec<String>>,
}

impl Entry {
    /// An entry for a whole answer; none when the body is not a completion. Its cost comes from
    /// the answer's usage at `price`.
    pub fn from_completion(
        api: Api,
        body: &[u8],
        provider: &str,
        price: Option<Price>,
    ) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        if text.len() > MAX_ENTRY_BYTES {
            return None;
        }
        let parsed: Value = serde_json::from_str(text).ok()?;
        let is_answer = match api {
            Api::Chat => parsed["choices"].is_array(),
            Api::Messages => messages::is_message(&parsed),
            Api::Responses => responses::is_finished(&parsed),
            Api::Embeddings => parsed["data"].is_array(),
        };
        if !is_answer {
            return None;
        }
        Some(Self {
            stored_at_ms: unix_ms(),
            provider: provider.to_owned(),
            cost_usd: cost_of(api, &parsed, price),
            completion: text.to_owned(),
            chunks: None,
        })
    }

    /// An entry for a complete stream (its terminal event arrived); none when too large.
    pub fn from_chunks(
        api: Api,
        chunks: Vec<String>,
        provider: &str,
        price: Option<Price>,
    ) -> Option<Self> {
        let size: usize = chunks.iter().map(String::len).sum();
        if size > MAX_ENTRY_BYTES / 2 {
            return None;
        }
        let completion = match api {
            Api::Chat => assemble(&chunks)?,
            Api::Messages => messages::assemble(&chunks)?,
            Api::Responses => responses::assemble(&chunks).filter(responses::is_finished)?,
            // Never streamed.
            Api::Embeddings => return None,
        };
        Some(Self {
            stored_at_ms: unix_ms(),
            provider: provider.to_owned(),
            cost_usd: cost_of(api, &completion, price),
            completion: completion.to_string(),
            chunks: Some(chunks),
        })
    }

    /// An entry holding `text` (no stream), produced by `provider`: what the conversation store
    /// keeps. None when too large.
    pub fn holding(text: String, provider: &str) -> Option<Self> {
        (text.len() <= MAX_ENTRY_BYTES).then(|| Self {
            stored_at_ms: unix_ms(),
            provider: provider.to_owned(),
            cost_usd: 0.0,
            completion: text,
            chunks: None,
        })
    }

    /// The bytes it holds in memory: its text, its chunks and their bookkeeping, what the
    /// memory store weighs it by. It walks the chunks, so it is computed once per write.
    pub fn held_bytes(&self) -> usize {
        let chunks = self.chunks.as_deref().unwrap_or_default();
        let chunk_bytes: usize = chunks.iter().map(String::capacity).sum();
        let chunk_slots = self.chunks.as_ref().map_or(0, Vec::capacity);
        size_of::<Self>()
            + self.provider.capacity()
            + self.completion.capacity()
            + chunk_slots * size_of::<String>()
            + chunk_bytes
    }

    pub fn age(&self) -> Duration {
        Duration::from_millis(unix_ms().saturating_sub(self.stored_at_ms))
    }

    /// The answer as a client wants it: the completion, or the stream (usage chunk included;
    /// the HTTP edge removes it for clients that did not ask).
    pub fn reply(&self, api: Api, stream: bool) -> Reply {
        if !stream {
            return Reply::Complete(self.completion.clone().into_bytes().into());
        }
        let chunks = match (&self.chunks, api) {
            (Some(chunks), _) => chunks.clone(),
            (None, Api::Messages) => serde_json::from_str::<Value>(&self.completion)
                .map(|message| messages::events_of(&message))
                .unwrap_or_default(),
            (None, Api::Responses) => serde_json::from_str::<Value>(&self.completion)
                .map(|response| responses::events_of(&response))
                .unwrap_or_default(),
            (None, Api::Embeddings) => {
                return Reply::Complete(self.completion.clone().into_bytes().into());
            }
            (None, Api::Chat) => serde_json::from_str::<ChatCompletion>(&self.completion)
                .map(|completion| {
                    chunks_of(&completion, true)
                        .iter()
                        .map(|chunk| serde_json::to_string(chunk).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default(),
        };
        Reply::Stream(stream::iter(chunks.into_iter().map(Ok)).boxed())
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The `chat.completion` a stream of chunks adds up to: content and tool-call arguments
/// concatenated per choice, the last finish reason, the usage of the usage chunk.
fn assemble(chunks: &[String]) -> Option<Value> {
    let mut head: Option<Value> = None;
    let mut choices: Vec<Map<String, Value>> = Vec::new();
    let mut usage = Value::Null;
    for data in chunks {
        let chunk: Value = serde_json::from_str(data).ok()?;
        if head.is_none() {
            head = Some(chunk.clone());
        }
        if let Some(found) = chunk.get("usage").filter(|u| u.is_object()) {
            usage = found.clone();
        }
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index =
                usize::try_from(choice.get("index").and_then(Value::as_u64).unwrap_or(0)).ok()?;
            if index > 128 {
                return None;
            }
            while choices.len() <= index {
                choices.push(Map::new());
            }
            merge_delta(&mut choices[index], choice);
        }
    }
    let head = head?;
    let choices: Vec<Value> = choices
        .into_iter()
        .enumerate()
        .map(|(index, mut parts)| {
            let finish = parts.remove("finish_reason").unwrap_or(Value::Null);
            parts.entry("role").or_insert_with(|| json!("assistant"));
            parts.entry("content").or_insert(Value::Null);
            json!({"index": index, "message": parts, "logprobs": null, "finish_reason": finish})
        })
        .collect();
    Some(json!({
        "id": head.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": head.get("created").cloned().unwrap_or(Value::Null),
        "model": head.get("model").cloned().unwrap_or(Value::Null),
        "choices": choices,
        "usage": usage,
    }))
}

fn merge_delta(message: &mut Map<String, Value>, choice: &Value) {
    if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
        message.insert("finish_reason".to_owned(), reason.clone());
    }
    let Some(delta) = choice.get("delta") else { return };
    if let Some(role) = delta.get("role").filter(|r| r.is_string()) {
        message.insert("role".to_owned(), role.clone());
    }
    if let Some(text) = delta.get("content").and_then(Value::as_str) {
        append(message.entry("content").or_insert_with(|| json!("")), text);
    }
    for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let index = usize::try_from(call.get("index").and_then(Value::as_u64).unwrap_or(0))
            .unwrap_or(0)
            .min(128);
        let Some(calls) = message.entry("tool_calls").or_insert_with(|| json!([])).as_array_mut()
        else {
            return;
        };
        while calls.len() <= index {
            calls.push(
                json!({"id": null, "type": "function", "function": {"name": "", "arguments": ""}}),
            );
        }
        let slot = &mut calls[index];
        if let Some(id) = call.get("id").filter(|id| id.is_string()) {
            slot["id"] = id.clone();
        }
        if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
            append(&mut slot["function"]["name"], name);
        }
        if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
            append(&mut slot["function"]["arguments"], arguments);
        }
    }
}

fn append(target: &mut Value, text: &str) {
    match target {
        Value::String(existing) => existing.push_str(text),
        other => *other = json!(text),
    }
}

/// What an answer cost upstream: its `usage` at `price` (0 without a price).
fn cost_of(api: Api, answer: &Value, price: Option<Price>) -> f64 {
    let Some(price) = price else { return 0.0 };
    let tokens = |name: &str| answer["usage"][name].as_u64().unwrap_or(0);
    match api {
        Api::Chat => price.cost(tokens("prompt_tokens"), tokens("completion_tokens")),
        Api::Messages => {
            let usage = Usage::of(&answer["usage"]);
            price.cost(usage.input(), usage.output())
        }
        Api::Responses => price.cost(tokens("input_tokens"), tokens("output_tokens")),
        Api::Embeddings => price.cost(tokens("prompt_tokens"), 0),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Value) -> String {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": null})
        .to_string()
    }

    #[test]
    fn a_stream_assembles_into_the_completion_it_carried() {
        let chunks = vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
            chunk(json!({}), json!("stop")),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).to_string(),
        ];
        let entry = Entry::from_chunks(
            Api::Chat,
            chunks.clone(),
            "p",
            Some(Price { input: 1.0, output: 2.0 }),
        )
        .unwrap();
        let completion: Value = serde_json::from_str(&entry.completion).unwrap();
        assert_eq!(completion["choices"][0]["message"]["content"], "Hello");
        assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        assert_eq!(completion["usage"]["total_tokens"], 5);
        assert!(
            (entry.cost_usd - 7e-6).abs() < 1e-15,
            "3 prompt + 2 completion tokens at 1 and 2 USD/M"
        );
        assert_eq!(completion["id"], "c1");
        let held = entry.held_bytes();
        let text: usize = chunks.iter().map(String::len).sum::<usize>() + entry.completion.len();
        assert!(held > text && held < text + 1024, "{held} bytes held for {text} of text");
        assert_eq!(entry.chunks, Some(chunks));
        assert_eq!(Entry::decode(&entry.encode()), Some(entry));
    }

    #[test]
    fn streamed_tool_calls_assemble_with_their_arguments() {
        let opening = json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]});
        let chunks = vec![
            chunk(json!({"role": "assistant", "content": null}), Value::Null),
            chunk(opening, Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
        ];
        let completion: Value = serde_json::from_str(
            &Entry::from_chunks(Api::Chat, chunks, "p", None).unwrap().completion,
        )
        .unwrap();
        let call = &completion["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_1");
        assert_eq!(call["function"]["name"], "get");
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn only_completions_are_stored() {
        assert!(Entry::from_completion(Api::Chat, b"{\"error\":{}}", "p", None).is_none());
        assert!(Entry::from_completion(Api::Chat, b"not json", "p", None).is_none());
        assert!(Entry::from_completion(Api::Chat, br#"{"choices":[]}"#, "p", None).is_some());
    }
}
