//! The gateway-wide retry budget: retries may add at most 20% to the requests of the last 10 s,
//! plus a floor of 10 retries per second.
//!
//! Why a budget and not only `max_retries`: during an outage every request fails, and a fixed
//! per-request retry count multiplies upstream traffic by `1 + max_retries` exactly when the
//! upstream can least take it. A budget lets retries ride out the odd failure while capping the
//! extra load of a sustained one at 20% (the Finagle/linkerd/Envoy rule). The floor keeps retries
//! possible when traffic is too low for 20% to mean anything. Failover to another target is not
//! a retry: it goes to a different provider and is bounded by the number of targets.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::window::RecentCounts;

const WINDOW: Duration = Duration::from_secs(10);
const RETRY_RATIO: f64 = 0.2;
const MIN_RETRIES_PER_SECOND: u64 = 10;
const REQUESTS: usize = 0;
const RETRIES: usize = 1;

#[derive(Debug)]
pub struct RetryBudget {
    counts: Mutex<RecentCounts>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self { counts: Mutex::new(RecentCounts::new(WINDOW)) }
    }
}

impl RetryBudget {
    /// Counts one client request.
    pub fn deposit(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.add(REQUESTS, Instant::now());
        }
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_withdraw(&self) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        let now = Instant::now();
        let [requests, retries] = counts.totals(now);
        let allowed =
            (requests as f64 * RETRY_RATIO) as u64 + MIN_RETRIES_PER_SECOND * WINDOW.as_secs();
        if retries < allowed {
            counts.add(RETRIES, now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_the_floor_then_a_fifth_of_the_requests() {
        let budget = RetryBudget::default();
        let granted = (0..500).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 100, "the floor: 10 per second over the 10 s window");

        for _ in 0..1000 {
            budget.deposit();
        }
        let granted = (0..500).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 200, "20% of 1000 requests on top of the floor");

        tokio::time::advance(WINDOW).await;
        let granted = (0..500).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 100, "old requests and retries leave the window");
    }
}
