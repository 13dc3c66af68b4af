//! `ballast warm`: pre-computes answers. Each line of a JSONL file is a request body of one API
//! (chat completions, or `--api messages|responses|embeddings`), sent through the same pipeline as
//! live traffic, so its answer lands in the shared cache (Redis) where every replica finds it.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::anthropic::MessagesRequest;
use crate::auth::Caller;
use crate::config::{CacheBackend, Config};
use crate::dialect::{Api, Messages, Request, Responses};
use crate::openai::chat::ChatRequest;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::openai::responses::ResponsesRequest;
use crate::outcome::CacheStatus;
use crate::pipeline::{CachePolicy, Call};
use crate::providers::Reply;
use crate::state::AppState;

/// What a run did, line by line.
#[derive(Debug, Default)]
pub struct Summary {
    pub stored: usize,
    pub already_fresh: usize,
    /// Line number (from 1) and why.
    pub failed: Vec<(usize, String)>,
}

/// Why warming could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error(
        "warm needs the shared cache (cache.backend: redis); with `{0}` the answers would not \
         outlive this process or reach the gateways"
    )]
    NotShared(&'static str),
    #[error("--key-name names a gateway key's cache space, and this config has no `auth` keys")]
    NoKeys,
    #[error("--key-name `{0}`: no gateway key has that name in `auth.keys`")]
    UnknownKey(String),
    #[error(
        "auth is on and each gateway key has its own cache space (cache.shared_across_keys: \
         false): name the key whose space to warm with --key-name"
    )]
    KeyNeeded,
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

pub async fn run(
    config: Config,
    file: &Path,
    concurrency: usize,
    key_name: Option<&str>,
    api: Api,
) -> Result<Summary, WarmError> {
    match config.cache.backend {
        CacheBackend::Redis { .. } => {}
        CacheBackend::Memory => return Err(WarmError::NotShared("memory")),
        CacheBackend::None => return Err(WarmError::NotShared("none")),
    }
    let text = std::fs::read_to_string(file)
        .map_err(|source| WarmError::Read { path: file.display().to_string(), source })?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let timeout = config.server.request_timeout;
    let state = AppState::new(config).map_err(WarmError::Setup)?;
    let caller = warmed_for(&state, key_name)?;
    let progress = progress_bar(lines.len() as u64);

    let outcomes: Vec<(usize, Result<CacheStatus, String>)> = stream::iter(lines)
        .map(|(number, line)| {
            let (state, caller) = (state.clone(), caller.clone());
            let progress = progress.clone();
            async move {
                let outcome = warm_one(&state, caller.as_ref(), api, line, timeout).await;
                progress.inc(1);
                (number, outcome)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    progress.finish_and_clear();
    if let Some(cache) = state.cache() {
        cache.flush().await;
    }

    let mut summary = Summary::default();
    for (number, outcome) in outcomes {
        match outcome {
            Ok(CacheStatus::Hit) => summary.already_fresh += 1,
            Ok(_) => summary.stored += 1,
            Err(reason) => summary.failed.push((number, reason)),
        }
    }
    summary.failed.sort_by_key(|(number, _)| *number);
    Ok(summary)
}

/// The gateway key whose clients the answers are for: `--key-name`'s, which is required when
/// keys have cache spaces of their own (an answer warmed elsewhere would never be read).
fn warmed_for(state: &AppState, key_name: Option<&str>) -> Result<Option<Caller>, WarmError> {
    match (state.auth(), key_name) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(WarmError::NoKeys),
        (Some(auth), Some(name)) => match auth.caller(name) {
            Some(caller) => Ok(Some(caller.clone())),
            None => Err(WarmError::UnknownKey(name.to_owned())),
        },
        (Some(_), None) if state.config().cache.shared_across_keys => Ok(None),
        (Some(_), None) => Err(WarmError::KeyNeeded),
    }
}

async fn warm_one(
    state: &AppState,
    caller: Option<&Caller>,
    api: Api,
    line: &str,
    timeout: std::time::Duration,
) -> Result<CacheStatus, String> {
    let bytes = line.as_bytes();
    let request = match api {
        Api::Chat => ChatRequest::from_slice(bytes).map(Request::Chat),
        Api::Messages => MessagesRequest::from_slice(bytes)
            .map(|request| Request::Messages(Messages::new(request, Vec::new()))),
        // A warmed response continues nothing this gateway kept: only its own input counts.
        Api::Responses => ResponsesRequest::from_slice(bytes)
            .map(|request| Request::Responses(Responses::new(request, None))),
        Api::Embeddings => EmbeddingsRequest::from_slice(bytes).map(Request::Embeddings),
    }
    .map_err(|invalid| invalid.message)?;
    let model = request.model();
    if let Some(caller) = caller.filter(|caller| !caller.may_use(model)) {
        return Err(format!("key `{}` may not use model `{model}`", caller.name));
    }
    let pipeline = state.pipeline(model).ok_or_else(|| format!("unknown model `{model}`"))?;
    let request = Arc::new(request);
    // The prompt is counted for the model's context windows, as a client's request is.
    let prompt_tokens = if pipeline.has_context_windows() {
        crate::tokens::prompt_tokens(&request).await
    } else {
        None
    };
    let call = Call {
        request,
        model: Arc::clone(pipeline.model()),
        request_id: Arc::from(format!("warm_{:016x}", rand::random::<u64>())),
        deadline: Instant::now() + timeout,
        cache: CachePolicy::default(),
        scope: state.cache_scope(caller.map(|caller| &caller.name)),
        usage_hook: None,
        prompt_tokens,
        attempt_numbers: None,
    };
    let answer = pipeline.call(call).await.map_err(|failure| failure.to_string())?;
    // A stream is stored once it has been read to its end.
    if let Reply::Stream(mut chunks) = answer.reply {
        while let Some(chunk) = chunks.next().await {
            chunk.map_err(|failure| failure.to_string())?;
        }
    }
    Ok(answer.provenance.cache)
}

/// A bar on a terminal; hidden otherwise (logs and CI stay clean).
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests {elapsed_precise} (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}
