//! Azure OpenAI (PROTOCOL.md §9): OpenAI's wire format on a deployment URL.
//!
//! `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=...` with the
//! `api-key` header (embeddings likewise, at `.../{deployment}/embeddings`); the target's `model`
//! is the deployment name. Responses go to the v1 surface, `POST {base_url}/openai/v1/responses`,
//! which takes no `api-version` and names the deployment as the body's `model`. The body is OpenAI's (the same
//! serialisation as the `openai` kind). Streams are normalised on the way: Azure's first chunk
//! (empty `choices`, empty `id`, only `prompt_filter_results`) and trailing choices without a
//! `delta` (asynchronous content-filter annotations) are dropped, and a chunk that still has an
//! empty `id` or `model` gets the ones of the stream.

use http::header::HeaderName;
use serde_json::Value;
use url::Url;

use super::transport::{self, Connect, Endpoint, Transport};
use super::{Reply, embeddings, openai, responses};
use crate::config::AzureSettings;
use crate::failure::{Failure, FailureClass};
use crate::openai::chat::ChatRequest;
use crate::openai::embeddings::Encoding;

pub(super) struct Azure {
    transport: Transport,
    /// `{base_url}/openai/deployments`; the deployment and `chat/completions` follow.
    deployments: Url,
    /// `{base_url}/openai/v1/responses`: the v1 surface, which names the deployment in `model`.
    responses: Endpoint,
    api_version: String,
}

impl Azure {
    pub(super) fn new(settings: &AzureSettings, connect: Connect<'_>) -> Result<Self, String> {
        let credential = (HeaderName::from_static("api-key"), settings.api_key.expose().to_owned());
        let transport = connect(Some(credential), settings.headers.clone())?;
        let under = |path: &[&str]| {
            let mut url = settings.base_url.clone();
            url.path_segments_mut()
                .map_err(|()| format!("base_url `{}` cannot take a path", settings.base_url))?
                .pop_if_empty()
                .extend(path);
            Ok::<Url, String>(url)
        };
        Ok(Self {
            transport,
            deployments: under(&["openai", "deployments"])?,
            responses: transport::sendable(&under(&["openai", "v1", "responses"])?)?,
            api_version: settings.api_version.clone(),
        })
    }

    /// A Responses passthrough on the v1 surface: `body` names the deployment as its `model`.
    pub(super) async fn send_responses(
        &self,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        responses::exchange(&self.transport, &self.responses, body, stream, request_id).await
    }

    /// An embeddings passthrough to `deployment`, answered in `encoding`.
    pub(super) async fn send_embeddings(
        &self,
        body: Vec<u8>,
        deployment: &str,
        encoding: Encoding,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let url = operation_url(&self.deployments, deployment, "embeddings", &self.api_version);
        let url = self.sendable(&url)?;
        embeddings::exchange(&self.transport, &url, body, encoding, request_id).await
    }

    pub(super) async fn send(
        &self,
        request: &ChatRequest,
        deployment: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let url =
            operation_url(&self.deployments, deployment, "chat/completions", &self.api_version);
        let url = self.sendable(&url)?;
        openai::exchange(&self.transport, &url, request, deployment, request_id, tidy_chunks())
            .await
    }
}

impl Azure {
    /// A deployment's URL as the client sends it (a deployment name is percent-encoded into it,
    /// so this cannot fail; if it did, the request could not be sent).
    fn sendable(&self, url: &Url) -> Result<Endpoint, Failure> {
        transport::sendable(url).map_err(|problem| {
            Failure::new(FailureClass::ClientError, &self.transport.name, problem)
        })
    }
}

/// The URL of `operation` (`chat/completions`, `embeddings`) on `deployment` (percent-encoded
/// as a path segment).
fn operation_url(deployments: &Url, deployment: &str, operation: &str, api_version: &str) -> Url {
    let mut url = deployments.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.push(deployment).extend(operation.split('/'));
    }
    url.query_pairs_mut().clear().append_pair("api-version", api_version);
    url
}

/// The stream normaliser: drops what an OpenAI client must not see, fills empty ids.
fn tidy_chunks() -> impl FnMut(String) -> Option<String> + Send + 'static {
    let mut seen_id = String::new();
    let mut seen_model = String::new();
    move |data| tidy(data, &mut seen_id, &mut seen_model)
}

fn tidy(data: String, seen_id: &mut String, seen_model: &mut String) -> Option<String> {
    let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(&data) else {
        // Not a chunk the gateway understands: passed on as the `openai` kind would.
        return Some(data);
    };
    let has_usage = chunk.get("usage").is_some_and(Value::is_object);
    let mut changed = false;
    match chunk.get_mut("choices") {
        Some(Value::Array(choices)) => {
            let before = choices.len();
            choices.retain(|choice| choice.get("delta").is_some_and(Value::is_object));
            changed |= choices.len() != before;
            if choices.is_empty() && !has_usage {
                return None;
            }
        }
        _ if has_usage => {
            chunk.insert("choices".to_owned(), Value::Array(Vec::new()));
            changed = true;
        }
        _ => return None,
    }
    for (key, seen) in [("id", seen_id), ("model", seen_model)] {
        match chunk.get(key).and_then(Value::as_str) {
            Some("") if !seen.is_empty() => {
                chunk.insert(key.to_owned(), Value::String(seen.clone()));
                changed = true;
            }
            Some(value) if seen.is_empty() => value.clone_into(seen),
            _ => {}
        }
    }
    if changed { Some(Value::Object(chunk).to_string()) } else { Some(data) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(chunks: &[Value]) -> Vec<Value> {
        let mut tidy = tidy_chunks();
        chunks
            .iter()
            .filter_map(|chunk| tidy(chunk.to_string()))
            .map(|data| serde_json::from_str(&data).unwrap())
            .collect()
    }

    #[test]
    fn builds_the_deployment_url_with_its_api_version() {
        let base = Url::parse("https://res.openai.azure.com/openai/deployments").unwrap();
        let url = operation_url(&base, "gpt 4o/mini", "chat/completions", "2024-10-21");
        assert_eq!(
            url.as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt%204o%2Fmini/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn drops_the_prompt_filter_chunk_and_choices_without_delta() {
        let chunks = [
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                   "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}],
                   "created": 7, "id": "chatcmpl-1", "model": "gpt-4o", "object": "chat.completion.chunk"}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "created": 7, "id": "chatcmpl-1", "model": "gpt-4o", "object": "chat.completion.chunk"}),
            json!({"choices": [{"index": 0, "finish_reason": null, "content_filter_offsets": {}}],
                   "created": 0, "id": "", "model": "", "object": ""}),
            json!({"choices": [], "created": 7, "id": "", "model": "gpt-4o", "object": "chat.completion.chunk",
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
        ];
        let kept = run(&chunks);
        assert_eq!(kept.len(), 3, "{kept:#?}");
        assert_eq!(kept[0], chunks[1], "well-formed chunks pass unchanged");
        assert_eq!(kept[1], chunks[2]);
        assert_eq!(kept[2]["id"], "chatcmpl-1", "an empty id is never forwarded");
        assert_eq!(kept[2]["usage"]["total_tokens"], 4);
    }

    #[test]
    fn a_usage_chunk_without_choices_gets_an_empty_list() {
        let kept = run(&[
            json!({"id": "c", "model": "m", "choices": null, "usage": {"prompt_tokens": 1}}),
        ]);
        assert_eq!(kept[0]["choices"], json!([]));
    }
}
