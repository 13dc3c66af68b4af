//! `Throttle`: at most one `true` per period, for warnings that could otherwise flood the log
//! (a failing Redis, a full accept loop, accept errors).

use std::time::Duration;

use tokio::time::Instant;

pub struct Throttle {
    period: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Self { period, last: None }
    }

    /// True at the first call and then once `period` has passed since the last true.
    pub fn due(&mut self) -> bool {
        let due = self.last.is_none_or(|at| at.elapsed() >= self.period);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn says_yes_once_per_period() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert!(throttle.due());
        assert!(!throttle.due());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!throttle.due());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(throttle.due());
    }
}
