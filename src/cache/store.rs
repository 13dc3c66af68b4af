//! Where entries live: in process memory (moka) or in Redis (`SharedRedis`: every call bounded,
//! a dead or hung Redis skipped), so a Redis problem only makes a request uncached.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use super::entry::Entry;
use crate::shared_redis::SharedRedis;

pub enum Store {
    Memory(moka::future::Cache<String, Arc<Entry>>),
    Redis(SharedRedis),
}

/// A failed store call: the request carries on uncached.
#[derive(Debug)]
pub struct StoreError;

impl From<crate::shared_redis::RedisUnavailable> for StoreError {
    fn from(_: crate::shared_redis::RedisUnavailable) -> Self {
        Self
    }
}

impl Store {
    /// An in-process store of at most `max_entries`, each kept for `keep_for`.
    pub fn memory(max_entries: u64, keep_for: Duration) -> Self {
        Self::Memory(
            moka::future::Cache::builder().max_capacity(max_entries).time_to_live(keep_for).build(),
        )
    }

    /// A Redis store at `url`; connects lazily, so it never blocks start-up.
    pub fn redis(url: &str) -> Result<Self, String> {
        SharedRedis::new(url).map(Self::Redis)
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// False after a failed Redis call, until one succeeds.
    pub fn is_reachable(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::Redis(redis) => redis.is_reachable(),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Arc<Entry>>, StoreError> {
        match self {
            Self::Memory(cache) => Ok(cache.get(key).await),
            Self::Redis(redis) => {
                let bytes: Option<Vec<u8>> =
                    redis.call("GET", |mut conn| async move { conn.get(key).await }).await?;
                Ok(bytes.and_then(|bytes| Entry::decode(&bytes)).map(Arc::new))
            }
        }
    }

    /// Stores `entry` for `keep_for` (fresh time plus stale time).
    pub async fn put(
        &self,
        key: String,
        entry: Arc<Entry>,
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(cache) => {
                cache.insert(key, entry).await;
                Ok(())
            }
            Self::Redis(redis) => {
                let bytes = entry.encode();
                let millis = u64::try_from(keep_for.as_millis()).unwrap_or(u64::MAX).max(1);
                redis
                    .call("SET", |mut conn| async move {
                        conn.pset_ex::<_, _, ()>(key, bytes, millis).await
                    })
                    .await
                    .map_err(|_| StoreError)
            }
        }
    }
}
