//! The circuit breaker of one provider, a pipeline `Stage` that skips the provider while its
//! circuit is open, without waiting on it.
//!
//! States have their conventional meaning: `Closed` lets calls through and counts consecutive
//! failed attempts (`record_attempt`, each retry counting on its own, so a provider that starts
//! hanging opens its circuit after `consecutive_failures` timeouts rather than after as many
//! requests have used up their retries); then it turns `Open` for `open_for`, and every call is
//! skipped, and no retry starts (`Retry` asks); then `HalfOpen` admits exactly one trial
//! request, whose whole outcome (after its retries) closes the circuit or opens it again. Only
//! failures that say something about the provider count (`FailureClass::is_provider_fault`); a
//! client error proves the provider answers and counts as a success.
//!
//! An operator may force the circuit (`POST /admin/providers/{name}/circuit`): held open, the
//! provider is skipped like an open circuit (drained before maintenance); held closed, it is
//! called whatever the breaker would say. While forced the breaker learns nothing; `auto`
//! returns the provider to it with a closed circuit and a clean count.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::call::{Answer, Call};
use super::stage::{Inner, Next, Stage};
use crate::config::BreakerPolicy;
use crate::failure::{Failure, FailureClass};
use crate::outcome::CircuitState;

#[derive(Debug)]
pub struct Breaker {
    provider: Arc<str>,
    policy: BreakerPolicy,
    state: Mutex<State>,
    /// `Forced` as a number (`FORCED_*`): read by every admission, so not behind the lock.
    forced: AtomicU8,
}

/// An operator's override of the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forced {
    Open,
    Closed,
}

impl Forced {
    /// As `/status` and the admin endpoint write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

const NOT_FORCED: u8 = 0;
const FORCED_OPEN: u8 = 1;
const FORCED_CLOSED: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// Leave to make one call; report its outcome with [`Permit::record`].
#[must_use]
pub struct Permit {
    breaker: Arc<Breaker>,
    trial: bool,
    recorded: bool,
}

impl Breaker {
    pub fn new(provider: Arc<str>, policy: BreakerPolicy) -> Self {
        Self {
            provider,
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
            forced: AtomicU8::new(NOT_FORCED),
        }
    }

    /// The operator's override, if any.
    pub fn forced(&self) -> Option<Forced> {
        match self.forced.load(Ordering::Relaxed) {
            FORCED_OPEN => Some(Forced::Open),
            FORCED_CLOSED => Some(Forced::Closed),
            _ => None,
        }
    }

    /// Holds the circuit open or closed (`Some`), or returns it to the breaker (`None`), with a
    /// closed circuit and no failures counted either way.
    pub fn force(&self, forced: Option<Forced>) {
        let code = match forced {
            Some(Forced::Open) => FORCED_OPEN,
            Some(Forced::Closed) => FORCED_CLOSED,
            None => NOT_FORCED,
        };
        *self.lock() = State::Closed { failures: 0 };
        self.forced.store(code, Ordering::Relaxed);
        match forced {
            Some(Forced::Open) => {
                tracing::warn!(provider = %self.provider, "circuit held open by the operator: the provider is skipped")
            }
            Some(Forced::Closed) => {
                tracing::warn!(provider = %self.provider, "circuit held closed by the operator")
            }
            None => tracing::info!(provider = %self.provider, "circuit returned to the breaker"),
        }
    }

    /// A permit, or how long until the circuit admits a trial (none while it is held open).
    pub fn admit(self: &Arc<Self>) -> Result<Permit, Option<Duration>> {
        match self.forced() {
            Some(Forced::Open) => return Err(None),
            Some(Forced::Closed) => {
                return Ok(Permit { breaker: Arc::clone(self), trial: false, recorded: false });
            }
            None => {}
        }
        let mut state = self.lock();
        let now = Instant::now();
        let trial = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return Err(Some(until - now)),
            State::Open { .. } | State::HalfOpen { trial_in_flight: false } => {
                *state = State::HalfOpen { trial_in_flight: true };
                true
            }
            // One trial at a time; others wait for its verdict without calling.
            State::HalfOpen { trial_in_flight: true } => return Err(Some(Duration::ZERO)),
        };
        Ok(Permit { breaker: Arc::clone(self), trial, recorded: false })
    }

    pub fn state(&self) -> CircuitState {
        match self.forced() {
            Some(Forced::Open) => return CircuitState::Open,
            Some(Forced::Closed) => return CircuitState::Closed,
            None => {}
        }
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// While open: the time until a trial is admitted.
    pub fn opens_in(&self) -> Option<Duration> {
        if self.forced().is_some() {
            return None;
        }
        match *self.lock() {
            State::Open { until } => until.checked_duration_since(Instant::now()),
            _ => None,
        }
    }

    /// One attempt's outcome while closed: a fault counts towards opening, a success resets.
    pub fn record_attempt(&self, fault: bool) {
        if self.forced().is_some() {
            return;
        }
        let mut state = self.lock();
        *state = match *state {
            State::Closed { .. } if !fault => State::Closed { failures: 0 },
            State::Closed { failures } if failures + 1 < self.policy.consecutive_failures => {
                State::Closed { failures: failures + 1 }
            }
            State::Closed { .. } => self.open(),
            // Open and half-open are decided by time and by the trial request.
            other => other,
        };
    }

    /// An attempt that lost a race to a hedge (it was dropped, so its permit said nothing): a
    /// fault while closed, and a failed trial while half-open.
    pub fn record_lost_race(&self) {
        if self.forced().is_some() {
            return;
        }
        let mut state = self.lock();
        if let State::HalfOpen { .. } = *state {
            *state = self.open();
            return;
        }
        drop(state);
        self.record_attempt(true);
    }

    /// A trial request's whole outcome: `None` when it proved nothing (e.g. the deadline cut it).
    fn record(&self, trial: bool, fault: Option<bool>) {
        if !trial || self.forced().is_some() {
            return;
        }
        let mut state = self.lock();
        let next = match (*state, fault) {
            (State::HalfOpen { .. }, None) => State::HalfOpen { trial_in_flight: false },
            (State::HalfOpen { .. }, Some(false)) => {
                tracing::info!(provider = %self.provider, "circuit closed after a successful trial");
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, Some(true)) => self.open(),
            (current, _) => current,
        };
        *state = next;
    }

    fn open(&self) -> State {
        tracing::warn!(provider = %self.provider, open_for = ?self.policy.open_for, "circuit opened");
        State::Open { until: Instant::now() + self.policy.open_for }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Permit {
    pub fn record(mut self, result: &Result<Answer, Failure>) {
        let fault = match result {
            Ok(_) => Some(false),
            Err(failure) if failure.class.is_provider_fault() => Some(true),
            Err(failure) if failure.class == FailureClass::ClientError => Some(false),
            Err(_) => None,
        };
        self.recorded = true;
        self.breaker.record(self.trial, fault);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.trial, None);
        }
    }
}

// === Stage ===

impl Stage for Breaker {
    async fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> Result<Answer, Failure> {
        let permit = match self.admit() {
            Ok(permit) => permit,
            Err(opens_in) => {
                let mut failure = Failure::new(
                    FailureClass::CircuitOpen,
                    &self.provider,
                    "circuit open: skipped",
                );
                failure.retry_after = opens_in;
                return Err(failure);
            }
        };
        let result = next.run(call).await;
        // The breaker learns only from classified outcomes.
        permit.record(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> Arc<Breaker> {
        let policy =
            BreakerPolicy { consecutive_failures: failures, open_for: Duration::from_secs(30) };
        Arc::new(Breaker::new(Arc::from("p"), policy))
    }

    fn fail(breaker: &Arc<Breaker>) {
        let _permit = breaker.admit().unwrap();
        breaker.record_attempt(true);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_skips_while_open() {
        let breaker = breaker(3);
        fail(&breaker);
        fail(&breaker);
        breaker.record_attempt(false);
        fail(&breaker);
        fail(&breaker);
        assert_eq!(breaker.state(), CircuitState::Closed, "a success resets the count");
        fail(&breaker);
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.admit().err(), Some(Some(Duration::from_secs(30))));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(breaker.opens_in(), Some(Duration::from_secs(20)));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_trial_whose_success_closes_the_circuit() {
        let breaker = breaker(1);
        fail(&breaker);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        let trial = breaker.admit().unwrap();
        assert!(trial.trial);
        assert!(breaker.admit().is_err(), "only one trial at a time");
        breaker.record(true, Some(false));
        std::mem::forget(trial);
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert!(breaker.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_the_circuit_again() {
        let breaker = breaker(1);
        fail(&breaker);
        tokio::time::advance(Duration::from_secs(30)).await;
        let trial = breaker.admit().unwrap();
        breaker.record(true, Some(true));
        std::mem::forget(trial);
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.opens_in(), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_lets_another_one_through() {
        let breaker = breaker(1);
        fail(&breaker);
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(breaker.admit().unwrap());
        assert!(breaker.admit().is_ok(), "the dropped trial released its place");
    }

    #[tokio::test(start_paused = true)]
    async fn races_lost_to_hedges_count_like_failures_and_a_lost_trial_reopens() {
        let breaker = breaker(2);
        breaker.record_lost_race();
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.record_lost_race();
        assert_eq!(breaker.state(), CircuitState::Open, "two lost races in a row");
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(breaker.admit().unwrap()); // the trial, dropped with the race it lost
        breaker.record_lost_race();
        assert_eq!(breaker.state(), CircuitState::Open, "not another trial at once");
        assert!(breaker.admit().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_state_holds_whatever_the_breaker_sees_until_auto() {
        let breaker = breaker(1);
        breaker.force(Some(Forced::Open));
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.admit().err(), Some(None), "held open: skipped, no reopening time");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(breaker.admit().is_err(), "held open past any open_for");

        breaker.force(Some(Forced::Closed));
        for _ in 0..5 {
            fail(&breaker);
        }
        breaker.record_lost_race();
        assert_eq!(breaker.state(), CircuitState::Closed, "held closed through failures");
        assert!(!breaker.admit().unwrap().trial);

        breaker.force(None);
        assert_eq!(breaker.forced(), None);
        assert_eq!(breaker.state(), CircuitState::Closed, "back to the breaker, closed");
        fail(&breaker);
        assert_eq!(breaker.state(), CircuitState::Open, "which learns again");
    }
}
