//! An upstream response's body as a stream of byte chunks, with the provider's `idle` timeout
//! on every gap between two of them and read errors already classified as [`Failure`]s.
//!
//! The timer is a [`Quiet`]: a chunk costs a clock read, not a timer reset. It starts with the
//! body: the wait for an answer's head is bounded by `first_byte` and `total` alone.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame};
use hyper::body::Incoming;

use super::plain::{self, PlainBody};
use crate::failure::{Failure, FailureClass};
use crate::quiet::Quiet;

/// An upstream answer's body, from whichever client got it.
pub enum Answer {
    /// hyper-util's (TLS, proxies, HTTP/2).
    Pooled(Incoming),
    /// ballast's own, for plain HTTP/1.1.
    Plain(PlainBody),
}

/// Why an [`Answer`]'s body broke off: its client's own error.
#[derive(Debug)]
pub enum AnswerError {
    Pooled(hyper::Error),
    Plain(plain::Error),
}

impl Body for Answer {
    type Data = Bytes;
    type Error = AnswerError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AnswerError>>> {
        match self.get_mut() {
            Self::Pooled(body) => Pin::new(body).poll_frame(cx).map_err(AnswerError::Pooled),
            Self::Plain(body) => Pin::new(body).poll_frame(cx).map_err(AnswerError::Plain),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Pooled(body) => body.is_end_stream(),
            Self::Plain(body) => body.is_end_stream(),
        }
    }
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pooled(err) => err.fmt(f),
            Self::Plain(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for AnswerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pooled(err) => err.source(),
            Self::Plain(err) => err.source(),
        }
    }
}

/// The chunks of one upstream body (trailers, which no LLM API sends, are passed over).
pub struct UpstreamBody<B = Answer> {
    provider: Arc<str>,
    body: B,
    idle: Duration,
    /// Touched by every chunk.
    quiet: Quiet,
    done: bool,
}

impl<B> UpstreamBody<B> {
    pub fn new(provider: &Arc<str>, body: B, idle: Duration) -> Self {
        Self { provider: Arc::clone(provider), body, idle, quiet: Quiet::new(idle), done: false }
    }
}

impl<B> Stream for UpstreamBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    type Item = Result<Bytes, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(chunk) = frame.into_data() {
                        this.quiet.touch();
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(Failure::interrupted(&this.provider, &err))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if this.quiet.poll_quiet(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.done = true;
                    let detail =
                        format!("timed out: no data from upstream for {:?} (idle)", this.idle);
                    let failure = Failure::new(FailureClass::Timeout, &this.provider, detail);
                    return Poll::Ready(Some(Err(failure)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use futures_util::StreamExt;
    use http_body::Frame;
    use http_body_util::StreamBody;
    use tokio::time::Instant;

    use super::*;

    type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, io::Error>>;

    /// A body that sends a chunk after each of `gaps`, then stalls.
    fn body(gaps: &[u64], idle: Duration) -> UpstreamBody<StreamBody<Frames>> {
        let gaps = gaps.to_vec();
        let chunks = futures_util::stream::iter(gaps)
            .then(|gap| async move {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                Ok(Frame::data(Bytes::from_static(b"x")))
            })
            .chain(futures_util::stream::pending());
        UpstreamBody::new(&Arc::from("p"), StreamBody::new(chunks.boxed()), idle)
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
