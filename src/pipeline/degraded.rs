//! `Degraded`: when every target failed, answer with the model's `degraded_response`: a
//! well-formed answer in the request's dialect (a completion, a Message or a Response, whole or
//! streamed) carrying that text, `x-ballast-route: degraded`.
//! Only for upstream-class failures: a client error or the deadline pass through, and so does
//! any failure of an embeddings request (a vector cannot be made up). The stage is
//! in a model's stack only when the model has a `degraded_response`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, stream};
use serde_json::Value;

use super::call::{Answer, Call, Provenance};
use super::stage::{Inner, Next, Stage};
use crate::dialect::{Api, Request, messages, responses};
use crate::failure::Failure;
use crate::openai::chat::{AssistantMessage, ChatCompletion, Choice, Usage};
use crate::openai::stream::chunks_of;
use crate::outcome::Route;
use crate::providers::Reply;

pub struct Degraded {
    model: Arc<str>,
    text: Arc<str>,
}

impl Degraded {
    pub fn new(model: Arc<str>, text: &str) -> Self {
        Self { model, text: Arc::from(text) }
    }
}

impl Stage for Degraded {
    async fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> Result<Answer, Failure> {
        match next.run(call.clone()).await {
            // An embedding cannot be made up: the failure stands (SPEC §4, a 503).
            Err(failure) if failure.class.fails_over() && call.request.api() != Api::Embeddings => {
                tracing::warn!(model = %self.model, failure = %failure, "every target failed; answering with degraded_response");
                let provenance = Provenance::after_failure(Route::Degraded, &failure);
                Ok(Answer { reply: degraded_reply(&call, &self), provenance })
            }
            other => other,
        }
    }
}

fn degraded_reply(call: &Call, layer: &Degraded) -> Reply {
    let (answer, events): (Value, fn(&Value) -> Vec<String>) = match &*call.request {
        Request::Messages(_) => {
            (messages::degraded(&layer.model, &layer.text), messages::events_of)
        }
        Request::Responses(responses) => (
            responses::degraded(responses.request.body(), &layer.model, &layer.text),
            responses::events_of,
        ),
        Request::Chat(_) | Request::Embeddings(_) => return completion(call, layer),
    };
    if call.request.stream() {
        Reply::Stream(stream::iter(events(&answer).into_iter().map(Ok)).boxed())
    } else {
        Reply::Complete(answer.to_string().into_bytes().into())
    }
}

/// The `chat.completion` of a degraded reply, with as many choices as the request's `n`.
fn completion(call: &Call, layer: &Degraded) -> Reply {
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
    if call.request.stream() {
        let chunks = chunks_of(&completion, true)
            .into_iter()
            .map(|chunk| Ok(serde_json::to_string(&chunk).unwrap_or_default()));
        Reply::Stream(stream::iter(chunks).boxed())
    } else {
        Reply::Complete(serde_json::to_vec(&completion).unwrap_or_default().into())
    }
}
