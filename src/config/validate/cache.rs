//! The `cache` section: the backend, how long answers are kept, and whose they are.

use yaml_serde::Value;

use super::values::{duration, duration_or_zero, size};
use crate::config::defaults::bounds;
use crate::config::defaults::cache as default;
use crate::config::path::YamlPath;
use crate::config::raw::RawCache;
use crate::config::units::format_size;
use crate::config::{CacheBackend, CacheConfig, ConfigProblem, redacted_url};

pub(super) fn cache_config(
    path: &YamlPath,
    value: Option<Value>,
    out: &mut Vec<ConfigProblem>,
) -> CacheConfig {
    let raw: RawCache = super::section(path, value, out);
    let backend = match (raw.backend.as_deref().unwrap_or(default::BACKEND), raw.redis_url) {
        ("memory", _) => CacheBackend::Memory,
        ("none", _) => CacheBackend::None,
        ("redis", Some(url)) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            CacheBackend::Redis { url }
        }
        ("redis", Some(url)) => {
            // Shown redacted: a Redis URL carries its password (`redis://:password@host`).
            out.push(
                path.key("redis_url")
                    .problem(format!("`{}` is not a redis:// URL", redacted_url(&url))),
            );
            CacheBackend::None
        }
        ("redis", None) => {
            out.push(
                path.key("redis_url")
                    .problem("required with `backend: redis` (e.g. redis://127.0.0.1:6379)"),
            );
            CacheBackend::None
        }
        (other, _) => {
            out.push(
                path.key("backend")
                    .problem(format!("unknown backend `{other}` (expected memory, redis or none)")),
            );
            CacheBackend::None
        }
    };
    let max_entries = raw.max_entries.unwrap_or(default::MAX_ENTRIES);
    if max_entries == 0 {
        out.push(
            path.key("max_entries")
                .problem("must be at least 1 (use `backend: none` for no cache)"),
        );
    }
    let max_bytes = max_bytes(&path.key("max_bytes"), raw.max_bytes, out);
    CacheConfig {
        backend,
        ttl: duration(&path.key("ttl"), raw.ttl, default::TTL, bounds::MAX_CACHE_TTL, out),
        stale_ttl: duration_or_zero(
            &path.key("stale_ttl"),
            raw.stale_ttl,
            default::STALE_TTL,
            bounds::MAX_CACHE_TTL,
            out,
        ),
        max_entries,
        max_bytes,
        shared_across_keys: raw.shared_across_keys.unwrap_or(default::SHARED_ACROSS_KEYS),
    }
}

/// `max_bytes`: from one answer of the largest size stored up to `bounds::MAX_CACHE_BYTES`.
fn max_bytes(path: &YamlPath, text: Option<String>, out: &mut Vec<ConfigProblem>) -> u64 {
    let bytes = size(path, text, default::MAX_BYTES, out);
    if (bounds::MIN_CACHE_BYTES..=bounds::MAX_CACHE_BYTES).contains(&bytes) {
        return bytes;
    }
    out.push(path.problem(format!(
        "must be from {} (the largest answer stored) to {}",
        format_size(bounds::MIN_CACHE_BYTES),
        format_size(bounds::MAX_CACHE_BYTES)
    )));
    default::MAX_BYTES
}
