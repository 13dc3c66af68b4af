//! What every API's handler does with its checked request, whichever dialect it speaks: the
//! key's allow-list, the model's pipeline, the key's limits, the `Call`, and the answer as the
//! route's JSON or SSE (`respond`), with the request's one log line and metrics.

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::record::RequestRecord;
use super::{cache_control, request_id, respond};
use crate::auth::Caller;
use crate::dialect::{Api, Request};
use crate::error::{GatewayError, rate_limit_headers};
use crate::pipeline::{Call, Pipeline, Spent, UsageHook};
use crate::rate_limit::Admission;
use crate::state::AppState;
use crate::telemetry::traces;
use crate::tokens;

/// Sends `request` through its model's pipeline and answers it. An error is the route's to
/// shape (OpenAI's or Anthropic's).
pub async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    caller: Option<Caller>,
    request: Request,
    started: Instant,
) -> Result<Response, GatewayError> {
    let api = request.api();
    let pipeline = pipeline_for(state, caller.as_ref(), request.model())?;
    let request = Arc::new(request);
    // Counting reads the whole prompt: only a token limit or a context window needs it.
    let limits_tokens = caller
        .as_ref()
        .is_some_and(|caller| caller.rate_limit.is_some_and(|l| l.tokens_per_minute.is_some()));
    let prompt_tokens = if limits_tokens || pipeline.has_context_windows() {
        // Boxed, as the other rarely taken awaits here: the handler's future stays small for
        // the requests that skip them (it lives while an answer's head is awaited).
        Box::pin(tokens::prompt_tokens(&request)).await
    } else {
        None
    };
    let admission = match &caller {
        Some(caller) => {
            Some(Box::pin(state.limiter().admit(caller, prompt_tokens.unwrap_or(0))).await?)
        }
        None => None,
    };
    // The request span's fields make the one log line per request (see `http::access_log`).
    let model = Arc::clone(pipeline.model());
    let span = tracing::Span::current();
    span.record("model", &*model);
    let tracing_on = traces::on();
    if tracing_on {
        traces::request_started(&span, api, &model);
    }
    let metrics = state.metrics();
    let stream = request.stream();
    let mut record = RequestRecord::new(metrics, api, &model, stream, started);
    let request_id = request_id::of(headers);
    let include_usage = match &*request {
        Request::Chat(chat) => chat.include_usage,
        Request::Messages(_) | Request::Responses(_) | Request::Embeddings(_) => true,
    };
    let scope = state.cache_scope(caller.as_ref().map(|caller| &caller.name));
    let usage_hook = caller
        .clone()
        .zip(admission)
        .map(|(caller, admission)| settle_hook(state, caller, admission));
    let call = Call {
        request: Arc::clone(&request),
        model: Arc::clone(&model),
        request_id: Arc::from(request_id),
        deadline: started + state.config().server.request_timeout,
        cache: cache_control::policy(headers),
        scope: Arc::clone(&scope),
        usage_hook,
        prompt_tokens,
        attempt_numbers: tracing_on.then(Arc::default),
    };
    match pipeline.call(call).await {
        Ok(mut answer) => {
            if request.api() == Api::Responses {
                let reply = answer.reply;
                let conversations = state.conversations();
                answer.reply =
                    Box::pin(conversations.keep(&scope, &request, &answer.provenance, reply)).await;
            }
            let provenance = &answer.provenance;
            span.record("provider", provenance.provider.as_deref().unwrap_or("-"));
            span.record("route", provenance.route.as_str());
            span.record("attempts", provenance.attempts);
            span.record("cache", provenance.cache.as_str());
            if tracing_on {
                let provider = provenance.provider.as_deref();
                traces::request_answered(
                    &span,
                    provider,
                    provenance.route.as_str(),
                    provenance.cache.as_str(),
                );
            }
            let elapsed = started.elapsed();
            metrics.record_overhead(elapsed.saturating_sub(provenance.upstream_time));
            if let Some(provider) = &provenance.provider {
                if stream {
                    metrics.record_first_token(&model, provider, elapsed);
                }
                metrics.record_translation_drops(api, provider, &provenance.dropped);
            }
            let dropped = dropped_header(&provenance.dropped);
            let hedged = provenance.hedged;
            record.answered(Some(provenance.route), 200);
            let framing = respond::Framing { api, include_usage };
            let mut response =
                respond::answer(answer, framing, request_id, state.streams_cut(), record).await;
            if let Some(dropped) = dropped {
                response.headers_mut().insert(respond::X_BALLAST_DROPPED, dropped);
            }
            if hedged {
                let hedged = HeaderValue::from_static("true");
                response.headers_mut().insert(respond::X_BALLAST_HEDGED, hedged);
            }
            if let Some(admission) = &admission {
                rate_limit_headers(response.headers_mut(), admission);
            }
            Ok(response)
        }
        Err(failure) => {
            tracing::warn!(failure = %failure, "no upstream answer");
            span.record("route", "error");
            span.record("attempts", failure.attempts);
            if tracing_on {
                traces::request_failed(&span, failure.class);
            }
            let error = GatewayError::from(failure);
            record.answered(None, error.status_for(api).as_u16());
            Err(error)
        }
    }
}

/// The pipeline of `model`, when it exists and `caller`'s key may use it.
pub fn pipeline_for<'a>(
    state: &'a AppState,
    caller: Option<&Caller>,
    model: &str,
) -> Result<&'a Pipeline, GatewayError> {
    if let Some(caller) = caller.filter(|caller| !caller.may_use(model)) {
        return Err(GatewayError::ModelNotAllowed {
            key: caller.name.to_string(),
            model: model.to_owned(),
        });
    }
    state.pipeline(model).ok_or_else(|| GatewayError::ModelNotFound(model.to_owned()))
}

/// `x-ballast-dropped: a,b` (SPEC §4); none when nothing was left out, or when a name cannot be
/// a header value.
fn dropped_header(dropped: &[String]) -> Option<HeaderValue> {
    if dropped.is_empty() {
        return None;
    }
    HeaderValue::try_from(dropped.join(",")).ok()
}

/// Settles the caller's token count with what the answer cost, off the request path.
fn settle_hook(state: &AppState, caller: Caller, admission: Admission) -> UsageHook {
    let limiter = Arc::clone(state.limiter());
    Arc::new(move |spent| {
        let actual = match spent {
            Spent::Reported { prompt, completion } => prompt.saturating_add(completion),
            Spent::Streamed { completion } => admission.estimated_tokens.saturating_add(completion),
        };
        // Called when a stream is dropped too, which can happen as a runtime shuts down: then
        // there is nothing left to settle for, and spawning would panic.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (limiter, caller) = (Arc::clone(&limiter), caller.clone());
        runtime.spawn(async move { limiter.settle(&caller, &admission, actual).await });
    })
}
