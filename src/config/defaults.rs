//! Every default value of the config file, in one place (SPEC §2 and docs/configuration.md).
//!
//! Validation takes a default from here whenever a key is absent, and falls back to the same
//! value when a key is present but wrong (the file is refused then, so the value only keeps the
//! rest of the check going). The test `every_default_matches_the_documented_one` spells each value
//! out again, so a change here that the documentation does not follow fails a test.

/// `server`.
pub mod server {
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    use std::time::Duration;

    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
    /// 10 MiB.
    pub const MAX_BODY_SIZE: u64 = 10 << 20;
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
    /// 512 MiB: fifty bodies of the largest size, thousands of ordinary ones.
    pub const MAX_BODY_BYTES_IN_FLIGHT: u64 = 512 << 20;
    /// Client connections held at once, over every worker; beyond, new ones wait in the backlog.
    pub const MAX_CONNECTIONS: usize = 10_000;

    /// One serving thread per CPU the process may use; a function because it is read at load.
    pub fn workers() -> usize {
        crate::workers::default_count()
    }
}

/// The settings every provider kind shares. `max_concurrency` has no default: no limit.
pub mod provider {
    use std::time::Duration;

    use crate::config::{BreakerPolicy, RetryPolicy, Timeouts};

    pub const TIMEOUTS: Timeouts = Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(30),
        idle: Duration::from_secs(30),
        total: Duration::from_secs(120),
    };
    pub const RETRY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(8),
    };
    pub const BREAKER: BreakerPolicy =
        BreakerPolicy { consecutive_failures: 5, open_for: Duration::from_secs(30) };
}

/// `kind: azure`.
pub mod azure {
    pub const API_VERSION: &str = "2024-10-21";
}

/// `kind: anthropic`.
pub mod anthropic {
    /// Anthropic requires `max_tokens`; this is sent when the request names none.
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;
}

/// `kind: mock`.
pub mod mock {
    use std::time::Duration;

    use http::StatusCode;

    pub const LATENCY: Duration = Duration::ZERO;
    pub const CHUNK_INTERVAL: Duration = Duration::ZERO;
    pub const FAILURE_RATE: f64 = 0.0;
    pub const FAILURE_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
    /// With `bad_answer` set, every answer is bad unless `bad_answer_rate` says otherwise.
    pub const BAD_ANSWER_RATE: f64 = 1.0;
}

/// `models`. `degraded_response` has no default: none.
pub mod model {
    use crate::config::Routing;

    pub const ROUTING: Routing = Routing::Ordered;
    /// A target's `weight` under `routing: weighted`.
    pub const WEIGHT: f64 = 1.0;
    /// A model's answers are cached when the cache is on.
    pub const CACHE: bool = true;
    /// `hedge.max_share` when not given: a tenth of the model's requests.
    pub const HEDGE_MAX_SHARE: f64 = 0.1;
    /// `hedge.delay: auto` while the provider has too few recent samples to say.
    pub const HEDGE_DELAY_UNKNOWN: std::time::Duration = std::time::Duration::from_millis(500);
    /// `hedge.delay: auto` is never shorter.
    pub const HEDGE_DELAY_MIN: std::time::Duration = std::time::Duration::from_millis(50);
}

/// Not defaults but the longest durations (and the cache's smallest and largest size) validation
/// accepts, kept beside them so that both are written once (docs/configuration.md, "Durations"). Without a bound, a config that
/// `check` accepts could crash `serve`: tokio's `Instant + Duration` panics on overflow (a
/// deadline or a timer that far ahead), moka refuses a TTL above 1000 years, and the cache adds
/// `ttl + stale_ttl`.
pub mod bounds {
    use std::time::Duration;

    /// Every timeout, delay, latency and interval: a day is far beyond any sensible value.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3_600);
    /// The cache's `ttl` and `stale_ttl`, each.
    pub const MAX_CACHE_TTL: Duration = Duration::from_secs(365 * 24 * 3_600);
    /// The least `cache.max_bytes`: one answer of the largest size stored (`MAX_ENTRY_BYTES`).
    pub const MIN_CACHE_BYTES: u64 = 1 << 20;
    /// The most `cache.max_bytes`: 1 TiB of answers in one process is a typo, not a machine.
    pub const MAX_CACHE_BYTES: u64 = 1 << 40;
}

/// `cache`.
pub mod cache {
    use std::time::Duration;

    /// The name of the backend, as `backend:` writes it.
    pub const BACKEND: &str = "memory";
    pub const TTL: Duration = Duration::from_secs(24 * 3_600);
    pub const STALE_TTL: Duration = Duration::from_secs(7 * 24 * 3_600);
    pub const MAX_ENTRIES: u64 = 100_000;
    /// 256 MiB.
    pub const MAX_BYTES: u64 = 256 << 20;
    pub const SHARED_ACROSS_KEYS: bool = false;
}

/// `telemetry`.
pub mod telemetry {
    /// Spans' `service.name` (SPEC §2).
    pub const SERVICE_NAME: &str = "ballast";
}
