//! Translations between client APIs, for targets that speak another API than the client
//! (SPEC §4 "Dialects"). Pure functions from one wire shape to another; no I/O.
//!
//! `messages_chat`: Anthropic Messages requests for chat-completions targets. (Chat requests for
//! Anthropic targets are translated in `providers::anthropic`.) Not yet called by a provider:
//! the `/v1/messages` route and the pipeline carrying a request of either API are the rest of
//! issue #13.

pub mod messages_chat;
