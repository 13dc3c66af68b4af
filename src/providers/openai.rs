//! OpenAI-compatible upstreams (OpenAI, vLLM, Ollama, LiteLLM...): the body passes through with
//! the upstream model name, the provider's key is added, and nothing of the client's headers.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Client, Response, redirect};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Reply, first_chunk_ready, sse};
use crate::config::{OpenAiSettings, Secret, Timeouts};
use crate::failure::{Failure, FailureClass};
use crate::openai::chat::ChatRequest;

/// The largest non-streamed answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// The most of an error body read (to pass a client error's message on).
const MAX_ERROR_BYTES: usize = 64 << 10;

pub(super) struct OpenAi {
    name: Arc<str>,
    client: Client,
    url: String,
    api_key: Option<Secret>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl OpenAi {
    pub(super) fn new(
        name: Arc<str>,
        settings: &OpenAiSettings,
        timeouts: &Timeouts,
    ) -> Result<Self, String> {
        let client = Client::builder()
            .connect_timeout(timeouts.connect)
            // Reset on every read: this is the `idle` gap allowed inside a response body.
            .read_timeout(timeouts.idle)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .tcp_nodelay(true)
            .tcp_keepalive(std::time::Duration::from_secs(30))
            // An LLM API never redirects; following one could carry the key elsewhere.
            .redirect(redirect::Policy::none())
            .user_agent(concat!("ballast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build the HTTP client for `{name}`: {err}"))?;
        let url = format!("{}/chat/completions", settings.base_url.as_str().trim_end_matches('/'));
        Ok(Self {
            name,
            client,
            url,
            api_key: settings.api_key.clone(),
            headers: settings.headers.clone(),
        })
    }

    pub(super) async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let body = serde_json::to_vec(&request.for_upstream(model)).map_err(|err| {
            Failure::new(FailureClass::ClientError, &self.name, format!("cannot encode: {err}"))
        })?;
        let accept = if request.stream { "text/event-stream" } else { "application/json" };
        let mut builder = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .header("x-request-id", request_id)
            .body(body);
        if let Some(key) = &self.api_key {
            // `bearer_auth` marks the header sensitive.
            builder = builder.bearer_auth(key.expose());
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let response =
            builder.send().await.map_err(|err| Failure::from_reqwest(&self.name, &err))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = read_body(&self.name, response, MAX_ERROR_BYTES).await.unwrap_or_default();
            return Err(Failure::from_status(&self.name, status, &headers, &body));
        }
        if request.stream {
            let chunks = sse::chat_chunks(Arc::clone(&self.name), response.bytes_stream());
            first_chunk_ready(&self.name, Box::pin(chunks)).await
        } else {
            let body = read_body(&self.name, response, MAX_ANSWER_BYTES).await?;
            check_completion(&self.name, &body)?;
            Ok(Reply::Complete(body))
        }
    }
}

async fn read_body(
    provider: &Arc<str>,
    mut response: Response,
    limit: usize,
) -> Result<Bytes, Failure> {
    let mut body = BytesMut::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|err| Failure::from_reqwest(provider, &err))?
    {
        if body.len() + chunk.len() > limit {
            return Err(Failure::new(
                FailureClass::ServerError,
                provider,
                format!("upstream answer larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A 200 is only a success when it is a completion: not empty, not an error object.
fn check_completion(provider: &Arc<str>, body: &[u8]) -> Result<(), Failure> {
    #[derive(Deserialize)]
    struct Probe {
        choices: Option<IgnoredAny>,
        error: Option<IgnoredAny>,
    }
    let problem = match serde_json::from_slice::<Probe>(body) {
        Ok(Probe { error: Some(_), .. }) => "upstream answered 200 with an error object",
        Ok(Probe { choices: None, .. }) => "upstream answered 200 without choices",
        Ok(_) => return Ok(()),
        Err(_) if body.is_empty() => "upstream answered 200 with an empty body",
        Err(_) => "upstream answered 200 with a body that is not a JSON completion",
    };
    Err(Failure::new(FailureClass::ServerError, provider, problem))
}
