//! `GET /v1/models`: the configured model names (aliases) in OpenAI's list format.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::extract::Authenticated;
use crate::state::AppState;

/// With gateway keys, only the models the caller's key may use.
pub async fn list_models(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Json<Value> {
    let data: Vec<Value> = state
        .config()
        .models
        .iter()
        .filter(|model| caller.as_ref().is_none_or(|caller| caller.may_use(&model.name)))
        .map(|model| {
            json!({"id": model.name, "object": "model", "created": state.loaded_at(), "owned_by": "ballast"})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}
