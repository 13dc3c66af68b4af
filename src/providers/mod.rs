//! Upstream providers: translation to and from each upstream, and nothing else.
//!
//! A provider sends one attempt and returns a [`Reply`] or a classified [`Failure`]; it knows
//! nothing of retries, caching, metrics or client-facing statuses. Per-attempt deadlines
//! (`first_byte`, `total`) are applied around [`Provider::send`] by the pipeline; `connect` and
//! `idle` are properties of each network provider's HTTP clients, in its `transport::Transport`.

mod anthropic;
mod azure;
mod body;
mod connect;
mod embeddings;
mod mock;
mod mock_embeddings;
mod openai;
pub mod plain;
mod responses;
pub mod sse;
mod translated;
mod transport;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};

use self::transport::{Connect, Transport};
use crate::config::{ProviderConfig, ProviderKind, Timeouts};
use crate::dialect::{Api, Carriage, Messages, Request};
use crate::failure::{Failure, FailureClass};
use crate::openai::chat::ChatRequest;

/// What an upstream answered, once it has answered well enough to commit to, in the dialect of
/// the request it answers (a `chat.completion`, a Message, a Response or an embeddings list).
pub enum Reply {
    /// A whole answer's JSON body.
    Complete(bytes::Bytes),
    /// The `data:` payloads of the answer's SSE events (`chat.completion.chunk`s, or Messages or
    /// Responses events, which are named by their `type`). The first one has already arrived; the stream
    /// ends cleanly after the upstream's terminal event, or with one `Err` when it broke.
    Stream(ChunkStream),
}

pub type ChunkStream = BoxStream<'static, Result<String, Failure>>;

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete(body) => write!(f, "Complete({} bytes)", body.len()),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// One configured upstream.
pub struct Provider {
    pub name: Arc<str>,
    pub timeouts: Timeouts,
    backend: Backend,
    /// How it carries each API, in `Api::ALL`'s order.
    carriage: [Carriage; 4],
}

enum Backend {
    OpenAi(openai::OpenAi),
    Azure(azure::Azure),
    Anthropic(anthropic::Anthropic),
    Mock(mock::Mock),
}

impl Provider {
    /// Builds the provider and its connection pools, one per worker thread. Fails only if the
    /// TLS stack cannot start or the configured key cannot be sent as a header value.
    pub fn from_config(config: &ProviderConfig, workers: usize) -> Result<Self, String> {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let base_url = config.kind.base_url();
        let connect: Connect<'_> = &|credential, mut headers| {
            headers.extend(base_url.and_then(|url| transport::url_credentials(url, &credential)));
            Transport::new(&name, &config.timeouts, workers, credential, headers)
        };
        let backend = match &config.kind {
            ProviderKind::OpenAi(settings) => {
                Backend::OpenAi(openai::OpenAi::new(settings, connect)?)
            }
            ProviderKind::Azure(settings) => Backend::Azure(azure::Azure::new(settings, connect)?),
            ProviderKind::Anthropic(settings) => {
                Backend::Anthropic(anthropic::Anthropic::new(settings, connect)?)
            }
            ProviderKind::Mock(settings) => {
                Backend::Mock(mock::Mock::new(Arc::clone(&name), settings))
            }
        };
        let carriage = Api::ALL.map(|api| config.kind.carries(api));
        Ok(Self { name, timeouts: config.timeouts, backend, carriage })
    }

    /// How this provider carries a request of `api` (`ProviderKind::carries`).
    pub fn carries(&self, api: Api) -> Carriage {
        let index = Api::ALL.iter().position(|known| *known == api).unwrap_or(0);
        self.carriage[index]
    }

    /// The wire a request of `api` goes out on: its own when carried natively, else the one the
    /// translation speaks (an upstream's error body is in it).
    fn wire(&self, api: Api) -> Api {
        match (self.carries(api), &self.backend) {
            (Carriage::Native, _) => api,
            (_, Backend::Anthropic(_)) => Api::Messages,
            _ => Api::Chat,
        }
    }

    /// Sends one attempt for `request`, naming `model` upstream, and returns the answer in the
    /// request's own dialect: a dialect the provider speaks is a passthrough, another is
    /// translated both ways (`translated.rs`). For a stream, returns once the first content has
    /// arrived, so that a failure before it can still be failed over.
    pub async fn send(
        &self,
        request: &Request,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        let native = self.carries(request.api()) == Carriage::Native;
        let sent = match (request, &self.backend) {
            (Request::Chat(chat), _) => self.send_chat(chat, model, request_id).await,
            (Request::Messages(messages), Backend::Anthropic(backend)) => {
                backend.send_messages(messages, model, request_id).await
            }
            (Request::Messages(messages), _) => {
                let chat = messages
                    .as_chat()
                    .map_err(|refusal| Failure::refused(&self.name, refusal.clone()))?;
                let reply = self.send_chat(&chat.request, model, request_id).await?;
                translated::messages_from_chat(reply, messages, &self.name).await
            }
            (Request::Responses(responses), _) if native => {
                let body = responses
                    .native_body(&self.name, model)
                    .map_err(|err| Failure::unencodable(&self.name, &err))?;
                let stream = responses.request.stream;
                match &self.backend {
                    Backend::OpenAi(backend) => {
                        backend.send_responses(body, stream, request_id).await
                    }
                    Backend::Azure(backend) => {
                        backend.send_responses(body, stream, request_id).await
                    }
                    // Not reached: only those two kinds carry Responses natively.
                    Backend::Anthropic(_) | Backend::Mock(_) => {
                        Err(Failure::new(FailureClass::ClientError, &self.name, "no Responses API"))
                    }
                }
            }
            (Request::Responses(responses), _) => {
                let chat = responses
                    .as_chat()
                    .map_err(|refusal| Failure::refused(&self.name, refusal.clone()))?;
                let reply = self.send_chat(&chat.request, model, request_id).await?;
                translated::responses_from_chat(reply, responses, &self.name).await
            }
            (Request::Embeddings(embeddings), backend) => {
                let body = || {
                    embeddings
                        .for_upstream(model)
                        .map_err(|err| Failure::unencodable(&self.name, &err))
                };
                match backend {
                    Backend::OpenAi(backend) => {
                        backend.send_embeddings(body()?, embeddings.encoding, request_id).await
                    }
                    Backend::Azure(backend) => {
                        backend
                            .send_embeddings(body()?, model, embeddings.encoding, request_id)
                            .await
                    }
                    Backend::Mock(backend) => backend.send_embeddings(embeddings, model).await,
                    // Not reached: `Failover` skips a target that does not carry the API.
                    Backend::Anthropic(_) => Err(Failure::new(
                        FailureClass::ClientError,
                        &self.name,
                        "an Anthropic target serves no embeddings",
                    )),
                }
            }
        };
        sent.map_err(|mut failure| {
            if let Some(rejection) = failure.upstream.as_mut() {
                rejection.api = self.wire(request.api());
            }
            failure
        })
    }

    /// Counts `messages`' input tokens upstream, naming `model`: the upstream's answer; none
    /// when this provider has no token counting of its own (every kind but Anthropic).
    pub async fn count_tokens(
        &self,
        messages: &Messages,
        model: &str,
        request_id: &str,
    ) -> Option<Result<bytes::Bytes, Failure>> {
        match &self.backend {
            Backend::Anthropic(backend) => {
                Some(backend.count_tokens(messages, model, request_id).await)
            }
            Backend::OpenAi(_) | Backend::Azure(_) | Backend::Mock(_) => None,
        }
    }

    async fn send_chat(
        &self,
        request: &ChatRequest,
        model: &str,
        request_id: &str,
    ) -> Result<Reply, Failure> {
        match &self.backend {
            Backend::OpenAi(backend) => backend.send(request, model, request_id).await,
            Backend::Azure(backend) => backend.send(request, model, request_id).await,
            Backend::Anthropic(backend) => backend.send(request, model, request_id).await,
            Backend::Mock(backend) => backend.send(request, model).await,
        }
    }
}

/// Waits for a stream's first chunk that `carries_content` (SPEC §4 "Streams never lie": the
/// opening events wait with it) and returns the stream with what it held put back in front. A
/// stream that fails or ends before is a failed attempt, which nothing has reached the client of.
async fn content_ready(
    provider: &Arc<str>,
    mut chunks: ChunkStream,
    carries_content: fn(&str) -> bool,
) -> Result<Reply, Failure> {
    let mut held = Vec::new();
    loop {
        match chunks.next().await {
            Some(Ok(chunk)) => {
                let ready = carries_content(&chunk);
                held.push(Ok(chunk));
                if ready {
                    return Ok(Reply::Stream(stream::iter(held).chain(chunks).boxed()));
                }
            }
            Some(Err(failure)) => return Err(failure),
            None => {
                return Err(Failure::new(
                    FailureClass::ServerError,
                    provider,
                    "upstream stream ended before its first content",
                ));
            }
        }
    }
}

/// Seconds since the Unix epoch, for the `created` of answers the gateway writes.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
