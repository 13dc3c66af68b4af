//! `POST /v1/embeddings` (SPEC §3): OpenAI's embeddings on the same pipeline as chat (cached by
//! default, failed over within the alias's targets, never streamed, no degraded reply). Errors
//! are OpenAI-shaped; an OpenAI target's own client error goes back verbatim.

use axum::extract::{Request, State};
use axum::response::Response;
use tokio::time::Instant;

use super::extract::{Authenticated, json_body};
use super::handle::handle;
use crate::dialect::Api;
use crate::error::GatewayError;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    key: Result<Authenticated, GatewayError>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let answered = async {
        let Authenticated(caller) = key?;
        // Held to the end: the body's bytes count against the gateway's budget until then.
        let (headers, bytes, _body_hold) = json_body(request, &state).await?;
        let request = crate::dialect::Request::Embeddings(EmbeddingsRequest::from_bytes(bytes)?);
        handle(&state, &headers, caller, request, started).await
    };
    answered.await.unwrap_or_else(|error| error.into_response_for(Api::Embeddings))
}
