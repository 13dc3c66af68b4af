//! The Redis store: entries as JSON under their key, expiring after `ttl + stale_ttl`, through
//! `SharedRedis` (every call bounded, a dead or hung Redis skipped).
//!
//! A write is one Lua script, so that it never replaces a fresh entry even when replicas write
//! the same key at once. Freshness is read from the key's remaining time to live rather than
//! from the entry's `stored_at_ms`: every entry is written to expire `ttl + stale_ttl` after it
//! was stored, so it is younger than `ttl` exactly when more than `stale_ttl` of its life is
//! left (`PTTL`), and the script never parses an entry of up to 1 MiB inside Redis.

use std::sync::Arc;

use ::redis::{AsyncCommands, Script};

use super::{Lifetimes, StoreError, Written};
use crate::cache::entry::Entry;
use crate::config::RedisConfig;
use crate::shared_redis::SharedRedis;

/// Atomically: unless KEYS[1] has more than ARGV[3] ms (the stale time) left to live, set it
/// to ARGV[1] expiring in ARGV[2] ms and return 1; else return 0. `PTTL` is -2 for a missing
/// key (and -1 for one without expiry, which ballast never writes), so those are replaced.
const PUT_UNLESS_FRESH: &str = r"
if redis.call('PTTL', KEYS[1]) > tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

pub struct RedisStore {
    redis: SharedRedis,
    put_unless_fresh: Script,
    lifetimes: Lifetimes,
}

impl RedisStore {
    pub fn new(config: &RedisConfig, lifetimes: Lifetimes) -> Result<Self, String> {
        Ok(Self {
            redis: SharedRedis::new(config)?,
            put_unless_fresh: Script::new(PUT_UNLESS_FRESH),
            lifetimes,
        })
    }

    pub fn is_reachable(&self) -> bool {
        self.redis.is_reachable()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Arc<Entry>>, StoreError> {
        let bytes: Option<Vec<u8>> =
            self.redis.call("GET", |mut conn| async move { conn.get(key).await }).await?;
        Ok(bytes.and_then(|bytes| Entry::decode(&bytes)).map(Arc::new))
    }

    /// Stores `entry` unless `key` holds a fresh one.
    pub async fn put(&self, key: String, entry: &Entry) -> Result<Written, StoreError> {
        let bytes = entry.encode();
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let keep_for = millis(self.lifetimes.keep_for()).max(1);
        let stale_for = millis(self.lifetimes.stale_ttl);
        let script = &self.put_unless_fresh;
        let stored = self
            .redis
            .call("SET", |mut conn| async move {
                script
                    .key(key)
                    .arg(bytes)
                    .arg(keep_for)
                    .arg(stale_for)
                    .invoke_async::<u8>(&mut conn)
                    .await
            })
            .await?;
        Ok(if stored == 1 { Written::Stored } else { Written::KeptFresh })
    }
}
