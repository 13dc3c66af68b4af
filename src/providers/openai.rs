//! OpenAI-compatible upstreams (OpenAI, vLLM, Ollama, LiteLLM...): the body passes through with
//! the upstream model name, the provider's key is added, and nothing of the client's headers.
//! Chat completions at `{base_url}/chat/completions`, embeddings at `{base_url}/embeddings`, and
//! Responses at `{base_url}/responses` when the server serves them (`native_responses`).

use std::sync::Arc;

use http::header::AUTHORIZATION;

use super::transport::{Connect, Endpoint, MAX_ANSWER_BYTES, Transport, endpoint};
use super::{Reply, content_ready, embeddings, responses, sse};
use crate::config::OpenAiSettings;
use crate::failure::Failure;
use crate::openai::chat::ChatRequest;
use crate::openai::embeddings::Encoding;
use crate::openai::stream::carries_content;

pub(super) struct OpenAi {
    transport: Transport,
    url: Endpoint,
    responses_url: Endpoint,
    embeddings_url: Endpoint,
}

impl OpenAi {
    pub(super) fn new(settings: &OpenAiSettings, connect: Connect<'_>) -> Result<Self, String> {
        let key = settings.api_key.as_ref();
        let credential = key.map(|key| (AUTHORIZATION, format!("Bearer {}", key.expose())));
        let transport = connect(credential, settings.headers.clone())?;
        Ok(Self {
            transport,
            url: endpoint(&settings.base_url, "chat/completions")?,
            responses_url: endpoint(&settings.base_url, "responses")?,
            embeddings_url: endpoint(&settings.base_url, "embeddings")?,
        })
    }

    /// A Responses passthrough: `body` as `dialect::Responses::native_body` wrote it.
    pub(super) async fn send_responses(
        &self,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        responses::exchange(&self.transport, &self.responses_url, body, stream, request_id).await
    }

    /// An embeddings passthrough, answered in `encoding`.
    pub(super) async fn send_embeddings(
        &self,
        body: Vec<u8>,
        encoding: Encoding,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        embeddings::exchange(&self.transport, &self.embeddings_url, body, encoding, request_id)
            .await
    }

    pub(super) async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        exchange(&self.transport, &self.url, request, model, request_id, Some).await
    }
}

/// One OpenAI-shaped exchange, shared with Azure: the client's body with `model` swapped, and
/// the answer checked (whole) or parsed as SSE with each payload passed through `tidy` (which
/// may rewrite or drop it).
pub(super) async fn exchange<T>(
    transport: &Transport,
    to: &Endpoint,
    request: &ChatRequest,
    model: &str,
    request_id: &str,
    tidy: T,
) -> Result<Reply, Failure>
where
    T: FnMut(String) -> Option<String> + Send + 'static,
{
    let name = &transport.name;
    let body = request.for_upstream(model).map_err(|err| Failure::unencodable(name, &err))?;
    let response = transport.post(to, body, request.stream, request_id).await?;
    if request.stream {
        let chunks = sse::chat_chunks(Arc::clone(name), transport.body(response), tidy);
        content_ready(name, Box::pin(chunks), carries_content).await
    } else {
        // Checked by the attempt (a chat answer) or the translation (`providers::translated`).
        Ok(Reply::Complete(transport.read(response, MAX_ANSWER_BYTES).await?))
    }
}
