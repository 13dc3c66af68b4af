//! `Call` goes into a model's pipeline and `Answer` comes out: per-request data in typed structs.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Price;
use crate::dialect::Request;
use crate::failure::Failure;
use crate::outcome::{AnswerCheck, CacheStatus, Route};
use crate::providers::Reply;

/// One client request on its way through the pipeline.
#[derive(Clone)]
pub struct Call {
    /// The client's request, in the API it came in on.
    pub request: Arc<Request>,
    /// The configured model alias the request names: the `model` label of every metric.
    pub model: Arc<str>,
    /// Sent upstream as `x-request-id` for correlation.
    pub request_id: Arc<str>,
    /// Arrival + `request_timeout`: nothing in the pipeline runs past it.
    pub deadline: Instant,
    /// What the client allows the cache to do (its `Cache-Control`, read at the HTTP edge).
    pub cache: CachePolicy,
    /// The cache space: the auth key's name, or "" when keys share one.
    pub scope: Arc<str>,
    /// Told what an answer cost, once per answer (for per-key token limits).
    pub usage_hook: Option<UsageHook>,
    /// The prompt's tokens (`crate::tokens`), counted when a limit or a context window needs
    /// them; none otherwise.
    pub prompt_tokens: Option<u64>,
    /// With traces on: the request's attempts so far, which numbers each attempt's span.
    pub attempt_numbers: Option<Arc<std::sync::atomic::AtomicU32>>,
}

impl Call {
    /// A one-message chat request for model `m`, due within `timeout`, for the stages' tests.
    #[cfg(test)]
    pub fn for_tests(timeout: Duration) -> Self {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
        let request = crate::openai::chat::ChatRequest::from_slice(body).unwrap_or_else(|err| {
            unreachable!("a fixed valid body: {err:?}");
        });
        Self {
            request: Arc::new(Request::Chat(request)),
            model: Arc::from("m"),
            request_id: Arc::from("r"),
            deadline: Instant::now() + timeout,
            cache: CachePolicy::default(),
            scope: Arc::from(""),
            usage_hook: None,
            prompt_tokens: None,
            attempt_numbers: None,
        }
    }
}

pub type UsageHook = Arc<dyn Fn(Spent) + Send + Sync>;

/// What one answer cost, as far as the gateway knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// The upstream's usage: prompt and completion tokens.
    Reported { prompt: u64, completion: u64 },
    /// A stream that ended or was dropped without usage (its client left, it broke, or the
    /// upstream sends none): completion tokens estimated from the text it streamed. The prompt
    /// is what was estimated at admission.
    Streamed { completion: u64 },
}

/// The request's cache directives (SPEC §3 `Cache-Control`); the default allows everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// `no-cache`: do not answer from the cache, but do store the answer.
    pub no_cache: bool,
    /// `no-store`: neither read nor store.
    pub no_store: bool,
    /// `max-age=N`: accept only an entry younger than this.
    pub max_age: Option<Duration>,
}

/// A successful answer and where it came from.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub provenance: Provenance,
}

/// What the `x-ballast-*` headers report.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    /// The configured name of the provider that produced the answer; none for a degraded reply.
    pub provider: Option<Arc<str>>,
    pub route: Route,
    /// Upstream attempts made for this request.
    pub attempts: u32,
    /// Time spent on upstream attempts and backoff, for the gateway-overhead metric.
    pub upstream_time: Duration,
    /// What the cache did (`x-ballast-cache`).
    pub cache: CacheStatus,
    /// How old a cached answer is (`Age`); none for a fresh upstream answer.
    pub age: Option<Duration>,
    /// The price of the upstream model that produced a fresh answer, when the pricing table has
    /// it: what the cache records an entry's cost at.
    pub price: Option<Price>,
    /// What a translation for the answering target left out (`x-ballast-dropped`).
    pub dropped: Vec<String>,
    /// The answering target carried the request as it is (no translation): for a Response,
    /// that target keeps it and can continue it by id.
    pub native: bool,
    /// Set when this is the last bad answer, given because every target answered badly: the
    /// check it failed. Never stored in the cache.
    pub failed_check: Option<AnswerCheck>,
    /// A hedge was started for the request (`x-ballast-hedged: true`).
    pub hedged: bool,
}

impl Provenance {
    /// A fresh answer from one attempt on `provider`, whose upstream model costs `price`.
    pub fn upstream(provider: &Arc<str>, price: Option<Price>, elapsed: Duration) -> Self {
        Self {
            provider: Some(Arc::clone(provider)),
            route: Route::Primary,
            attempts: 1,
            upstream_time: elapsed,
            cache: CacheStatus::Off,
            age: None,
            price,
            dropped: Vec::new(),
            native: true,
            failed_check: None,
            hedged: false,
        }
    }

    /// An answer made by the gateway after `failure` (every target failed), carrying its
    /// attempts and upstream time.
    pub fn after_failure(route: Route, failure: &Failure) -> Self {
        Self {
            provider: None,
            route,
            attempts: failure.attempts,
            upstream_time: failure.upstream_time,
            cache: CacheStatus::Off,
            age: None,
            price: None,
            dropped: Vec::new(),
            native: false,
            failed_check: None,
            hedged: false,
        }
    }
}
