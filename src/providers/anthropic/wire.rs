//! The Messages API's own shapes: the answer, content blocks, stream events and usage.
//!
//! Only what the gateway reads is modelled, and unknown block, delta and event types are kept
//! as a catch-all variant, as Anthropic's versioning policy asks of clients. Translations in
//! either direction use these types; none of them knows OpenAI's shapes.

use serde::Deserialize;
use serde_json::Value;

/// The image types Anthropic accepts in base64 sources.
pub(super) const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Anthropic's token counts of a message (OpenAI's are [`crate::openai::chat::Usage`]):
/// `message_start` carries the input ones, `message_delta` the output so far. Any of them may
/// be absent.
#[derive(Debug, Default, Deserialize)]
pub(super) struct MessagesUsage {
    pub(super) input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
}

/// A content block of an answer.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tools, citations...: not part of an OpenAI answer.
    #[serde(other)]
    Other,
}

/// A whole (non-streamed) answer.
#[derive(Deserialize)]
pub(super) struct Message {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) id: String,
    pub(super) model: String,
    #[serde(default)]
    pub(super) content: Vec<Block>,
    pub(super) stop_reason: Option<String>,
    #[serde(default)]
    pub(super) usage: MessagesUsage,
}

/// One event of a streamed answer.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Event {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: StopDelta,
        usage: Option<MessagesUsage>,
    },
    MessageStop,
    Error {
        error: ErrorInfo,
    },
    /// `ping`, and event types added later (Anthropic's versioning policy: ignore them).
    #[serde(other)]
    Ignored,
}

/// The message `message_start` opens, before any content.
#[derive(Deserialize)]
pub(super) struct StartedMessage {
    pub(super) id: String,
    pub(super) model: String,
    #[serde(default)]
    pub(super) usage: MessagesUsage,
}

/// What a `content_block_delta` adds to its block.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking, signatures, citations.
    #[serde(other)]
    Other,
}

/// The part of `message_delta`'s `delta` the gateway reads.
#[derive(Deserialize)]
pub(super) struct StopDelta {
    pub(super) stop_reason: Option<String>,
}

/// An `error` event's error; only its type is read.
#[derive(Deserialize)]
pub(super) struct ErrorInfo {
    #[serde(rename = "type")]
    pub(super) kind: String,
}

impl MessagesUsage {
    /// Takes every count `later` has (`message_delta` counts are cumulative).
    pub(super) fn update(&mut self, later: MessagesUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens =
            later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens =
            later.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_later_usage_replaces_only_the_counts_it_has() {
        let mut usage: MessagesUsage = serde_json::from_value(
            json!({"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5}),
        )
        .unwrap();
        usage.update(serde_json::from_value(json!({"output_tokens": 42})).unwrap());
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens),
            (Some(25), Some(42), Some(5))
        );
        assert_eq!(usage.cache_creation_input_tokens, None);
    }

    #[test]
    fn unknown_blocks_deltas_and_events_are_read_as_their_catch_all() {
        let block: Block =
            serde_json::from_value(json!({"type": "thinking", "thinking": "hmm"})).unwrap();
        assert!(matches!(block, Block::Other));
        let delta: BlockDelta =
            serde_json::from_value(json!({"type": "signature_delta", "signature": "s"})).unwrap();
        assert!(matches!(delta, BlockDelta::Other));
        for event in [json!({"type": "ping"}), json!({"type": "some_future_event", "payload": 1})] {
            let event: Event = serde_json::from_value(event).unwrap();
            assert!(matches!(event, Event::Ignored));
        }
    }
}
