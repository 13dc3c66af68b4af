//! `TargetService`: one attempt on one target (provider + upstream model), bounded by the
//! provider's per-attempt timeouts: `first_byte` for a stream, `total` for a whole answer.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::Service;

use super::call::{Answer, Call, Provenance, Route};
use crate::failure::{Failure, FailureClass};
use crate::providers::Provider;

#[derive(Clone)]
pub struct TargetService {
    provider: Arc<Provider>,
    model: Arc<str>,
}

impl TargetService {
    pub fn new(provider: Arc<Provider>, model: &str) -> Self {
        Self {
            provider,
            model: Arc::from(model),
        }
    }
}

impl Service<Call> for TargetService {
    type Response = Answer;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Answer, Failure>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let provider = Arc::clone(&self.provider);
        let model = Arc::clone(&self.model);
        Box::pin(async move {
            let (limit, which) = if call.request.stream {
                (provider.timeouts.first_byte, "first_byte")
            } else {
                (provider.timeouts.total, "total")
            };
            let attempt = provider.send(&call.request, &model, &call.request_id);
            let reply = tokio::time::timeout(limit, attempt).await.map_err(|_| {
                Failure::new(
                    FailureClass::Timeout,
                    &provider.name,
                    format!("{which} timeout passed"),
                )
            })??;
            let provenance = Provenance {
                provider: Arc::clone(&provider.name),
                route: Route::Primary,
                attempts: 1,
            };
            Ok(Answer { reply, provenance })
        })
    }
}
