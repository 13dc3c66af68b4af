//! Translations between client APIs, for targets that speak another API than the client
//! (SPEC §4 "Dialects"). Pure functions from one wire shape to another; no I/O.
//!
//! `messages_chat`: Anthropic Messages requests for chat-completions targets. `responses_chat`:
//! OpenAI Responses requests for chat-completions targets (the mock, OpenAI-compatible servers,
//! and Anthropic through its chat translation). (Chat requests for Anthropic targets are
//! translated in `providers::anthropic`.) Both are called by `dialect` (the request, once per
//! request) and `providers::translated` (the answer, per attempt).

pub mod messages_chat;
pub mod responses_chat;

/// A translated request: the chat body, and the names of what was left out (the answer's
/// `x-ballast-dropped`).
#[derive(Debug)]
pub struct Translated {
    pub body: Vec<u8>,
    pub dropped: Vec<String>,
}

/// What a translation left out, each name once, in the order met.
#[derive(Default)]
pub(crate) struct Dropped(Vec<String>);

impl Dropped {
    pub(crate) fn add(&mut self, name: &str) {
        if !self.0.iter().any(|known| known == name) {
            self.0.push(name.to_owned());
        }
    }

    pub(crate) fn into_names(self) -> Vec<String> {
        self.0
    }
}
