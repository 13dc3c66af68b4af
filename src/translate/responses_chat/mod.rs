//! OpenAI Responses ⇄ OpenAI chat completions: a Responses request for a chat target
//! (`request`), and that target's answer back as a Response (`response`) or as Responses
//! stream events (`stream`, which also streams a whole Response again). Pure functions, no
//! I/O: the caller expands `previous_response_id` into `input` before `to_chat`, keeps the
//! Responses it served, and ends a broken stream with `response.failed`.
//!
//! What carries over, what is a hint (left out and named in `x-ballast-dropped`) and what is a
//! constraint (refused before any call) is written in `request`; the answer's shape in
//! `response`; the stream grammar, the one the SDKs' stream helpers check, in `stream`.

pub mod request;
pub mod response;
pub mod stream;

pub use super::Translated;
pub use request::{BUILT_INS, HINTS, to_chat};
pub use response::{head, new_response_id, to_response};
pub use stream::{StreamTranslation, events_of};
