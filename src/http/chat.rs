//! `POST /v1/chat/completions`: checked body → `Call` → the model's pipeline → JSON or SSE.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use tokio::time::Instant;

use super::extract::ChatBody;
use super::record::RequestRecord;
use super::{request_id, respond};
use crate::cache::control::Directives;
use crate::error::GatewayError;
use crate::metrics::RouteLabel;
use crate::pipeline::Call;
use crate::state::AppState;

pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    ChatBody(request): ChatBody,
) -> Result<Response, GatewayError> {
    let started = Instant::now();
    let pipeline = state
        .pipeline(&request.model)
        .ok_or_else(|| GatewayError::ModelNotFound(request.model.clone()))?;
    // The request span's fields make the one log line per request (see `server::router`).
    let span = tracing::Span::current();
    span.record("model", request.model.as_str());
    let metrics = state.metrics();
    let mut record = RequestRecord::new(metrics, &request.model, request.stream, started);
    let request_id = request_id::of(&headers);
    let (model, stream, include_usage) =
        (request.model.clone(), request.stream, request.include_usage);
    let call = Call {
        request: Arc::new(request),
        request_id: Arc::from(request_id),
        deadline: started + state.config().server.request_timeout,
        cache: Directives::from_headers(&headers),
        // Until gateway keys exist, every client shares one cache space.
        scope: Arc::from(""),
    };
    match pipeline.call(call).await {
        Ok(answer) => {
            let provenance = &answer.provenance;
            span.record("provider", provenance.provider.as_deref().unwrap_or("-"));
            span.record("route", provenance.route.as_str());
            span.record("attempts", provenance.attempts);
            span.record("cache", provenance.cache.as_str());
            let elapsed = started.elapsed();
            metrics.record_overhead(elapsed.saturating_sub(provenance.upstream_time));
            if let (true, Some(provider)) = (stream, &provenance.provider) {
                metrics.record_first_token(&model, provider, elapsed);
            }
            record.answered(provenance.route.label(), 200);
            Ok(respond::answer(answer, include_usage, request_id, state.streams_cut(), record))
        }
        Err(failure) => {
            tracing::warn!(failure = %failure, "no upstream answer");
            span.record("route", "error");
            span.record("attempts", failure.attempts);
            let error = GatewayError::from(failure);
            record.answered(RouteLabel::Error, error.status().as_u16());
            Err(error)
        }
    }
}
