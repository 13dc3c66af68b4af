//! `TargetService`: one attempt on one target (provider + upstream model), bounded by the
//! provider's per-attempt timeouts: `first_byte` for a stream, `total` for a whole answer.
//! Every attempt's outcome and latency go into the provider's health.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tower::Service;

use super::call::{Answer, Call, Provenance, Route};
use super::health::ProviderHealth;
use crate::failure::{Failure, FailureClass};
use crate::providers::Provider;

#[derive(Clone)]
pub struct TargetService {
    provider: Arc<Provider>,
    model: Arc<str>,
    health: Arc<ProviderHealth>,
}

impl TargetService {
    pub fn new(provider: Arc<Provider>, model: &str, health: Arc<ProviderHealth>) -> Self {
        Self { provider, model: Arc::from(model), health }
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
        let provider = Arc::clone(&self.provider);
        let model = Arc::clone(&self.model);
        let health = Arc::clone(&self.health);
        Box::pin(async move {
            let (limit, which) = if call.request.stream {
                (provider.timeouts.first_byte, "first_byte")
            } else {
                (provider.timeouts.total, "total")
            };
            let started = Instant::now();
            let attempt = provider.send(&call.request, &model, &call.request_id);
            let result = match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => Err(Failure::new(
                    FailureClass::Timeout,
                    &provider.name,
                    format!("{which} timeout passed"),
                )),
            };
            let ok = result.as_ref().map_or_else(|f| !f.class.is_provider_fault(), |_| true);
            health.record_attempt(ok, started.elapsed());
            let reply = result?;
            let provenance = Provenance {
                provider: Some(Arc::clone(&provider.name)),
                route: Route::Primary,
                attempts: 1,
            };
            Ok(Answer { reply, provenance })
        })
    }
}
