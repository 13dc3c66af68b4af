//! `GatewayError`: the only error that reaches a client, and the one mapping to HTTP.
//!
//! Every error body is OpenAI's `{"error":{"message","type","param","code"}}`, built here and
//! nowhere else. 5xx answers given after the gateway's own attempts carry `x-should-retry: false`
//! so the OpenAI SDKs do not multiply upstream traffic with retries of their own.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::anthropic::ErrorBody as AnthropicError;
use crate::auth::AuthFailure;
use crate::failure::{Failure, FailureClass, Refusal, Rejection};
use crate::openai::chat::InvalidRequest;
use crate::openai::error::ErrorBody;
use crate::outcome::Api;
use crate::rate_limit::{Admission, Limited, Refused};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<&'static str>, code: &'static str },
    #[error("{}", match .0 {
        AuthFailure::Missing => "You did not provide an API key: send it as `Authorization: Bearer <key>`.",
        AuthFailure::Invalid => "Incorrect API key provided.",
    })]
    Unauthorized(AuthFailure),
    #[error("The key `{key}` may not use the model `{model}`.")]
    ModelNotAllowed { key: String, model: String },
    #[error("Rate limit reached for this key; try again in {} s.", .0.retry_after.as_secs().max(1))]
    RateLimited(Limited),
    /// No window would ever admit this request: retrying it is pointless.
    #[error(
        "This request's estimated {estimated} tokens exceed this key's whole limit of {limit} \
         tokens per minute; shorten it."
    )]
    RequestExceedsLimit { estimated: u64, limit: u64 },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("The request body must be JSON: send `Content-Type: application/json`.")]
    UnsupportedMediaType,
    #[error("The request body is larger than the gateway's limit of {limit} bytes.")]
    RequestTooLarge { limit: usize },
    #[error("The request body did not arrive within the gateway's body_timeout of {after:?}.")]
    BodyTimeout { after: std::time::Duration },
    /// The gateway-wide budget of request-body bytes is spent: come back in a moment.
    #[error("The gateway is handling too many large requests at once; try again in a moment.")]
    Overloaded,
    #[error("Unknown request URL: {method} {path}.")]
    UnknownRoute { method: String, path: String },
    #[error("Method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    /// An upstream client error (400, 404, 413, 422...), passed on with its status and message
    /// (and verbatim to a client of the upstream's own dialect).
    #[error("{}", .0.error.error.message)]
    UpstreamRejected(Box<Rejection>),
    /// A parameter the model's provider cannot carry, or a prompt no target's context window
    /// fits (`code` says which): refused before any upstream call.
    #[error("{message}")]
    UnsupportedParameter { param: String, message: String, code: &'static str },
    #[error(
        "Every upstream provider for this model failed (last: {class} from `{provider}`). \
         Try again later."
    )]
    UpstreamUnavailable {
        provider: String,
        class: &'static str,
        /// Until the first open circuit admits a trial, when circuits are open.
        retry_after: Option<std::time::Duration>,
    },
    #[error("The request did not complete within the gateway's request_timeout.")]
    Timeout,
    #[error("The gateway hit an internal error while handling this request.")]
    Internal,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } | Self::UnsupportedParameter { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::ModelNotAllowed { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited(_) | Self::RequestExceedsLimit { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::ModelNotFound(_) | Self::UnknownRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamRejected(rejection) => rejection.status,
            Self::UpstreamUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status on a route of `api` (on the Messages routes "every target failed" is a 529).
    pub fn status_for(&self, api: Api) -> StatusCode {
        match api {
            Api::Chat | Api::Responses | Api::Embeddings => self.status(),
            Api::Messages => self.anthropic_status().0,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let message = self.to_string();
        let (kind, code, param) = match self {
            Self::InvalidRequest { param, code, .. } => {
                ("invalid_request_error", Some(*code), *param)
            }
            Self::Unauthorized(_) => ("authentication_error", Some("invalid_api_key"), None),
            Self::ModelNotAllowed { .. } => {
                ("permission_error", Some("model_not_allowed"), Some("model"))
            }
            Self::RateLimited(_) => ("rate_limit_error", Some("rate_limit_exceeded"), None),
            Self::RequestExceedsLimit { .. } => {
                ("rate_limit_error", Some("request_exceeds_limit"), None)
            }
            Self::ModelNotFound(_) => {
                ("invalid_request_error", Some("model_not_found"), Some("model"))
            }
            Self::RequestTooLarge { .. } => {
                ("invalid_request_error", Some("request_too_large"), None)
            }
            Self::UnsupportedMediaType => {
                ("invalid_request_error", Some("unsupported_media_type"), None)
            }
            Self::BodyTimeout { .. } => ("invalid_request_error", Some("request_timeout"), None),
            Self::Overloaded => ("api_error", Some("gateway_overloaded"), None),
            Self::UnknownRoute { .. } => ("invalid_request_error", Some("unknown_url"), None),
            Self::MethodNotAllowed { .. } => {
                ("invalid_request_error", Some("method_not_allowed"), None)
            }
            Self::UpstreamRejected(rejection) => return rejection.error.clone(),
            Self::UnsupportedParameter { param, code, .. } => {
                ("invalid_request_error", Some(*code), Some(param.as_str()))
            }
            Self::UpstreamUnavailable { .. } => ("api_error", Some("upstream_unavailable"), None),
            Self::Timeout => ("api_error", Some("timeout"), None),
            Self::Internal => ("api_error", Some("internal_error"), None),
        };
        ErrorBody::new(kind, code, param, message)
    }
}

impl GatewayError {
    /// The status and body of this error on the Messages routes (SPEC §3): Anthropic's shape
    /// and types, for the same cases as OpenAI's. The statuses are the same but one: when every
    /// target failed it is 529 `overloaded_error`, Anthropic's own status for it. An upstream's
    /// client error keeps its status and message, its type named for the status.
    pub fn anthropic(&self) -> (StatusCode, AnthropicError) {
        let message = match self {
            Self::UpstreamRejected(rejection) => rejection.error.error.message.clone(),
            other => other.to_string(),
        };
        let (status, kind) = self.anthropic_status();
        (status, AnthropicError::new(kind, message))
    }

    /// The status and Anthropic error type of this error on the Messages routes.
    fn anthropic_status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UpstreamUnavailable { .. } | Self::Overloaded => (
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "overloaded_error",
            ),
            Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout_error"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
            // A body too slow to arrive is the client's fault, not a model's timeout.
            Self::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "invalid_request_error"),
            other => {
                let status = other.status();
                (status, crate::anthropic::error::kind_for_status(status.as_u16()))
            }
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_response_for(Api::Chat)
    }
}

impl GatewayError {
    /// The response on a route of `api`: OpenAI's shape on the OpenAI routes, Anthropic's on
    /// the Messages routes, with the same headers. On the Messages, Responses and embeddings
    /// routes an upstream's own client error, from a passthrough, goes back verbatim.
    pub fn into_response_for(self, api: Api) -> Response {
        let mut response = match (api, &self) {
            // A passthrough's client error goes back as the upstream wrote it (SPEC §4).
            (
                Api::Messages | Api::Responses | Api::Embeddings,
                Self::UpstreamRejected(rejection),
            ) if rejection.api == api => {
                let json = [(http::header::CONTENT_TYPE, "application/json")];
                (rejection.status, json, rejection.body.clone()).into_response()
            }
            (Api::Chat | Api::Responses | Api::Embeddings, _) => {
                (self.status(), Json(self.body())).into_response()
            }
            (Api::Messages, _) => {
                let (status, body) = self.anthropic();
                (status, Json(body)).into_response()
            }
        };
        if matches!(
            self,
            Self::UpstreamUnavailable { .. } | Self::Timeout | Self::RequestExceedsLimit { .. }
        ) {
            response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Self::RateLimited(limited) = &self {
            let headers = response.headers_mut();
            let wait = limited.retry_after;
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert("retry-after", HeaderValue::from(seconds.max(1)));
            headers.insert(
                "retry-after-ms",
                HeaderValue::from(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            );
            rate_limit_headers(headers, &limited.admission);
        }
        if let Self::Overloaded = self {
            response.headers_mut().insert("retry-after", HeaderValue::from(1));
        }
        if let Self::UpstreamUnavailable { retry_after: Some(wait), .. } = self {
            // Whole seconds, rounded up: a client must not come back before the trial.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert("retry-after", HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// OpenAI-style `x-ratelimit-*` headers for the caller's limits.
pub fn rate_limit_headers(headers: &mut http::HeaderMap, admission: &Admission) {
    for (kind, usage) in [("requests", admission.requests), ("tokens", admission.tokens)] {
        let Some(usage) = usage else { continue };
        let reset = format!("{}s", usage.reset.as_secs().max(1));
        let values = [
            ("limit", HeaderValue::from(usage.limit)),
            ("remaining", HeaderValue::from(usage.remaining)),
            ("reset", HeaderValue::try_from(reset).unwrap_or(HeaderValue::from_static("60s"))),
        ];
        for (what, value) in values {
            if let Ok(name) = http::HeaderName::try_from(format!("x-ratelimit-{what}-{kind}")) {
                headers.insert(name, value);
            }
        }
    }
}

impl From<Refused> for GatewayError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Limited(limited) => Self::RateLimited(limited),
            Refused::ExceedsLimit { estimated, limit } => {
                Self::RequestExceedsLimit { estimated, limit }
            }
        }
    }
}

impl From<InvalidRequest> for GatewayError {
    fn from(invalid: InvalidRequest) -> Self {
        Self::InvalidRequest { message: invalid.message, param: invalid.param, code: invalid.code }
    }
}

impl From<Failure> for GatewayError {
    fn from(failure: Failure) -> Self {
        match (failure.class, failure.upstream, failure.refused) {
            (FailureClass::Deadline, ..) => Self::Timeout,
            (FailureClass::ClientError, _, Some(refusal)) => {
                let Refusal { param, message, code } = *refusal;
                Self::UnsupportedParameter { param, message, code }
            }
            (FailureClass::ClientError | FailureClass::ContextOverflow, Some(rejection), None) => {
                Self::UpstreamRejected(rejection)
            }
            (class, ..) => Self::UpstreamUnavailable {
                provider: failure.provider.to_string(),
                class: class.as_str(),
                retry_after: failure.retry_after,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn rejected(status: StatusCode, message: &str) -> GatewayError {
        let error = ErrorBody::new("invalid_request_error", None, None, message.to_owned());
        let body = bytes::Bytes::from(serde_json::to_vec(&error).unwrap());
        GatewayError::UpstreamRejected(Box::new(Rejection { status, error, body, api: Api::Chat }))
    }

    #[test]
    fn on_the_messages_routes_every_error_has_anthropics_type_and_all_failed_is_a_529() {
        let limited = || crate::rate_limit::Limited {
            retry_after: std::time::Duration::from_secs(1),
            admission: Admission::default(),
        };
        let unavailable = GatewayError::UpstreamUnavailable {
            provider: "p".to_owned(),
            class: "server_error",
            retry_after: None,
        };
        let upstream_404 = rejected(StatusCode::NOT_FOUND, "no such model upstream");
        let cases = [
            (GatewayError::Unauthorized(AuthFailure::Missing), 401, "authentication_error"),
            (
                GatewayError::ModelNotAllowed { key: "k".to_owned(), model: "m".to_owned() },
                403,
                "permission_error",
            ),
            (GatewayError::ModelNotFound("m".to_owned()), 404, "not_found_error"),
            (GatewayError::RequestTooLarge { limit: 10 }, 413, "request_too_large"),
            (GatewayError::RateLimited(limited()), 429, "rate_limit_error"),
            (GatewayError::RequestExceedsLimit { estimated: 9, limit: 1 }, 429, "rate_limit_error"),
            (GatewayError::UnsupportedMediaType, 415, "invalid_request_error"),
            (unavailable, 529, "overloaded_error"),
            (GatewayError::Overloaded, 529, "overloaded_error"),
            (GatewayError::Timeout, 504, "timeout_error"),
            (GatewayError::Internal, 500, "api_error"),
            (upstream_404, 404, "not_found_error"),
        ];
        for (error, status, kind) in cases {
            let (got, body) = error.anthropic();
            assert_eq!((got.as_u16(), body.error.kind.as_str()), (status, kind), "{error:?}");
            assert_eq!(body.kind, "error");
            assert!(!body.error.message.is_empty());
        }
        let (_, body) = rejected(StatusCode::BAD_REQUEST, "bad tool").anthropic();
        assert_eq!(body.error.message, "bad tool", "the upstream's words, not ours");
    }

    #[test]
    fn a_refused_request_is_a_400_naming_the_unsupported_parameter() {
        let refusal = Refusal::new("n", "must be 1");
        let error = GatewayError::from(Failure::refused(&Arc::from("claude"), refusal));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.body(),
            ErrorBody::new(
                "invalid_request_error",
                Some("unsupported_parameter"),
                Some("n"),
                "must be 1".to_owned()
            )
        );
    }
}
