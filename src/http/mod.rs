//! The HTTP edge: with `error.rs` (whose `GatewayError` is an axum response), the only module that
//! knows axum. Handlers turn requests into `Call`s and `Answer`s into responses; `router.rs`
//! assembles them with the edge layers, which `server/` serves.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod cache_control;
pub mod chat;
pub mod embeddings;
pub mod extract;
pub mod handle;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod record;
pub mod request_id;
pub mod respond;
pub mod responses;
pub mod router;
pub mod sse_body;
