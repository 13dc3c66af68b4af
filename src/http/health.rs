//! `/healthz` (the process runs) and `/readyz` (it should be sent traffic).

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready while the config is loaded (it always is once serving) and the gateway is not
/// shutting down. Every model has a target, which `check` guarantees.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut reasons = Vec::new();
    if state.is_draining() {
        reasons.push("the gateway is shutting down".to_owned());
    }
    let ready = reasons.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"ready": ready, "reasons": reasons})))
}
