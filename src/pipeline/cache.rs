//! `Caching`: the cache as a pipeline stage (SPEC §4). A fresh entry answers at once; identical
//! concurrent misses make one upstream call (single-flight), for which a follower waits at most
//! its patience; a complete answer is stored, though never over a fresh entry (the store
//! decides, `crate::cache`); and when every target failed, an entry within `stale_ttl` answers
//! instead of the error.
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
use crate::dialect::Api;
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::outcome::{CacheStatus, Route};
use crate::providers::Reply;

pub struct Caching {
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    /// How long a follower waits for its leader before it calls the upstream itself.
    patience: Duration,
}

/// How a call's flight ended.
enum Flown {
    /// A leader stored the entry this call is answered from.
    Followed(Arc<Entry>),
    /// This call's own upstream answer or failure, or the failure its leader shared.
    Outcome(Result<Answer, Failure>),
}

impl Caching {
    /// The stage over `cache`; a follower waits for its leader at most `patience` (see
    /// `Pipeline::build`, which derives it from the model's targets).
    pub fn new(cache: Arc<Cache>, metrics: Arc<Metrics>, patience: Duration) -> Self {
        Self { cache, metrics, patience }
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
        let outcome = match self.fly(key, &call, next, status).await {
            Flown::Followed(entry) => return Ok(self.hit(&entry, &call)),
            Flown::Outcome(outcome) => outcome,
        };
        match (outcome, stale) {
            // Stale only instead of an upstream-class failure, never instead of a client error.
            (Err(failure), Some(entry)) if failure.class.fails_over() => {
                tracing::warn!(failure = %failure, age = ?entry.age(), "every target failed; serving a stale answer");
                self.metrics.record_cache(CacheStatus::Stale);
                let spent = Spent {
                    attempts: failure.attempts,
                    upstream_time: failure.upstream_time,
                    hedged: false,
                };
                Ok(from_entry(&entry, &call, Route::Stale, CacheStatus::Stale, spent))
            }
            // Every target answered badly: a stale answer is better than the last bad one.
            (Ok(answer), Some(entry)) if answer.provenance.failed_check.is_some() => {
                tracing::warn!(age = ?entry.age(), "every target answered badly; serving a stale answer");
                self.metrics.record_cache(CacheStatus::Stale);
                let bad = &answer.provenance;
                let spent = Spent {
                    attempts: bad.attempts,
                    upstream_time: bad.upstream_time,
                    hedged: bad.hedged,
                };
                Ok(from_entry(&entry, &call, Route::Stale, CacheStatus::Stale, spent))
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
    /// Single-flight: leads the upstream call for `key` or follows the one under way. A
    /// follower is answered by its leader's entry or failure (and only then counted as
    /// coalesced); when the leader goes away without an outcome, or has not finished within
    /// `patience`, the follower leads instead (`cache::flight` says how a stalled flight is
    /// replaced).
    async fn fly<S: Inner>(
        &self,
        key: String,
        call: &Call,
        next: Next<S>,
        status: CacheStatus,
    ) -> Flown {
        let mut role = self.cache.join(&key);
        loop {
            role = match role {
                Role::Follower(mut leader) => match leader.wait(self.patience).await {
                    Some(Outcome::Stored(entry)) => {
                        self.metrics.record_coalesced(&call.model);
                        return Flown::Followed(entry);
                    }
                    Some(Outcome::Failed(failure)) => {
                        self.metrics.record_coalesced(&call.model);
                        return Flown::Outcome(Err(failure));
                    }
                    // The leader went away without an answer: lead, or follow whoever does.
                    Some(Outcome::Abandoned | Outcome::Running) => self.cache.join(&key),
                    None => {
                        tracing::debug!(patience = ?self.patience, "an identical call is taking too long; calling the upstream instead");
                        self.cache.take_over(&key, &leader)
                    }
                },
                Role::Leader(flight) => {
                    return Flown::Outcome(match next.run(call.clone()).await {
                        Ok(answer) => {
                            Ok(self.keep(answer, key, flight, status, call.request.api()))
                        }
                        Err(failure) => {
                            flight.finish(Outcome::Failed(failure.clone()));
                            Err(failure)
                        }
                    });
                }
            };
        }
    }

    /// A fresh entry's answer, counted as a hit and as what it saved.
    fn hit(&self, entry: &Entry, call: &Call) -> Answer {
        self.metrics.record_cache(CacheStatus::Hit);
        self.metrics.record_cache_saved(&call.model, entry.cost_usd);
        from_entry(entry, call, Route::Cache, CacheStatus::Hit, Spent::default())
    }

    /// Stores a fresh answer (a stream once it is complete) and hands it on.
    fn keep(
        &self,
        mut answer: Answer,
        key: String,
        flight: Flight,
        status: CacheStatus,
        api: Api,
    ) -> Answer {
        answer.provenance.cache = status;
        // A bad answer is never stored; dropping the flight lets its followers call themselves.
        if answer.provenance.failed_check.is_some() {
            return answer;
        }
        let provider = answer.provenance.provider.clone().unwrap_or_else(|| Arc::from(""));
        let price = answer.provenance.price;
        answer.reply = match answer.reply {
            Reply::Complete(body) => {
                if let Some(entry) =
                    Entry::from_completion(api, &body, &provider, price).map(Arc::new)
                {
                    self.cache.store_later(key, Arc::clone(&entry));
                    flight.finish(Outcome::Stored(entry));
                }
                Reply::Complete(body)
            }
            Reply::Stream(chunks) => {
                let copy = StreamCopy {
                    api,
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
    api: Api,
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
        if let Some(entry) = Entry::from_chunks(self.api, self.kept, &self.provider, self.price) {
            let entry = Arc::new(entry);
            self.cache.store_later(self.key, Arc::clone(&entry));
            self.flight.finish(Outcome::Stored(entry));
        }
    }
}

/// What the targets spent before a stale answer (nothing, for a hit).
#[derive(Default)]
struct Spent {
    attempts: u32,
    upstream_time: Duration,
    hedged: bool,
}

/// An answer from a stored entry: a hit (no upstream attempt) or a stale answer after the
/// targets failed, which `spent` what it says on it.
fn from_entry(
    entry: &Entry,
    call: &Call,
    route: Route,
    cache: CacheStatus,
    spent: Spent,
) -> Answer {
    let provenance = Provenance {
        provider: Some(Arc::from(entry.provider.as_str())),
        route,
        attempts: spent.attempts,
        upstream_time: spent.upstream_time,
        cache,
        age: Some(entry.age()),
        price: None,
        dropped: Vec::new(),
        native: false,
        failed_check: None,
        hedged: spent.hedged,
    };
    Answer { reply: entry.reply(call.request.api(), call.request.stream()), provenance }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant;
    use tower::util::BoxCloneSyncService;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::config::{CacheBackend, CacheConfig};
    use crate::pipeline::stage::StageLayer;

    const PATIENCE: Duration = Duration::from_secs(5);
    const HOUR: Duration = Duration::from_secs(3_600);

    /// An upstream whose first call never ends (a stalled leader) and whose later calls answer
    /// at once; it counts its calls.
    fn stalling_upstream(calls: &Arc<AtomicUsize>) -> BoxCloneSyncService<Call, Answer, Failure> {
        let calls = Arc::clone(calls);
        BoxCloneSyncService::new(tower::service_fn(move |_call: Call| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    std::future::pending::<()>().await;
                }
                let body =
                    br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"mine"}}]}"#;
                Ok(Answer {
                    reply: Reply::Complete(bytes::Bytes::from_static(body)),
                    provenance: Provenance::upstream(&Arc::from("p"), None, Duration::ZERO),
                })
            }
        }))
    }

    fn call() -> Call {
        Call::for_tests(HOUR)
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_calls_the_upstream_itself_once_its_leader_outlasts_its_patience() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let config = CacheConfig {
            backend: CacheBackend::Memory,
            ttl: HOUR,
            stale_ttl: HOUR,
            max_entries: 100,
            max_bytes: 1 << 20,
            shared_across_keys: false,
        };
        let cache = Cache::from_config(&config, &metrics).unwrap().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let stage = StageLayer::new(Caching::new(cache, Arc::clone(&metrics), PATIENCE))
            .layer(stalling_upstream(&calls));
        let stalled = tokio::spawn(stage.clone().oneshot(call()));
        for _ in 0..100 {
            if calls.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the leader is calling");

        let started = Instant::now();
        let follower = tokio::time::timeout(PATIENCE * 2, stage.clone().oneshot(call()));
        let answer = follower.await.expect("answered within twice its patience").unwrap();

        assert_eq!(started.elapsed(), PATIENCE);
        assert_eq!(answer.provenance.route, Route::Primary);
        assert_eq!(answer.provenance.cache, CacheStatus::Miss);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "its own call");
        assert!(!metrics.render().contains("ballast_coalesced_requests_total{"));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let next = stage.clone().oneshot(call()).await.unwrap();
        assert_eq!(next.provenance.cache, CacheStatus::Hit, "its answer was stored");
        assert!(!stalled.is_finished());
        stalled.abort();
    }
}
