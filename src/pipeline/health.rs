//! `ProviderHealth`: what the gateway knows about one provider right now: its circuit breaker,
//! its recent error rate and latency, and its concurrency slots. Shared by every model that
//! routes to the provider; read by `/status`, `/readyz` and `least_latency` routing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::breaker::Breaker;
use super::window::RecentCounts;
use crate::config::ProviderConfig;

/// Recent outcomes are counted over this window for the error rate.
const ERROR_WINDOW: Duration = Duration::from_secs(60);
/// How fast the latency estimate forgets: the weight of an old sample halves every ~7 s.
const DECAY: Duration = Duration::from_secs(10);
const OK: usize = 0;
const FAILED: usize = 1;

#[derive(Debug)]
pub struct ProviderHealth {
    pub name: Arc<str>,
    pub breaker: Arc<Breaker>,
    /// `max_concurrency` slots, when set.
    pub slots: Option<Arc<Semaphore>>,
    outcomes: Mutex<RecentCounts>,
    latency: Mutex<PeakEwma>,
}

/// A peak-sensitive moving average: a slower sample is taken at once, faster ones decay in.
#[derive(Debug, Default)]
struct PeakEwma {
    millis: f64,
    updated: Option<Instant>,
}

impl ProviderHealth {
    pub fn new(config: &ProviderConfig) -> Self {
        let name: Arc<str> = Arc::from(config.name.as_str());
        Self {
            breaker: Arc::new(Breaker::new(Arc::clone(&name), config.breaker)),
            slots: config.max_concurrency.map(|n| Arc::new(Semaphore::new(n))),
            outcomes: Mutex::new(RecentCounts::new(ERROR_WINDOW)),
            latency: Mutex::new(PeakEwma::default()),
            name,
        }
    }

    /// Records one attempt: its success, and for a success how long the answer took to start.
    pub fn record_attempt(&self, ok: bool, elapsed: Duration) {
        let now = Instant::now();
        lock(&self.outcomes).add(if ok { OK } else { FAILED }, now);
        if ok {
            lock(&self.latency).observe(elapsed, now);
        }
    }

    /// Failed attempts / all attempts over the last minute (0 with no attempts).
    pub fn error_rate(&self) -> f64 {
        let [ok, failed] = lock(&self.outcomes).totals(Instant::now());
        if ok + failed == 0 { 0.0 } else { failed as f64 / (ok + failed) as f64 }
    }

    /// The latency estimate in milliseconds; 0 before the first success.
    pub fn latency_ms(&self) -> f64 {
        lock(&self.latency).millis
    }
}

impl PeakEwma {
    fn observe(&mut self, sample: Duration, now: Instant) {
        let sample = sample.as_secs_f64() * 1000.0;
        self.millis = match self.updated {
            None => sample,
            Some(_) if sample > self.millis => sample,
            Some(last) => {
                let age = now.duration_since(last).as_secs_f64();
                let keep = (-age / DECAY.as_secs_f64()).exp();
                self.millis * keep + sample * (1.0 - keep)
            }
        };
        self.updated = Some(now);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn latency_jumps_to_a_peak_and_decays_back() {
        let mut ewma = PeakEwma::default();
        let start = Instant::now();
        ewma.observe(Duration::from_millis(100), start);
        ewma.observe(Duration::from_millis(900), start + Duration::from_secs(1));
        assert_eq!(ewma.millis, 900.0);
        ewma.observe(Duration::from_millis(100), start + Duration::from_secs(31));
        assert!(ewma.millis < 150.0, "{}", ewma.millis);
    }
}
