//! `GET /metrics`: the Prometheus text exposition.

use axum::extract::State;
use axum::response::IntoResponse;
use http::header::CONTENT_TYPE;

use crate::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = state.metrics();
    // Circuit states are read when scraped rather than pushed on every transition.
    for provider in &state.config().providers {
        if let Some(health) = state.health(&provider.name) {
            metrics.set_circuit_state(&provider.name, health.breaker.state());
        }
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
}
