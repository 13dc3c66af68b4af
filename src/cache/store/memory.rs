//! The in-process store (moka), bounded both in entries (`max_entries`) and in bytes
//! (`max_bytes`).
//!
//! moka has one capacity, so the two bounds are folded into one weight. An entry weighs its
//! size in bytes (its key and what it holds, `Entry::held_bytes`), but never less than its
//! *share*, `max_bytes / max_entries` rounded up; the capacity is `max_bytes`. Sizes are at most
//! weights, so the entries together never hold more than `max_bytes`; every entry weighs at
//! least the share, so there are never more than `max_bytes / share <= max_entries` of them.
//! The price of one capacity: an entry smaller than the share (about 2.6 KiB with the defaults)
//! counts as the share, so a cache of small answers fills up at `max_entries`, as it should,
//! and a mix of small and large ones may stop short of both bounds, never beyond either.
//! (A share above `u32::MAX`, moka's largest weight, is clamped, and the capacity becomes
//! `share × max_entries`, which is then below `max_bytes`: both bounds still hold.)
//!
//! An entry weighing more than the whole capacity is not kept. Weights are computed once per
//! write, not by the weigher, which moka calls on its own schedule and must be cheap.

use std::future::ready;
use std::sync::Arc;

use moka::ops::compute::{CompResult, Op};

use super::{Lifetimes, Written};
use crate::cache::entry::{Entry, MAX_ENTRY_BYTES};
use crate::config::defaults::bounds::MIN_CACHE_BYTES;

// The smallest `max_bytes` validation accepts holds one entry of the largest size stored.
const _: () = assert!(MAX_ENTRY_BYTES as u64 <= MIN_CACHE_BYTES);

pub struct Memory {
    cache: moka::future::Cache<String, Held>,
    /// The sum of the weights moka keeps to.
    capacity: u64,
    /// The least an entry weighs: `max_bytes / max_entries`, rounded up.
    share: u32,
    lifetimes: Lifetimes,
}

/// An entry with its weight, computed once when it is stored.
#[derive(Clone)]
struct Held {
    entry: Arc<Entry>,
    weight: u32,
}

impl Memory {
    pub fn new(max_entries: u64, max_bytes: u64, lifetimes: Lifetimes) -> Self {
        let max_entries = max_entries.max(1);
        let share = u32::try_from(max_bytes.div_ceil(max_entries).max(1)).unwrap_or(u32::MAX);
        let capacity = max_bytes.min(u64::from(share).saturating_mul(max_entries));
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .weigher(|_key: &String, held: &Held| held.weight)
            .time_to_live(lifetimes.keep_for())
            .build();
        Self { cache, capacity, share, lifetimes }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key).await.map(|held| held.entry)
    }

    /// Stores `entry` unless `key` holds a fresh one; atomic per key (moka's `and_compute_with`
    /// runs one computation per key at a time).
    pub async fn put(&self, key: String, entry: Arc<Entry>) -> Written {
        let size = key.len().saturating_add(entry.held_bytes());
        let weight = u32::try_from(size).unwrap_or(u32::MAX).max(self.share);
        if u64::from(weight) > self.capacity {
            return Written::TooLarge;
        }
        let ttl = self.lifetimes.ttl;
        let held = Held { entry, weight };
        let result = self
            .cache
            .entry(key)
            .and_compute_with(|existing| {
                ready(match existing {
                    Some(existing) if existing.value().entry.age() < ttl => Op::Nop,
                    _ => Op::Put(held),
                })
            })
            .await;
        match result {
            CompResult::Unchanged(_) => Written::KeptFresh,
            _ => Written::Stored,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);
    const LIFETIMES: Lifetimes = Lifetimes { ttl: HOUR, stale_ttl: HOUR };

    /// An entry holding about `bytes` bytes, stored `age` ago.
    fn entry(bytes: usize, age: Duration) -> Arc<Entry> {
        let mut entry =
            Entry::from_completion(crate::dialect::Api::Chat, br#"{"choices":[]}"#, "p", None)
                .unwrap();
        entry.completion.push_str(&" ".repeat(bytes));
        entry.stored_at_ms -= u64::try_from(age.as_millis()).unwrap();
        Arc::new(entry)
    }

    /// The entries `memory` holds once moka has caught up with its evictions.
    async fn settled(memory: &Memory) -> (u64, u64) {
        memory.cache.run_pending_tasks().await;
        (memory.cache.entry_count(), memory.cache.weighted_size())
    }

    #[tokio::test]
    async fn more_bytes_than_max_bytes_are_evicted_down_to_max_bytes() {
        let max_bytes = 1 << 20;
        let memory = Memory::new(100_000, max_bytes, LIFETIMES);
        for n in 0..40 {
            let written = memory.put(format!("k{n}"), entry(100 << 10, Duration::ZERO)).await;
            assert_eq!(written, Written::Stored);
        }

        let (count, bytes) = settled(&memory).await;

        assert!(bytes <= max_bytes, "{bytes} bytes held");
        assert!((1..=10).contains(&count), "40 entries of 100 KiB in 1 MiB: {count} kept");
    }

    #[tokio::test]
    async fn max_entries_still_holds_for_small_entries() {
        let memory = Memory::new(10, 256 << 20, LIFETIMES);
        for n in 0..50 {
            memory.put(format!("k{n}"), entry(10, Duration::ZERO)).await;
        }

        let (count, _) = settled(&memory).await;

        assert!((1..=10).contains(&count), "{count} entries kept");
    }

    #[tokio::test]
    async fn an_entry_larger_than_max_bytes_is_not_kept() {
        let memory = Memory::new(100, 1 << 20, LIFETIMES);

        let written = memory.put("big".to_owned(), entry(1 << 20, Duration::ZERO)).await;

        assert_eq!(written, Written::TooLarge);
        assert!(memory.get("big").await.is_none());
        assert_eq!(settled(&memory).await, (0, 0));
    }

    #[tokio::test]
    async fn a_write_never_replaces_a_fresh_entry_but_replaces_a_stale_one() {
        let memory = Memory::new(100, 1 << 20, LIFETIMES);
        let fresh = entry(1, Duration::from_secs(60));
        assert_eq!(memory.put("fresh".to_owned(), Arc::clone(&fresh)).await, Written::Stored);
        let stale = entry(1, HOUR + Duration::from_secs(60));
        assert_eq!(memory.put("stale".to_owned(), stale).await, Written::Stored);

        let newer = entry(2, Duration::ZERO);
        assert_eq!(memory.put("fresh".to_owned(), Arc::clone(&newer)).await, Written::KeptFresh);
        assert_eq!(memory.put("stale".to_owned(), Arc::clone(&newer)).await, Written::Stored);

        assert_eq!(memory.get("fresh").await, Some(fresh));
        assert_eq!(memory.get("stale").await, Some(newer));
    }

    #[test]
    fn the_share_and_capacity_keep_both_bounds() {
        let memory = Memory::new(100_000, 256 << 20, LIFETIMES);
        assert_eq!((memory.share, memory.capacity), (2_685, 256 << 20));
        // A share beyond moka's largest weight: the capacity shrinks so that the count holds.
        let memory = Memory::new(2, 1 << 40, LIFETIMES);
        assert_eq!((memory.share, memory.capacity), (u32::MAX, 2 * u64::from(u32::MAX)));
        let memory = Memory::new(1 << 30, 1 << 20, LIFETIMES);
        assert_eq!((memory.share, memory.capacity), (1, 1 << 20));
    }
}
