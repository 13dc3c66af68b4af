//! `POST /v1/chat/completions`: the checked body, as a chat request, to `handle`.

use axum::extract::{Request, State};
use axum::response::Response;
use tokio::time::Instant;

use super::extract::{Authenticated, json_body};
use super::handle::handle;
use crate::dialect;
use crate::error::GatewayError;
use crate::openai::chat::ChatRequest;
use crate::state::AppState;

pub async fn chat_completions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    request: Request,
) -> Result<Response, GatewayError> {
    // Held to the end: the body's bytes count against the gateway's budget until then.
    let (headers, bytes, _body_hold) = json_body(request, &state).await?;
    let request = dialect::Request::Chat(ChatRequest::from_bytes(bytes)?);
    handle(&state, &headers, caller, request, Instant::now()).await
}
