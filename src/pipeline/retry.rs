//! `Retry`: attempts on one provider, with backoff, `Retry-After`, the retry budget and
//! the request's deadline. A visible loop rather than tower's `Retry`, because a stream can
//! only be retried before its first chunk (which the service below guarantees by returning only
//! once that chunk arrived) and because Retry-After can turn a retry into an immediate failover.
//!
//! Per failure: `auth` and client errors are returned at once (the first fails over, the second
//! does not); others are retried up to `max_retries` times. The wait before retry k (from 0) is
//! the upstream's `Retry-After` when it sent one, else uniform in `[0, min(max_delay,
//! base_delay × 2^k)]` (full jitter). A `Retry-After` above `max_delay` means "not now": the
//! failure is returned so the next target is tried. No retry starts that the remaining deadline
//! cannot cover (the wait plus [`MIN_ATTEMPT`]), nor one the retry budget refuses.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::breaker::Breaker;
use super::budget::RetryBudget;
use super::call::{Answer, Call};
use super::stage::{Inner, Next, Stage};
use crate::config::RetryPolicy;
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::outcome::CircuitState;

/// The least time an attempt is given: no retry starts with less left before the deadline.
pub const MIN_ATTEMPT: Duration = Duration::from_millis(100);

pub struct Retry {
    policy: RetryPolicy,
    budget: Arc<RetryBudget>,
    metrics: Arc<Metrics>,
    breaker: Arc<Breaker>,
}

impl Retry {
    pub fn new(
        policy: RetryPolicy,
        budget: Arc<RetryBudget>,
        metrics: Arc<Metrics>,
        breaker: Arc<Breaker>,
    ) -> Self {
        Self { policy, budget, metrics, breaker }
    }
}

impl Stage for Retry {
    async fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> Result<Answer, Failure> {
        let mut attempts = 0;
        let mut upstream_time = Duration::ZERO;
        let mut retry = 0;
        let mut bad_answer = None;
        loop {
            let mut failure = match next.clone().run(call.clone()).await {
                Ok(mut answer) => {
                    answer.provenance.attempts += attempts;
                    answer.provenance.upstream_time += upstream_time;
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            attempts += failure.attempts;
            upstream_time += failure.upstream_time;
            failure.attempts = attempts;
            failure.upstream_time = upstream_time;
            // The latest bad answer stays with whatever failure comes last: the client may
            // still get it (SPEC §4 "Answer checks").
            match &failure.bad_answer {
                Some(answer) => bad_answer = Some(Arc::clone(answer)),
                None => failure.bad_answer.clone_from(&bad_answer),
            }
            let Some(wait) = wait_before_retry(&failure, retry, &self.policy, call.deadline) else {
                return Err(failure);
            };
            if self.breaker.state() == CircuitState::Open {
                tracing::debug!(provider = %failure.provider, "circuit opened meanwhile; not retrying");
                return Err(failure);
            }
            if !self.budget.try_withdraw() {
                tracing::debug!(provider = %failure.provider, "retry budget spent; not retrying");
                return Err(failure);
            }
            tracing::debug!(failure = %failure, wait = ?wait, retry, "retrying");
            self.metrics.record_retry(&failure.provider);
            tokio::time::sleep(wait).await;
            upstream_time += wait;
            retry += 1;
        }
    }
}

/// The wait before retry number `retry` (from 0), or None when this failure is not retried.
fn wait_before_retry(
    failure: &Failure,
    retry: u32,
    policy: &RetryPolicy,
    deadline: Instant,
) -> Option<Duration> {
    if !failure.class.is_retryable() || retry >= policy.max_retries {
        return None;
    }
    let wait = match failure.retry_after {
        Some(asked) if asked > policy.max_delay => return None,
        Some(asked) => asked,
        None => backoff(retry, policy, rand::random::<f64>()),
    };
    let remaining = deadline.checked_duration_since(Instant::now())?;
    (wait + MIN_ATTEMPT <= remaining).then_some(wait)
}

/// Full jitter: `unit` (in [0, 1)) of `min(max_delay, base_delay × 2^retry)`.
fn backoff(retry: u32, policy: &RetryPolicy, unit: f64) -> Duration {
    let ceiling =
        policy.base_delay.saturating_mul(2u32.saturating_pow(retry)).min(policy.max_delay);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tower::{Layer, Service, ServiceExt};

    use super::*;
    use crate::failure::FailureClass;
    use crate::pipeline::call::Provenance;
    use crate::pipeline::stage::StageLayer;
    use crate::providers::Reply;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };

    #[test]
    fn backoff_doubles_up_to_max_delay_with_full_jitter() {
        assert_eq!(backoff(0, &POLICY, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(1, &POLICY, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(3, &POLICY, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(4, &POLICY, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(40, &POLICY, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, &POLICY, 0.0), Duration::ZERO);
        assert_eq!(backoff(2, &POLICY, 0.5), Duration::from_millis(200));
    }

    type Scripted = tower::util::BoxCloneSyncService<Call, Answer, Failure>;

    /// A target that fails with `script` in order, then succeeds; it records when it was called.
    fn scripted(script: Vec<Failure>) -> (Scripted, Arc<Mutex<Vec<Instant>>>) {
        let script = Arc::new(Mutex::new(script.into_iter()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let service = tower::service_fn(move |_call: Call| {
            seen.lock().unwrap().push(Instant::now());
            let next = script.lock().unwrap().next();
            let result = match next {
                Some(failure) => Err(failure),
                None => Ok(Answer {
                    reply: Reply::Complete(bytes::Bytes::new()),
                    provenance: Provenance::upstream(&Arc::from("p"), None, Duration::ZERO),
                }),
            };
            async move { result }
        });
        (tower::util::BoxCloneSyncService::new(service), calls)
    }

    fn breaker() -> Arc<Breaker> {
        let policy = crate::config::BreakerPolicy {
            consecutive_failures: 1000,
            open_for: Duration::from_secs(1),
        };
        Arc::new(Breaker::new(Arc::from("p"), policy))
    }

    /// The retry stage over `inner`.
    fn retry(
        budget: Arc<RetryBudget>,
        breaker: Arc<Breaker>,
        inner: Scripted,
    ) -> impl Service<Call, Response = Answer, Error = Failure> {
        StageLayer::new(Retry::new(POLICY, budget, metrics(), breaker)).layer(inner)
    }

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new().unwrap())
    }

    fn failure(class: FailureClass, retry_after: Option<Duration>) -> Failure {
        let mut failure = Failure::new(class, &Arc::from("p"), "test");
        failure.retry_after = retry_after;
        failure
    }

    fn call(timeout: Duration) -> Call {
        Call::for_tests(timeout)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_failures_with_backoff_and_counts_attempts() {
        let (inner, calls) = scripted(vec![
            failure(FailureClass::ServerError, None),
            failure(FailureClass::Timeout, None),
        ]);
        let service = retry(Arc::default(), breaker(), inner);

        let answer = service.oneshot(call(Duration::from_secs(60))).await.unwrap();

        assert_eq!(answer.provenance.attempts, 3);
        let calls = calls.lock().unwrap();
        assert!(calls[1] - calls[0] <= Duration::from_millis(100));
        assert!(calls[2] - calls[1] <= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_after_max_retries() {
        let failures = (0..5).map(|_| failure(FailureClass::RateLimit, None)).collect();
        let (inner, calls) = scripted(failures);
        let service = retry(Arc::default(), breaker(), inner);

        let failure = service.oneshot(call(Duration::from_secs(60))).await.unwrap_err();

        assert_eq!(failure.attempts, 3);
        assert_eq!(calls.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_auth_or_client_errors() {
        for class in [FailureClass::Auth, FailureClass::ClientError] {
            let (inner, calls) = scripted(vec![failure(class, None)]);
            let service = retry(Arc::default(), breaker(), inner);
            assert!(service.oneshot(call(Duration::from_secs(60))).await.is_err());
            assert_eq!(calls.lock().unwrap().len(), 1, "{class:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_fails_over_at_once_when_it_is_too_long() {
        let (inner, calls) =
            scripted(vec![failure(FailureClass::RateLimit, Some(Duration::from_millis(700)))]);
        let service = retry(Arc::default(), breaker(), inner);
        service.oneshot(call(Duration::from_secs(60))).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls[1] - calls[0], Duration::from_millis(700));

        let (inner, calls) =
            scripted(vec![failure(FailureClass::RateLimit, Some(Duration::from_secs(5)))]);
        let service = retry(Arc::default(), breaker(), inner);
        let started = Instant::now();
        assert!(service.oneshot(call(Duration::from_secs(60))).await.is_err());
        assert_eq!(calls.lock().unwrap().len(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO, "over max_delay: no waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn starts_no_retry_the_deadline_cannot_cover() {
        let (inner, calls) =
            scripted(vec![failure(FailureClass::RateLimit, Some(Duration::from_millis(500)))]);
        let service = retry(Arc::default(), breaker(), inner);

        assert!(service.oneshot(call(Duration::from_millis(550))).await.is_err());

        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_once_the_circuit_is_open() {
        let policy = crate::config::BreakerPolicy {
            consecutive_failures: 1,
            open_for: Duration::from_secs(30),
        };
        let breaker = Arc::new(Breaker::new(Arc::from("p"), policy));
        breaker.record_attempt(true);
        let (inner, calls) = scripted(vec![failure(FailureClass::Timeout, None)]);
        let service = retry(Arc::default(), breaker, inner);

        assert!(service.oneshot(call(Duration::from_secs(60))).await.is_err());

        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_stops_retries() {
        let budget = Arc::new(RetryBudget::default());
        while budget.try_withdraw() {}
        let (inner, calls) = scripted(vec![failure(FailureClass::ServerError, None)]);
        let service = retry(budget, breaker(), inner);

        assert!(service.oneshot(call(Duration::from_secs(60))).await.is_err());

        assert_eq!(calls.lock().unwrap().len(), 1);
    }
}
