//! Responses requests to a target that serves the Responses API itself (OpenAI, Azure's v1
//! surface, an OpenAI-compatible server with `native_responses`): a passthrough, shared by the
//! `openai` and `azure` kinds. The body goes as `dialect::Responses::native_body` wrote it, the
//! answer comes back as the upstream sent it: a whole Response, or its stream's events (their
//! data unchanged, named by their `type` again at the edge). A 200 that is not a Response (or is
//! a `failed` one), an `error` or `response.failed` event and a stream that ends without its
//! terminal event are failures of the provider; a stream is held until its first content, so an
//! upstream that opens a stream and then fails is failed over.

use std::sync::Arc;

use serde_json::Value;

use super::sse::{self, Step};
use super::transport::{Endpoint, MAX_ANSWER_BYTES, Transport};
use super::{Reply, content_ready};
use crate::dialect::responses::{EventRole, carries_content, event_role, is_response};
use crate::dialect::{Api, event_type};
use crate::failure::{Failure, FailureClass};

/// One Responses exchange on `transport`.
pub(super) async fn exchange(
    transport: &Transport,
    to: &Endpoint,
    body: Vec<u8>,
    stream: bool,
    request_id: &str,
) -> Result<Reply, Failure> {
    let name = &transport.name;
    let response = transport.post(to, body, stream, request_id).await?;
    if stream {
        let events = sse::translate(Arc::clone(name), transport.body(response), |event| {
            let Some(kind) = event_type(&event.data).map(|kind| kind.into_owned()) else {
                return Step::Fail("upstream sent a stream event without a type".into());
            };
            match event_role(&kind) {
                EventRole::Failed => Step::Error {
                    detail: format!("upstream sent `{kind}` in its stream"),
                    event: event.data,
                    api: Api::Responses,
                },
                EventRole::End => Step::End(vec![event.data]),
                EventRole::Part => Step::Chunk(event.data),
            }
        });
        content_ready(name, Box::pin(events), carries_content).await
    } else {
        let body = transport.read(response, MAX_ANSWER_BYTES).await?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !is_response(&answer) {
            let problem = "upstream answered 200 with something other than a completed response";
            return Err(Failure::new(FailureClass::ServerError, name, problem));
        }
        Ok(Reply::Complete(body))
    }
}
