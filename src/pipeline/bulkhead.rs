//! `BulkheadLayer`: at most `max_concurrency` calls in flight to one provider. When it is full
//! the target is skipped at once (the next target is tried) instead of queueing behind a slow
//! provider. A streamed answer holds its place until the stream ends.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::call::{Answer, Call};
use crate::failure::{Failure, FailureClass};
use crate::providers::Reply;

#[derive(Clone)]
pub struct BulkheadLayer {
    provider: Arc<str>,
    slots: Arc<Semaphore>,
}

impl BulkheadLayer {
    pub fn new(provider: Arc<str>, slots: Arc<Semaphore>) -> Self {
        Self { provider, slots }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct BulkheadService<S> {
    inner: S,
    layer: BulkheadLayer,
}

impl<S> Service<Call> for BulkheadService<S>
where
    S: Service<Call, Response = Answer, Error = Failure> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Answer, Failure>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let Ok(slot) = Arc::clone(&self.layer.slots).try_acquire_owned() else {
            let failure = Failure::new(
                FailureClass::BulkheadFull,
                &self.layer.provider,
                "max_concurrency reached: skipped",
            );
            return Box::pin(async { Err(failure) });
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut answer = inner.call(call).await?;
            if let Reply::Stream(chunks) = answer.reply {
                // The slot is released when the client's stream is done or dropped.
                answer.reply = Reply::Stream(
                    chunks
                        .map(move |chunk| {
                            let _held = &slot;
                            chunk
                        })
                        .boxed(),
                );
            }
            Ok(answer)
        })
    }
}
