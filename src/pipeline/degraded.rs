//! `DegradedLayer`: when every target failed, answer with the model's `degraded_response`: a
//! well-formed completion (or SSE stream) carrying that text, `x-ballast-route: degraded`.
//! Only for upstream-class failures: a client error or the deadline pass through. The layer is
//! in a model's stack only when the model has a `degraded_response`.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use serde_json::Value;
use tower::{Layer, Service};

use super::call::{Answer, CacheStatus, Call, Provenance, Route};
use crate::failure::Failure;
use crate::openai::chat::{AssistantMessage, ChatCompletion, Choice, Usage};
use crate::openai::stream::chunks_of;
use crate::providers::Reply;

#[derive(Clone)]
pub struct DegradedLayer {
    model: Arc<str>,
    text: Arc<str>,
}

impl DegradedLayer {
    pub fn new(model: &str, text: &str) -> Self {
        Self { model: Arc::from(model), text: Arc::from(text) }
    }
}

impl<S> Layer<S> for DegradedLayer {
    type Service = DegradedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DegradedService { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct DegradedService<S> {
    inner: S,
    layer: DegradedLayer,
}

impl<S> Service<Call> for DegradedService<S>
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
        let layer = self.layer.clone();
        let future = self.inner.call(call.clone());
        Box::pin(async move {
            match future.await {
                Err(failure) if failure.class.fails_over() => {
                    tracing::warn!(model = %layer.model, failure = %failure, "every target failed; answering with degraded_response");
                    let provenance = Provenance {
                        provider: None,
                        route: Route::Degraded,
                        attempts: failure.attempts,
                        upstream_time: failure.upstream_time,
                        cache: CacheStatus::Off,
                        age: None,
                        upstream_model: None,
                    };
                    Ok(Answer { reply: degraded_reply(&call, &layer), provenance })
                }
                other => other,
            }
        })
    }
}

fn degraded_reply(call: &Call, layer: &DegradedLayer) -> Reply {
    let n = call.request.body().get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 128);
    let message = AssistantMessage {
        role: "assistant".to_owned(),
        content: Some(layer.text.to_string()),
        refusal: None,
        tool_calls: Vec::new(),
    };
    let choices = (0..n)
        .map(|index| Choice {
            index: u32::try_from(index).unwrap_or(0),
            message: message.clone(),
            logprobs: None,
            finish_reason: "stop".to_owned(),
        })
        .collect();
    let completion = ChatCompletion {
        id: format!("chatcmpl-degraded-{:016x}", rand::random::<u64>()),
        object: "chat.completion".to_owned(),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: layer.model.to_string(),
        choices,
        usage: Usage::new(0, 0),
    };
    if call.request.stream {
        let chunks = chunks_of(&completion, call.request.include_usage)
            .into_iter()
            .map(|chunk| Ok(serde_json::to_string(&chunk).unwrap_or_default()));
        Reply::Stream(stream::iter(chunks).boxed())
    } else {
        Reply::Complete(serde_json::to_vec(&completion).unwrap_or_default().into())
    }
}
