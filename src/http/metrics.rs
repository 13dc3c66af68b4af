//! `GET /metrics`: the Prometheus text exposition, and `track_inflight`, the in-flight gauge.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http_body_util::BodyExt;

use crate::pipeline::CircuitState;
use crate::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = state.metrics();
    // Circuit states are read when scraped rather than pushed on every transition.
    for provider in &state.config().providers {
        if let Some(health) = state.health(&provider.name) {
            let value = match health.breaker.state() {
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => 1,
                CircuitState::Open => 2,
            };
            metrics.set_circuit_state(&provider.name, value);
        }
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
}

/// Counts a request as in flight until its response body is finished or dropped, so a stream
/// counts for as long as it runs.
pub async fn track_inflight(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let gauge = state.metrics().inflight().clone();
    gauge.inc();
    let guard = InflightGuard(gauge);
    let response = next.run(request).await;
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &guard;
            frame
        }))
    })
}

struct InflightGuard(prometheus::IntGauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
