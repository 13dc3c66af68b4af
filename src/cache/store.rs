//! Where entries live: in process memory (moka), in Redis, or nowhere.
//!
//! Redis is an accelerator, never a dependency. Every Redis call is bounded (`CALL_TIMEOUT`), the
//! connection manager is lazy (the gateway starts while Redis is down) with a short reconnect
//! policy, and after `TRIP_AFTER` consecutive errors Redis is skipped for `TRIP_FOR`, so while it
//! is down or hung no request waits on it: each one is answered as if uncached. Errors are
//! counted by the caller and logged here at most once per `LOG_EVERY`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::entry::Entry;

/// The most a Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
const TRIP_AFTER: u32 = 5;
const TRIP_FOR: Duration = Duration::from_secs(2);
const LOG_EVERY: Duration = Duration::from_secs(10);

pub enum Store {
    Memory(moka::future::Cache<String, Arc<Entry>>),
    Redis(RedisStore),
}

/// A failed store call: the request carries on uncached.
#[derive(Debug)]
pub struct StoreError;

pub struct RedisStore {
    manager: ConnectionManager,
    health: Mutex<RedisHealth>,
    reachable: AtomicBool,
}

#[derive(Default)]
struct RedisHealth {
    consecutive_errors: u32,
    skip_until: Option<Instant>,
    last_logged: Option<Instant>,
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
        let client = redis::Client::open(url).map_err(|err| format!("invalid redis_url: {err}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(Duration::from_millis(200)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| format!("cannot set up the Redis connection: {err}"))?;
        Ok(Self::Redis(RedisStore {
            manager,
            health: Mutex::new(RedisHealth::default()),
            reachable: AtomicBool::new(true),
        }))
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
            Self::Redis(redis) => redis.reachable.load(Ordering::Relaxed),
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
            }
        }
    }
}

impl RedisStore {
    /// Runs one bounded command; errors (and skips while tripped) become `StoreError`.
    async fn call<T, F, Fut>(&self, what: &str, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.lock().skip_until.is_some_and(|until| Instant::now() < until) {
            return Err(StoreError);
        }
        let outcome = tokio::time::timeout(CALL_TIMEOUT, command(self.manager.clone())).await;
        let mut health = self.lock();
        match outcome {
            Ok(Ok(value)) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis is reachable again; caching resumes");
                }
                health.consecutive_errors = 0;
                health.skip_until = None;
                Ok(value)
            }
            failed => {
                self.reachable.store(false, Ordering::Relaxed);
                health.consecutive_errors += 1;
                if health.consecutive_errors >= TRIP_AFTER {
                    health.skip_until = Some(Instant::now() + TRIP_FOR);
                }
                let now = Instant::now();
                if health.last_logged.is_none_or(|last| now.duration_since(last) >= LOG_EVERY) {
                    health.last_logged = Some(now);
                    let error = match failed {
                        Ok(Err(err)) => err.to_string(),
                        _ => format!("no answer within {CALL_TIMEOUT:?}"),
                    };
                    tracing::warn!(command = what, error = %error, "Redis call failed; serving uncached (logged at most every 10 s)");
                }
                Err(StoreError)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RedisHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
