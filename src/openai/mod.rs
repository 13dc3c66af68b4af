//! OpenAI wire types (chat completions, embeddings): what crosses the wire, no I/O, nothing
//! else of the crate.

pub mod chat;
pub mod chunk;
pub mod embeddings;
pub mod error;
pub mod responses;
pub mod stream;
