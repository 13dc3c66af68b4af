//! Anthropic's Messages API as clients speak it to the gateway (`POST /v1/messages`): the
//! request as the gateway reads it and the error body it answers with. Wire types only, no I/O;
//! depends on nothing else in the crate but `json/` (and `count_tokens` on the `o200k_base`
//! tokenizer). (The upstream side, where the gateway is
//! the client of an Anthropic deployment, is `providers::anthropic`.)

pub mod count_tokens;
pub mod error;
pub mod request;
pub mod usage;

pub use error::ErrorBody;
pub use request::MessagesRequest;
pub use usage::Usage;
