//! The dialect-neutral request (SPEC §4 "Dialects"): what travels down a model's pipeline,
//! whichever client API it came in on, and the few questions the stages ask of it.
//!
//! A [`Request`] is one client API's checked body (`Chat`, `Messages`, `Responses`,
//! `Embeddings`). The stages never look inside it: they ask for its [`Api`], whether it streams,
//! its cache-key material and its token estimate, and a target asks whether it can carry it
//! ([`Request::refusal_for`]) and where it ranks ([`Request::preference`]). An answer is always
//! in the request's own dialect: a provider that speaks another translates both ways inside
//! `providers` (see `providers::Provider::send`), so that everything above the attempt (cache,
//! accounting, degraded replies, the HTTP edge) handles one shape per API. The per-API knowledge
//! of answers lives beside each API's wire types: `openai` for chat and embeddings,
//! `dialect::messages` for Messages, `dialect::responses` for Responses. Adding an API is adding
//! a variant here, its module, and one match arm in each function below.

pub mod messages;
pub mod responses;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use self::messages::Messages;
pub use self::responses::Responses;
use crate::failure::Refusal;
use crate::openai::chat::ChatRequest;
use crate::openai::embeddings::EmbeddingsRequest;
pub use crate::outcome::{Api, Carriage};

/// One client request, in the API it came in on.
pub enum Request {
    Chat(ChatRequest),
    Messages(Messages),
    Responses(Responses),
    Embeddings(EmbeddingsRequest),
}

impl Request {
    pub fn api(&self) -> Api {
        match self {
            Self::Chat(_) => Api::Chat,
            Self::Messages(_) => Api::Messages,
            Self::Responses(_) => Api::Responses,
            Self::Embeddings(_) => Api::Embeddings,
        }
    }

    /// The model name the client sent: a configured alias.
    pub fn model(&self) -> &str {
        match self {
            Self::Chat(chat) => &chat.model,
            Self::Messages(messages) => &messages.request.model,
            Self::Responses(responses) => &responses.request.model,
            Self::Embeddings(embeddings) => &embeddings.model,
        }
    }

    pub fn stream(&self) -> bool {
        match self {
            Self::Chat(chat) => chat.stream,
            Self::Messages(messages) => messages.request.stream,
            Self::Responses(responses) => responses.request.stream,
            Self::Embeddings(_) => false,
        }
    }

    /// The parsed body, for what needs its values (the token estimate, degraded replies).
    pub fn body(&self) -> &Map<String, Value> {
        match self {
            Self::Chat(chat) => chat.body(),
            Self::Messages(messages) => messages.request.body(),
            Self::Responses(responses) => responses.request.body(),
            Self::Embeddings(embeddings) => embeddings.body(),
        }
    }

    /// Why a target that carries this request's API as `carriage` cannot carry this request,
    /// if it cannot: an API it does not serve, or a constraint its translation has no place for
    /// (SPEC §4). Such a target is skipped.
    pub fn refusal_for(&self, carriage: Carriage) -> Option<Cow<'_, Refusal>> {
        match (self, carriage) {
            (_, Carriage::Native) | (Self::Chat(_), _) => None,
            (_, Carriage::Not) => Some(Cow::Owned(Refusal::new(
                "model",
                format!("No target of this model serves the {} API.", self.api().as_str()),
            ))),
            (Self::Messages(messages), Carriage::Translated) => {
                messages.as_chat().err().map(Cow::Borrowed)
            }
            (Self::Responses(responses), Carriage::Translated) => {
                responses.as_chat().err().map(Cow::Borrowed)
            }
            (Self::Embeddings(_), Carriage::Translated) => None,
        }
    }

    /// Where a target, the configured provider `provider` carrying this request as `carriage`,
    /// ranks for it: lower first, the routing order holding among equals (SPEC §4). A
    /// continued conversation goes first to the provider that stored it; a request offering a
    /// tool only its own dialect runs (an Anthropic server tool, an OpenAI built-in tool) to
    /// the targets that run it. Hints never reorder.
    pub fn preference(&self, provider: &str, carriage: Carriage) -> (bool, bool) {
        let translated = carriage != Carriage::Native;
        match self {
            Self::Chat(_) | Self::Embeddings(_) => (false, false),
            Self::Messages(messages) => (false, translated && messages.has_server_tool()),
            Self::Responses(responses) => {
                (!responses.continues_at(provider), translated && responses.has_builtin_tool())
            }
        }
    }

    /// The names of what the request sent to a target, the configured provider `provider`
    /// carrying it as `carriage`, leaves out (`x-ballast-dropped`): a translation's hints, or a
    /// continued conversation's reasoning items, which only the provider that wrote them reads.
    pub fn dropped_for(&self, provider: &str, carriage: Carriage) -> &[String] {
        match (self, carriage) {
            (Self::Messages(messages), Carriage::Translated) => {
                messages.as_chat().map_or(&[], |chat| &chat.dropped)
            }
            (Self::Responses(responses), Carriage::Translated) => {
                responses.as_chat().map_or(&[], |chat| &chat.dropped)
            }
            (Self::Responses(responses), Carriage::Native) => responses.dropped_at(provider),
            _ => &[],
        }
    }
}

impl From<ChatRequest> for Request {
    fn from(chat: ChatRequest) -> Self {
        Self::Chat(chat)
    }
}

#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// Whether a streamed event of `api` carries content (SPEC §4 "Streams never lie"): the test a
/// stream is held on until it passes. Embeddings never stream.
pub fn carries_content(api: Api) -> fn(&str) -> bool {
    match api {
        Api::Chat | Api::Embeddings => crate::openai::stream::carries_content,
        Api::Messages => messages::carries_content,
        Api::Responses => responses::carries_content,
    }
}

/// A stream event's `type`: Anthropic and the Responses API name every event by it, and the
/// SDKs dispatch on it. `None` when the data has no `type`.
pub fn event_type(data: &str) -> Option<Cow<'_, str>> {
    // The usual case without a parse: `type` first, as the providers and this gateway write it.
    if let Some(rest) = data.strip_prefix("{\"type\":\"")
        && let Some(end) = rest.find(['"', '\\'])
        && rest.as_bytes()[end] == b'"'
    {
        return Some(Cow::Borrowed(&rest[..end]));
    }
    serde_json::from_str::<Typed<'_>>(data).ok().map(|typed| typed.kind)
}
