//! The `cache` section: the backend, how long answers are kept, and whose they are.

use yaml_serde::Value;

use super::values::{duration, duration_or_zero, size};
use crate::config::defaults::bounds;
use crate::config::defaults::cache as default;
use crate::config::path::YamlPath;
use crate::config::raw::RawCache;
use crate::config::units::format_size;
use crate::config::{
    CaBundle, CacheBackend, CacheConfig, ConfigProblem, RedisConfig, RedisNodes, redacted_url,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

pub(super) fn cache_config(
    path: &YamlPath,
    value: Option<Value>,
    out: &mut Vec<ConfigProblem>,
) -> CacheConfig {
    let raw: RawCache = super::section(path, value, out);
    let backend = match raw.backend.as_deref().unwrap_or(default::BACKEND) {
        "memory" => CacheBackend::Memory,
        "none" => CacheBackend::None,
        "redis" => {
            let given = RedisKeys {
                url: raw.redis_url,
                cluster: raw.redis_cluster,
                ca_file: raw.redis_ca_file,
            };
            redis_config(path, given, out).map_or(CacheBackend::None, CacheBackend::Redis)
        }
        other => {
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

/// The `redis_*` keys as written.
struct RedisKeys {
    url: Option<String>,
    cluster: Option<Vec<String>>,
    ca_file: Option<String>,
}

/// `redis_url` or `redis_cluster` (one of them), and `redis_ca_file`, read and parsed here so
/// that `check` reports a missing or unreadable bundle.
fn redis_config(
    path: &YamlPath,
    given: RedisKeys,
    out: &mut Vec<ConfigProblem>,
) -> Option<RedisConfig> {
    let nodes = match (given.url, given.cluster) {
        (Some(_), Some(_)) => {
            out.push(
                path.key("redis_cluster")
                    .problem("give either `redis_url` (one server) or `redis_cluster`, not both"),
            );
            return None;
        }
        (None, None) => {
            out.push(path.key("redis_url").problem(
                "required with `backend: redis` (e.g. redis://127.0.0.1:6379), \
                 or `redis_cluster` with a list of seed URLs",
            ));
            return None;
        }
        (Some(url), None) => RedisNodes::Single(redis_url(&path.key("redis_url"), url, out)?),
        (None, Some(seeds)) => RedisNodes::Cluster(cluster_seeds(path, seeds, out)?),
    };
    let mut config = RedisConfig { nodes, ca: None };
    if let Some(file) = given.ca_file {
        let key = path.key("redis_ca_file");
        if !config.tls() {
            out.push(key.problem("only used with rediss:// URLs (TLS)"));
            return None;
        }
        config.ca = Some(ca_bundle(&key, &file, out)?);
    }
    Some(config)
}

/// One `redis://` or `rediss://` URL that the Redis client accepts.
fn redis_url(path: &YamlPath, url: String, out: &mut Vec<ConfigProblem>) -> Option<String> {
    // Shown redacted: a Redis URL carries its password (`redis://:password@host`).
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        out.push(
            path.problem(format!("`{}` is not a redis:// or rediss:// URL", redacted_url(&url))),
        );
        return None;
    }
    if let Err(err) = ::redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
        out.push(
            path.problem(format!("`{}` is not a usable Redis URL: {err}", redacted_url(&url))),
        );
        return None;
    }
    Some(url)
}

fn cluster_seeds(
    path: &YamlPath,
    seeds: Vec<String>,
    out: &mut Vec<ConfigProblem>,
) -> Option<Vec<String>> {
    let key = path.key("redis_cluster");
    if seeds.is_empty() {
        out.push(key.problem("needs at least one seed URL (e.g. redis://10.0.0.1:6379)"));
        return None;
    }
    let count = seeds.len();
    let urls: Vec<String> = seeds
        .into_iter()
        .enumerate()
        .filter_map(|(index, url)| redis_url(&key.index(index), url, out))
        .collect();
    if urls.len() != count {
        return None;
    }
    let tls = urls.iter().filter(|url| url.starts_with("rediss://")).count();
    if tls != 0 && tls != count {
        out.push(key.problem("mixes redis:// and rediss:// seeds: a cluster is TLS or not"));
        return None;
    }
    Some(urls)
}

/// Reads `file` and checks that it holds at least one PEM certificate.
fn ca_bundle(path: &YamlPath, file: &str, out: &mut Vec<ConfigProblem>) -> Option<CaBundle> {
    let pem = match std::fs::read(file) {
        Ok(pem) => pem,
        Err(err) => {
            out.push(path.problem(format!("cannot read `{file}`: {err}")));
            return None;
        }
    };
    let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
    match certificates {
        Ok(found) if !found.is_empty() => Some(CaBundle { path: file.into(), pem }),
        Ok(_) => {
            out.push(path.problem(format!("`{file}` holds no PEM certificate")));
            None
        }
        Err(err) => {
            out.push(path.problem(format!("`{file}` is not a PEM bundle: {err}")));
            None
        }
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
