//! A model's pipeline: what happens to a `Call` between the HTTP handler and the upstreams.
//! No HTTP types here; failures are classified `Failure`s, answers carry their `Provenance`.

mod accounting;
mod attempt;
mod breaker;
mod budget;
mod bulkhead;
mod cache;
mod call;
mod deadline;
mod degraded;
mod failover;
mod health;
mod hedge;
mod observe;
mod retry;
mod routing;
mod stage;
mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

pub use breaker::Forced;
pub use budget::RetryBudget;
pub use call::{Answer, CachePolicy, Call, Provenance, Spent, UsageHook};
pub use health::ProviderHealth;
pub use observe::{Observer, observe};

use attempt::Attempt;
use breaker::Breaker;
use bulkhead::Bulkhead;
use cache::Caching;
use deadline::Deadline;
use degraded::Degraded;
use failover::{Failover, Target, TargetStack};
use hedge::Hedging;
use retry::Retry;
use stage::StageLayer;

use crate::cache::Cache;
use crate::checks::AnswerChecks;
use crate::config::{ModelConfig, Price, ProviderConfig, RetryPolicy};
use crate::dialect::{Api, Carriage, Messages};
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::providers::Provider;

/// A configured provider with what the gateway tracks about it; shared by every model (and by
/// the next config generation while the provider is unchanged).
#[derive(Clone)]
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

/// What every pipeline shares: one retry budget, the metrics, the cache.
pub struct Shared {
    pub budget: Arc<RetryBudget>,
    pub metrics: Arc<Metrics>,
    /// None for `cache.backend: none`.
    pub cache: Option<Arc<Cache>>,
}

/// The built stack of one model, cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    model: Arc<str>,
    service: BoxCloneSyncService<Call, Answer, Failure>,
    /// The targets that count Messages tokens themselves (Anthropic), in configured order.
    counters: Arc<[Counter]>,
    metrics: Arc<Metrics>,
    /// Some target declares a `context_window`: requests need their prompt counted.
    context_windows: bool,
}

/// A target asked for `count_tokens`.
struct Counter {
    provider: Arc<Provider>,
    model: String,
}

impl Pipeline {
    /// Builds the stack for `model`; `pricing` is the config's table, by upstream model. The
    /// order, outermost first:
    ///
    /// 1. `Deadline`: `request_timeout` bounds everything below; when it passes the call fails
    ///    with `Deadline` (504). Outermost, so that nothing below can outlive it.
    /// 2. `Degraded` (only with a `degraded_response`): when every target failed with an
    ///    upstream-class failure and nothing stale was there, answer with that text.
    /// 3. `Caching` (only when the cache is on for the model): a fresh entry answers at once;
    ///    identical concurrent misses share one call; a complete answer is stored; when every
    ///    target failed, an entry within `stale_ttl` answers. Inside 2, so stale comes first.
    /// 4. `Failover`: the targets in routing order until one answers; counts the request for the
    ///    retry budget.
    /// 5. Per target, outermost first:
    ///    a. `Breaker`: skip at once while the provider's circuit is open; half-open admits one
    ///    trial. Outside the retries, so that a skipped target costs no waiting.
    ///    b. `Bulkhead` (only with `max_concurrency`): skip at once when the provider is full.
    ///    c. `Retry`: retries on this provider (backoff, Retry-After, budget, deadline).
    ///    d. `Attempt`: one attempt under the provider's `first_byte` (streams) or `total`
    ///    timeout, then `providers::Provider::send`. A stream is returned once its first content
    ///    arrived, so everything above can still retry or fail over before the client sees it.
    ///
    /// 1–3 and 5a–c are `Stage`s (`stage.rs` says how they are written); 4 and 5d, the two ends
    /// of a stack, are async functions behind `service_fn`.
    pub fn build(
        model: &ModelConfig,
        upstreams: &HashMap<String, Upstream>,
        shared: &Shared,
        pricing: &HashMap<String, Price>,
    ) -> Option<Self> {
        let name: Arc<str> = Arc::from(model.name.as_str());
        let mut targets = Vec::with_capacity(model.targets.len());
        let mut counters = Vec::new();
        let checks = AnswerChecks::new(&model.answer_checks);
        for target in &model.targets {
            let upstream = upstreams.get(&target.provider.name)?;
            if upstream.provider.carries(Api::Messages) == Carriage::Native {
                let provider = Arc::clone(&upstream.provider);
                counters.push(Counter { provider, model: target.model.clone() });
            }
            let price = pricing.get(&target.model).copied();
            targets.push(Target {
                stack: target_stack(upstream, &target.model, price, checks, shared),
                context_window: target.context_window,
                health: Arc::clone(&upstream.health),
                weight: target.weight,
                provider: Arc::clone(&upstream.provider),
            });
        }
        let failover = Arc::new(Failover::new(
            Arc::clone(&name),
            model.routing,
            targets,
            Arc::clone(&shared.budget),
            Arc::clone(&shared.metrics),
            model.hedge.map(Hedging::new),
        ));
        let degraded = model
            .degraded_response
            .as_deref()
            .map(|text| StageLayer::new(Degraded::new(Arc::clone(&name), text)));
        let caching = shared.cache.as_ref().filter(|_| model.cache).map(|cache| {
            let patience = follower_patience(model);
            StageLayer::new(Caching::new(Arc::clone(cache), Arc::clone(&shared.metrics), patience))
        });
        let service = ServiceBuilder::new()
            .layer(StageLayer::new(Deadline))
            .option_layer(degraded)
            .option_layer(caching)
            .service_fn(move |call| Arc::clone(&failover).run(call));
        Some(Self {
            model: name,
            service: BoxCloneSyncService::new(service),
            counters: counters.into(),
            metrics: Arc::clone(&shared.metrics),
            context_windows: model.targets.iter().any(|target| target.context_window.is_some()),
        })
    }

    /// The configured alias this pipeline serves: the `model` of its `Call`s and metrics.
    pub fn model(&self) -> &Arc<str> {
        &self.model
    }

    /// Whether a target of this model declares a `context_window` (a `Call` then needs its
    /// `prompt_tokens`).
    pub fn has_context_windows(&self) -> bool {
        self.context_windows
    }

    pub async fn call(&self, call: Call) -> Result<Answer, Failure> {
        self.service.clone().oneshot(call).await
    }

    /// `count_tokens` for `messages` from the model's Anthropic targets, in configured order,
    /// each attempt bounded by its provider's `total`: the first answer and who gave it; none
    /// when the model has no such target or none answered (then the gateway estimates).
    pub async fn count_tokens(
        &self,
        messages: &Messages,
        request_id: &str,
    ) -> Option<(bytes::Bytes, Arc<str>)> {
        for counter in self.counters.iter() {
            let provider = &counter.provider;
            let started = tokio::time::Instant::now();
            let attempt = provider.count_tokens(messages, &counter.model, request_id);
            let result = match tokio::time::timeout(provider.timeouts.total, attempt).await {
                Ok(Some(result)) => result,
                Ok(None) => continue,
                Err(_) => Err(Failure::new(
                    crate::failure::FailureClass::Timeout,
                    &provider.name,
                    "total timeout passed",
                )),
            };
            let class = result.as_ref().err().map(|failure| failure.class);
            self.metrics.record_upstream(&provider.name, class, started.elapsed());
            match result {
                Ok(body) => return Some((body, Arc::clone(&provider.name))),
                Err(failure) => tracing::warn!(failure = %failure, "count_tokens failed upstream"),
            }
        }
        None
    }
}

/// How long a single-flight follower waits for its leader before it calls the upstream itself:
/// the longest `first_byte` of the model's targets, the longest the gateway ever waits for an
/// upstream to start answering. A follower's first byte is its leader's stored answer, so it
/// is given as long as the leader's attempt could take to start, and no longer (without a
/// bound it waited until `request_timeout` behind a slow or stalled stream). See docs/cache.md.
fn follower_patience(model: &ModelConfig) -> Duration {
    let first_bytes = model.targets.iter().map(|target| target.provider.timeouts.first_byte);
    first_bytes.max().unwrap_or(crate::config::defaults::provider::TIMEOUTS.first_byte)
}

fn target_stack(
    upstream: &Upstream,
    model: &str,
    price: Option<Price>,
    checks: AnswerChecks,
    shared: &Shared,
) -> TargetStack {
    let health = &upstream.health;
    let bulkhead = health
        .slots
        .as_ref()
        .map(|slots| StageLayer::new(Bulkhead::new(Arc::clone(&health.name), Arc::clone(slots))));
    let retry = Retry::new(
        upstream.retry,
        Arc::clone(&shared.budget),
        Arc::clone(&shared.metrics),
        Arc::clone(&health.breaker),
    );
    let attempt = Arc::new(Attempt::new(
        Arc::clone(&upstream.provider),
        model,
        Arc::clone(health),
        Arc::clone(&shared.metrics),
        price,
        checks,
    ));
    let stack = ServiceBuilder::new()
        .layer(StageLayer::<Breaker>::shared(Arc::clone(&health.breaker)))
        .option_layer(bulkhead)
        .layer(StageLayer::new(retry))
        .service_fn(move |call| Arc::clone(&attempt).run(call));
    BoxCloneSyncService::new(stack)
}
