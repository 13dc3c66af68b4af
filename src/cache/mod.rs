//! The answer cache's storage (SPEC §2 `cache`): keys, entries, the memory or Redis store and
//! single-flight. It knows nothing of the pipeline: what to look up, when to store and when a
//! stale entry may answer are decided by the pipeline's cache stage (`pipeline/cache.rs`).
//!
//! Store errors never fail a request: a lookup that fails is a miss, and writes happen in the
//! background, bounded, and are only counted when they fail.

mod entry;
mod flight;
pub mod key;
mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use self::entry::{Entry, MAX_ENTRY_BYTES};
pub use self::flight::{Flight, Outcome, Role, follow};

use self::flight::Flights;
use self::store::Store;
use crate::config::{CacheBackend, CacheConfig};
use crate::metrics::Metrics;

/// How long a background write may take before it is given up.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Cache {
    store: Store,
    ttl: Duration,
    stale_ttl: Duration,
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
        let keep_for = config.ttl.saturating_add(config.stale_ttl);
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
        } else if age < self.ttl {
            Lookup::Fresh(entry)
        } else if age < self.ttl.saturating_add(self.stale_ttl) {
            Lookup::Stale(entry)
        } else {
            Lookup::Miss
        }
    }

    /// Leads the call for `key`, or follows the one already under way.
    pub fn join(&self, key: &str) -> Role {
        self.flights.join(key)
    }

    /// Stores in the background, so a slow store never delays an answer.
    pub fn store_later(self: &Arc<Self>, key: String, entry: Arc<Entry>) {
        let cache = Arc::clone(self);
        let keep_for = self.ttl.saturating_add(self.stale_ttl);
        self.writes.spawn(async move {
            let write = cache.store.put(key, entry, keep_for);
            if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
                cache.metrics.record_cache_error();
            }
        });
    }

    /// Waits (bounded) for the writes still under way, e.g. before `ballast warm` exits.
    pub async fn flush(&self) {
        self.writes.close();
        let _ = tokio::time::timeout(WRITE_TIMEOUT * 4, self.writes.wait()).await;
        self.writes.reopen();
    }
}
