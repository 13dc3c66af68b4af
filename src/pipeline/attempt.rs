//! `Attempt`: one attempt on one target (provider + upstream model), bounded by the provider's
//! per-attempt timeouts: `first_byte` for a stream, `total` for a whole answer. Every attempt's
//! outcome and latency go into the provider's health and the metrics; an answer is judged by the
//! model's answer checks (`crate::checks`: one that fails them is a `bad_answer` failure, which
//! keeps the answer) and accounted (tokens, cost, quality). The innermost end of a target's
//! stack: a plain async function, which `Pipeline::build` puts behind `tower::service_fn`.

use std::sync::Arc;

use futures_util::{StreamExt, stream};
use tokio::time::Instant;
use tracing::Instrument;

use super::accounting::{Accounting, Observed, read_completion};
use super::call::{Answer, Call, Provenance};
use super::health::ProviderHealth;
use crate::checks::AnswerChecks;
use crate::config::Price;
use crate::dialect::{self, Api, Carriage};
use crate::failure::{Failure, FailureClass};
use crate::metrics::Metrics;
use crate::providers::{ChunkStream, Provider, Reply};
use crate::telemetry::traces;

pub struct Attempt {
    provider: Arc<Provider>,
    model: Arc<str>,
    health: Arc<ProviderHealth>,
    metrics: Arc<Metrics>,
    price: Option<Price>,
    checks: AnswerChecks,
}

impl Attempt {
    pub fn new(
        provider: Arc<Provider>,
        model: &str,
        health: Arc<ProviderHealth>,
        metrics: Arc<Metrics>,
        price: Option<Price>,
        checks: AnswerChecks,
    ) -> Self {
        Self { provider, model: Arc::from(model), health, metrics, price, checks }
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
        // With traces on, the attempt's span: open until its answer has been read (a stream's
        // accounting holds it), the parent of the `traceparent` sent upstream.
        let api = call.request.api();
        let span =
            traces::attempt_span(&provider.name, &self.model, api, call.attempt_numbers.as_ref());
        let attempt = provider.send(&call.request, &self.model, &call.request_id);
        let timed = tokio::time::timeout(limit, attempt).instrument(span.clone());
        let result = match timed.await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                FailureClass::Timeout,
                &provider.name,
                format!("{which} timeout passed"),
            )),
        };
        // A whole chat answer is read once, here: a 200 that is not a completion fails the
        // attempt, and what accounting needs of it is kept for accounting.
        let mut seen = None;
        let result = match result {
            Ok(reply) => match self.read_whole_chat(api, &reply) {
                Ok(read) => {
                    seen = read;
                    self.check(&call, reply, &span).await
                }
                Err(failure) => Err(failure),
            },
            Err(failure) => Err(failure),
        };
        let elapsed = started.elapsed();
        let failure_class = result.as_ref().err().map(|failure| failure.class);
        if let Some(class) = failure_class {
            traces::attempt_failed(&span, class);
        }
        self.metrics.record_upstream(&provider.name, failure_class, elapsed);
        let fault = failure_class.is_some_and(FailureClass::is_provider_fault);
        self.health.record_attempt(!fault, elapsed, call.request.stream());
        self.health.breaker.record_attempt(fault);
        let reply = result.map_err(|mut failure| {
            failure.upstream_time = elapsed;
            failure
        })?;
        let reply = self.accounting(&call, call.usage_hook.clone(), span).account_read(reply, seen);
        let mut provenance = Provenance::upstream(&provider.name, self.price, elapsed);
        let carriage = provider.carries(call.request.api());
        provenance.native = carriage == Carriage::Native;
        provenance.dropped = call.request.dropped_for(&provider.name, carriage).to_vec();
        Ok(Answer { reply, provenance })
    }

    /// What `accounting::read_completion` says of `reply` when it is a whole chat answer.
    fn read_whole_chat(&self, api: Api, reply: &Reply) -> Result<Option<Observed>, Failure> {
        match reply {
            Reply::Complete(body) if api == Api::Chat => read_completion(body).map_err(|problem| {
                Failure::new(FailureClass::ServerError, &self.provider.name, problem)
            }),
            Reply::Complete(_) | Reply::Stream(_) => Ok(None),
        }
    }

    fn accounting(
        &self,
        call: &Call,
        hook: Option<super::call::UsageHook>,
        span: tracing::Span,
    ) -> Accounting {
        Accounting {
            span,
            api: call.request.api(),
            metrics: Arc::clone(&self.metrics),
            model: Arc::clone(&call.model),
            provider: Arc::clone(&self.provider.name),
            price: self.price,
            hook,
        }
    }

    /// Runs the model's answer checks on `reply`: a whole answer as it is, a stream on the
    /// events held before its first content (which are read again here, from memory). An answer
    /// that fails one is accounted (its tokens were spent; the caller's limits are told only of
    /// the answer it gets) and kept in the `bad_answer` failure.
    async fn check(
        &self,
        call: &Call,
        reply: Reply,
        span: &tracing::Span,
    ) -> Result<Reply, Failure> {
        if self.checks.is_off() {
            return Ok(reply);
        }
        let (reply, failed) = match reply {
            Reply::Complete(body) => {
                let failed = self.checks.whole(&call.request, &body);
                (Reply::Complete(body), failed)
            }
            Reply::Stream(chunks) => {
                let api = call.request.api();
                let (held, rest) = held_events(chunks, dialect::carries_content(api)).await;
                let failed = self.checks.stream_head(api, &held);
                (Reply::Stream(stream::iter(held.into_iter().map(Ok)).chain(rest).boxed()), failed)
            }
        };
        let Some(check) = failed else { return Ok(reply) };
        let provider = &self.provider.name;
        tracing::info!(model = %call.model, provider = %provider, check = check.as_str(), "an answer failed its check");
        self.metrics.record_answer_check_failure(&call.model, provider, check);
        let reply = self.accounting(call, None, span.clone()).account(reply);
        Err(Failure::bad_answer(provider, check, reply))
    }
}

/// A stream's events up to and including the first that `carries_content`, and the rest. The
/// provider held those already, so they are in memory: reading them again does not wait.
async fn held_events(
    mut chunks: ChunkStream,
    carries_content: fn(&str) -> bool,
) -> (Vec<String>, ChunkStream) {
    let mut held = Vec::new();
    while let Some(next) = chunks.next().await {
        match next {
            Ok(chunk) => {
                let ready = carries_content(&chunk);
                held.push(chunk);
                if ready {
                    break;
                }
            }
            // Not reached: a provider returns a stream only once its first content arrived.
            Err(failure) => return (held, stream::iter([Err(failure)]).chain(chunks).boxed()),
        }
    }
    (held, chunks)
}
