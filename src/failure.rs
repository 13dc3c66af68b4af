//! `Failure`: a classified upstream error. Every upstream problem is classified here, once.
//!
//! The class decides what happens next (SPEC §4): `rate_limit`, `server_error`, `timeout`,
//! `connect` and `bad_answer` (a 200 that failed the model's answer checks, `crate::checks`) are
//! retried on the same provider, then failed over; `auth` is failed over without a retry;
//! `client_error` is neither, and its upstream message goes back to the client;
//! `context_overflow` (the prompt does not fit: [`CONTEXT_OVERFLOW`] lists the upstreams'
//! wordings) is not retried and fails over only to a target with a larger window, which
//! `Failover` decides.
//! Three classes are the gateway's own decisions, not upstream outcomes: `circuit_open` and
//! `bulkhead_full` (a target skipped without calling it) and `deadline` (`request_timeout`).
//! A request a provider cannot carry (a parameter with no equivalent upstream) is refused
//! before sending as a `client_error` with its [`Refusal`]; `error.rs` decides what the client
//! sees of it, as of every other failure.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::openai::error::ErrorBody;
use crate::outcome::{AnswerCheck, Api};
use crate::providers::Reply;

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
    /// A 200 that failed one of the model's `answer_checks` (SPEC §4 "Answer checks").
    BadAnswer,
    /// The upstream said the prompt does not fit its context window (SPEC §4 "Context windows").
    ContextOverflow,
    /// The provider's circuit is open: skipped without calling it.
    CircuitOpen,
    /// The provider's `max_concurrency` is reached: skipped without calling it.
    BulkheadFull,
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
    pub upstream: Option<Box<Rejection>>,
    /// Set when the provider refused the request before sending it: what the client is told.
    pub refused: Option<Box<Refusal>>,
    /// For `bad_answer`: the answer itself, which the client gets when every target answered
    /// badly (the last bad answer rather than an error).
    pub bad_answer: Option<Arc<BadAnswer>>,
    /// When it is worth trying again: the upstream's `retry-after-ms` / `retry-after`, or the
    /// time until an open circuit admits a trial.
    pub retry_after: Option<Duration>,
    /// Upstream attempts this failure stands for (0 when the target was skipped).
    pub attempts: u32,
    /// Time spent on those attempts and the backoff between them (not the gateway's overhead).
    pub upstream_time: Duration,
}

/// An upstream's client error: its status, its error as OpenAI's shape, and its own body, which
/// a client of the upstream's own dialect gets verbatim (SPEC §4 "Dialects").
#[derive(Clone, Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub error: ErrorBody,
    pub body: Bytes,
    /// The dialect of `body`: the API the upstream speaks.
    pub api: Api,
}

/// A request a provider cannot carry, refused before any upstream call: the parameter (a path
/// into the request, such as `messages[2].content[0]`) and why, in words for the client, with
/// the error `code` the client gets (`unsupported_parameter`, or `context_length_exceeded` when
/// the prompt fits no target's `context_window`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub param: String,
    pub message: String,
    pub code: &'static str,
}

/// An answer that failed a check, held until the walk over the targets is over: taken at most
/// once (a stream can be read only once).
pub struct BadAnswer {
    pub check: AnswerCheck,
    reply: Mutex<Option<Reply>>,
}

impl BadAnswer {
    pub fn new(check: AnswerCheck, reply: Reply) -> Self {
        Self { check, reply: Mutex::new(Some(reply)) }
    }

    /// The answer, unless it was taken already.
    pub fn take(&self) -> Option<Reply> {
        self.reply.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl fmt::Debug for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BadAnswer").field("check", &self.check).finish_non_exhaustive()
    }
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
            Self::BadAnswer => "bad_answer",
            Self::ContextOverflow => "context_overflow",
            Self::CircuitOpen => "circuit_open",
            Self::BulkheadFull => "bulkhead_full",
            Self::Deadline => "deadline",
        }
    }

    /// Worth another attempt on the same provider.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimit | Self::ServerError | Self::Timeout | Self::Connect | Self::BadAnswer
        )
    }

    /// Worth trying the model's next target, whichever it is (a `context_overflow` is worth
    /// trying only on a larger window: `Failover` decides that one).
    pub fn fails_over(self) -> bool {
        self.is_retryable() || matches!(self, Self::Auth | Self::CircuitOpen | Self::BulkheadFull)
    }

    /// Says something about the provider's health (counts for its circuit breaker).
    pub fn is_provider_fault(self) -> bool {
        self.is_retryable() || self == Self::Auth
    }

    /// The upstream answered well; the request is what it could not serve.
    pub fn is_request_fault(self) -> bool {
        matches!(self, Self::ClientError | Self::ContextOverflow)
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
        let attempts = u32::from(!matches!(
            class,
            FailureClass::CircuitOpen | FailureClass::BulkheadFull | FailureClass::Deadline
        ));
        Self {
            class,
            provider: Arc::clone(provider),
            detail: detail.into(),
            upstream: None,
            refused: None,
            bad_answer: None,
            retry_after: None,
            attempts,
            upstream_time: Duration::ZERO,
        }
    }

    /// An upstream answered with a non-2xx status.
    pub fn from_status(
        provider: &Arc<str>,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        let mut class = FailureClass::from_status(status);
        if matches!(status.as_u16(), 400 | 413 | 422) && says_context_overflow(body) {
            class = FailureClass::ContextOverflow;
        }
        let mut failure =
            Self::new(class, provider, format!("upstream answered HTTP {}", status.as_u16()));
        failure.retry_after = retry_after(headers, SystemTime::now());
        if class.is_request_fault() {
            let error = ErrorBody::from_upstream(body, "invalid_request_error");
            let body = Bytes::copy_from_slice(body);
            failure.upstream = Some(Box::new(Rejection { status, error, body, api: Api::Chat }));
        }
        failure
    }

    /// The provider cannot carry the request (`refusal.param`): a client error, made without
    /// an upstream call, that goes back to the client with the refusal's words.
    pub fn refused(provider: &Arc<str>, refusal: Refusal) -> Self {
        let detail =
            format!("request refused before sending: `{}` cannot be translated", refusal.param);
        let mut failure = Self::new(FailureClass::ClientError, provider, detail);
        failure.refused = Some(Box::new(refusal));
        failure
    }

    /// An upstream's error event in its stream (`event`, its payload in the dialect `api`),
    /// before any content reached the client: a server error, unless it says the context was
    /// exceeded (OpenAI's Responses API says so in its stream), which is a `context_overflow`
    /// whose error goes back as a 400's would.
    pub fn from_stream_error(provider: &Arc<str>, detail: String, event: &str, api: Api) -> Self {
        if !says_context_overflow(event.as_bytes()) {
            return Self::new(FailureClass::ServerError, provider, detail);
        }
        let mut failure = Self::new(FailureClass::ContextOverflow, provider, detail);
        let value: serde_json::Value = serde_json::from_str(event).unwrap_or_default();
        // `response.failed` carries its error in its Response; `error` events at the top.
        let source = value.get("response").unwrap_or(&value).to_string();
        let error = ErrorBody::from_upstream(source.as_bytes(), "invalid_request_error");
        let body = match api {
            // Chat's `{"error": ...}` and Messages' `{"type": "error", "error": ...}` events
            // are those APIs' error bodies already.
            Api::Chat | Api::Messages => Bytes::copy_from_slice(event.as_bytes()),
            Api::Responses | Api::Embeddings => {
                Bytes::from(serde_json::to_vec(&error).unwrap_or_default())
            }
        };
        let status = StatusCode::BAD_REQUEST;
        failure.upstream = Some(Box::new(Rejection { status, error, body, api }));
        failure
    }

    /// An answer that failed `check`: kept in the failure, for the client to get when every
    /// target answered badly.
    pub fn bad_answer(provider: &Arc<str>, check: AnswerCheck, reply: Reply) -> Self {
        let detail = format!("the answer failed the `{}` check", check.as_str());
        let mut failure = Self::new(FailureClass::BadAnswer, provider, detail);
        failure.bad_answer = Some(Arc::new(BadAnswer::new(check, reply)));
        failure
    }

    /// The request body for the upstream could not be written (not expected: it was read as
    /// JSON): a client error, made without a call.
    pub fn unencodable(provider: &Arc<str>, err: &serde_json::Error) -> Self {
        Self::new(FailureClass::ClientError, provider, format!("cannot encode: {err}"))
    }

    /// The upstream could not be reached (no connection: `connect`, whatever the cause, a
    /// timeout included), or the request or its answer's head did not get through.
    pub fn from_client(provider: &Arc<str>, err: &hyper_util::client::legacy::Error) -> Self {
        let (class, kind) = if err.is_connect() {
            (FailureClass::Connect, "cannot connect")
        } else {
            (FailureClass::ServerError, "request failed")
        };
        // The client's own text only names its step; the sources say what happened.
        Self::new(
            class,
            provider,
            Sources { kind, first: std::error::Error::source(err) }.to_string(),
        )
    }

    /// [`from_client`](Self::from_client) for ballast's own plain-HTTP client.
    pub fn from_plain(provider: &Arc<str>, err: &crate::providers::plain::Error) -> Self {
        use crate::providers::plain::Error;
        let (class, kind) = match err {
            Error::Connect(_) => (FailureClass::Connect, "cannot connect"),
            _ => (FailureClass::ServerError, "request failed"),
        };
        Self::new(class, provider, Sources { kind, first: Some(err) }.to_string())
    }

    /// An answer's body broke off.
    pub fn interrupted(provider: &Arc<str>, err: &(dyn std::error::Error + 'static)) -> Self {
        let detail = Sources { kind: "answer interrupted", first: Some(err) }.to_string();
        Self::new(FailureClass::ServerError, provider, detail)
    }

    /// The request's own deadline passed.
    pub fn deadline() -> Self {
        Self::new(FailureClass::Deadline, &Arc::from(""), "request_timeout passed")
    }
}

impl Refusal {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: param.into(), message: message.into(), code: "unsupported_parameter" }
    }

    /// The prompt (with the answer's token allowance) fits no target's `context_window`.
    pub fn too_long(param: &str, message: String) -> Self {
        Self { param: param.to_owned(), message, code: "context_length_exceeded" }
    }
}

/// How upstreams say that a prompt does not fit (SPEC §4 "Context windows"), matched in the
/// lowercased body of a 400, 413 or 422 (never a 429: "request too large" there is a
/// tokens-per-minute limit). Error codes first, then wordings, each with the servers it covers
/// (from their sources or their real error bodies; a test per wording below). A cap on the
/// answer alone ("max_tokens is too large", "maximum allowed number of output tokens") says
/// nothing about the context and matches none of them.
pub const CONTEXT_OVERFLOW: &[&str] = &[
    // OpenAI (chat and Responses), Azure OpenAI, Groq: `"code": "context_length_exceeded"`.
    "context_length_exceeded",
    // llama.cpp server: `"type": "exceed_context_size_error"`.
    "exceed_context_size_error",
    // OpenAI, Azure, vLLM, DeepSeek, OpenRouter, Mistral, SGLang, FastChat: "This model's
    // maximum context length is N tokens. However, ...".
    "maximum context length",
    // OpenAI Responses: "Your input exceeds the context window of this model."
    "exceeds the context window",
    // Anthropic (and Claude on Bedrock): "prompt is too long: N tokens > M maximum".
    "prompt is too long",
    // Anthropic: "input length and `max_tokens` exceed context limit: X + Y > Z".
    "exceed context limit",
    // OpenAI and Azure gpt-5: "Input tokens exceed the configured limit of N tokens."
    "input tokens exceed",
    // llama.cpp server: "request (N tokens) exceeds the available context size (M tokens)".
    "exceeds the available context size",
    // vLLM v1: "The decoder prompt (length N) is longer than the maximum model length of M."
    "longer than the maximum model length",
    // SGLang, Together, TGI: "The input (N tokens) is longer than the model's context length".
    "longer than the model's context length",
    // vLLM (newest): "... However, the model's context length is only N tokens, ...".
    "context length is only",
    // Gemini: "The input token count (N) exceeds the maximum number of tokens allowed (M)."
    "exceeds the maximum number of tokens allowed",
    // AWS Bedrock: "Input is too long for requested model."
    "input is too long",
    // Ollama (`truncate: false`): "the input length exceeds the context length", "the prompt is
    // longer than the context length currently available to the model".
    "exceeds the context length",
    "longer than the context length",
    // TGI / Together (legacy), SageMaker: "`inputs` tokens + `max_new_tokens` must be <= N".
    "`inputs` tokens + `max_new_tokens` must be",
    // Groq and Cerebras without numbers: "Please reduce the length of the messages or completion."
    "reduce the length of the messages",
];

/// Whether an upstream's error body says the context window was exceeded.
fn says_context_overflow(body: &[u8]) -> bool {
    // Error bodies are small; a huge one is not an error message worth scanning.
    let body = &body[..body.len().min(64 * 1024)];
    let text = String::from_utf8_lossy(body).to_lowercase();
    CONTEXT_OVERFLOW.iter().any(|wording| text.contains(wording))
}

/// How long the upstream asks to wait: `retry-after-ms` (also Azure's `x-ms-retry-after-ms`,
/// float milliseconds), else `retry-after` (seconds, float tolerated, or an HTTP date).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let millis = ["retry-after-ms", "x-ms-retry-after-ms"]
        .iter()
        .find_map(|name| text(name)?.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0);
    if let Some(ms) = millis {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).ok())
            .flatten();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.provider.is_empty() {
            write!(f, "{}: {}", self.class.as_str(), self.detail)
        } else {
            write!(f, "provider `{}`: {}: {}", self.provider, self.class.as_str(), self.detail)
        }
    }
}

/// A kind of failure and the chain of errors that caused it (none of them has the URL: the
/// upstream client's errors never name it).
struct Sources<'a> {
    kind: &'static str,
    first: Option<&'a (dyn std::error::Error + 'static)>,
}

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)?;
        let mut source = self.first;
        while let Some(inner) = source {
            write!(f, ": {inner}")?;
            source = inner.source();
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
    fn decides_retry_and_failover_by_class() {
        use FailureClass::*;
        for class in [RateLimit, ServerError, Timeout, Connect] {
            assert!(class.is_retryable() && class.fails_over(), "{class:?}");
        }
        assert!(!Auth.is_retryable() && Auth.fails_over());
        assert!(!ClientError.is_retryable() && !ClientError.fails_over());
        assert!(!Deadline.fails_over());
        assert!(!CircuitOpen.is_provider_fault() && CircuitOpen.fails_over());
    }

    #[test]
    fn keeps_the_upstream_message_only_for_client_errors() {
        let provider: Arc<str> = Arc::from("p");
        let none = HeaderMap::new();
        let body = br#"{"error":{"message":"context too long","type":"invalid_request_error"}}"#;
        let client = Failure::from_status(&provider, StatusCode::BAD_REQUEST, &none, body);
        let rejection = *client.upstream.unwrap();
        assert_eq!(rejection.status, StatusCode::BAD_REQUEST);
        assert_eq!(rejection.error.error.message, "context too long");
        assert_eq!(&rejection.body[..], body, "kept verbatim too");
        let auth = Failure::from_status(
            &provider,
            StatusCode::UNAUTHORIZED,
            &none,
            b"{\"error\":\"key sk-1\"}",
        );
        assert!(auth.upstream.is_none(), "an auth error message may quote the gateway's key");
    }

    #[test]
    fn each_upstreams_context_error_wording_is_a_context_overflow() {
        let provider: Arc<str> = Arc::from("p");
        let none = HeaderMap::new();
        let cases: &[(u16, &str)] = &[
            // OpenAI chat completions (and Azure, which sends the same body).
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 10383 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ),
            // OpenAI Responses.
            (
                400,
                r#"{"error":{"message":"Your input exceeds the context window of this model. Please adjust your input and try again.","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}"#,
            ),
            // OpenAI and Azure gpt-5.
            (
                400,
                r#"{"error":{"message":"Input tokens exceed the configured limit of 272000 tokens. Your messages resulted in 289650 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":null}}"#,
            ),
            // Anthropic, the prompt alone and with max_tokens.
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000, decrease input length or `max_tokens` and try again"}}"#,
            ),
            // vLLM: old (top-level) and newer bodies, and the newest renderer's words.
            (
                400,
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#,
            ),
            (
                400,
                r#"{"error":{"message":"The decoder prompt (length 9000) is longer than the maximum model length of 8192. Make sure that `max_model_len` is no smaller than the number of text tokens.","type":"BadRequestError","param":null,"code":400}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"You passed 9000 input tokens and requested 100 output tokens. However, the model's context length is only 8192 tokens, resulting in a maximum input length of 8092 tokens. Please reduce the length of the input prompt.","type":"BadRequestError","param":"input_tokens","code":400}}"#,
            ),
            // Ollama with `truncate: false`, on /v1.
            (
                400,
                r#"{"error":{"message":"the input length exceeds the context length","type":"invalid_request_error","param":null,"code":null}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"the prompt is longer than the context length currently available to the model; shorten the prompt, adjust the context length in settings, or use a model with a longer context length","type":"invalid_request_error","param":null,"code":null}}"#,
            ),
            // llama.cpp server.
            (
                400,
                r#"{"error":{"code":400,"message":"request (9412 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9412,"n_ctx":8192}}"#,
            ),
            // SGLang / Together; TGI answers the same with a 422.
            (
                400,
                r#"{"object":"error","message":"The input (43028 tokens) is longer than the model's context length (40960 tokens).","type":"BadRequestError","param":null,"code":400}"#,
            ),
            (
                422,
                r#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#,
            ),
            // Gemini's OpenAI-compatible endpoint, AWS Bedrock, Groq.
            (
                400,
                r#"[{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}]"#,
            ),
            (400, r#"{"message":"Input is too long for requested model."}"#),
            (
                400,
                r#"{"error":{"message":"Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ),
        ];
        for (status, body) in cases {
            let status = StatusCode::from_u16(*status).unwrap();
            let failure = Failure::from_status(&provider, status, &none, body.as_bytes());
            assert_eq!(failure.class, FailureClass::ContextOverflow, "{body}");
            assert!(failure.upstream.is_some(), "the upstream's words go back: {body}");
            assert!(!failure.class.is_retryable() && !failure.class.is_provider_fault());
        }
        let near_misses: &[(u16, &str)] = &[
            // A cap on the answer alone, and a tokens-per-minute limit.
            (
                400,
                r#"{"error":{"message":"max_tokens is too large: 100000. This model supports at most 16384 completion tokens, whereas you provided 100000.","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}"#,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4-5"}}"#,
            ),
            (
                429,
                r#"{"error":{"message":"Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 50000.","type":"tokens","code":"rate_limit_exceeded"}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"Invalid 'messages[0].content': string too long. Expected a string with maximum length 10485760.","type":"invalid_request_error","code":"string_above_max_length"}}"#,
            ),
        ];
        for (status, body) in near_misses {
            let status = StatusCode::from_u16(*status).unwrap();
            let failure = Failure::from_status(&provider, status, &none, body.as_bytes());
            assert_ne!(failure.class, FailureClass::ContextOverflow, "{body}");
        }
    }

    #[test]
    fn a_refusal_is_a_client_error_that_keeps_its_parameter_and_words() {
        let refusal = Refusal::new("n", "must be 1");
        let failure = Failure::refused(&Arc::from("claude"), refusal.clone());
        assert_eq!(failure.class, FailureClass::ClientError);
        assert_eq!(failure.refused.as_deref(), Some(&refusal));
        assert!(failure.upstream.is_none(), "no upstream answered");
        assert!(failure.detail.contains("`n`"), "{}", failure.detail);
    }

    #[test]
    fn reads_every_retry_after_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        let read = |pairs: &[(&'static str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(read(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(read(&[("retry-after", "1.5")]), Some(Duration::from_millis(1500)));
        assert_eq!(
            read(&[("retry-after-ms", "250"), ("retry-after", "9")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(read(&[("x-ms-retry-after-ms", "40.5")]), Some(Duration::from_micros(40_500)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(20));
        assert_eq!(read(&[("retry-after", &date)]), Some(Duration::from_secs(20)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(20));
        assert_eq!(read(&[("retry-after", &past)]), Some(Duration::ZERO));
        assert_eq!(read(&[("retry-after", "soon")]), None);
        assert_eq!(read(&[("retry-after", "-1")]), None);
        assert_eq!(read(&[]), None);
    }
}
