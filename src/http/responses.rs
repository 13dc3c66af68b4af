//! `POST /v1/responses` (SPEC §3): OpenAI's Responses API on the same pipeline as chat. A request
//! that continues a response (`previous_response_id`) takes the conversation the gateway kept
//! for it along (`crate::conversations`), so that every target can continue it. Errors are
//! OpenAI-shaped; an OpenAI target's own client error goes back verbatim. The body is read only
//! after the key check.

use axum::extract::{Request, State};
use axum::response::Response;
use tokio::time::Instant;

use super::extract::{Authenticated, json_body};
use super::handle::{handle, pipeline_for};
use crate::dialect::{Api, Responses};
use crate::error::GatewayError;
use crate::openai::responses::ResponsesRequest;
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
        let request = ResponsesRequest::from_bytes(bytes)?;
        // The model is checked before the store is read for it (`handle` checks it again).
        pipeline_for(&state, caller.as_ref(), &request.model)?;
        let history = match &request.previous_response_id {
            Some(id) => {
                let scope = state.cache_scope(caller.as_ref().map(|caller| &caller.name));
                state.conversations().lookup(&scope, id).await
            }
            None => None,
        };
        let request = crate::dialect::Request::Responses(Responses::new(request, history));
        handle(&state, &headers, caller, request, started).await
    };
    answered.await.unwrap_or_else(|error| error.into_response_for(Api::Responses))
}
