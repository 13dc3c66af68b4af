//! The answer cache's storage (SPEC §2 `cache`): keys, entries, the memory or Redis store and
//! single-flight. It knows nothing of the pipeline: what to look up, when to store and when a
//! stale entry may answer are decided by the pipeline's cache stage (`pipeline/cache.rs`).
//!
//! Store errors never fail a request: a lookup that fails is a miss, and writes happen in the
//! background, bounded, and are only counted when they fail. A write never replaces a fresh
//! entry (`store` says why).

mod entry;
mod flight;
pub mod key;
mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use self::entry::{Entry, MAX_ENTRY_BYTES};
pub use self::flight::{Flight, Follower, Outcome, Role};

use self::flight::Flights;
use self::store::{Lifetimes, Store, Written};
use crate::config::{CacheBackend, CacheConfig};
use crate::metrics::Metrics;

/// How long a background write may take before it is given up.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Cache {
    store: Store,
    lifetimes: Lifetimes,
    flights: Arc<Flights>,
    metrics: Arc<Metrics>,
    writes: TaskTracker,
}

/// What a lookup found, judged by its age against `ttl`, `stale_ttl` and the client's `max-age`.
pub enum Lookup {
    /// Young enough to answer now.
    Fresh(Arc<Entry>),
    /// Too old to answer now, young enough to answer when every target fails.
    Stale(Arc<Entry>),
    /// Nothing usable.
    Miss,
    /// The store did not answer: carry on as a miss.
    Unavailable,
}

impl Cache {
    /// The cache of `config`; none for `backend: none`.
    pub fn from_config(
        config: &CacheConfig,
        metrics: &Arc<Metrics>,
    ) -> Result<Option<Arc<Self>>, String> {
        let lifetimes = Lifetimes { ttl: config.ttl, stale_ttl: config.stale_ttl };
        let store = match &config.backend {
            CacheBackend::None => return Ok(None),
            CacheBackend::Memory => Store::memory(config.max_entries, config.max_bytes, lifetimes),
            CacheBackend::Redis(redis) => Store::redis(redis, lifetimes)?,
        };
        Ok(Some(Arc::new(Self {
            store,
            lifetimes,
            flights: Arc::default(),
            metrics: Arc::clone(metrics),
            writes: TaskTracker::new(),
        })))
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub fn is_reachable(&self) -> bool {
        self.store.is_reachable()
    }

    /// The entry under `key`, as far as a client that accepts entries up to `max_age` may use it.
    pub async fn lookup(&self, key: &str, max_age: Option<Duration>) -> Lookup {
        let entry = match self.store.get(key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Lookup::Miss,
            Err(_) => return Lookup::Unavailable,
        };
        let age = entry.age();
        if max_age.is_some_and(|max_age| age > max_age) {
            Lookup::Miss
        } else if age < self.lifetimes.ttl {
            Lookup::Fresh(entry)
        } else if age < self.lifetimes.keep_for() {
            Lookup::Stale(entry)
        } else {
            Lookup::Miss
        }
    }

    /// Leads the call for `key`, or follows the one already under way.
    pub fn join(&self, key: &str) -> Role {
        self.flights.join(key)
    }

    /// Leads a new call for `key` in place of the stalled one `follower` waited for (or follows
    /// the call that already replaced it).
    pub fn take_over(&self, key: &str, follower: &Follower) -> Role {
        self.flights.take_over(key, follower)
    }

    /// Stores in the background, so a slow store never delays an answer; a fresh entry under
    /// `key` is kept (`store` says why).
    pub fn store_later(self: &Arc<Self>, key: String, entry: Arc<Entry>) {
        let cache = Arc::clone(self);
        self.writes.spawn(async move { cache.store_now(key, entry).await });
    }

    /// Stores now, bounded by the write timeout: for what must be readable (by any replica) by
    /// the time the answer reaches its client, such as a kept Responses conversation. A fresh
    /// entry under `key` is kept.
    pub async fn store_now(&self, key: String, entry: Arc<Entry>) {
        match tokio::time::timeout(WRITE_TIMEOUT, self.store.put(key, entry)).await {
            Ok(Ok(Written::Stored)) => {}
            Ok(Ok(Written::KeptFresh)) => {
                tracing::debug!("a fresh entry was there already; it stays");
            }
            Ok(Ok(Written::TooLarge)) => {
                tracing::debug!("an answer larger than cache.max_bytes was not stored");
            }
            Ok(Err(_)) | Err(_) => self.metrics.record_cache_error(),
        }
    }

    /// Waits (bounded) for the writes still under way, e.g. before `ballast warm` exits.
    pub async fn flush(&self) {
        self.writes.close();
        let _ = tokio::time::timeout(WRITE_TIMEOUT * 4, self.writes.wait()).await;
        self.writes.reopen();
    }
}
