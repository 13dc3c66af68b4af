//! A model's pipeline: what happens to a `Call` between the HTTP handler and the upstreams.
//! No HTTP types here; failures are classified `Failure`s, answers carry their `Provenance`.

mod accounting;
mod breaker;
mod budget;
mod bulkhead;
mod call;
mod deadline;
mod degraded;
mod failover;
mod health;
mod retry;
mod routing;
mod target;
mod window;

use std::collections::HashMap;
use std::sync::Arc;

use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

pub use breaker::CircuitState;
pub use budget::RetryBudget;
pub use call::{Answer, CacheStatus, Call, Provenance, Route, UsageHook};
pub use health::ProviderHealth;

use breaker::BreakerLayer;
use bulkhead::BulkheadLayer;
use deadline::DeadlineLayer;
use degraded::DegradedLayer;
use failover::{FailoverService, Target, TargetStack};
use retry::RetryLayer;
use target::TargetService;

use crate::cache::{Cache, CacheLayer};
use crate::config::{ModelConfig, Price, ProviderConfig, RetryPolicy};
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::providers::Provider;

/// A configured provider with what the gateway tracks about it; shared by every model.
pub struct Upstream {
    pub provider: Arc<Provider>,
    pub health: Arc<ProviderHealth>,
    retry: RetryPolicy,
}

impl Upstream {
    /// `workers`: how many connection pools (one per serving thread, see `crate::workers`).
    pub fn from_config(config: &ProviderConfig, workers: usize) -> Result<Self, String> {
        Ok(Self {
            provider: Arc::new(Provider::from_config(config, workers)?),
            health: Arc::new(ProviderHealth::new(config)),
            retry: config.retry,
        })
    }
}

/// What every pipeline shares: one retry budget, the metrics, the pricing table.
pub struct Shared {
    pub budget: Arc<RetryBudget>,
    pub metrics: Arc<Metrics>,
    /// By upstream model name.
    pub pricing: HashMap<String, Price>,
    /// None for `cache.backend: none`.
    pub cache: Option<Arc<Cache>>,
}

/// The built stack of one model, cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    service: BoxCloneSyncService<Call, Answer, Failure>,
}

impl Pipeline {
    /// Builds the stack for `model`. The order, outermost first:
    ///
    /// 1. `DeadlineLayer`: `request_timeout` bounds everything below; when it passes the call
    ///    fails with `Deadline` (504). Outermost, so that nothing below can outlive it.
    /// 2. `DegradedLayer` (only with a `degraded_response`): when every target failed with an
    ///    upstream-class failure and nothing stale was there, answer with that text.
    /// 3. `CacheLayer` (only when the cache is on for the model): a fresh entry answers at once;
    ///    identical concurrent misses share one call; a complete answer is stored; when every
    ///    target failed, an entry within `stale_ttl` answers. Inside 2, so stale comes first.
    /// 4. `FailoverService`: the targets in routing order until one answers; counts the request
    ///    for the retry budget.
    /// 5. Per target, outermost first:
    ///    a. `BreakerLayer`: skip at once while the provider's circuit is open; half-open admits
    ///    one trial. Outside the retries, so that a skipped target costs no waiting.
    ///    b. `BulkheadLayer` (only with `max_concurrency`): skip at once when the provider is full.
    ///    c. `RetryLayer`: retries on this provider (backoff, Retry-After, budget, deadline).
    ///    d. `TargetService`: one attempt under the provider's `first_byte` (streams) or `total`
    ///    timeout, then `providers::Provider::send`. A stream is returned once its first chunk
    ///    arrived, so everything above can still retry or fail over before the client sees it.
    pub fn build(
        model: &ModelConfig,
        upstreams: &HashMap<String, Upstream>,
        shared: &Shared,
    ) -> Option<Self> {
        let mut targets = Vec::with_capacity(model.targets.len());
        for target in &model.targets {
            let upstream = upstreams.get(&target.provider.name)?;
            let stack = target_stack(upstream, &target.model, shared);
            targets.push(Target {
                stack,
                health: Arc::clone(&upstream.health),
                weight: target.weight,
            });
        }
        let budget = Arc::clone(&shared.budget);
        let metrics = Arc::clone(&shared.metrics);
        let failover = FailoverService::new(&model.name, model.routing, targets, budget, metrics);
        let degraded =
            model.degraded_response.as_deref().map(|text| DegradedLayer::new(&model.name, text));
        let cache = shared
            .cache
            .as_ref()
            .filter(|_| model.cache)
            .map(|cache| CacheLayer::new(Arc::clone(cache)));
        let service = ServiceBuilder::new()
            .layer(DeadlineLayer)
            .option_layer(degraded)
            .option_layer(cache)
            .service(failover);
        Some(Self { service: BoxCloneSyncService::new(service) })
    }

    pub async fn call(&self, call: Call) -> Result<Answer, Failure> {
        self.service.clone().oneshot(call).await
    }
}

fn target_stack(upstream: &Upstream, model: &str, shared: &Shared) -> TargetStack {
    let health = &upstream.health;
    let bulkhead = health
        .slots
        .as_ref()
        .map(|slots| BulkheadLayer::new(Arc::clone(&health.name), Arc::clone(slots)));
    let retry = RetryLayer::new(
        upstream.retry,
        Arc::clone(&shared.budget),
        Arc::clone(&shared.metrics),
        Arc::clone(&health.breaker),
    );
    let attempt = TargetService::new(
        Arc::clone(&upstream.provider),
        model,
        Arc::clone(health),
        Arc::clone(&shared.metrics),
        shared.pricing.get(model).copied(),
    );
    let stack = ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::clone(&health.breaker)))
        .option_layer(bulkhead)
        .layer(retry)
        .service(attempt);
    BoxCloneSyncService::new(stack)
}
