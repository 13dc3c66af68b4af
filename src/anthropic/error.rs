//! Anthropic's error body, `{"type":"error","error":{"type","message"}}`, and the status each
//! of its error types goes with (docs.anthropic.com, "Errors").

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(kind: &str, message: String) -> Self {
        Self { kind: "error".to_owned(), error: ErrorDetail { kind: kind.to_owned(), message } }
    }
}

/// The Anthropic error type of a client error with `status`, for an error that has none of its
/// own (an upstream's error in another dialect): what the Anthropic SDKs map back to the same
/// exception class as that status.
pub fn kind_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_anthropics_shape() {
        let body = ErrorBody::new("not_found_error", "no such model".to_owned());
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"type": "error", "error": {"type": "not_found_error", "message": "no such model"}})
        );
    }

    #[test]
    fn statuses_map_to_the_types_the_sdks_raise_for_them() {
        let cases = [
            (400, "invalid_request_error"),
            (422, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in cases {
            assert_eq!(kind_for_status(status), kind, "{status}");
        }
    }
}
