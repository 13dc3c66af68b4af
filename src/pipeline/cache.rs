//! `Caching`: the cache as a pipeline stage (SPEC §4). A fresh entry answers at once; identical
//! concurrent misses make one upstream call (single-flight); a complete answer is stored; and
//! when every target failed, an entry within `stale_ttl` answers instead of the error.
//!
//! It sits inside `Degraded` and outside `Failover`, so the order for one request is SPEC §4's:
//! fresh entry → targets → stale entry → degraded reply → error. Only complete 2xx answers are
//! stored: a whole answer that is a completion, a stream once its terminal event arrived. The
//! storage itself (`crate::cache`) never fails a request: a store error is a miss.

use std::sync::Arc;
use std::time::Duration;

use super::call::{Answer, Call, Provenance};
use super::observe::{Observer, observe};
use super::stage::{Inner, Next, Stage};
use crate::cache::{self, Cache, Entry, Flight, Lookup, Outcome, Role};
use crate::config::Price;
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::outcome::{CacheStatus, Route};
use crate::providers::Reply;

pub struct Caching {
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
}

impl Caching {
    pub fn new(cache: Arc<Cache>, metrics: Arc<Metrics>) -> Self {
        Self { cache, metrics }
    }
}

impl Stage for Caching {
    async fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> Result<Answer, Failure> {
        let policy = call.cache;
        if policy.no_store {
            self.metrics.record_cache(CacheStatus::Bypass);
            let mut answer = next.run(call).await?;
            answer.provenance.cache = CacheStatus::Bypass;
            return Ok(answer);
        }
        let key = cache::key::cache_key(&call.scope, &call.request);
        let (mut status, mut stale, mut store_failed) = (CacheStatus::Bypass, None, false);
        if !policy.no_cache {
            status = CacheStatus::Miss;
            match self.cache.lookup(&key, policy.max_age).await {
                Lookup::Fresh(entry) => return Ok(self.hit(&entry, &call)),
                Lookup::Stale(entry) => stale = Some(entry),
                Lookup::Miss => {}
                Lookup::Unavailable => store_failed = true,
            }
        }
        let outcome = loop {
            match self.cache.join(&key) {
                Role::Follower(leader) => {
                    self.metrics.record_coalesced(&call.model);
                    match cache::follow(leader).await {
                        Outcome::Stored(entry) => return Ok(self.hit(&entry, &call)),
                        Outcome::Failed(failure) => break Err(failure),
                        // The leader went away without an answer: lead instead.
                        Outcome::Abandoned | Outcome::Running => continue,
                    }
                }
                Role::Leader(flight) => {
                    break match next.clone().run(call.clone()).await {
                        Ok(answer) => Ok(self.keep(answer, key, flight, status)),
                        Err(failure) => {
                            flight.finish(Outcome::Failed(failure.clone()));
                            Err(failure)
                        }
                    };
                }
            }
        };
        match (outcome, stale) {
            // Stale only instead of an upstream-class failure, never instead of a client error.
            (Err(failure), Some(entry)) if failure.class.fails_over() => {
                tracing::warn!(failure = %failure, age = ?entry.age(), "every target failed; serving a stale answer");
                self.metrics.record_cache(CacheStatus::Stale);
                Ok(from_entry(&entry, &call, Route::Stale, CacheStatus::Stale, Some(&failure)))
            }
            (outcome, _) => {
                if store_failed {
                    self.metrics.record_cache_error();
                } else {
                    self.metrics.record_cache(status);
                }
                outcome
            }
        }
    }
}

impl Caching {
    /// A fresh entry's answer, counted as a hit and as what it saved.
    fn hit(&self, entry: &Entry, call: &Call) -> Answer {
        self.metrics.record_cache(CacheStatus::Hit);
        self.metrics.record_cache_saved(&call.model, entry.cost_usd);
        from_entry(entry, call, Route::Cache, CacheStatus::Hit, None)
    }

    /// Stores a fresh answer (a stream once it is complete) and hands it on.
    fn keep(&self, mut answer: Answer, key: String, flight: Flight, status: CacheStatus) -> Answer {
        answer.provenance.cache = status;
        let provider = answer.provenance.provider.clone().unwrap_or_else(|| Arc::from(""));
        let price = answer.provenance.price;
        answer.reply = match answer.reply {
            Reply::Complete(body) => {
                if let Some(entry) = Entry::from_completion(&body, &provider, price).map(Arc::new) {
                    self.cache.store_later(key, Arc::clone(&entry));
                    flight.finish(Outcome::Stored(entry));
                }
                Reply::Complete(body)
            }
            Reply::Stream(chunks) => {
                let copy = StreamCopy {
                    cache: Arc::clone(&self.cache),
                    key,
                    flight,
                    provider,
                    price,
                    kept: Vec::new(),
                    size: 0,
                };
                Reply::Stream(observe(chunks, copy))
            }
        };
        answer
    }
}

/// A copy of a stream as it passes, stored once the upstream's terminal event came. A broken or
/// dropped stream is never stored; dropping its flight releases the followers.
struct StreamCopy {
    cache: Arc<Cache>,
    key: String,
    flight: Flight,
    provider: Arc<str>,
    price: Option<Price>,
    kept: Vec<String>,
    size: usize,
}

impl Observer for StreamCopy {
    fn chunk(&mut self, chunk: &str) {
        self.size += chunk.len();
        if self.size <= cache::MAX_ENTRY_BYTES {
            self.kept.push(chunk.to_owned());
        }
    }

    fn ended(self) {
        if self.size > cache::MAX_ENTRY_BYTES {
            return;
        }
        if let Some(entry) = Entry::from_chunks(self.kept, &self.provider, self.price) {
            let entry = Arc::new(entry);
            self.cache.store_later(self.key, Arc::clone(&entry));
            self.flight.finish(Outcome::Stored(entry));
        }
    }
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
        price: None,
    };
    Answer { reply: entry.reply(call.request.stream), provenance }
}
