//! `RecentCounts`: two counters over a sliding time window, kept in one-second slots.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

const SLOT: Duration = Duration::from_secs(1);

/// Counts of two kinds of event (e.g. requests and retries) over the last `window`.
#[derive(Debug)]
pub struct RecentCounts {
    window: Duration,
    slots: VecDeque<(Instant, [u64; 2])>,
}

impl RecentCounts {
    pub fn new(window: Duration) -> Self {
        Self { window, slots: VecDeque::new() }
    }

    /// Adds one event of `kind` (0 or 1) at `now`.
    pub fn add(&mut self, kind: usize, now: Instant) {
        self.expire(now);
        match self.slots.back_mut() {
            Some((start, counts)) if now.duration_since(*start) < SLOT => counts[kind] += 1,
            _ => {
                let mut counts = [0; 2];
                counts[kind] = 1;
                self.slots.push_back((now, counts));
            }
        }
    }

    /// The totals of both kinds within the window ending at `now`.
    pub fn totals(&mut self, now: Instant) -> [u64; 2] {
        self.expire(now);
        self.slots.iter().fold([0, 0], |acc, (_, c)| [acc[0] + c[0], acc[1] + c[1]])
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, _)) = self.slots.front() {
            if now.duration_since(*start) >= self.window {
                self.slots.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_events_older_than_the_window() {
        let start = Instant::now();
        let mut counts = RecentCounts::new(Duration::from_secs(10));
        counts.add(0, start);
        counts.add(1, start + Duration::from_millis(500));
        counts.add(0, start + Duration::from_secs(5));
        assert_eq!(counts.totals(start + Duration::from_secs(6)), [2, 1]);
        assert_eq!(counts.totals(start + Duration::from_secs(10)), [1, 0]);
        assert_eq!(counts.totals(start + Duration::from_secs(16)), [0, 0]);
    }
}
