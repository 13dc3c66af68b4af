//! `Failure`: a classified upstream error. Every upstream problem is classified here, once.
//!
//! The class decides what happens next (SPEC §4): retry and failover for `rate_limit`,
//! `server_error`, `timeout` and `connect`; failover without retry for `auth`; neither for
//! `client_error`, whose upstream message goes back to the client. `Deadline` is the gateway's
//! own `request_timeout`, not an upstream outcome.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::openai::error::ErrorBody;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// Upstream 429.
    RateLimit,
    /// Upstream 5xx (Anthropic's 529 included), a 200 that carries an error or is malformed,
    /// a stream that ends without its terminal event, a connection lost mid-answer.
    ServerError,
    /// A per-attempt timeout: `first_byte`, `idle` or `total`, or an upstream 408.
    Timeout,
    /// The connection could not be established.
    Connect,
    /// Upstream 401/402/403: the gateway's own credentials or account are wrong.
    Auth,
    /// Upstream 400, 404, 413, 422 and other 4xx: the request itself is wrong.
    ClientError,
    /// The request's `request_timeout` passed.
    Deadline,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub class: FailureClass,
    /// The configured provider name; empty for failures that belong to no provider.
    pub provider: Arc<str>,
    /// For operators: what happened, without secrets or message contents.
    pub detail: String,
    /// The upstream's status and error body, kept for client errors that go back to the client.
    pub upstream: Option<Box<(StatusCode, ErrorBody)>>,
}

impl FailureClass {
    /// The label of SPEC §5's `outcome` and the words used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Auth => "auth",
            Self::ClientError => "client_error",
            Self::Deadline => "deadline",
        }
    }

    fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            429 => Self::RateLimit,
            401..=403 => Self::Auth,
            408 => Self::Timeout,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

impl Failure {
    pub fn new(class: FailureClass, provider: &Arc<str>, detail: impl Into<String>) -> Self {
        Self {
            class,
            provider: Arc::clone(provider),
            detail: detail.into(),
            upstream: None,
        }
    }

    /// An upstream answered with a non-2xx status.
    pub fn from_status(provider: &Arc<str>, status: StatusCode, body: &[u8]) -> Self {
        let class = FailureClass::from_status(status);
        let mut failure = Self::new(
            class,
            provider,
            format!("upstream answered HTTP {}", status.as_u16()),
        );
        if class == FailureClass::ClientError {
            let error = ErrorBody::from_upstream(body, "invalid_request_error");
            failure.upstream = Some(Box::new((status, error)));
        }
        failure
    }

    /// The upstream could not be reached or its answer could not be read.
    pub fn from_reqwest(provider: &Arc<str>, err: &reqwest::Error) -> Self {
        let class = if err.is_connect() {
            FailureClass::Connect
        } else if err.is_timeout() {
            FailureClass::Timeout
        } else {
            FailureClass::ServerError
        };
        Self::new(class, provider, DisplayChain(err).to_string())
    }

    /// The request's own deadline passed.
    pub fn deadline() -> Self {
        Self::new(
            FailureClass::Deadline,
            &Arc::from(""),
            "request_timeout passed",
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.provider.is_empty() {
            write!(f, "{}: {}", self.class.as_str(), self.detail)
        } else {
            write!(
                f,
                "provider `{}`: {}: {}",
                self.provider,
                self.class.as_str(),
                self.detail
            )
        }
    }
}

/// Writes an error and its sources as `outer: inner: innermost`, without the request URL.
struct DisplayChain<'a>(&'a reqwest::Error);

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = self.0;
        let kind = if err.is_connect() {
            "cannot connect"
        } else if err.is_timeout() {
            "timed out"
        } else if err.is_body() || err.is_decode() {
            "answer interrupted"
        } else {
            "request failed"
        };
        f.write_str(kind)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_into_the_closed_set() {
        let cases = [
            (429, FailureClass::RateLimit),
            (401, FailureClass::Auth),
            (403, FailureClass::Auth),
            (408, FailureClass::Timeout),
            (400, FailureClass::ClientError),
            (404, FailureClass::ClientError),
            (413, FailureClass::ClientError),
            (422, FailureClass::ClientError),
            (500, FailureClass::ServerError),
            (503, FailureClass::ServerError),
            (529, FailureClass::ServerError),
            (302, FailureClass::ServerError),
        ];
        for (status, class) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(FailureClass::from_status(status), class, "{status}");
        }
    }

    #[test]
    fn keeps_the_upstream_message_only_for_client_errors() {
        let provider: Arc<str> = Arc::from("p");
        let body = br#"{"error":{"message":"context too long","type":"invalid_request_error"}}"#;
        let client = Failure::from_status(&provider, StatusCode::BAD_REQUEST, body);
        let (status, error) = *client.upstream.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error.error.message, "context too long");
        let auth = Failure::from_status(
            &provider,
            StatusCode::UNAUTHORIZED,
            b"{\"error\":\"key sk-1\"}",
        );
        assert!(
            auth.upstream.is_none(),
            "an auth error message may quote the gateway's key"
        );
    }
}
