//! The operator's endpoints, served only on `server.metrics_listen` (never on the public
//! listener): `POST /admin/reload` (as SIGHUP: 200 with the new route table, 422 with every
//! problem while the running config stays) and `POST /admin/providers/{name}/circuit` (hold a
//! provider's circuit `open` to drain it, `closed` to force it back, `auto` to return it to the
//! breaker). Errors are in OpenAI's shape, as on every route but the Messages ones.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pipeline::Forced;
use crate::reload::ReloadOutcome;
use crate::state::AppState;

pub async fn reload(State(state): State<AppState>) -> Response {
    match state.reload().await {
        Some(ReloadOutcome::Applied { route_table, restart_needed }) => {
            let body = json!({
                "status": "reloaded",
                "restart_needed": restart_needed,
                "route_table": route_table,
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Some(ReloadOutcome::Refused { problems }) => {
            let message = format!(
                "The config file has {} problem(s); the running config stays.",
                problems.len()
            );
            let mut body = error_body(&message, "invalid_config", None);
            body["problems"] = json!(problems);
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "This gateway cannot reload: it was not started from a config file, or it is \
             shutting down.",
            "reload_unavailable",
            None,
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CircuitRequest {
    state: String,
}

pub async fn circuit(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(health) = state.health(&name) else {
        let message = format!("There is no provider `{name}` in the running config.");
        return error(StatusCode::NOT_FOUND, &message, "provider_not_found", None);
    };
    let forced = match serde_json::from_slice::<CircuitRequest>(&body) {
        Ok(request) => match request.state.as_str() {
            "open" => Some(Forced::Open),
            "closed" => Some(Forced::Closed),
            "auto" => None,
            _ => return bad_state(),
        },
        Err(_) => return bad_state(),
    };
    health.breaker.force(forced);
    let body = json!({
        "provider": name,
        "forced": forced.map(Forced::as_str),
        "circuit": health.breaker.state().as_str(),
    });
    (StatusCode::OK, Json(body)).into_response()
}

fn bad_state() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "The body must be {\"state\": \"open\" | \"closed\" | \"auto\"}.",
        "invalid_circuit_state",
        Some("state"),
    )
}

fn error_body(message: &str, code: &str, param: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
}

fn error(status: StatusCode, message: &str, code: &str, param: Option<&str>) -> Response {
    (status, Json(error_body(message, code, param))).into_response()
}
