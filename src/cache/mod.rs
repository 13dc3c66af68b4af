//! The answer cache (SPEC §2 `cache`, §4): fresh hits skip the upstream, identical concurrent
//! misses make one upstream call, and when every target failed an entry within `stale_ttl`
//! is served instead of an error.
//!
//! `CacheLayer` sits inside `DegradedLayer` and outside `FailoverService`, so the order for one
//! request is SPEC §4's: fresh entry → targets → stale entry → degraded reply → error. Only
//! complete 2xx answers are stored: a whole answer that is a completion, a stream once its
//! terminal event arrived. Store errors never fail a request: it is answered as if uncached.

pub mod control;
mod entry;
mod flight;
pub mod key;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use tokio_util::task::TaskTracker;
use tower::{Layer, Service, ServiceExt};

use self::entry::Entry;
use self::flight::{Flight, Flights, Outcome, Role};
use self::store::Store;
use crate::config::{CacheBackend, CacheConfig, Price};
use crate::failure::Failure;
use crate::metrics::{CacheResult, Metrics};
use crate::pipeline::{Answer, CacheStatus, Call, Provenance, Route};
use crate::providers::{ChunkStream, Reply};

/// How long a background write may take before it is given up.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Cache {
    store: Store,
    ttl: Duration,
    stale_ttl: Duration,
    flights: Arc<Flights>,
    metrics: Arc<Metrics>,
    /// By upstream model name, for what a hit saved.
    pricing: HashMap<String, Price>,
    writes: TaskTracker,
}

impl Cache {
    /// The cache of `config`; none for `backend: none`.
    pub fn from_config(
        config: &CacheConfig,
        metrics: &Arc<Metrics>,
        pricing: &HashMap<String, Price>,
    ) -> Result<Option<Arc<Self>>, String> {
        let keep_for = config.ttl + config.stale_ttl;
        let store = match &config.backend {
            CacheBackend::None => return Ok(None),
            CacheBackend::Memory => Store::memory(config.max_entries, keep_for),
            CacheBackend::Redis { url } => Store::redis(url)?,
        };
        Ok(Some(Arc::new(Self {
            store,
            ttl: config.ttl,
            stale_ttl: config.stale_ttl,
            flights: Arc::default(),
            metrics: Arc::clone(metrics),
            pricing: pricing.clone(),
            writes: TaskTracker::new(),
        })))
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub fn is_reachable(&self) -> bool {
        self.store.is_reachable()
    }

    /// Waits (bounded) for the writes still under way, e.g. before `ballast warm` exits.
    pub async fn flush(&self) {
        self.writes.close();
        let _ = tokio::time::timeout(WRITE_TIMEOUT * 4, self.writes.wait()).await;
        self.writes.reopen();
    }

    /// Stores in the background, so a slow store never delays an answer.
    fn store_later(self: &Arc<Self>, key: String, entry: Arc<Entry>) {
        let cache = Arc::clone(self);
        let keep_for = self.ttl + self.stale_ttl;
        self.writes.spawn(async move {
            let write = cache.store.put(key, entry, keep_for);
            if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
                cache.metrics.record_cache(CacheResult::Error);
            }
        });
    }

    /// The price of `upstream_model`, when the pricing table has it.
    fn price(&self, upstream_model: Option<&str>) -> Option<Price> {
        upstream_model.and_then(|model| self.pricing.get(model)).copied()
    }
}

// === CacheLayer ===

#[derive(Clone)]
pub struct CacheLayer {
    cache: Arc<Cache>,
}

impl CacheLayer {
    pub fn new(cache: Arc<Cache>) -> Self {
        Self { cache }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService { inner, cache: Arc::clone(&self.cache) }
    }
}

#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    cache: Arc<Cache>,
}

impl<S> Service<Call> for CacheService<S>
where
    S: Service<Call, Response = Answer, Error = Failure> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Answer, Failure>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let inner = self.inner.clone();
        let cache = Arc::clone(&self.cache);
        Box::pin(lookup_then_call(cache, inner, call))
    }
}

async fn lookup_then_call<S>(cache: Arc<Cache>, inner: S, call: Call) -> Result<Answer, Failure>
where
    S: Service<Call, Response = Answer, Error = Failure> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let directives = call.cache;
    if directives.no_store {
        cache.metrics.record_cache(CacheResult::Bypass);
        let mut answer = inner.oneshot(call).await?;
        answer.provenance.cache = CacheStatus::Bypass;
        return Ok(answer);
    }
    let key = key::cache_key(&call.scope, &call.request);
    let (mut status, mut result, mut stale) = (CacheStatus::Bypass, CacheResult::Bypass, None);
    if !directives.no_cache {
        (status, result) = (CacheStatus::Miss, CacheResult::Miss);
        match cache.store.get(&key).await {
            Ok(Some(entry)) => {
                let age = entry.age();
                let acceptable = directives.max_age.is_none_or(|max_age| age <= max_age);
                if acceptable && age < cache.ttl {
                    cache.metrics.record_cache(CacheResult::Hit);
                    cache.metrics.record_cache_saved(&call.request.model, entry.cost_usd);
                    return Ok(from_entry(&entry, &call, Route::Cache, CacheStatus::Hit, None));
                }
                if acceptable && age < cache.ttl + cache.stale_ttl {
                    stale = Some(entry);
                }
            }
            Ok(None) => {}
            Err(_) => result = CacheResult::Error,
        }
    }
    let outcome = loop {
        match cache.flights.join(&key) {
            Role::Follower(leader) => {
                cache.metrics.record_coalesced(&call.request.model);
                match flight::follow(leader).await {
                    Outcome::Stored(entry) => {
                        cache.metrics.record_cache(CacheResult::Hit);
                        cache.metrics.record_cache_saved(&call.request.model, entry.cost_usd);
                        return Ok(from_entry(&entry, &call, Route::Cache, CacheStatus::Hit, None));
                    }
                    Outcome::Failed(failure) => break Err(failure),
                    // The leader went away without an answer: lead instead.
                    Outcome::Abandoned | Outcome::Running => continue,
                }
            }
            Role::Leader(flight) => {
                let result = inner.clone().oneshot(call.clone()).await;
                break match result {
                    Ok(answer) => Ok(keep(&cache, answer, key, flight, status)),
                    Err(failure) => {
                        flight.finish(Outcome::Failed(failure.clone()));
                        Err(failure)
                    }
                };
            }
        }
    };
    match outcome {
        Ok(answer) => {
            cache.metrics.record_cache(result);
            Ok(answer)
        }
        // Stale only instead of an upstream-class failure, never instead of a client error.
        Err(failure) if failure.class.fails_over() => match stale {
            Some(entry) => {
                tracing::warn!(failure = %failure, age = ?entry.age(), "every target failed; serving a stale answer");
                cache.metrics.record_cache(CacheResult::Stale);
                Ok(from_entry(&entry, &call, Route::Stale, CacheStatus::Stale, Some(&failure)))
            }
            None => {
                cache.metrics.record_cache(result);
                Err(failure)
            }
        },
        Err(failure) => {
            cache.metrics.record_cache(result);
            Err(failure)
        }
    }
}

/// Stores a fresh answer (a stream once it is complete) and hands it on.
fn keep(
    cache: &Arc<Cache>,
    mut answer: Answer,
    key: String,
    flight: Flight,
    status: CacheStatus,
) -> Answer {
    answer.provenance.cache = status;
    let provider = answer.provenance.provider.clone().unwrap_or_else(|| Arc::from(""));
    let upstream_model = answer.provenance.upstream_model.clone();
    answer.reply = match answer.reply {
        Reply::Complete(body) => {
            let price = cache.price(upstream_model.as_deref());
            let entry = Entry::from_completion(&body, &provider, price).map(Arc::new);
            if let Some(entry) = entry {
                cache.store_later(key, Arc::clone(&entry));
                flight.finish(Outcome::Stored(entry));
            }
            Reply::Complete(body)
        }
        Reply::Stream(chunks) => {
            Reply::Stream(tee(chunks, Arc::clone(cache), key, flight, provider, upstream_model))
        }
    };
    answer
}

/// Passes a stream on while keeping a copy; stores it once the upstream's terminal event came.
fn tee(
    chunks: ChunkStream,
    cache: Arc<Cache>,
    key: String,
    flight: Flight,
    provider: Arc<str>,
    upstream_model: Option<Arc<str>>,
) -> ChunkStream {
    let state = Some((chunks, Vec::new(), 0usize, flight));
    stream::unfold(state, move |state| {
        let (cache, key, provider, upstream_model) =
            (Arc::clone(&cache), key.clone(), Arc::clone(&provider), upstream_model.clone());
        async move {
            let (mut chunks, mut kept, mut size, flight) = state?;
            match chunks.next().await {
                Some(Ok(data)) => {
                    size += data.len();
                    if size <= entry::MAX_ENTRY_BYTES {
                        kept.push(data.clone());
                    }
                    Some((Ok(data), Some((chunks, kept, size, flight))))
                }
                // A broken stream is never stored; dropping the flight releases followers.
                Some(Err(failure)) => Some((Err(failure), None)),
                None => {
                    let complete = (size <= entry::MAX_ENTRY_BYTES)
                        .then(|| {
                            Entry::from_chunks(
                                kept,
                                &provider,
                                cache.price(upstream_model.as_deref()),
                            )
                        })
                        .flatten();
                    if let Some(entry) = complete {
                        let entry = Arc::new(entry);
                        cache.store_later(key, Arc::clone(&entry));
                        flight.finish(Outcome::Stored(entry));
                    }
                    None
                }
            }
        }
    })
    .boxed()
}

/// An answer from a stored entry: a hit (no upstream attempt) or a stale answer after `failure`.
fn from_entry(
    entry: &Entry,
    call: &Call,
    route: Route,
    cache: CacheStatus,
    failure: Option<&Failure>,
) -> Answer {
    let provenance = Provenance {
        provider: Some(Arc::from(entry.provider.as_str())),
        route,
        attempts: failure.map_or(0, |f| f.attempts),
        upstream_time: failure.map_or(Duration::ZERO, |f| f.upstream_time),
        cache,
        age: Some(entry.age()),
        upstream_model: None,
    };
    Answer { reply: entry.reply(call.request.stream), provenance }
}
