//! The HTTP edge: the only module that knows axum. Handlers turn requests into `Call`s and
//! `Answer`s into responses; `server.rs` assembles them into the router.

pub mod chat;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod models;
pub mod record;
pub mod request_id;
pub mod respond;
