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
use super::hedge::Hedging;
use super::routing::{self, Candidate};
use crate::config::Routing;
use crate::dialect::{Api, Carriage};
use crate::failure::{BadAnswer, Failure, FailureClass, Refusal};
use crate::metrics::Metrics;
use crate::outcome::{CircuitState, HedgeOutcome, Route};
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
    /// With `hedge` on the model: when a second target races a slow first one.
    hedging: Option<Hedging>,
}

/// Where the walk is, and what it has spent and kept so far.
#[derive(Default)]
struct Walk {
    /// The targets still to try, in order, and the one being tried.
    order: Vec<usize>,
    position: usize,
    attempts: u32,
    upstream_time: Duration,
    failures: Vec<Failure>,
    /// The latest answer that failed the model's checks, and its target's index.
    bad_answer: Option<(Arc<BadAnswer>, usize)>,
    /// A hedge was started for the request (`x-ballast-hedged`).
    hedged: bool,
    /// The first target in the request's order: the one whose answer is `primary`.
    first: Option<usize>,
}

/// How one step of the walk went: one target alone, or a target and the hedge that raced it.
struct Step {
    /// What to judge, in order (the first target's, then the hedge's): an answer ends the
    /// walk, a failure is taken in.
    results: Vec<(usize, Result<Answer, Failure>)>,
    /// The hedge that ran, and how its race ended.
    hedge: Option<(usize, HedgeOutcome)>,
    /// The first attempt, when the hedge answered before it and it was cancelled.
    lost: Option<usize>,
}

impl Step {
    fn alone(index: usize, result: Result<Answer, Failure>) -> Self {
        Self { results: vec![(index, result)], hedge: None, lost: None }
    }
}

impl Failover {
    pub fn new(
        model: Arc<str>,
        routing: Routing,
        targets: Vec<Target>,
        budget: Arc<RetryBudget>,
        metrics: Arc<Metrics>,
        hedging: Option<Hedging>,
    ) -> Self {
        Self { model, routing, targets, budget, metrics, hedging }
    }

    /// Walks the targets in routing order for `call`, skipping those that cannot carry it (an
    /// API their provider does not serve, or a constraint their translation has no place for:
    /// SPEC §4) and those whose `context_window` the prompt and its answer cannot fit; a request
    /// that no target can carry is refused before any call. The request ranks the rest
    /// (`Request::preference`: the provider that stored a continued conversation, then the
    /// targets that run a tool only its own dialect runs); the routing order holds among equals.
    ///
    /// With hedging, a target that is slow to answer is raced by the next target on another
    /// provider (`race`). A target that says the prompt did not fit (`context_overflow`) is
    /// followed only by targets with a larger or unknown window. When every target failed and
    /// one of them gave an answer that failed the model's checks, the last such answer is the
    /// answer (SPEC §4 "Answer checks").
    pub async fn run(self: Arc<Self>, call: Call) -> Result<Answer, Failure> {
        self.budget.deposit();
        if let Some(hedging) = &self.hedging {
            hedging.note_request();
        }
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
        let mut walk = Walk { first: order.first().copied(), order, ..Walk::default() };
        while let Some(&index) = walk.order.get(walk.position) {
            let step = match (&self.hedging, self.hedge_target(&walk.order, walk.position)) {
                (Some(hedging), Some(hedge)) => self.race(&call, index, hedge, hedging).await,
                _ => Step::alone(index, target_call(&self.targets[index], &call).await),
            };
            if let Some((hedge, outcome)) = step.hedge {
                walk.hedged = true;
                // Tried now: not tried again later in the walk.
                walk.order.retain(|&other| other != hedge);
                self.metrics.record_hedge(&self.model, outcome);
            }
            if let Some(lost) = step.lost {
                // Cancelled (dropped with the race): too slow to be useful (SPEC §4).
                self.targets[lost].health.record_lost_race();
                walk.attempts += 1;
            }
            let mut results = step.results.into_iter().peekable();
            while let Some((by, result)) = results.next() {
                match result {
                    Ok(answer) => return Ok(self.answered(answer, by, &walk)),
                    Err(failure) => {
                        let next = results.peek().map(|(next, _)| *next);
                        let next = next.or_else(|| walk.order.get(walk.position + 1).copied());
                        if let Some(stop) = self.failed(&call, &mut walk, by, failure, next) {
                            return stop;
                        }
                    }
                }
            }
            walk.position += 1;
        }
        let attempts = walk.attempts;
        let mut failure = every_target_failed(std::mem::take(&mut walk.failures), attempts);
        failure.upstream_time = walk.upstream_time;
        self.or_bad_answer(&call, &mut walk, failure)
    }

    /// The answer of target `index`, with what the walk spent before it.
    fn answered(&self, mut answer: Answer, index: usize, walk: &Walk) -> Answer {
        answer.provenance.attempts += walk.attempts;
        answer.provenance.upstream_time += walk.upstream_time;
        if walk.first != Some(index) {
            answer.provenance.route = Route::Failover;
        }
        answer.provenance.hedged = walk.hedged;
        answer
    }

    /// Takes in the failure of target `index` (at or after the walk's position): what it spent,
    /// its bad answer, and for a context error the targets it leaves. `Some` when the walk stops
    /// here (a failure that is not worth another target); else it names the move to `next`.
    fn failed(
        &self,
        call: &Call,
        walk: &mut Walk,
        index: usize,
        mut failure: Failure,
        next: Option<usize>,
    ) -> Option<Result<Answer, Failure>> {
        let target = &self.targets[index];
        walk.attempts += failure.attempts;
        walk.upstream_time += failure.upstream_time;
        if let Some(answer) = failure.bad_answer.take() {
            walk.bad_answer = Some((answer, index));
        }
        if failure.class == FailureClass::ContextOverflow {
            self.metrics.record_context_skip(&self.model, &target.health.name);
            let window = target.context_window;
            let mut rest = walk.order.split_off((walk.position + 1).min(walk.order.len()));
            self.keep_fitting(&mut rest, |next| larger(next, window));
            walk.order.extend(rest);
        } else if !failure.class.fails_over() {
            failure.attempts = walk.attempts;
            failure.upstream_time = walk.upstream_time;
            return Some(self.or_bad_answer(call, walk, failure));
        }
        if let Some(next) = next {
            let to = &self.targets[next].health.name;
            self.metrics.record_failover(&self.model, &failure.provider, to);
            tracing::info!(
                model = %self.model,
                from = %failure.provider,
                to = %to,
                failure = failure.class.as_str(),
                "failing over"
            );
        }
        walk.failures.push(failure);
        None
    }

    /// The target that would hedge the one at `position`: the next in the order on another
    /// provider, whose circuit is not open.
    fn hedge_target(&self, order: &[usize], position: usize) -> Option<usize> {
        self.hedging.as_ref()?;
        let first = &self.targets[*order.get(position)?].health;
        order.iter().skip(position + 1).find_map(|&index| {
            let health = &self.targets[index].health;
            let other = health.name != first.name;
            (other && health.breaker.state() != CircuitState::Open).then_some(index)
        })
    }

    /// Target `first`, raced by target `hedge` once it has been slow for the hedge delay (and
    /// the hedge budget allows). The loser is dropped, which closes its upstream connection; when
    /// one attempt fails, the other is waited for.
    async fn race(&self, call: &Call, first: usize, hedge: usize, hedging: &Hedging) -> Step {
        let first_target = &self.targets[first];
        let mut first_call = std::pin::pin!(target_call(first_target, call));
        let delay = hedging.delay(&first_target.health, call.request.stream());
        tokio::select! {
            result = &mut first_call => return Step::alone(first, result),
            () = tokio::time::sleep(delay) => {}
        }
        if !hedging.try_start() {
            return Step::alone(first, first_call.await);
        }
        tracing::debug!(model = %self.model, from = %first_target.health.name, to = %self.targets[hedge].health.name, delay = ?delay, "hedging");
        let mut hedge_call = std::pin::pin!(target_call(&self.targets[hedge], call));
        let (first_result, hedge_result, lost) = tokio::select! {
            result = &mut first_call => match result {
                Ok(answer) => (Some(Ok(answer)), None, None),
                Err(failure) => (Some(Err(failure)), Some(hedge_call.await), None),
            },
            result = &mut hedge_call => match result {
                Ok(answer) => (None, Some(Ok(answer)), Some(first)),
                Err(failure) => (Some(first_call.await), Some(Err(failure)), None),
            },
        };
        let outcome = match (&first_result, &hedge_result) {
            (_, Some(Ok(_))) if !matches!(first_result, Some(Ok(_))) => HedgeOutcome::Won,
            (Some(Ok(_)), _) => HedgeOutcome::Lost,
            _ => HedgeOutcome::Failed,
        };
        let results = [first_result.map(|r| (first, r)), hedge_result.map(|r| (hedge, r))];
        Step {
            results: results.into_iter().flatten().collect(),
            hedge: Some((hedge, outcome)),
            lost,
        }
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
        walk: &mut Walk,
        failure: Failure,
    ) -> Result<Answer, Failure> {
        let Some((answer, index)) = walk.bad_answer.take() else { return Err(failure) };
        let Some(reply) = answer.take() else { return Err(failure) };
        let target = &self.targets[index];
        let name = &target.health.name;
        tracing::warn!(model = %self.model, provider = %name, check = answer.check.as_str(), "every target failed; answering with the last bad answer");
        let carriage = target.provider.carries(call.request.api());
        let mut provenance = Provenance::upstream(name, None, failure.upstream_time);
        provenance.attempts = failure.attempts;
        provenance.route = if walk.first == Some(index) { Route::Primary } else { Route::Failover };
        provenance.native = carriage == Carriage::Native;
        provenance.dropped = call.request.dropped_for(name, carriage).to_vec();
        provenance.failed_check = Some(answer.check);
        provenance.hedged = walk.hedged;
        Ok(Answer { reply, provenance })
    }
}

/// One call of a target's whole stack (breaker, bulkhead, retries, attempt).
async fn target_call(target: &Target, call: &Call) -> Result<Answer, Failure> {
    target.stack.clone().oneshot(call.clone()).await
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
