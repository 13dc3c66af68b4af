//! Whole-file tests of validation: the documented defaults, and every problem with its path.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

use super::from_yaml;
use crate::config::{
    BreakerPolicy, CacheBackend, Config, ProviderKind, RedisConfig, RedisNodes, RetryPolicy,
    Routing, Timeouts,
};

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

/// The problems of a file that must be refused, each as `path: message`.
pub(super) fn problems(yaml: &str) -> Vec<String> {
    from_yaml(yaml, &no_env).unwrap_err().iter().map(ToString::to_string).collect()
}

/// The config of a file that must be accepted.
pub(super) fn config(yaml: &str) -> Config {
    from_yaml(yaml, &no_env).unwrap_or_else(|problems| panic!("refused: {problems:#?}"))
}

pub(super) const MINIMAL: &str = "
providers:
  demo: { kind: mock }
models:
  chat:
    targets: [{ provider: demo, model: m }]
";

/// The values are spelled out as SPEC §2 and docs/configuration.md write them, rather than
/// taken from `defaults`, so that changing a default without its documentation fails here.
#[test]
fn every_default_matches_the_documented_one() {
    let config = config(
        "
providers:
  demo: { kind: mock }
  open: { kind: openai, base_url: 'http://127.0.0.1:9/v1' }
  az: { kind: azure, base_url: 'https://r.openai.azure.com', api_key: k }
  claude: { kind: anthropic, base_url: 'https://api.anthropic.com', api_key: k }
models:
  chat:
    targets: [{ provider: demo, model: m }]
",
    );
    let server = &config.server;
    assert_eq!(server.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(server.metrics_listen, None);
    assert_eq!(server.max_body_size, 10 << 20);
    assert_eq!(server.request_timeout, Duration::from_secs(300));
    assert_eq!(server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(server.header_timeout, Duration::from_secs(10));
    assert_eq!(server.body_timeout, Duration::from_secs(60));
    assert_eq!(server.max_body_bytes_in_flight, 512 << 20);
    assert_eq!(server.max_connections, 10_000);
    assert_eq!(server.workers, crate::workers::default_count());

    for provider in &config.providers {
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(120),
        };
        assert_eq!(provider.timeouts, timeouts);
        let retry = RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        };
        assert_eq!(provider.retry, retry);
        let breaker = BreakerPolicy { consecutive_failures: 5, open_for: Duration::from_secs(30) };
        assert_eq!(provider.breaker, breaker);
        assert_eq!(provider.max_concurrency, None);
    }
    let kinds: Vec<_> = config.providers.iter().map(|provider| &provider.kind).collect();
    let [
        ProviderKind::Mock(mock),
        ProviderKind::OpenAi(openai),
        ProviderKind::Azure(azure),
        ProviderKind::Anthropic(anthropic),
    ] = kinds[..]
    else {
        panic!("one provider of each kind, in file order: {kinds:?}");
    };
    assert_eq!(mock.latency, Duration::ZERO);
    assert_eq!(mock.chunk_interval, Duration::ZERO);
    assert_eq!(mock.failure_rate, 0.0);
    assert_eq!(mock.failure_status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(openai.api_key.is_none() && openai.headers.is_empty());
    assert_eq!(azure.api_version, "2024-10-21");
    assert_eq!(anthropic.default_max_tokens, 4096);

    let model = &config.models[0];
    assert_eq!(model.routing, Routing::Ordered);
    assert_eq!(model.targets[0].weight, 1.0);
    assert!(model.cache);
    assert_eq!(model.degraded_response, None);

    assert_eq!(config.cache.backend, CacheBackend::Memory);
    assert_eq!(config.cache.ttl, Duration::from_secs(24 * 3_600));
    assert_eq!(config.cache.stale_ttl, Duration::from_secs(7 * 24 * 3_600));
    assert_eq!(config.cache.max_entries, 100_000);
    assert_eq!(config.cache.max_bytes, 256 * 1024 * 1024);
    assert!(!config.cache.shared_across_keys);
    assert!(config.auth.is_none());
    assert!(config.pricing.is_empty());
}

#[test]
fn reports_every_problem_with_its_path() {
    let found = problems(
        "
server: { listen: nowhere, request_timeout: 3x, workers: 0 }
providers:
  a: { kind: openai }
  b: { kind: mock, failure_rate: 2, timeouts: { conect: 1s } }
  c: { kind: carrier-pigeon }
models:
  one: { targets: [{ provider: zzz, model: m }] }
  two: { targets: [] }
",
    );
    let expect = [
        "server.listen:",
        "server.request_timeout:",
        "server.workers: 0 workers: must be from 1 to 1024",
        "providers.a.base_url: required",
        "providers.b.timeouts",
        "providers.b.failure_rate: must be between 0.0 and 1.0",
        "providers.c.kind: unknown provider kind",
        "models.one.targets[0].provider: unknown provider `zzz`",
        "models.two.targets: a model needs at least one target",
    ];
    for prefix in expect {
        assert!(found.iter().any(|p| p.starts_with(prefix)), "{prefix} not in {found:#?}");
    }
}

#[test]
fn unknown_keys_are_errors() {
    let found = problems(&format!("{MINIMAL}\nservre: {{}}\n"));
    assert!(found[0].contains("unknown field `servre`"), "{found:?}");
    let found = problems(
        "providers:\n  d: { kind: mock, latncy: 1s }\nmodels:\n  m: { targets: [{ provider: d, model: x }] }\n",
    );
    assert!(
        found.iter().any(|p| p.starts_with("providers.d") && p.contains("latncy")),
        "{found:?}"
    );
}

#[test]
fn resilience_settings_are_checked() {
    let found = problems(
        "
providers:
  a: { kind: mock, retry: { base_delay: 2s, max_delay: 1s }, circuit_breaker: { consecutive_failures: 0 }, max_concurrency: 0 }
models:
  plain: { targets: [ { provider: a, model: x, weight: 2 } ] }
  heavy: { routing: weighted, targets: [ { provider: a, model: x, weight: -1 } ] }
  busy: { degraded_response: '', targets: [ { provider: a, model: x } ] }
  odd: { routing: random, targets: [ { provider: a, model: x } ] }
",
    );
    let expect = [
        "providers.a.retry.base_delay: must not be longer than max_delay",
        "providers.a.circuit_breaker.consecutive_failures: must be at least 1",
        "providers.a.max_concurrency: must be at least 1",
        "models.plain.targets[0].weight: only used with `routing: weighted`",
        "models.heavy.targets[0].weight: must be a number above 0",
        "models.busy.degraded_response: must not be empty",
        "models.odd.routing: unknown routing `random`",
    ];
    for prefix in expect {
        assert!(found.iter().any(|p| p.starts_with(prefix)), "{prefix} not in {found:#?}");
    }
}

#[test]
fn variables_fill_values_and_missing_ones_are_named_with_their_path() {
    let env = |name: &str| (name == "KEY").then(|| "sk-test".to_owned());
    let yaml = "
providers:
  up: { kind: openai, base_url: '${BASE:-http://127.0.0.1:9}', api_key: '${KEY}' }
  other: { kind: openai, base_url: http://127.0.0.1:9, api_key: '${ABSENT}' }
models:
  m: { targets: [{ provider: up, model: x }] }
";
    let err = from_yaml(yaml, &env).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(err[0].path, "providers.other.api_key");
    assert!(err[0].message.contains("`ABSENT`"));
    let ok = from_yaml(&yaml.replace("${ABSENT}", "${KEY}"), &env).unwrap();
    let ProviderKind::OpenAi(settings) = &ok.providers[0].kind else { panic!("openai") };
    assert_eq!(settings.api_key.as_ref().unwrap().expose(), "sk-test");
    assert_eq!(settings.base_url.as_str(), "http://127.0.0.1:9/");
}

/// Each of these passed `check` and then crashed or broke `serve`: moka asserts on a huge TTL,
/// `ttl + stale_ttl` overflowed, and tokio's `Instant + Duration` panics on overflow.
#[test]
fn durations_beyond_their_bound_are_problems_with_their_path() {
    let found = problems(
        "
server: { request_timeout: 400000d, shutdown_grace: 25h, header_timeout: 99999999999d, body_timeout: 25h }
providers:
  demo: { kind: mock, latency: 2d }
  p:
    kind: openai
    base_url: 'http://127.0.0.1:9/v1'
    timeouts: { connect: 25h, first_byte: 25h, idle: 25h, total: 25h }
    retry: { base_delay: 25h, max_delay: 25h }
    circuit_breaker: { open_for: 25h }
models:
  chat:
    targets: [{ provider: demo, model: m }]
cache: { ttl: 400000d, stale_ttl: 366d }
",
    );
    for path in [
        "server.request_timeout",
        "server.shutdown_grace",
        "server.header_timeout",
        "server.body_timeout",
        "providers.demo.latency",
        "providers.p.timeouts.connect",
        "providers.p.timeouts.first_byte",
        "providers.p.timeouts.idle",
        "providers.p.timeouts.total",
        "providers.p.retry.base_delay",
        "providers.p.retry.max_delay",
        "providers.p.circuit_breaker.open_for",
    ] {
        let expected = format!("{path}: must be at most 1d");
        assert!(found.contains(&expected), "`{expected}` missing from {found:#?}");
    }
    for path in ["cache.ttl", "cache.stale_ttl"] {
        let expected = format!("{path}: must be at most 365d");
        assert!(found.contains(&expected), "`{expected}` missing from {found:#?}");
    }
}

#[test]
fn durations_at_their_bound_are_accepted() {
    let config = config(
        "
server: { request_timeout: 24h }
providers:
  demo: { kind: mock, latency: 24h }
models:
  chat:
    targets: [{ provider: demo, model: m }]
cache: { ttl: 365d, stale_ttl: 365d }
",
    );
    assert_eq!(config.server.request_timeout, Duration::from_secs(86_400));
    assert_eq!(config.cache.ttl, Duration::from_secs(365 * 86_400));
    assert_eq!(config.cache.stale_ttl, Duration::from_secs(365 * 86_400));
}

#[test]
fn a_body_budget_below_one_largest_body_is_a_problem() {
    let found = problems(&format!(
        "server: {{ max_body_size: 10MiB, max_body_bytes_in_flight: 1MiB }}\n{MINIMAL}"
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("server.max_body_bytes_in_flight: 1048576 bytes is less than"));
    let zero = problems(&format!("server: {{ max_body_bytes_in_flight: 0 }}\n{MINIMAL}"));
    assert!(zero[0].starts_with("server.max_body_bytes_in_flight: must be larger than zero"));
    let fine = config(&format!("server: {{ max_body_bytes_in_flight: 1GiB }}\n{MINIMAL}"));
    assert_eq!(fine.server.max_body_bytes_in_flight, 1 << 30);
}

#[test]
fn the_memory_cache_size_is_read_as_a_size_and_bounded() {
    let sized = |max_bytes: &str| format!("{MINIMAL}cache: {{ max_bytes: {max_bytes} }}\n");
    assert_eq!(config(&sized("10MiB")).cache.max_bytes, 10 << 20);
    assert_eq!(config(&sized("1MiB")).cache.max_bytes, 1 << 20);
    assert_eq!(config(&sized("1073741824")).cache.max_bytes, 1 << 30);
    for (max_bytes, message) in [
        ("0", "cache.max_bytes: must be larger than zero"),
        ("512KiB", "cache.max_bytes: must be from 1MiB (the largest answer stored) to 1024GiB"),
        ("2048GiB", "cache.max_bytes: must be from 1MiB"),
        ("lots", "cache.max_bytes: `lots` is not a size"),
    ] {
        let found = problems(&sized(max_bytes));
        assert!(found.iter().any(|p| p.starts_with(message)), "{max_bytes}: {found:#?}");
    }
    let found = problems(&format!("{MINIMAL}cache: {{ max_entries: 0 }}\n"));
    assert!(found.iter().any(|p| p.starts_with("cache.max_entries: must be at least 1")));
}

#[test]
fn redis_is_one_server_or_a_cluster_and_its_ca_file_is_read_when_loaded() {
    let cache = |keys: &str| format!("{MINIMAL}cache: {{ backend: redis, {keys} }}\n");
    let backend = |keys: &str| config(&cache(keys)).cache.backend;
    assert_eq!(
        backend("redis_url: 'rediss://:pw@cache:6380'"),
        CacheBackend::Redis(RedisConfig {
            nodes: RedisNodes::Single("rediss://:pw@cache:6380".into()),
            ca: None
        })
    );
    assert_eq!(
        backend("redis_cluster: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379']"),
        CacheBackend::Redis(RedisConfig {
            nodes: RedisNodes::Cluster(vec![
                "redis://10.0.0.1:6379".into(),
                "redis://10.0.0.2:6379".into()
            ]),
            ca: None
        })
    );

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    let pem = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
    std::fs::write(&bundle, pem).unwrap();
    let with_ca =
        format!("redis_url: 'rediss://cache:6380', redis_ca_file: '{}'", bundle.display());
    let CacheBackend::Redis(redis) = backend(&with_ca) else { panic!("a Redis backend") };
    assert_eq!(redis.ca.map(|ca| ca.pem), Some(pem.as_bytes().to_vec()));

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.path().join("missing.pem");
    for (keys, message) in [
        (
            "redis_url: 'redis://a:6379', redis_cluster: ['redis://b:6379']",
            "cache.redis_cluster: give either",
        ),
        ("ttl: 1h", "cache.redis_url: required with `backend: redis`"),
        (
            "redis_url: 'http://:SECRET@a:6379'",
            "cache.redis_url: `http://***@a:6379/` is not a redis://",
        ),
        ("redis_cluster: []", "cache.redis_cluster: needs at least one seed URL"),
        (
            "redis_cluster: ['redis://a:6379', 'tcp://b']",
            "cache.redis_cluster[1]: `tcp://b` is not a redis://",
        ),
        (
            "redis_cluster: ['redis://a:6379', 'rediss://b:6380']",
            "cache.redis_cluster: mixes redis:// and rediss://",
        ),
        (
            &format!("redis_url: 'redis://a:6379', redis_ca_file: '{}'", bundle.display()),
            "cache.redis_ca_file: only used with rediss:// URLs",
        ),
        (
            &format!("redis_url: 'rediss://a:6380', redis_ca_file: '{}'", missing.display()),
            "cache.redis_ca_file: cannot read",
        ),
        (
            &format!("redis_url: 'rediss://a:6380', redis_ca_file: '{}'", not_pem.display()),
            "cache.redis_ca_file: ",
        ),
    ] {
        let found = problems(&cache(keys));
        assert!(found.iter().any(|p| p.starts_with(message)), "{keys}: {found:#?}");
        assert!(found.iter().all(|p| !p.contains("SECRET")), "{found:#?}");
    }
}
