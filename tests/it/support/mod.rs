//! Test harness shared by the integration tests: gateway, fake upstreams, configs, processes.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed unwrap is a failed test"
)]

mod config;
mod gateway;
mod process;
mod raw;
mod redis;
mod reply;
mod upstream;

pub use config::{
    NO_CACHE, anthropic_config, azure_config, mixed_targets_config, openai_config, targets_config,
    two_targets_config,
};
pub use gateway::{
    TestGateway, chat_request, chat_request_with_usage, metric_sum, read_body, read_stream,
    sse_data, sse_events, streamed_text, tokens_counted,
};
pub use process::GatewayProcess;
pub use raw::{RawConnection, h2};
pub use redis::{RedisCluster, RedisServer, TestCa};
pub use reply::{Reply, StreamEnd, chunk_events, completion_body, json_fixture, sse_fixture};
pub use upstream::FakeUpstream;

/// The key test clients send; it must never reach an upstream.
pub const CLIENT_KEY: &str = "client-secret-key-123";
/// The key the gateway's config gives the fake upstream.
pub const UPSTREAM_KEY: &str = "upstream-key-456";
