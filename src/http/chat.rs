//! `POST /v1/chat/completions`: checked body → `Call` → the model's pipeline → JSON or SSE.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use tokio::time::Instant;

use super::extract::ChatBody;
use super::{request_id, respond};
use crate::error::GatewayError;
use crate::pipeline::Call;
use crate::state::AppState;

pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    ChatBody(request): ChatBody,
) -> Result<Response, GatewayError> {
    let pipeline = state
        .pipeline(&request.model)
        .ok_or_else(|| GatewayError::ModelNotFound(request.model.clone()))?;
    let request_id = request_id::of(&headers);
    let call = Call {
        request: Arc::new(request),
        request_id: Arc::from(request_id),
        deadline: Instant::now() + state.config().server.request_timeout,
    };
    match pipeline.call(call).await {
        Ok(answer) => Ok(respond::answer(answer, request_id, state.streams_cut())),
        Err(failure) => {
            tracing::warn!(failure = %failure, "no upstream answer");
            Err(failure.into())
        }
    }
}
