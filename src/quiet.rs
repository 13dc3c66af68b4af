//! `Quiet`: fires once a period has passed without activity, for timers that activity keeps
//! pushing out (a stream's keep-alive, an upstream body's `idle` timeout).
//!
//! One timer, armed once and never reset per activity: `touch` only records the time (a clock
//! read). When the timer fires it is re-armed for the last touch plus the period if there was
//! one since, so a stream of many small chunks costs no timer-wheel update per chunk.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub struct Quiet {
    period: Duration,
    /// The last activity (or the start).
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Quiet {
    pub fn new(period: Duration) -> Self {
        let last = Instant::now();
        Self { period, last, timer: Box::pin(tokio::time::sleep_until(last + period)) }
    }

    /// Something happened: the quiet period starts again from now.
    pub fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Ready once `period` has passed since the last touch; the next period then counts from
    /// now, as if touched.
    pub fn poll_quiet(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last + self.period;
            let now = Instant::now();
            if due <= now {
                self.last = now;
                self.timer.as_mut().reset(now + self.period);
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_a_period_after_the_last_touch_and_then_every_period() {
        let start = Instant::now();
        let mut quiet = Quiet::new(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(4)).await;
        quiet.touch();
        tokio::time::sleep(Duration::from_secs(3)).await;
        quiet.touch();
        std::future::poll_fn(|cx| quiet.poll_quiet(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(17));
        std::future::poll_fn(|cx| quiet.poll_quiet(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(27));
    }
}
