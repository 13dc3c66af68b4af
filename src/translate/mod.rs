//! Translations between client APIs, for targets that speak another API than the client
//! (SPEC §4 "Dialects"). Pure functions from one wire shape to another; no I/O.
//!
//! `messages_chat`: Anthropic Messages requests for chat-completions targets. `responses_chat`:
//! OpenAI Responses requests for chat-completions targets (the mock, OpenAI-compatible servers,
//! and Anthropic through its chat translation). (Chat requests for Anthropic targets are
//! translated in `providers::anthropic`.) `responses_chat` is not yet called by a provider:
//! the `/v1/responses` route and its pipeline variant are the rest of its issue.

pub mod messages_chat;
pub mod responses_chat;

/// A translated request: the chat body, and the names of what was left out (the answer's
/// `x-ballast-dropped`).
#[derive(Debug)]
pub struct Translated {
    pub body: Vec<u8>,
    pub dropped: Vec<String>,
}
