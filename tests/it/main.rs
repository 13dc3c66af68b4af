//! The integration tests: one crate, so that the harness in `support` compiles and links once.
//!
//! One module per behaviour area, `support` the harness they share, `properties` the proptest
//! properties. Run one area with `cargo test --test it cache::`. A test that needs a process of
//! its own (process-global state such as a tracing subscriber, environment variables or signal
//! handlers) would go in a `tests/*.rs` crate of its own; none does: the tests of the binary run
//! it as a child process (`env!("CARGO_BIN_EXE_ballast")`), the rest share nothing global.

mod support;

mod answer_checks;
mod anthropic;
mod auth_and_limits;
mod azure;
mod cache;
mod chat_completions;
mod circuit_breaker;
mod cli;
mod context_windows;
mod embeddings;
mod errors;
mod failover;
mod hedging;
mod hostile_input;
mod http_surface;
mod logging;
mod messages;
mod metrics;
mod properties;
mod reload;
mod request_bodies;
mod responses;
mod retries;
mod streaming;
mod traces;
mod upstream_connections;
mod upstream_failures;
mod warm;
mod workers;
