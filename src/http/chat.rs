//! `POST /v1/chat/completions`: the checked body, as a chat request, to `handle`.

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use tokio::time::Instant;

use super::extract::{Authenticated, ChatBody};
use super::handle::handle;
use crate::dialect::Request;
use crate::error::GatewayError;
use crate::state::AppState;

pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Authenticated(caller): Authenticated,
    // Held to the end: the body's bytes count against the gateway's budget until then.
    ChatBody(request, _body_hold): ChatBody,
) -> Result<Response, GatewayError> {
    handle(&state, &headers, caller, Request::Chat(request), Instant::now()).await
}
