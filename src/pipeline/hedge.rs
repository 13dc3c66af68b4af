//! `Hedging` (SPEC §4 "Hedging"): when a model's first attempt has neither answered nor
//! streamed its first content after `delay`, one more attempt starts on the next target that is
//! another provider, and the first good answer wins. `Failover` runs the race; this module
//! decides when a hedge may start: the delay (`auto`: the first provider's recent p95 time to
//! first byte, at least 50 ms, 500 ms while it has too few recent samples) and the share of the
//! model's requests over the last 10 s that may start one (`max_share`), a budget of its own,
//! apart from the retry budget.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::health::ProviderHealth;
use super::window::RecentCounts;
use crate::config::defaults::model::{HEDGE_DELAY_MIN, HEDGE_DELAY_UNKNOWN};
use crate::config::{HedgeDelay, HedgePolicy};

/// The share is counted over this window.
const WINDOW: Duration = Duration::from_secs(10);
const REQUESTS: usize = 0;
const HEDGES: usize = 1;

/// A model's hedging: its policy and the requests and hedges of the last 10 s.
#[derive(Debug)]
pub struct Hedging {
    policy: HedgePolicy,
    counts: Mutex<RecentCounts>,
}

impl Hedging {
    pub fn new(policy: HedgePolicy) -> Self {
        Self { policy, counts: Mutex::new(RecentCounts::new(WINDOW)) }
    }

    /// Counts one request of the model (each may start at most one hedge).
    pub fn note_request(&self) {
        self.lock().add(REQUESTS, Instant::now());
    }

    /// How long an attempt on `health`'s provider has before a hedge starts.
    pub fn delay(&self, health: &ProviderHealth, streamed: bool) -> Duration {
        match self.policy.delay {
            HedgeDelay::Fixed(delay) => delay,
            HedgeDelay::Auto => health
                .first_byte_p95(streamed)
                .map_or(HEDGE_DELAY_UNKNOWN, |p95| p95.max(HEDGE_DELAY_MIN)),
        }
    }

    /// Takes one hedge from the budget, unless that would make hedges more than `max_share` of
    /// the requests of the last 10 s.
    pub fn try_start(&self) -> bool {
        let now = Instant::now();
        let mut counts = self.lock();
        let [requests, hedges] = counts.totals(now);
        let allowed = (hedges + 1) as f64 <= self.policy.max_share * requests as f64;
        if allowed {
            counts.add(HEDGES, now);
        }
        allowed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentCounts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MockSettings, ProviderConfig, ProviderKind};

    fn hedging(delay: HedgeDelay, max_share: f64) -> Hedging {
        Hedging::new(HedgePolicy { delay, max_share })
    }

    fn health() -> ProviderHealth {
        use crate::config::defaults::{mock, provider};
        let settings = MockSettings {
            latency: mock::LATENCY,
            chunk_interval: mock::CHUNK_INTERVAL,
            failure_rate: mock::FAILURE_RATE,
            failure_status: mock::FAILURE_STATUS,
            bad_answer: None,
            context_limit: None,
        };
        ProviderHealth::new(&ProviderConfig {
            name: "p".to_owned(),
            kind: ProviderKind::Mock(settings),
            timeouts: provider::TIMEOUTS,
            retry: provider::RETRY,
            breaker: provider::BREAKER,
            max_concurrency: None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_share_caps_hedges_over_the_last_ten_seconds() {
        let hedging = hedging(HedgeDelay::Auto, 0.1);
        for _ in 0..9 {
            hedging.note_request();
        }
        assert!(!hedging.try_start(), "one hedge in nine requests is over 10 %");
        hedging.note_request();
        assert!(hedging.try_start(), "one in ten is not");
        assert!(!hedging.try_start(), "a second is");
        for _ in 0..10 {
            hedging.note_request();
        }
        assert!(hedging.try_start(), "two in twenty");
        tokio::time::sleep(WINDOW).await;
        assert!(!hedging.try_start(), "the old requests no longer count");
        for _ in 0..10 {
            hedging.note_request();
        }
        assert!(hedging.try_start(), "and neither do the old hedges");
    }

    #[tokio::test(start_paused = true)]
    async fn auto_follows_the_providers_p95_with_a_floor_and_a_default() {
        let hedging = hedging(HedgeDelay::Auto, 1.0);
        let health = health();
        assert_eq!(hedging.delay(&health, false), HEDGE_DELAY_UNKNOWN, "no samples yet");
        for ms in 1..=100 {
            health.record_attempt(true, Duration::from_millis(ms * 4), false);
        }
        assert_eq!(hedging.delay(&health, false), Duration::from_millis(380));
        assert_eq!(hedging.delay(&health, true), HEDGE_DELAY_UNKNOWN, "streams are apart");
        for _ in 0..100 {
            health.record_attempt(true, Duration::from_millis(3), true);
        }
        assert_eq!(hedging.delay(&health, true), HEDGE_DELAY_MIN, "never under 50 ms");
        let fixed = hedging_fixed();
        assert_eq!(fixed.delay(&health, false), Duration::from_millis(80));
    }

    fn hedging_fixed() -> Hedging {
        hedging(HedgeDelay::Fixed(Duration::from_millis(80)), 1.0)
    }
}
