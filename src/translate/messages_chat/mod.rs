//! Anthropic Messages ⇄ OpenAI chat completions.

pub mod request;

pub use request::{Translated, to_chat};
