//! Anthropic Messages ⇄ OpenAI chat completions: a Messages request for a chat target
//! (`request`), and that target's answer back as a Message (`response`) or as Messages stream
//! events (`stream`).

pub mod request;
pub mod response;
pub mod stream;

pub use super::Translated;
pub use request::to_chat;
pub use response::to_message;
