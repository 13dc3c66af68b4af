//! Messages requests to an Anthropic target (SPEC §4 "Dialects"): a passthrough. The client's
//! body goes with only `model` swapped, with the client's `anthropic-version` and
//! `anthropic-beta` in place of the configured ones; the answer comes back as the upstream sent
//! it, a whole Message or its stream's events (their data unchanged, named by their `type`
//! again at the edge). A 200 that is not a Message, an `error` event in the stream and a stream
//! that ends without `message_stop` are failures of the provider, and a stream is held until
//! its first content, so an upstream that opens a stream and then fails is failed over.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::Anthropic;
use crate::dialect::event_type;
use crate::dialect::messages::{carries_content, is_message};
use crate::dialect::{Api, Messages};
use crate::failure::{Failure, FailureClass};
use crate::providers::sse::{self, Step};
use crate::providers::transport::MAX_ANSWER_BYTES;
use crate::providers::{Reply, content_ready};

impl Anthropic {
    pub(in crate::providers) async fn send_messages(
        &self,
        messages: &Messages,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let name = &self.transport.name;
        let request = &messages.request;
        let body = request.for_upstream(model).map_err(|err| Failure::unencodable(name, &err))?;
        let response = self
            .transport
            .post_with(&self.url, body, request.stream, request_id, &messages.forwarded)
            .await?;
        if request.stream {
            let events = sse::translate(Arc::clone(name), self.transport.body(response), |event| {
                match event_type(&event.data).as_deref() {
                    // Named `error`, or typed so: either way the upstream gave up.
                    name if name == Some("error") || event.event == "error" => Step::Error {
                        detail: "upstream sent an error event in its stream".into(),
                        event: event.data.clone(),
                        api: Api::Messages,
                    },
                    Some("message_stop") => Step::End(vec![event.data]),
                    Some(_) => Step::Chunk(event.data),
                    None => Step::Fail("upstream sent a stream event without a type".into()),
                }
            });
            content_ready(name, Box::pin(events), carries_content).await
        } else {
            let body = self.transport.read(response, MAX_ANSWER_BYTES).await?;
            let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if !is_message(&message) {
                let problem = "upstream answered 200 with something other than a message";
                return Err(Failure::new(FailureClass::ServerError, name, problem));
            }
            Ok(Reply::Complete(body))
        }
    }

    /// `POST /v1/messages/count_tokens` with `messages`' body, model swapped: the upstream's
    /// answer (`{"input_tokens": N}`) as it sent it.
    pub(in crate::providers) async fn count_tokens(
        &self,
        messages: &Messages,
        model: &str,
        request_id: &str,
    ) -> Result<Bytes, Failure> {
        let name = &self.transport.name;
        let body =
            messages.request.for_upstream(model).map_err(|err| Failure::unencodable(name, &err))?;
        let response = self
            .transport
            .post_with(&self.count_url, body, false, request_id, &messages.forwarded)
            .await?;
        let body = self.transport.read(response, MAX_ANSWER_BYTES).await?;
        let counted: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !counted["input_tokens"].is_u64() {
            let problem = "upstream answered 200 to count_tokens without input_tokens";
            return Err(Failure::new(FailureClass::ServerError, name, problem));
        }
        Ok(body)
    }
}
