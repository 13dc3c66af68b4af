//! ballast: a reverse-proxy gateway in front of LLM providers. See ARCHITECTURE.md for the map.
//!
//! Modules in reading order: the command line and start-up, the HTTP edge, the pipeline a
//! request goes through, the providers it reaches, and the types they share.

pub mod cli;
pub mod config;
pub mod fd_limit;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod warm;
pub mod workers;

pub mod auth;
pub mod error;
pub mod http;
pub mod json;
pub mod metrics;

pub mod cache;
pub mod checks;
pub mod conversations;
pub mod dialect;
pub mod failure;
pub mod outcome;
pub mod pipeline;
pub mod providers;
pub mod quiet;
pub mod rate_limit;
pub mod reload;
pub mod shared_redis;
pub mod throttle;
pub mod tokens;
pub mod translate;

pub mod anthropic;
pub mod openai;
