//! `TargetService`: one attempt on one target (provider + upstream model), bounded by the
//! provider's per-attempt timeouts: `first_byte` for a stream, `total` for a whole answer.
//! Every attempt's outcome and latency go into the provider's health and the metrics; a
//! successful answer is accounted (tokens, cost, quality).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tower::Service;

use super::accounting::Accounting;
use super::call::{Answer, CacheStatus, Call, Provenance, Route};
use super::health::ProviderHealth;
use crate::config::Price;
use crate::failure::{Failure, FailureClass};
use crate::metrics::Metrics;
use crate::providers::{Provider, Reply};

#[derive(Clone)]
pub struct TargetService {
    provider: Arc<Provider>,
    model: Arc<str>,
    health: Arc<ProviderHealth>,
    metrics: Arc<Metrics>,
    price: Option<Price>,
}

impl TargetService {
    pub fn new(
        provider: Arc<Provider>,
        model: &str,
        health: Arc<ProviderHealth>,
        metrics: Arc<Metrics>,
        price: Option<Price>,
    ) -> Self {
        Self { provider, model: Arc::from(model), health, metrics, price }
    }
}

impl Service<Call> for TargetService {
    type Response = Answer;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Answer, Failure>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let provider = &this.provider;
            let (limit, which) = if call.request.stream {
                (provider.timeouts.first_byte, "first_byte")
            } else {
                (provider.timeouts.total, "total")
            };
            let started = Instant::now();
            let attempt = provider.send(&call.request, &this.model, &call.request_id);
            let result = match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => Err(Failure::new(
                    FailureClass::Timeout,
                    &provider.name,
                    format!("{which} timeout passed"),
                )),
            };
            let elapsed = started.elapsed();
            let failure_class = result.as_ref().err().map(|failure| failure.class);
            this.metrics.record_upstream(&provider.name, failure_class, elapsed);
            let fault = failure_class.is_some_and(FailureClass::is_provider_fault);
            this.health.record_attempt(!fault, elapsed);
            this.health.breaker.record_attempt(fault);
            let reply = result.map_err(|mut failure| {
                failure.upstream_time = elapsed;
                failure
            })?;
            let accounting = Accounting {
                metrics: Arc::clone(&this.metrics),
                model: call.request.model.clone(),
                provider: Arc::clone(&provider.name),
                price: this.price,
                hook: call.usage_hook.clone(),
            };
            let reply = match reply {
                Reply::Complete(body) => {
                    accounting.complete(&body);
                    Reply::Complete(body)
                }
                Reply::Stream(chunks) => Reply::Stream(accounting.stream(chunks)),
            };
            let provenance = Provenance {
                provider: Some(Arc::clone(&provider.name)),
                route: Route::Primary,
                attempts: 1,
                upstream_time: elapsed,
                cache: CacheStatus::Off,
                age: None,
                upstream_model: Some(Arc::clone(&this.model)),
            };
            Ok(Answer { reply, provenance })
        })
    }
}
