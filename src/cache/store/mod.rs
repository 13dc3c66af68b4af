//! Where entries live: in process memory (moka, bounded in entries and bytes) or in Redis
//! (`SharedRedis`: every call bounded, a dead or hung Redis skipped), so a Redis problem only
//! makes a request uncached.
//!
//! A write never replaces a fresh entry (SPEC §4 and docs/cache.md, "Who writes an entry"): an
//! answer is stored when the key holds nothing or only a stale entry. So a client that skips a
//! fresh entry (`no-cache`, a short `max-age`), or a follower that stopped waiting for its
//! leader, never changes what everyone else sharing the cache space is answered with. Each
//! backend decides it atomically at write time: moka under its per-key lock, Redis in one Lua
//! script.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use self::memory::Memory;
use self::redis::RedisStore;
use super::entry::Entry;
use crate::config::RedisConfig;

pub enum Store {
    Memory(Memory),
    Redis(RedisStore),
}

/// How long entries live: fresh for `ttl`, then stale for `stale_ttl`, then gone.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub ttl: Duration,
    pub stale_ttl: Duration,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The key held nothing or a stale entry; it holds this one now.
    Stored,
    /// The key held a fresh entry, which stays.
    KeptFresh,
    /// Larger than the memory store's `max_bytes`: not kept.
    TooLarge,
}

/// A failed store call: the request carries on uncached.
#[derive(Debug)]
pub struct StoreError;

impl From<crate::shared_redis::RedisUnavailable> for StoreError {
    fn from(_: crate::shared_redis::RedisUnavailable) -> Self {
        Self
    }
}

impl Lifetimes {
    /// How long an entry is kept in all: fresh time plus stale time.
    pub fn keep_for(self) -> Duration {
        self.ttl.saturating_add(self.stale_ttl)
    }
}

impl Store {
    /// An in-process store of at most `max_entries` and at most `max_bytes`.
    pub fn memory(max_entries: u64, max_bytes: u64, lifetimes: Lifetimes) -> Self {
        Self::Memory(Memory::new(max_entries, max_bytes, lifetimes))
    }

    /// A Redis store; connects lazily, so it never blocks start-up.
    pub fn redis(config: &RedisConfig, lifetimes: Lifetimes) -> Result<Self, String> {
        RedisStore::new(config, lifetimes).map(Self::Redis)
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
            Self::Memory(memory) => Ok(memory.get(key).await),
            Self::Redis(redis) => redis.get(key).await,
        }
    }

    /// Stores `entry` under `key` unless a fresh entry is there.
    pub async fn put(&self, key: String, entry: Arc<Entry>) -> Result<Written, StoreError> {
        match self {
            Self::Memory(memory) => Ok(memory.put(key, entry).await),
            Self::Redis(redis) => redis.put(key, &entry).await,
        }
    }
}
