//! The router and its edge layers: what every request meets before and after its handler.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http::header::{AUTHORIZATION, COOKIE, HeaderName};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use super::access_log::AccessLogLayer;
use super::extract::Authenticated;
use super::{admin, chat, embeddings, health, messages, metrics, models, request_id, responses};
use crate::error::GatewayError;
use crate::state::AppState;

/// What a listener serves: the routes with their state and edge layers.
pub type App = Router;

/// The router and its edge layers. The order, outermost first:
///
/// 1. Request id: keep the client's `x-request-id` or make one, echo it on every response,
///    the panic response included (so it is outside 2).
/// 2. `CatchPanicLayer`: a panic becomes an OpenAI-shaped 500, never a dropped connection.
/// 3. `SetSensitiveRequestHeadersLayer`: credentials are redacted before anything can log them.
/// 4. `AccessLogLayer` (`http::access_log`): a span per request (request id, method, path; the
///    handlers add key, model, provider, route, cache result and attempts; never bodies) and
///    one info line with status and latency when the response starts. With traces on, the span
///    is also the request's OpenTelemetry server span, continuing the client's `traceparent`
///    (`telemetry::traces`).
/// 5. The routes (the Messages ones answer errors in Anthropic's shape, the others in OpenAI's,
///    a passthrough's upstream client error verbatim on every route but chat); unknown paths and
///    methods get OpenAI-shaped 404 and 405. `/metrics` and
///    `/status` are here unless `server.metrics_listen` serves them apart; here, with `auth`
///    on, they need a gateway key (they list every alias, provider and spend), while
///    `/healthz` and `/readyz` stay open for load balancers.
///
/// Bodies are read by the handlers' extractors within `http::body`'s limits (size, time and the
/// gateway-wide byte budget), not by a layer: only a route that reads a body pays for it.
pub fn app(state: AppState) -> App {
    let sensitive = [
        AUTHORIZATION,
        COOKIE,
        HeaderName::from_static("api-key"),
        HeaderName::from_static("x-api-key"),
    ];
    let edge = ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(GatewayError::Internal)
        }))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
        .layer(AccessLogLayer);
    let mut routes = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count))
        .route("/v1/responses", post(responses::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(models::list_models))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if state.config().server.metrics_listen.is_none() {
        let keyed = middleware::from_fn_with_state(state.clone(), with_gateway_key);
        routes = routes.merge(operator_routes().route_layer(keyed));
    }
    routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(edge)
        .with_state(state)
}

/// `/metrics` and `/status`: on the main listener, or alone on `server.metrics_listen`.
fn operator_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics::metrics)).route("/status", get(health::status))
}

/// The router of `server.metrics_listen`: the operator routes, the admin endpoints (which exist
/// only here) and health, nothing else.
pub fn operator_app(state: AppState) -> App {
    operator_routes()
        .route("/admin/reload", post(admin::reload))
        .route("/admin/providers/{name}/circuit", post(admin::circuit))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(unknown_route)
        .with_state(state)
}

/// Passes requests that carry a gateway key (any, when `auth` is on) or when the gateway is open.
async fn with_gateway_key(_: Authenticated, request: Request, next: Next) -> Response {
    next.run(request).await
}

async fn unknown_route(request: Request) -> GatewayError {
    GatewayError::UnknownRoute {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

async fn method_not_allowed(request: Request) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}
