//! Upstream providers: translation to and from each upstream, and nothing else.
//!
//! A provider sends one attempt and returns a [`Reply`] or a classified [`Failure`]; it knows
//! nothing of retries, caching, metrics or client-facing statuses. Per-attempt deadlines
//! (`first_byte`, `total`) are applied around [`Provider::send`] by the pipeline; `connect` and
//! `idle` are properties of each network provider's HTTP clients, in its `transport::Transport`.

mod anthropic;
mod azure;
mod mock;
mod openai;
pub mod sse;
mod transport;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};

use self::transport::{Connect, Transport};
use crate::config::{ProviderConfig, ProviderKind, Timeouts};
use crate::failure::{Failure, FailureClass};
use crate::openai::chat::ChatRequest;

/// What an upstream answered, once it has answered well enough to commit to.
pub enum Reply {
    /// A whole `chat.completion` JSON body.
    Complete(bytes::Bytes),
    /// `chat.completion.chunk` JSON payloads. The first one has already arrived; the stream
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
        let connect: Connect<'_> = &|credential, headers| {
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
        Ok(Self { name, timeouts: config.timeouts, backend })
    }

    /// Sends one attempt for `request`, naming `model` upstream. For a stream, returns once
    /// the first chunk has arrived, so that a failure before it can still be failed over.
    pub async fn send(
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

/// Waits for a stream's first chunk and returns the stream with that chunk put back in front.
async fn first_chunk_ready(provider: &Arc<str>, mut chunks: ChunkStream) -> Result<Reply, Failure> {
    match chunks.next().await {
        Some(Ok(first)) => {
            Ok(Reply::Stream(stream::once(async { Ok(first) }).chain(chunks).boxed()))
        }
        Some(Err(failure)) => Err(failure),
        None => Err(Failure::new(
            FailureClass::ServerError,
            provider,
            "upstream stream ended before its first chunk",
        )),
    }
}

/// Seconds since the Unix epoch, for the `created` of answers the gateway writes.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
