//! The OpenAI error body `{"error":{"message","type","param","code"}}`, and reading upstream ones.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ErrorBody {
    pub fn new(kind: &str, code: Option<&str>, param: Option<&str>, message: String) -> Self {
        Self {
            error: ErrorDetail {
                message,
                kind: kind.to_owned(),
                param: param.map(str::to_owned),
                code: code.map(str::to_owned),
            },
        }
    }

    /// Reads an upstream error body in any of the shapes OpenAI-compatible servers use
    /// (OpenAI's, Azure's without `type`, vLLM's top-level object with a numeric `code`), and
    /// returns it in OpenAI's shape. `kind_for_status` fills a missing `type`.
    pub fn from_upstream(body: &[u8], kind_for_status: &str) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let object = parsed.as_ref().and_then(|value| match value.get("error") {
            Some(inner @ Value::Object(_)) => Some(inner),
            _ => value.as_object().map(|_| value),
        });
        let text = |key: &str| -> Option<String> {
            match object?.get(key)? {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let message = text("message")
            .or_else(|| parsed.as_ref().and_then(|v| v.get("error")?.as_str().map(str::to_owned)))
            .unwrap_or_else(|| "The upstream provider rejected the request.".to_owned());
        Self {
            error: ErrorDetail {
                message,
                kind: text("type").unwrap_or_else(|| kind_for_status.to_owned()),
                param: text("param"),
                code: text("code"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_azure_and_vllm_error_shapes() {
        let openai = br#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"x"}}"#;
        let body = ErrorBody::from_upstream(openai, "fallback");
        assert_eq!(
            body,
            ErrorBody::new("invalid_request_error", Some("x"), Some("messages"), "bad".into())
        );

        let azure = br#"{"error":{"code":"404","message":"Resource not found"}}"#;
        let body = ErrorBody::from_upstream(azure, "invalid_request_error");
        assert_eq!(body.error.kind, "invalid_request_error");
        assert_eq!(body.error.code.as_deref(), Some("404"));

        let vllm = br#"{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}"#;
        let body = ErrorBody::from_upstream(vllm, "invalid_request_error");
        assert_eq!(body.error.message, "too long");
        assert_eq!(body.error.code.as_deref(), Some("400"));

        let garbage = ErrorBody::from_upstream(b"<html>oops</html>", "invalid_request_error");
        assert_eq!(garbage.error.kind, "invalid_request_error");
        assert!(!garbage.error.message.is_empty());
    }
}
