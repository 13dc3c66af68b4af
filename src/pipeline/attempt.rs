//! `Attempt`: one attempt on one target (provider + upstream model), bounded by the provider's
//! per-attempt timeouts: `first_byte` for a stream, `total` for a whole answer. Every attempt's
//! outcome and latency go into the provider's health and the metrics; a successful answer is
//! accounted (tokens, cost, quality). The innermost end of a target's stack: a plain async
//! function, which `Pipeline::build` puts behind `tower::service_fn`.

use std::sync::Arc;

use tokio::time::Instant;

use super::accounting::Accounting;
use super::call::{Answer, Call, Provenance};
use super::health::ProviderHealth;
use crate::config::Price;
use crate::dialect::Carriage;
use crate::failure::{Failure, FailureClass};
use crate::metrics::Metrics;
use crate::providers::{Provider, Reply};

pub struct Attempt {
    provider: Arc<Provider>,
    model: Arc<str>,
    health: Arc<ProviderHealth>,
    metrics: Arc<Metrics>,
    price: Option<Price>,
}

impl Attempt {
    pub fn new(
        provider: Arc<Provider>,
        model: &str,
        health: Arc<ProviderHealth>,
        metrics: Arc<Metrics>,
        price: Option<Price>,
    ) -> Self {
        Self { provider, model: Arc::from(model), health, metrics, price }
    }

    /// Makes the attempt for `call`.
    pub async fn run(self: Arc<Self>, call: Call) -> Result<Answer, Failure> {
        let provider = &self.provider;
        let (limit, which) = if call.request.stream() {
            (provider.timeouts.first_byte, "first_byte")
        } else {
            (provider.timeouts.total, "total")
        };
        let started = Instant::now();
        let attempt = provider.send(&call.request, &self.model, &call.request_id);
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
        self.metrics.record_upstream(&provider.name, failure_class, elapsed);
        let fault = failure_class.is_some_and(FailureClass::is_provider_fault);
        self.health.record_attempt(!fault, elapsed);
        self.health.breaker.record_attempt(fault);
        let reply = result.map_err(|mut failure| {
            failure.upstream_time = elapsed;
            failure
        })?;
        let accounting = Accounting {
            api: call.request.api(),
            metrics: Arc::clone(&self.metrics),
            model: Arc::clone(&call.model),
            provider: Arc::clone(&provider.name),
            price: self.price,
            hook: call.usage_hook.clone(),
        };
        let reply = match reply {
            Reply::Complete(body) => {
                accounting.complete(&body);
                Reply::Complete(body)
            }
            Reply::Stream(chunks) => Reply::Stream(accounting.stream(chunks)),
        };
        let mut provenance = Provenance::upstream(&provider.name, self.price, elapsed);
        let carriage = provider.carries(call.request.api());
        provenance.native = carriage == Carriage::Native;
        provenance.dropped = call.request.dropped_for(&provider.name, carriage).to_vec();
        Ok(Answer { reply, provenance })
    }
}
