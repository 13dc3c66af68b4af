//! `/healthz` (the process runs), `/readyz` (it should be sent traffic) and `/status` (what it
//! knows about its providers).

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::outcome::CircuitState;
use crate::state::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready unless shutting down or some model has every target's circuit open.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut reasons = Vec::new();
    if state.is_draining() {
        reasons.push("the gateway is shutting down".to_owned());
    }
    for model in &state.config().models {
        let all_open = model.targets.iter().all(|target| {
            state
                .health(&target.provider.name)
                .is_some_and(|h| h.breaker.state() == CircuitState::Open)
        });
        if all_open {
            reasons.push(format!("model `{}`: every target's circuit is open", model.name));
        }
    }
    let ready = reasons.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready, "reasons": reasons})))
}

/// Each provider's circuit, recent error rate (last minute) and latency estimate.
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    let mut providers = Map::new();
    for provider in &state.config().providers {
        let Some(health) = state.health(&provider.name) else {
            continue;
        };
        let entry = json!({
            "kind": provider.kind.name(),
            "circuit": health.breaker.state().as_str(),
            "forced": health.breaker.forced().map(crate::pipeline::Forced::as_str),
            "error_rate": health.error_rate(),
            "latency_ms": health.latency_ms(),
        });
        providers.insert(provider.name.clone(), entry);
    }
    Json(json!({
        "providers": providers,
        "cache": match state.cache() {
            Some(cache) => json!({"backend": cache.backend(), "reachable": cache.is_reachable()}),
            None => json!({"backend": "none", "reachable": true}),
        },
        "draining": state.is_draining(),
    }))
}
