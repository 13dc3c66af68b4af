//! `ChatBody`: the chat-completions body, read within `max_body_size` and checked, with every
//! rejection in OpenAI's error shape (413 `request_too_large`, 400 `invalid_request_error`).

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;

use crate::error::GatewayError;
use crate::openai::chat::ChatRequest;
use crate::state::AppState;

pub struct ChatBody(pub ChatRequest);

impl FromRequest<AppState> for ChatBody {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                GatewayError::RequestTooLarge { limit: state.config().server.max_body_size }
            } else {
                GatewayError::InvalidRequest {
                    message: format!("The request body could not be read: {rejection}."),
                    param: None,
                    code: "invalid_body",
                }
            }
        })?;
        Ok(Self(ChatRequest::from_slice(&bytes)?))
    }
}
