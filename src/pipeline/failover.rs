//! `Failover`: walks a model's targets in routing order until one answers. A target
//! whose circuit is open (or whose `max_concurrency` is reached) fails at once, without a call,
//! so a dead provider costs no waiting. Client errors and the deadline stop the walk: the same
//! request would fail the same way everywhere.

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use super::budget::RetryBudget;
use super::call::{Answer, Call};
use super::health::ProviderHealth;
use super::routing::{self, Candidate};
use crate::config::Routing;
use crate::failure::{Failure, FailureClass};
use crate::metrics::Metrics;
use crate::outcome::Route;
use crate::providers::Provider;

/// One target's whole stack: breaker → bulkhead → retries → attempt.
pub type TargetStack = BoxCloneSyncService<Call, Answer, Failure>;

/// A target as the walk sees it: its stack, and what routing orders it by.
pub struct Target {
    pub stack: TargetStack,
    pub health: Arc<ProviderHealth>,
    pub weight: f64,
    /// Its provider, asked how it carries each request's API (natively, translated, not).
    pub provider: Arc<Provider>,
}

impl Candidate for Target {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn latency_ms(&self) -> f64 {
        self.health.latency_ms()
    }
}

/// A model's targets and how to walk them.
pub struct Failover {
    model: Arc<str>,
    routing: Routing,
    targets: Vec<Target>,
    budget: Arc<RetryBudget>,
    metrics: Arc<Metrics>,
}

impl Failover {
    pub fn new(
        model: Arc<str>,
        routing: Routing,
        targets: Vec<Target>,
        budget: Arc<RetryBudget>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { model, routing, targets, budget, metrics }
    }

    /// Walks the targets in routing order for `call`, skipping those that cannot carry it (an
    /// API their provider does not serve, or a constraint their translation has no place for:
    /// SPEC §4); a request that no target can carry is refused before any call. The request
    /// ranks the rest (`Request::preference`: the provider that stored a continued
    /// conversation, then the targets that run a tool only its own dialect runs); the routing
    /// order holds among equals.
    pub async fn run(self: Arc<Self>, call: Call) -> Result<Answer, Failure> {
        self.budget.deposit();
        let mut order = routing::order(self.routing, &self.targets, &mut routing::random_unit());
        let api = call.request.api();
        let carriage = |index: usize| self.targets[index].provider.carries(api);
        let mut refusal = None;
        order.retain(|&index| match call.request.refusal_for(carriage(index)) {
            Some(refused) => {
                refusal.get_or_insert_with(|| refused.into_owned());
                false
            }
            None => true,
        });
        if let (true, Some(refusal)) = (order.is_empty(), refusal) {
            return Err(Failure::refused(&Arc::from(""), refusal));
        }
        let rank = |index: usize| {
            call.request.preference(&self.targets[index].health.name, carriage(index))
        };
        // Sorted only when the ranks differ (most requests rank every target alike), stably: the
        // routing order holds among equals.
        if let Some((&first, rest)) = order.split_first()
            && rest.iter().any(|&index| rank(index) != rank(first))
        {
            order.sort_by_cached_key(|&index| rank(index));
        }
        let mut attempts = 0;
        let mut upstream_time = Duration::ZERO;
        let mut failures = Vec::new();
        for (position, &index) in order.iter().enumerate() {
            let target = &self.targets[index];
            match target.stack.clone().oneshot(call.clone()).await {
                Ok(mut answer) => {
                    answer.provenance.attempts += attempts;
                    answer.provenance.upstream_time += upstream_time;
                    if position > 0 {
                        answer.provenance.route = Route::Failover;
                    }
                    return Ok(answer);
                }
                Err(mut failure) => {
                    attempts += failure.attempts;
                    upstream_time += failure.upstream_time;
                    if !failure.class.fails_over() {
                        failure.attempts = attempts;
                        failure.upstream_time = upstream_time;
                        return Err(failure);
                    }
                    if let Some(next) = order.get(position + 1) {
                        let to = &self.targets[*next].health.name;
                        self.metrics.record_failover(&self.model, &failure.provider, to);
                        tracing::info!(
                            model = %self.model,
                            from = %failure.provider,
                            to = %to,
                            failure = failure.class.as_str(),
                            "failing over"
                        );
                    }
                    failures.push(failure);
                }
            }
        }
        let mut failure = every_target_failed(failures, attempts);
        failure.upstream_time = upstream_time;
        Err(failure)
    }
}

/// The failure that stands for all of them: the last real one (a skipped target says less than
/// a failed call), with the total attempts, and with `retry_after` set to the time until the
/// first open circuit admits a trial when any circuit was open.
fn every_target_failed(failures: Vec<Failure>, attempts: u32) -> Failure {
    let is_skip =
        |f: &Failure| matches!(f.class, FailureClass::CircuitOpen | FailureClass::BulkheadFull);
    let reopens = failures
        .iter()
        .filter(|f| f.class == FailureClass::CircuitOpen)
        .filter_map(|f| f.retry_after)
        .min();
    let chosen =
        failures.iter().rposition(|f| !is_skip(f)).unwrap_or(failures.len().saturating_sub(1));
    let mut failure = failures.into_iter().nth(chosen).unwrap_or_else(|| {
        Failure::new(FailureClass::ServerError, &Arc::from(""), "the model has no targets")
    });
    failure.attempts = attempts;
    failure.retry_after = reopens;
    failure
}
