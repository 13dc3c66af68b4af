//! The one shape of the pipeline's wrappers: a `Stage` says what it does around the rest of the
//! stack, `StageLayer` makes it a tower `Layer`, and `StageService` is the only `Service<Call>`
//! impl the wrappers share.
//!
//! The idiom, chosen once for every stage: `StageService::call` takes the inner service that
//! `poll_ready` made ready and leaves a fresh clone in its place (tower's advice for a future
//! that outlives `&mut self`), so the service polled ready is the one called, and a stage never
//! touches `poll_ready` itself. A stage receives that service as `Next` and calls it with
//! `Next::run`; one that calls the rest of the stack more than once (retries, single-flight)
//! clones `Next` first. The two ends of the stack (failover over targets, one attempt) are plain
//! async functions behind `tower::service_fn`, not wrappers.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::{Layer, Service, ServiceExt};

use super::call::{Answer, Call};
use crate::failure::Failure;

/// What the rest of a stack is to a stage: any cloneable service from `Call` to `Answer`.
pub trait Inner:
    Service<Call, Response = Answer, Error = Failure, Future: Send + 'static> + Clone + Send + 'static
{
}

impl<S> Inner for S where
    S: Service<Call, Response = Answer, Error = Failure, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// A before/after concern of the pipeline (deadline, degraded reply, cache, breaker, bulkhead,
/// retries): given the call and the rest of the stack, it produces the answer.
pub trait Stage: Send + Sync + 'static {
    fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> impl Future<Output = Result<Answer, Failure>> + Send + 'static;
}

/// The rest of the stack below a stage.
#[derive(Clone)]
pub struct Next<S>(S);

impl<S: Inner> Next<S> {
    /// Sends `call` through the rest of the stack.
    pub async fn run(self, call: Call) -> Result<Answer, Failure> {
        self.0.oneshot(call).await
    }
}

/// `stage` as a tower `Layer`.
pub struct StageLayer<St> {
    stage: Arc<St>,
}

impl<St> StageLayer<St> {
    pub fn new(stage: St) -> Self {
        Self::shared(Arc::new(stage))
    }

    /// A stage whose state others hold too (a provider's breaker).
    pub fn shared(stage: Arc<St>) -> Self {
        Self { stage }
    }
}

impl<St, S> Layer<S> for StageLayer<St> {
    type Service = StageService<St, S>;

    fn layer(&self, inner: S) -> Self::Service {
        StageService { stage: Arc::clone(&self.stage), inner }
    }
}

pub struct StageService<St, S> {
    stage: Arc<St>,
    inner: S,
}

impl<St, S: Clone> Clone for StageService<St, S> {
    fn clone(&self) -> Self {
        Self { stage: Arc::clone(&self.stage), inner: self.inner.clone() }
    }
}

impl<St: Stage, S: Inner> Service<Call> for StageService<St, S> {
    type Response = Answer;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Answer, Failure>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(Arc::clone(&self.stage).around(call, Next(ready)))
    }
}
