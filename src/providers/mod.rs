//! Upstream providers: translation to and from each upstream, and nothing else.
//!
//! A provider sends one attempt and returns a [`Reply`] or a classified [`Failure`]; it knows
//! nothing of retries, caching, metrics or client-facing statuses. Per-attempt deadlines
//! (`first_byte`, `total`) are applied around [`Provider::send`] by the pipeline; `connect` and
//! `idle` are properties of each provider's HTTP client.

mod mock;
mod openai;
pub mod sse;

use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};

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
    Mock(mock::Mock),
}

impl Provider {
    /// Builds the provider and its connection pool. Fails only if the TLS stack cannot start.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, String> {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let backend = match &config.kind {
            ProviderKind::OpenAi(settings) => {
                Backend::OpenAi(openai::OpenAi::new(Arc::clone(&name), settings, &config.timeouts)?)
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
            Backend::OpenAi(upstream) => upstream.send(request, model, request_id).await,
            Backend::Mock(upstream) => upstream.send(request, model).await,
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
