//! Watching a stream as it passes: the one helper the stages use to see every chunk of a
//! streamed answer and its end, without changing what the client receives.
//!
//! Accounting reads usage and finish reasons, the cache keeps a copy to store, the bulkhead holds
//! its slot. What an observer holds is dropped with the stream, whichever way it ends: read to
//! its end, broken, or dropped because the client went away.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::Stream;

use crate::failure::Failure;
use crate::providers::ChunkStream;

/// What a stage does with a stream's chunks; every method has a default that does nothing.
pub trait Observer: Send + 'static {
    /// Every chunk that passes, in order.
    fn chunk(&mut self, _chunk: &str) {}

    /// The stream ended cleanly, after the upstream's terminal event. Not called when it broke
    /// (its `Err` passes on and the observer is dropped) or was dropped unfinished.
    fn ended(self)
    where
        Self: Sized,
    {
    }
}

/// `chunks`, unchanged, with `observer` told of each one and of a clean end.
pub fn observe(chunks: ChunkStream, observer: impl Observer) -> ChunkStream {
    Box::pin(Observed { chunks, observer: Some(observer) })
}

/// A stream being watched; the observer is dropped as soon as the stream ends or breaks.
struct Observed<O> {
    chunks: ChunkStream,
    observer: Option<O>,
}

// Nothing in it is pinned in place: the stream is boxed, the observer only used by `&mut`.
impl<O> Unpin for Observed<O> {}

impl<O: Observer> Stream for Observed<O> {
    type Item = Result<String, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(observer) = &mut this.observer else { return Poll::Ready(None) };
        let item = ready!(this.chunks.as_mut().poll_next(cx));
        match &item {
            Some(Ok(chunk)) => observer.chunk(chunk),
            Some(Err(_)) => this.observer = None,
            None => {
                if let Some(observer) = this.observer.take() {
                    observer.ended();
                }
            }
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::{StreamExt, stream};

    use super::*;
    use crate::failure::FailureClass;

    #[derive(Default)]
    struct Seen {
        chunks: Vec<String>,
        ended: bool,
        dropped: bool,
    }

    struct Recorder(Arc<Mutex<Seen>>);

    impl Observer for Recorder {
        fn chunk(&mut self, chunk: &str) {
            self.0.lock().unwrap().chunks.push(chunk.to_owned());
        }
        fn ended(self) {
            self.0.lock().unwrap().ended = true;
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            self.0.lock().unwrap().dropped = true;
        }
    }

    fn chunks(items: Vec<Result<&'static str, Failure>>) -> ChunkStream {
        stream::iter(items.into_iter().map(|item| item.map(str::to_owned))).boxed()
    }

    #[tokio::test]
    async fn passes_every_chunk_on_and_reports_a_clean_end() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let out: Vec<_> =
            observe(chunks(vec![Ok("a"), Ok("b")]), Recorder(Arc::clone(&seen))).collect().await;
        assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), ["a", "b"]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.chunks, ["a", "b"]);
        assert!(seen.ended && seen.dropped);
    }

    #[tokio::test]
    async fn a_broken_stream_passes_its_error_and_never_reports_an_end() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let broken = Failure::new(FailureClass::ServerError, &Arc::from("p"), "cut");
        let out: Vec<_> = observe(chunks(vec![Ok("a"), Err(broken), Ok("late")]), {
            Recorder(Arc::clone(&seen))
        })
        .collect()
        .await;
        assert_eq!(out.len(), 2, "nothing after the error");
        assert!(out[1].is_err());
        let seen = seen.lock().unwrap();
        assert!(!seen.ended && seen.dropped);
    }

    #[tokio::test]
    async fn a_stream_dropped_unfinished_drops_its_observer_without_an_end() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut stream = observe(chunks(vec![Ok("a"), Ok("b")]), Recorder(Arc::clone(&seen)));
        assert!(stream.next().await.is_some());
        drop(stream);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.chunks, ["a"]);
        assert!(!seen.ended && seen.dropped);
    }
}
