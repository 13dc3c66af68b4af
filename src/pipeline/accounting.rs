//! Tokens, cost and quality of upstream answers, from the `usage` and `finish_reason` they carry.
//!
//! Streams are accounted as they pass: the gateway always asks a streaming upstream for its
//! usage chunk (`stream_options.include_usage`) and reads it here, so streamed and non-streamed
//! answers count the same tokens and cost. (The HTTP edge removes that chunk for clients that
//! did not ask for it.) A stream that breaks before its end is not counted: its usage never
//! arrived.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::call::UsageHook;
use super::observe::{Observer, observe};
use crate::config::Price;
use crate::metrics::{Metrics, QualityFlag};
use crate::openai::chat::Usage;
use crate::providers::ChunkStream;

/// Where an answer's numbers go.
pub struct Accounting {
    pub metrics: Arc<Metrics>,
    /// The configured model alias.
    pub model: Arc<str>,
    pub provider: Arc<str>,
    /// The upstream model's price, when the pricing table has it.
    pub price: Option<Price>,
    /// Also told the usage (per-key token limits).
    pub hook: Option<UsageHook>,
}

/// What was seen of one answer.
#[derive(Debug, Default, PartialEq)]
struct Observed {
    usage: Option<(u64, u64)>,
    has_content: bool,
    truncated: bool,
    filtered: bool,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    finish_reason: Option<Finish>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<NonEmpty>,
    tool_calls: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<ChunkChoice>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    finish_reason: Option<Finish>,
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<NonEmpty>,
    tool_calls: Option<IgnoredAny>,
}

/// The finish reasons accounting tells apart; the others are all alike here.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Finish {
    Length,
    ContentFilter,
    #[serde(other)]
    Other,
}

/// Whether a message's `content` has something in it (a non-empty string or array of parts).
/// Read without copying the text: answers can be long, and every chunk of a stream passes here.
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Check;
        impl<'de> Visitor<'de> for Check {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, text: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!text.is_empty()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<NonEmpty, A::Error> {
                let mut any = false;
                while parts.next_element::<IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NonEmpty, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(NonEmpty(false))
            }
            fn visit_unit<E>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
        }
        deserializer.deserialize_any(Check)
    }
}

impl Accounting {
    /// Accounts a whole `chat.completion` body.
    pub fn complete(&self, body: &[u8]) {
        if let Some(seen) = Observed::completion(body) {
            self.record(&seen);
        }
    }

    /// Accounts a stream as it passes.
    pub fn stream(self, chunks: ChunkStream) -> ChunkStream {
        observe(chunks, StreamAccounting { accounting: self, seen: Observed::default() })
    }

    fn record(&self, seen: &Observed) {
        let provider = &self.provider;
        if let Some((prompt, completion)) = seen.usage {
            let cost = self.price.map_or(0.0, |price| price.cost(prompt, completion));
            self.metrics.record_usage(&self.model, provider, prompt, completion, cost);
            if let Some(hook) = &self.hook {
                hook(prompt, completion);
            }
        }
        let flag = if seen.filtered {
            QualityFlag::ContentFilter
        } else if seen.truncated {
            QualityFlag::Truncated
        } else if !seen.has_content {
            QualityFlag::Empty
        } else {
            QualityFlag::Ok
        };
        self.metrics.record_quality(&self.model, provider, flag);
    }
}

/// A stream's accounting: what it showed so far, recorded when it ends cleanly.
struct StreamAccounting {
    accounting: Accounting,
    seen: Observed,
}

impl Observer for StreamAccounting {
    fn chunk(&mut self, chunk: &str) {
        self.seen.chunk(chunk);
    }

    fn ended(self) {
        self.accounting.record(&self.seen);
    }
}

impl Observed {
    /// What a whole `chat.completion` body shows; none when it is not one.
    fn completion(body: &[u8]) -> Option<Self> {
        let completion = serde_json::from_slice::<Completion>(body).ok()?;
        let mut seen = Self {
            usage: completion.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            ..Self::default()
        };
        for choice in &completion.choices {
            seen.finish(choice.finish_reason);
            if let Some(message) = &choice.message {
                let text = message.content.as_ref().is_some_and(|content| content.0);
                seen.has_content |= text || message.tool_calls.is_some();
            }
        }
        Some(seen)
    }

    fn finish(&mut self, reason: Option<Finish>) {
        match reason {
            Some(Finish::Length) => self.truncated = true,
            Some(Finish::ContentFilter) => self.filtered = true,
            Some(Finish::Other) | None => {}
        }
    }

    /// Takes in one chunk; true when it is a usage-only chunk (no choices).
    fn chunk(&mut self, data: &str) -> bool {
        let Ok(chunk) = serde_json::from_str::<Chunk>(data) else { return false };
        let choices = chunk.choices.unwrap_or_default();
        for choice in &choices {
            self.finish(choice.finish_reason);
            if let Some(delta) = &choice.delta {
                self.has_content |= delta.content.as_ref().is_some_and(|content| content.0)
                    || delta.tool_calls.is_some();
            }
        }
        match chunk.usage {
            Some(usage) => {
                self.usage = Some((usage.prompt_tokens, usage.completion_tokens));
                choices.is_empty()
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_content_and_finish_reasons_from_a_completion() {
        let seen = |choice: &str| {
            let body = format!(
                r#"{{"id":"x","choices":[{choice}],"usage":{{"prompt_tokens":5,"completion_tokens":3}}}}"#
            );
            Observed::completion(body.as_bytes()).unwrap()
        };
        let answered = seen(
            r#"{"message":{"role":"assistant","content":"Hi \"there\""},"finish_reason":"stop"}"#,
        );
        assert_eq!(
            answered,
            Observed { usage: Some((5, 3)), has_content: true, truncated: false, filtered: false }
        );
        assert!(!seen(r#"{"message":{"content":""},"finish_reason":"stop"}"#).has_content);
        assert!(!seen(r#"{"message":{"content":null},"finish_reason":"stop"}"#).has_content);
        assert!(!seen(r#"{"message":{"content":[]},"finish_reason":"stop"}"#).has_content);
        assert!(seen(r#"{"message":{"content":[{"type":"text","text":"a"}]}}"#).has_content);
        assert!(
            seen(r#"{"message":{"content":null,"tool_calls":[]},"finish_reason":"tool_calls"}"#)
                .has_content
        );
        assert!(seen(r#"{"message":{"content":"cut"},"finish_reason":"length"}"#).truncated);
        assert!(seen(r#"{"message":{"content":""},"finish_reason":"content_filter"}"#).filtered);
        assert!(!seen(r#"{"message":{"content":"x"},"finish_reason":"something_new"}"#).truncated);
        assert_eq!(Observed::completion(b"not json"), None);
    }

    #[test]
    fn reads_usage_content_and_finish_reasons_from_chunks() {
        let mut seen = Observed::default();
        assert!(!seen.chunk(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#));
        assert!(!seen.has_content);
        assert!(
            !seen.chunk(
                r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#
            )
        );
        assert!(!seen.chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#));
        assert!(seen.chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#
        ));
        assert_eq!(
            seen,
            Observed { usage: Some((7, 2)), has_content: true, truncated: true, filtered: false }
        );
        // vLLM-style usage chunks carry `choices: null`.
        assert!(
            Observed::default()
                .chunk(r#"{"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":1}}"#)
        );
    }
}
