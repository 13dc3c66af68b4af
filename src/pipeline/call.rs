//! `Call` goes into a model's pipeline and `Answer` comes out: per-request data in typed structs.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
}

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
}

/// How the answer was obtained (SPEC §3 `x-ballast-route`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// From the first target in this request's routing order.
    Primary,
    /// From a later target, after the ones before it failed or were skipped.
    Failover,
    /// Every target failed: the model's `degraded_response`.
    Degraded,
}

impl Route {
    /// The `route` label of the request metrics.
    pub fn label(self) -> RouteLabel {
        match self {
            Self::Primary => RouteLabel::Primary,
            Self::Failover => RouteLabel::Failover,
            Self::Degraded => RouteLabel::Degraded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Failover => "failover",
            Self::Degraded => "degraded",
        }
    }
}
