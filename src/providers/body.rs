//! An upstream response's body as a stream of byte chunks, with the provider's `idle` timeout
//! on every gap between two of them and read errors already classified as [`Failure`]s.
//!
//! The timer is a [`Quiet`]: a chunk costs a clock read, not a timer reset. (reqwest's own
//! `read_timeout` resets a timer on every chunk, and also bounds the wait for a whole answer's
//! head, which only `total` should.)

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;

use crate::failure::{Failure, FailureClass};
use crate::quiet::Quiet;

/// The chunks of one upstream body.
pub struct UpstreamBody {
    provider: Arc<str>,
    chunks: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    idle: Duration,
    /// Touched by every chunk.
    quiet: Quiet,
    done: bool,
}

impl UpstreamBody {
    pub fn new(provider: &Arc<str>, response: reqwest::Response, idle: Duration) -> Self {
        Self::from_stream(provider, Box::pin(response.bytes_stream()), idle)
    }

    fn from_stream(
        provider: &Arc<str>,
        chunks: BoxStream<'static, Result<Bytes, reqwest::Error>>,
        idle: Duration,
    ) -> Self {
        Self { provider: Arc::clone(provider), chunks, idle, quiet: Quiet::new(idle), done: false }
    }
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.quiet.touch();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.done = true;
                Poll::Ready(Some(Err(Failure::from_reqwest(&this.provider, &err))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.quiet.poll_quiet(cx).is_pending() {
                    return Poll::Pending;
                }
                this.done = true;
                let detail = format!("timed out: no data from upstream for {:?} (idle)", this.idle);
                Poll::Ready(Some(Err(Failure::new(FailureClass::Timeout, &this.provider, detail))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::time::Instant;

    use super::*;

    /// A body that sends a chunk after each of `gaps`, then stalls.
    fn body(gaps: &[u64], idle: Duration) -> UpstreamBody {
        let gaps = gaps.to_vec();
        let chunks = futures_util::stream::iter(gaps)
            .then(|gap| async move {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                Ok(Bytes::from_static(b"x"))
            })
            .chain(futures_util::stream::pending());
        UpstreamBody::from_stream(&Arc::from("p"), chunks.boxed(), idle)
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_within_idle_of_each_other_pass_and_a_longer_gap_is_a_timeout() {
        let started = Instant::now();
        let mut chunks = body(&[900, 900, 999], Duration::from_secs(1));
        for _ in 0..3 {
            assert!(chunks.next().await.unwrap().is_ok());
        }
        let failure = chunks.next().await.unwrap().unwrap_err();
        assert_eq!(failure.class, FailureClass::Timeout);
        // The last chunk came at 2.799 s; nothing for a second after it.
        assert_eq!(started.elapsed(), Duration::from_millis(3799));
        assert!(chunks.next().await.is_none(), "nothing after the timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_sends_nothing_times_out_after_idle() {
        let started = Instant::now();
        let failure = body(&[], Duration::from_millis(300)).next().await.unwrap().unwrap_err();
        assert_eq!(
            (failure.class, started.elapsed()),
            (FailureClass::Timeout, Duration::from_millis(300))
        );
    }
}
