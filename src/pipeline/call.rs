//! `Call` goes into a model's pipeline and `Answer` comes out: per-request data in typed structs.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cache::control::Directives;
use crate::metrics::RouteLabel;
use crate::openai::chat::ChatRequest;
use crate::providers::Reply;

/// One client request on its way through the pipeline.
#[derive(Clone)]
pub struct Call {
    pub request: Arc<ChatRequest>,
    /// Sent upstream as `x-request-id` for correlation.
    pub request_id: Arc<str>,
    /// Arrival + `request_timeout`: nothing in the pipeline runs past it.
    pub deadline: Instant,
    /// The request's `Cache-Control` directives.
    pub cache: Directives,
    /// The cache space: the auth key's name, or "" when keys share one.
    pub scope: Arc<str>,
    /// Told the prompt and completion tokens an upstream reported (for per-key token limits).
    pub usage_hook: Option<UsageHook>,
}

pub type UsageHook = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A successful answer and where it came from.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub provenance: Provenance,
}

/// What the `x-ballast-*` headers report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The configured name of the provider that produced the answer; none for a degraded reply.
    pub provider: Option<Arc<str>>,
    pub route: Route,
    /// Upstream attempts made for this request.
    pub attempts: u32,
    /// Time spent on upstream attempts and backoff, for the gateway-overhead metric.
    pub upstream_time: Duration,
    /// What the cache did (`x-ballast-cache`).
    pub cache: CacheStatus,
    /// How old a cached answer is (`Age`); none for a fresh upstream answer.
    pub age: Option<Duration>,
    /// The model name the answer was asked for upstream (for pricing).
    pub upstream_model: Option<Arc<str>>,
}

/// SPEC §3 `x-ballast-cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// A fresh entry answered.
    Hit,
    /// No fresh entry: the upstream answered (and the answer was stored).
    Miss,
    /// Every target failed; an entry within `stale_ttl` answered.
    Stale,
    /// The request's `Cache-Control` skipped the cache.
    Bypass,
    /// No cache for this model (`cache: false` or `backend: none`).
    Off,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
            Self::Off => "off",
        }
    }
}

/// How the answer was obtained (SPEC §3 `x-ballast-route`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A fresh cache entry.
    Cache,
    /// From the first target in this request's routing order.
    Primary,
    /// From a later target, after the ones before it failed or were skipped.
    Failover,
    /// Every target failed: a stale cache entry.
    Stale,
    /// Every target failed and nothing stale: the model's `degraded_response`.
    Degraded,
}

impl Route {
    /// The `route` label of the request metrics.
    pub fn label(self) -> RouteLabel {
        match self {
            Self::Cache => RouteLabel::Cache,
            Self::Primary => RouteLabel::Primary,
            Self::Failover => RouteLabel::Failover,
            Self::Stale => RouteLabel::Stale,
            Self::Degraded => RouteLabel::Degraded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Primary => "primary",
            Self::Failover => "failover",
            Self::Stale => "stale",
            Self::Degraded => "degraded",
        }
    }
}
