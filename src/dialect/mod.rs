//! The dialect-neutral request (SPEC §4 "Dialects"): what travels down a model's pipeline,
//! whichever client API it came in on, and the few questions the stages ask of it.
//!
//! A [`Request`] is one client API's checked body (`Chat`, `Messages`). The stages never look
//! inside it: they ask for its [`Api`], whether it streams, its cache-key material and its
//! token estimate, and a target asks whether it can carry it ([`Request::refusal_for`]). An
//! answer is always in the request's own dialect: a provider that speaks another translates
//! both ways inside `providers` (see `providers::Provider::send`), so that everything above
//! the attempt (cache, accounting, degraded replies, the HTTP edge) handles one shape per API.
//! The per-API knowledge of answers lives beside each API's wire types: `openai` for chat,
//! `dialect::messages` for Messages. Adding an API is adding a variant here, its module, and
//! one match arm in each function below.

pub mod messages;

use serde_json::{Map, Value};

pub use self::messages::Messages;
use crate::failure::Refusal;
use crate::openai::chat::ChatRequest;
pub use crate::outcome::Api;

/// One client request, in the API it came in on.
pub enum Request {
    Chat(ChatRequest),
    Messages(Messages),
}

impl Request {
    pub fn api(&self) -> Api {
        match self {
            Self::Chat(_) => Api::Chat,
            Self::Messages(_) => Api::Messages,
        }
    }

    /// The model name the client sent: a configured alias.
    pub fn model(&self) -> &str {
        match self {
            Self::Chat(chat) => &chat.model,
            Self::Messages(messages) => &messages.request.model,
        }
    }

    pub fn stream(&self) -> bool {
        match self {
            Self::Chat(chat) => chat.stream,
            Self::Messages(messages) => messages.request.stream,
        }
    }

    /// The parsed body, for what needs its values (the token estimate, degraded replies).
    pub fn body(&self) -> &Map<String, Value> {
        match self {
            Self::Chat(chat) => chat.body(),
            Self::Messages(messages) => messages.request.body(),
        }
    }

    /// Why a target that natively speaks `native` cannot carry this request, if it cannot: a
    /// constraint its translation has no place for (SPEC §4). Such a target is skipped.
    pub fn refusal_for(&self, native: Api) -> Option<&Refusal> {
        match (self, native) {
            (Self::Messages(messages), Api::Chat) => messages.as_chat().err(),
            _ => None,
        }
    }

    /// Whether the request offers something only targets of its own dialect run (an Anthropic
    /// server tool): those targets go first (SPEC §4).
    pub fn prefers_native(&self) -> bool {
        match self {
            Self::Chat(_) => false,
            Self::Messages(messages) => messages.has_server_tool(),
        }
    }

    /// The names of what a translation for a `native` target leaves out (`x-ballast-dropped`).
    pub fn dropped_for(&self, native: Api) -> &[String] {
        match (self, native) {
            (Self::Messages(messages), Api::Chat) => {
                messages.as_chat().map_or(&[], |chat| &chat.dropped)
            }
            _ => &[],
        }
    }
}

impl From<ChatRequest> for Request {
    fn from(chat: ChatRequest) -> Self {
        Self::Chat(chat)
    }
}
