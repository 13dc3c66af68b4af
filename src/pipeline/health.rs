//! `ProviderHealth`: what the gateway knows about one provider right now: its circuit breaker,
//! its recent error rate and latency, its recent times to first byte, and its concurrency
//! slots. Shared by every model that routes to the provider; read by `/status`, `/readyz`,
//! `least_latency` routing and `hedge: { delay: auto }`.

use std::collections::VecDeque;
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
/// Times to first byte kept per kind of attempt (streamed, whole), at most...
const FIRST_BYTE_SAMPLES: usize = 200;
/// ...and at most this old.
const FIRST_BYTE_AGE: Duration = Duration::from_secs(60);
/// Fewer recent samples than this say nothing about a p95.
const FIRST_BYTE_MIN_SAMPLES: usize = 10;

#[derive(Debug)]
pub struct ProviderHealth {
    pub name: Arc<str>,
    pub breaker: Arc<Breaker>,
    /// `max_concurrency` slots, when set.
    pub slots: Option<Arc<Semaphore>>,
    outcomes: Mutex<RecentCounts>,
    latency: Mutex<PeakEwma>,
    /// Successful attempts' times to first byte (a stream's first content, a whole answer's
    /// last byte, which for these APIs is its first): whole answers, then streams.
    first_bytes: [Mutex<FirstBytes>; 2],
}

/// The latest times to first byte of one kind of attempt, with when each was taken.
#[derive(Debug, Default)]
struct FirstBytes {
    samples: VecDeque<(Instant, Duration)>,
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
            first_bytes: Default::default(),
            name,
        }
    }

    /// Records one attempt (`streamed` or whole): its success, and for a success how long the
    /// answer took to start.
    pub fn record_attempt(&self, ok: bool, elapsed: Duration, streamed: bool) {
        let now = Instant::now();
        lock(&self.outcomes).add(if ok { OK } else { FAILED }, now);
        if ok {
            lock(&self.latency).observe(elapsed, now);
            lock(&self.first_bytes[usize::from(streamed)]).observe(elapsed, now);
        }
    }

    /// An attempt that lost its race to a hedge (SPEC §4 "Hedging"): too slow to be useful,
    /// so a failure for the error rate and the breaker (a half-open trial that lost opens the
    /// circuit again). Recorded after the attempt was dropped.
    pub fn record_lost_race(&self) {
        lock(&self.outcomes).add(FAILED, Instant::now());
        self.breaker.record_lost_race();
    }

    /// The p95 of recent successful attempts' times to first byte, `streamed` or whole; none
    /// with too few samples in the last minute.
    pub fn first_byte_p95(&self, streamed: bool) -> Option<Duration> {
        lock(&self.first_bytes[usize::from(streamed)]).p95(Instant::now())
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

impl FirstBytes {
    fn observe(&mut self, sample: Duration, now: Instant) {
        if self.samples.len() == FIRST_BYTE_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now, sample));
    }

    /// Nearest-rank p95 of the samples younger than `FIRST_BYTE_AGE`.
    fn p95(&self, now: Instant) -> Option<Duration> {
        let mut recent: Vec<Duration> = self
            .samples
            .iter()
            .filter(|(taken, _)| now.duration_since(*taken) < FIRST_BYTE_AGE)
            .map(|(_, sample)| *sample)
            .collect();
        if recent.len() < FIRST_BYTE_MIN_SAMPLES {
            return None;
        }
        recent.sort_unstable();
        let rank = (recent.len() * 95).div_ceil(100).max(1);
        recent.get(rank - 1).copied()
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

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_p95_needs_recent_samples_and_keeps_streams_apart() {
        let mut first_bytes = FirstBytes::default();
        let start = Instant::now();
        for ms in 1..=9 {
            first_bytes.observe(Duration::from_millis(ms * 10), start);
        }
        assert_eq!(first_bytes.p95(start), None, "nine samples say nothing");
        for ms in 10..=100 {
            first_bytes.observe(Duration::from_millis(ms * 10), start);
        }
        assert_eq!(first_bytes.p95(start), Some(Duration::from_millis(950)));
        assert_eq!(first_bytes.p95(start + FIRST_BYTE_AGE), None, "all of them too old");
        for _ in 0..FIRST_BYTE_SAMPLES {
            first_bytes.observe(Duration::from_millis(5), start);
        }
        assert_eq!(first_bytes.samples.len(), FIRST_BYTE_SAMPLES);
        assert_eq!(first_bytes.p95(start), Some(Duration::from_millis(5)), "the oldest gave way");
    }
}
