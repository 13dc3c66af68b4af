//! Tokens, cost and quality of upstream answers, from the `usage` and `finish_reason` they carry.
//!
//! Streams are accounted as they pass: the gateway always asks a streaming upstream for its
//! usage chunk (`stream_options.include_usage`) and reads it here, so streamed and non-streamed
//! answers count the same tokens and cost. (The HTTP edge removes that chunk for clients that
//! did not ask for it.) A stream that breaks before its end is not counted: its usage never
//! arrived.

use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::call::UsageHook;
use crate::config::Price;
use crate::metrics::{Metrics, QualityFlag};
use crate::providers::ChunkStream;

/// Where an answer's numbers go.
pub struct Accounting {
    pub metrics: Arc<Metrics>,
    /// The model name the client sent.
    pub model: String,
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
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    finish_reason: Option<String>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<Value>,
    tool_calls: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<ChunkChoice>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    finish_reason: Option<String>,
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    tool_calls: Option<IgnoredAny>,
}

impl Accounting {
    /// Accounts a whole `chat.completion` body.
    pub fn complete(&self, body: &[u8]) {
        let Ok(completion) = serde_json::from_slice::<Completion>(body) else { return };
        let mut seen = Observed {
            usage: completion.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            ..Observed::default()
        };
        for choice in &completion.choices {
            seen.finish(choice.finish_reason.as_deref());
            if let Some(message) = &choice.message {
                let text = match &message.content {
                    Some(Value::String(text)) => !text.is_empty(),
                    Some(Value::Array(parts)) => !parts.is_empty(),
                    _ => false,
                };
                seen.has_content |= text || message.tool_calls.is_some();
            }
        }
        self.record(&seen);
    }

    /// Accounts a stream as it passes.
    pub fn stream(self, chunks: ChunkStream) -> ChunkStream {
        let state = Some((chunks, Observed::default(), self));
        stream::unfold(state, move |state| async move {
            let (mut chunks, mut seen, accounting) = state?;
            match chunks.next().await {
                Some(Ok(data)) => {
                    seen.chunk(&data);
                    Some((Ok(data), Some((chunks, seen, accounting))))
                }
                Some(Err(failure)) => Some((Err(failure), None)),
                None => {
                    accounting.record(&seen);
                    None
                }
            }
        })
        .boxed()
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

impl Observed {
    fn finish(&mut self, reason: Option<&str>) {
        match reason {
            Some("length") => self.truncated = true,
            Some("content_filter") => self.filtered = true,
            _ => {}
        }
    }

    /// Takes in one chunk; true when it is a usage-only chunk (no choices).
    fn chunk(&mut self, data: &str) -> bool {
        let Ok(chunk) = serde_json::from_str::<Chunk>(data) else { return false };
        let choices = chunk.choices.unwrap_or_default();
        for choice in &choices {
            self.finish(choice.finish_reason.as_deref());
            if let Some(delta) = &choice.delta {
                self.has_content |= delta.content.as_deref().is_some_and(|c| !c.is_empty())
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
