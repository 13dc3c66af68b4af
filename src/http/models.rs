//! `GET /v1/models`: the configured model names (aliases) in OpenAI's list format.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .config()
        .models
        .iter()
        .map(|model| {
            json!({"id": model.name, "object": "model", "created": state.loaded_at(), "owned_by": "ballast"})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}
