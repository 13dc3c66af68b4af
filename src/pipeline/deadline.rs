//! `DeadlineLayer`: nothing below it runs past the call's deadline (`request_timeout`).
//!
//! Because the stack below returns a stream as soon as its first chunk arrived, the deadline
//! bounds a non-streamed answer to its last byte and a streamed one to its first (SPEC §4).

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::call::{Answer, Call};
use crate::failure::Failure;

#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineLayer;

#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService { inner }
    }
}

impl<S> Service<Call> for DeadlineService<S>
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
        let deadline = call.deadline;
        let future = self.inner.call(call);
        Box::pin(async move {
            tokio::time::timeout_at(deadline, future)
                .await
                .unwrap_or_else(|_| Err(Failure::deadline()))
        })
    }
}
