//! `Failover`: walks a model's targets in routing order until one answers. A target
//! whose circuit is open (or whose `max_concurrency` is reached) fails at once, without a call,
//! so a dead provider costs no waiting. Client errors and the deadline stop the walk: the same
//! request would fail the same way everywhere.

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use super::budget::RetryBudget;
use super::call::{Answer, Call, Provenance};
use super::health::ProviderHealth;
use super::routing::{self, Candidate};
use crate::config::Routing;
use crate::dialect::{Api, Carriage};
use crate::failure::{BadAnswer, Failure, FailureClass, Refusal};
use crate::metrics::Metrics;
use crate::outcome::Route;
use crate::providers::Provider;
use crate::tokens;

/// One target's whole stack: breaker → bulkhead → retries → attempt.
pub type TargetStack = BoxCloneSyncService<Call, Answer, Failure>;

/// A target as the walk sees it: its stack, and what routing orders it by.
pub struct Target {
    pub stack: TargetStack,
    pub health: Arc<ProviderHealth>,
    pub weight: f64,
    /// Its provider, asked how it carries each request's API (natively, translated, not).
    pub provider: Arc<Provider>,
    /// The upstream model's context window, when configured.
    pub context_window: Option<u64>,
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
    /// SPEC §4) and those whose `context_window` the prompt and its answer cannot fit; a request
    /// that no target can carry is refused before any call. The request ranks the rest
    /// (`Request::preference`: the provider that stored a continued conversation, then the
    /// targets that run a tool only its own dialect runs); the routing order holds among equals.
    ///
    /// A target that says the prompt did not fit (`context_overflow`) is followed only by
    /// targets with a larger or unknown window. When every target failed and one of them gave an
    /// answer that failed the model's checks, the last such answer is the answer (SPEC §4
    /// "Answer checks").
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
        let need = call
            .prompt_tokens
            .map(|prompt| Need { prompt, answer: tokens::max_output_tokens(call.request.body()) });
        if let Some(need) = need {
            let largest = order.iter().filter_map(|&i| self.targets[i].context_window).max();
            self.keep_fitting(&mut order, |window| need.fits(window));
            if order.is_empty() {
                return Err(Failure::refused(&Arc::from(""), need.refusal(api, largest)));
            }
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
        let mut bad_answer = None;
        let mut position = 0;
        while let Some(&index) = order.get(position) {
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
                    if let Some(answer) = failure.bad_answer.take() {
                        bad_answer = Some((answer, index, position));
                    }
                    if failure.class == FailureClass::ContextOverflow {
                        self.metrics.record_context_skip(&self.model, &target.health.name);
                        let window = target.context_window;
                        let mut rest = order.split_off(position + 1);
                        self.keep_fitting(&mut rest, |next| larger(next, window));
                        order.extend(rest);
                    } else if !failure.class.fails_over() {
                        failure.attempts = attempts;
                        failure.upstream_time = upstream_time;
                        return self.or_bad_answer(&call, bad_answer, failure);
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
            position += 1;
        }
        let mut failure = every_target_failed(failures, attempts);
        failure.upstream_time = upstream_time;
        self.or_bad_answer(&call, bad_answer, failure)
    }

    /// Keeps the targets of `order` whose window `fits`, counting the others as context skips.
    fn keep_fitting(&self, order: &mut Vec<usize>, fits: impl Fn(Option<u64>) -> bool) {
        order.retain(|&index| {
            let target = &self.targets[index];
            let keep = fits(target.context_window);
            if !keep {
                self.metrics.record_context_skip(&self.model, &target.health.name);
            }
            keep
        });
    }

    /// The walk is over without an answer: the last bad answer, when a target gave one (what
    /// the client would have got without checks), else `failure`.
    fn or_bad_answer(
        &self,
        call: &Call,
        bad_answer: Option<(Arc<BadAnswer>, usize, usize)>,
        failure: Failure,
    ) -> Result<Answer, Failure> {
        let Some((answer, index, position)) = bad_answer else { return Err(failure) };
        let Some(reply) = answer.take() else { return Err(failure) };
        let target = &self.targets[index];
        let name = &target.health.name;
        tracing::warn!(model = %self.model, provider = %name, check = answer.check.as_str(), "every target failed; answering with the last bad answer");
        let carriage = target.provider.carries(call.request.api());
        let mut provenance = Provenance::upstream(name, None, failure.upstream_time);
        provenance.attempts = failure.attempts;
        provenance.route = if position > 0 { Route::Failover } else { Route::Primary };
        provenance.native = carriage == Carriage::Native;
        provenance.dropped = call.request.dropped_for(name, carriage).to_vec();
        provenance.failed_check = Some(answer.check);
        Ok(Answer { reply, provenance })
    }
}

/// What a request needs of a context window: its prompt and the answer's allowance.
#[derive(Clone, Copy)]
struct Need {
    prompt: u64,
    answer: u64,
}

impl Need {
    fn total(self) -> u64 {
        self.prompt.saturating_add(self.answer)
    }

    fn fits(self, window: Option<u64>) -> bool {
        window.is_none_or(|window| self.total() <= window)
    }

    /// The client's 400 when no target's window fits, in the words clients look for: OpenAI's
    /// "maximum context length" (with `context_length_exceeded`) and Anthropic's "prompt is too
    /// long" (which Claude Code compacts its conversation on).
    fn refusal(self, api: Api, largest: Option<u64>) -> Refusal {
        let (total, prompt, answer) = (self.total(), self.prompt, self.answer);
        let largest = largest.unwrap_or(0);
        match api {
            Api::Messages => Refusal::too_long(
                "messages",
                format!(
                    "prompt is too long: {total} tokens > {largest} maximum (about {prompt} \
                     in the prompt and {answer} for max_tokens, larger than the context window of \
                     every target of this model)"
                ),
            ),
            Api::Chat | Api::Responses | Api::Embeddings => Refusal::too_long(
                if api == Api::Chat { "messages" } else { "input" },
                format!(
                    "This model's maximum context length is {largest} tokens. However, your \
                     request needs about {total} tokens ({prompt} in the prompt, {answer} for \
                     the answer). Please reduce the length of the messages or of the answer."
                ),
            ),
        }
    }
}

/// After a target with `window` said the prompt did not fit: whether one with `next` may.
fn larger(next: Option<u64>, window: Option<u64>) -> bool {
    match (next, window) {
        (Some(next), Some(window)) => next > window,
        _ => true,
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
