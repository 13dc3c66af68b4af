//! The Messages API's own shapes: the answer, content blocks, stream events and usage.
//!
//! Only what the gateway reads is modelled, and unknown block, delta and event types are kept
//! as a catch-all variant, as Anthropic's versioning policy asks of clients. Translations in
//! either direction use these types; none of them knows OpenAI's shapes.

use serde::Deserialize;
use serde_json::Value;

/// The image types Anthropic accepts in base64 sources.
pub(super) const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

pub(super) use crate::anthropic::Usage as MessagesUsage;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
