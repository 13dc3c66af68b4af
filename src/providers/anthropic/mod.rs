//! Anthropic's Messages API behind OpenAI's chat completions (PROTOCOL.md §8): the backend.
//!
//! `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`. The
//! client's OpenAI request is translated ([`to_messages`], §8.5): system and developer turns
//! are hoisted into `system`, tool calls become `tool_use` blocks and `tool` turns `tool_result`
//! blocks at the start of one user turn, `max_tokens` is always set, fields Anthropic has no
//! use for are dropped. A request Anthropic cannot serve (`n > 1`, audio or file parts) is
//! refused before any call, as a `client_error` with its [`Refusal`](crate::failure::Refusal).
//! Answers come back in OpenAI's shape: whole messages through [`to_completion`], streams
//! through [`StreamState`] (§8.6), which always ends with the usage chunk the gateway's
//! accounting reads.
//!
//! Messages requests are a passthrough (`passthrough.rs`). The other files follow the direction
//! of each translation. OpenAI → Anthropic: `request.rs` (the
//! body's parameters and tools) and `turns.rs` (the conversation). Anthropic → OpenAI:
//! `response.rs` (whole answers, finish reasons, usage) and `stream.rs` (events). `wire.rs`
//! holds the Messages API's own shapes, which belong to neither direction, so that the reverse
//! translations (Messages API clients in front of OpenAI upstreams) can share them.

mod passthrough;
mod request;
mod response;
mod stream;
mod turns;
mod wire;

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};

use self::request::to_messages;
use self::response::to_completion;
use self::stream::StreamState;
use super::transport::{Connect, Endpoint, MAX_ANSWER_BYTES, Transport, endpoint};
use super::{Reply, content_ready, sse, unix_now};
use crate::config::AnthropicSettings;
use crate::failure::{Failure, FailureClass};
use crate::openai::chat::ChatRequest;
use crate::openai::stream::carries_content;

/// The API version every request names.
const ANTHROPIC_VERSION: &str = "2023-06-01";

pub(super) struct Anthropic {
    transport: Transport,
    url: Endpoint,
    count_url: Endpoint,
    default_max_tokens: u32,
}

impl Anthropic {
    pub(super) fn new(settings: &AnthropicSettings, connect: Connect<'_>) -> Result<Self, String> {
        let credential =
            (HeaderName::from_static("x-api-key"), settings.api_key.expose().to_owned());
        let version = (
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let headers = std::iter::once(version).chain(settings.headers.iter().cloned()).collect();
        Ok(Self {
            transport: connect(Some(credential), headers)?,
            url: endpoint(&settings.base_url, "v1/messages")?,
            count_url: endpoint(&settings.base_url, "v1/messages/count_tokens")?,
            default_max_tokens: settings.default_max_tokens,
        })
    }

    pub(super) async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let name = &self.transport.name;
        let body = to_messages(request, model, self.default_max_tokens)
            .map_err(|refusal| Failure::refused(name, refusal))?;
        let body = serde_json::to_vec(&body).map_err(|err| Failure::unencodable(name, &err))?;
        let response = self.transport.post(&self.url, body, request.stream, request_id).await?;
        if request.stream {
            let mut state = StreamState::new(unix_now());
            let chunks =
                sse::translate(Arc::clone(name), self.transport.body(response), move |event| {
                    state.event(&event)
                });
            content_ready(name, Box::pin(chunks), carries_content).await
        } else {
            let body = self.transport.read(response, MAX_ANSWER_BYTES).await?;
            let completion = to_completion(&body, unix_now())
                .map_err(|problem| Failure::new(FailureClass::ServerError, name, problem))?;
            Ok(Reply::Complete(completion.into()))
        }
    }
}
