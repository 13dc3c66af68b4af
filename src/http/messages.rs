//! `POST /v1/messages` and `POST /v1/messages/count_tokens` (SPEC §3): Anthropic's Messages API
//! on the same pipeline as chat. Every error here, the key check's and the body's included, is
//! in Anthropic's shape, so these handlers take the key check's outcome as a value and read the
//! body themselves, after the key (an unauthenticated body is never read).

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::extract::{Authenticated, json_body};
use super::handle::{handle, pipeline_for};
use super::{request_id, respond};
use crate::anthropic::{MessagesRequest, count_tokens};
use crate::dialect::{Api, Messages, messages};
use crate::error::GatewayError;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    key: Result<Authenticated, GatewayError>,
    request: Request,
) -> Response {
    let answered = async {
        let Authenticated(caller) = key?;
        // Held to the end: the body's bytes count against the gateway's budget until then.
        let (headers, bytes, _body_hold) = json_body(request, &state).await?;
        let request = MessagesRequest::from_bytes(bytes)?;
        let request = Messages::new(request, forwarded(&headers));
        handle(&state, &headers, caller, crate::dialect::Request::Messages(request), Instant::now())
            .await
    };
    answered.await.unwrap_or_else(|error| error.into_response_for(Api::Messages))
}

pub async fn count(
    State(state): State<AppState>,
    key: Result<Authenticated, GatewayError>,
    request: Request,
) -> Response {
    let counted = async {
        let Authenticated(caller) = key?;
        let (headers, bytes, _body_hold) = json_body(request, &state).await?;
        let request = MessagesRequest::for_counting(bytes)?;
        let pipeline = pipeline_for(&state, caller.as_ref(), &request.model)?;
        let messages = Messages::new(request, forwarded(&headers));
        let json = [(http::header::CONTENT_TYPE, "application/json")];
        if let Some((body, provider)) =
            pipeline.count_tokens(&messages, request_id::of(&headers)).await
        {
            let mut response = (json, body).into_response();
            if let Ok(provider) = HeaderValue::try_from(&*provider) {
                response.headers_mut().insert(respond::X_BALLAST_PROVIDER, provider);
            }
            return Ok(response);
        }
        // The tokenizer works for a while on a long prompt: off the worker's thread.
        let request = messages.request;
        let estimated = tokio::task::spawn_blocking(move || count_tokens::estimate(&request))
            .await
            .ok()
            .flatten()
            .ok_or(GatewayError::Internal)?;
        let body = serde_json::json!({"input_tokens": estimated}).to_string();
        let mut response = (json, body).into_response();
        let estimate = HeaderValue::from_static("true");
        response.headers_mut().insert(respond::X_BALLAST_ESTIMATE, estimate);
        Ok(response)
    };
    counted.await.unwrap_or_else(|error: GatewayError| error.into_response_for(Api::Messages))
}

/// The client's `anthropic-version` and `anthropic-beta`, for Anthropic targets.
fn forwarded(headers: &HeaderMap) -> Vec<(http::HeaderName, HeaderValue)> {
    let named = |name: &http::HeaderName| Some((name.clone(), headers.get(name)?.clone()));
    messages::FORWARDED.iter().filter_map(named).collect()
}
