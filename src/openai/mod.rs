//! OpenAI chat-completions wire types: what crosses the wire, no I/O, nothing else of the crate.

pub mod chat;
pub mod error;
pub mod stream;
