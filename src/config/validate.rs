//! Raw → validated `Config`, collecting every problem with its YAML path.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use reqwest::Url;
use serde::de::DeserializeOwned;
use yaml_serde::Value;

use super::path::YamlPath;
use super::raw::{
    RawAuth, RawBreaker, RawCache, RawModel, RawPrice, RawProvider, RawRetry, RawServer,
    RawTimeouts, RawTop,
};
use super::units::{parse_duration, parse_size};
use super::{
    AnthropicSettings, AuthConfig, AzureSettings, BreakerPolicy, CacheBackend, CacheConfig, Config,
    ConfigProblem, GatewayKey, Lookup, MockSettings, ModelConfig, OpenAiSettings, Price,
    ProviderConfig, ProviderKind, RateLimit, RetryPolicy, Routing, Secret, ServerConfig,
    TargetConfig, Timeouts, env,
};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `server.workers` above this is a typo, not a machine.
const MAX_WORKERS: u32 = 1024;
const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    first_byte: Duration::from_secs(30),
    idle: Duration::from_secs(30),
    total: Duration::from_secs(120),
};

pub(super) fn from_yaml(text: &str, lookup: Lookup<'_>) -> Result<Config, Vec<ConfigProblem>> {
    let root = YamlPath::root();
    let mut problems = Vec::new();
    let mut tree: Value = yaml_serde::from_str(text)
        .map_err(|err| vec![root.problem(format!("the file is not valid YAML: {err}"))])?;
    if tree.is_null() {
        return Err(vec![root.problem("the file is empty")]);
    }
    env::expand_tree(&mut tree, lookup, &mut problems);
    let top: RawTop = read(&root, tree, &mut problems).ok_or_else(|| problems.clone())?;

    let auth = top.auth.and_then(|value| {
        let auth_path = root.key("auth");
        let raw = read::<RawAuth>(&auth_path, value, &mut problems)?;
        Some(auth_config(&auth_path, raw, &mut problems))
    });
    let cache_path = root.key("cache");
    let raw_cache = match top.cache {
        Some(value) => read(&cache_path, value, &mut problems).unwrap_or_default(),
        None => RawCache::default(),
    };
    let cache = cache_config(&cache_path, raw_cache, &mut problems);

    let server_path = root.key("server");
    let raw_server = match top.server {
        Some(value) => read(&server_path, value, &mut problems).unwrap_or_default(),
        None => RawServer::default(),
    };
    let server = server_config(&server_path, raw_server, &mut problems);

    let providers_path = root.key("providers");
    let mut providers = Vec::new();
    let mut provider_names = BTreeSet::new();
    for (key, value) in top.providers.unwrap_or_default() {
        let Some(name) = mapping_key(&providers_path, &key, &mut problems) else {
            continue;
        };
        let path = providers_path.key(&name);
        provider_names.insert(name.clone());
        if let Some(raw) = read::<RawProvider>(&path, value, &mut problems)
            && let Some(provider) = provider_config(&path, name, raw, &mut problems)
        {
            providers.push(Arc::new(provider));
        }
    }
    if provider_names.is_empty() {
        problems.push(providers_path.problem("at least one provider is required"));
    }

    let models_path = root.key("models");
    let mut models = Vec::new();
    for (key, value) in top.models.unwrap_or_default() {
        let Some(name) = mapping_key(&models_path, &key, &mut problems) else {
            continue;
        };
        let path = models_path.key(&name);
        if let Some(raw) = read::<RawModel>(&path, value, &mut problems) {
            let model = model_config(&path, name, raw, &providers, &provider_names, &mut problems);
            models.extend(model);
        }
    }
    if models.is_empty() && !problems.iter().any(|p| p.path.starts_with("models.")) {
        problems.push(models_path.problem("at least one model is required"));
    }

    let pricing = pricing(&root.key("pricing"), top.pricing.unwrap_or_default(), &mut problems);

    if problems.is_empty() {
        Ok(Config { server, providers, models, pricing, cache, auth })
    } else {
        Err(problems)
    }
}

fn server_config(path: &YamlPath, raw: RawServer, out: &mut Vec<ConfigProblem>) -> ServerConfig {
    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        out.push(path.key("listen").problem(format!(
            "`{listen_text}` is not an IP address and port such as 127.0.0.1:8080 or 0.0.0.0:8080"
        )));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let metrics_listen =
        raw.metrics_listen.and_then(|text| match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                out.push(path.key("metrics_listen").problem(format!(
                    "`{text}` is not an IP address and port such as 0.0.0.0:9091"
                )));
                None
            }
        });
    let max_body_size = size(&path.key("max_body_size"), raw.max_body_size, 10 << 20, out);
    let workers = match raw.workers {
        None => crate::workers::default_count(),
        Some(count @ 1..=MAX_WORKERS) => count as usize,
        Some(count) => {
            out.push(path.key("workers").problem(format!(
                "{count} workers: must be from 1 to {MAX_WORKERS} (omit it for one per core)"
            )));
            1
        }
    };
    ServerConfig {
        listen,
        metrics_listen,
        max_body_size: usize::try_from(max_body_size).unwrap_or(usize::MAX),
        request_timeout: duration(&path.key("request_timeout"), raw.request_timeout, 300, out),
        shutdown_grace: duration(&path.key("shutdown_grace"), raw.shutdown_grace, 30, out),
        header_timeout: duration(&path.key("header_timeout"), raw.header_timeout, 10, out),
        workers,
    }
}

fn provider_config(
    path: &YamlPath,
    name: String,
    mut raw: RawProvider,
    out: &mut Vec<ConfigProblem>,
) -> Option<ProviderConfig> {
    let retry = retry_policy(&path.key("retry"), raw.retry.take().unwrap_or_default(), out);
    let breaker = breaker_policy(
        &path.key("circuit_breaker"),
        raw.circuit_breaker.take().unwrap_or_default(),
        out,
    );
    if raw.max_concurrency == Some(0) {
        out.push(path.key("max_concurrency").problem("must be at least 1 (omit it for no limit)"));
    }
    let max_concurrency = raw.max_concurrency.and_then(|n| usize::try_from(n).ok());
    let timeouts = timeouts(&path.key("timeouts"), raw.timeouts.take().unwrap_or_default(), out);
    let kind_path = path.key("kind");
    let kind = match raw.kind.as_str() {
        "openai" => {
            let mock_keys = [
                ("latency", raw.latency.is_some()),
                ("chunk_interval", raw.chunk_interval.is_some()),
                ("failure_rate", raw.failure_rate.is_some()),
                ("failure_status", raw.failure_status.is_some()),
                ("api_version", raw.api_version.is_some()),
                ("default_max_tokens", raw.default_max_tokens.is_some()),
            ];
            reject_keys_for_kind(path, "openai", &mock_keys, out);
            ProviderKind::OpenAi(OpenAiSettings {
                base_url: base_url(&path.key("base_url"), raw.base_url, out)?,
                api_key: raw.api_key.filter(|key| !key.is_empty()).map(Secret::new),
                headers: headers(&path.key("headers"), raw.headers, out),
            })
        }
        "mock" => {
            let http_keys = [
                ("base_url", raw.base_url.is_some()),
                ("api_key", raw.api_key.is_some()),
                ("api_version", raw.api_version.is_some()),
                ("headers", !raw.headers.is_empty()),
                ("default_max_tokens", raw.default_max_tokens.is_some()),
            ];
            reject_keys_for_kind(path, "mock", &http_keys, out);
            ProviderKind::Mock(mock_settings(path, &raw, out))
        }
        "azure" => {
            let other_keys = [
                ("latency", raw.latency.is_some()),
                ("chunk_interval", raw.chunk_interval.is_some()),
                ("failure_rate", raw.failure_rate.is_some()),
                ("failure_status", raw.failure_status.is_some()),
                ("default_max_tokens", raw.default_max_tokens.is_some()),
            ];
            reject_keys_for_kind(path, "azure", &other_keys, out);
            ProviderKind::Azure(AzureSettings {
                base_url: base_url(&path.key("base_url"), raw.base_url, out)?,
                api_key: required_key(&path.key("api_key"), raw.api_key, out)?,
                api_version: raw.api_version.unwrap_or_else(|| "2024-10-21".to_owned()),
                headers: headers(&path.key("headers"), raw.headers, out),
            })
        }
        "anthropic" => {
            let other_keys = [
                ("latency", raw.latency.is_some()),
                ("chunk_interval", raw.chunk_interval.is_some()),
                ("failure_rate", raw.failure_rate.is_some()),
                ("failure_status", raw.failure_status.is_some()),
                ("api_version", raw.api_version.is_some()),
            ];
            reject_keys_for_kind(path, "anthropic", &other_keys, out);
            if raw.default_max_tokens == Some(0) {
                out.push(path.key("default_max_tokens").problem("must be at least 1"));
            }
            ProviderKind::Anthropic(AnthropicSettings {
                base_url: base_url(&path.key("base_url"), raw.base_url, out)?,
                api_key: required_key(&path.key("api_key"), raw.api_key, out)?,
                headers: headers(&path.key("headers"), raw.headers, out),
                default_max_tokens: raw.default_max_tokens.unwrap_or(4096).max(1),
            })
        }
        other => {
            out.push(kind_path.problem(format!(
                "unknown provider kind `{other}` (expected openai, azure, anthropic or mock)"
            )));
            return None;
        }
    };
    Some(ProviderConfig { name, kind, timeouts, retry, breaker, max_concurrency })
}

fn retry_policy(path: &YamlPath, raw: RawRetry, out: &mut Vec<ConfigProblem>) -> RetryPolicy {
    let base_delay = duration_millis(&path.key("base_delay"), raw.base_delay, 250, out);
    let max_delay = duration_millis(&path.key("max_delay"), raw.max_delay, 8_000, out);
    if base_delay > max_delay {
        out.push(path.key("base_delay").problem("must not be longer than max_delay"));
    }
    RetryPolicy { max_retries: raw.max_retries.unwrap_or(2), base_delay, max_delay }
}

fn breaker_policy(path: &YamlPath, raw: RawBreaker, out: &mut Vec<ConfigProblem>) -> BreakerPolicy {
    let consecutive_failures = raw.consecutive_failures.unwrap_or(5);
    if consecutive_failures == 0 {
        out.push(path.key("consecutive_failures").problem("must be at least 1"));
    }
    BreakerPolicy {
        consecutive_failures: consecutive_failures.max(1),
        open_for: duration_millis(&path.key("open_for"), raw.open_for, 30_000, out),
    }
}

fn mock_settings(path: &YamlPath, raw: &RawProvider, out: &mut Vec<ConfigProblem>) -> MockSettings {
    let failure_rate = raw.failure_rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&failure_rate) {
        out.push(path.key("failure_rate").problem("must be between 0.0 and 1.0"));
    }
    let status = raw.failure_status.unwrap_or(503);
    let failure_status = match StatusCode::from_u16(status) {
        Ok(code) if code.is_client_error() || code.is_server_error() => code,
        _ => {
            out.push(path.key("failure_status").problem("must be an HTTP error status (400-599)"));
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    MockSettings {
        latency: duration_or_zero(&path.key("latency"), raw.latency.clone(), out),
        chunk_interval: duration_or_zero(
            &path.key("chunk_interval"),
            raw.chunk_interval.clone(),
            out,
        ),
        failure_rate,
        failure_status,
    }
}

fn model_config(
    path: &YamlPath,
    name: String,
    raw: RawModel,
    providers: &[Arc<ProviderConfig>],
    provider_names: &BTreeSet<String>,
    out: &mut Vec<ConfigProblem>,
) -> Option<ModelConfig> {
    let routing = match raw.routing.as_deref() {
        None | Some("ordered") => Routing::Ordered,
        Some("weighted") => Routing::Weighted,
        Some("least_latency") => Routing::LeastLatency,
        Some(other) => {
            out.push(path.key("routing").problem(format!(
                "unknown routing `{other}` (expected ordered, weighted or least_latency)"
            )));
            Routing::Ordered
        }
    };
    if raw.degraded_response.as_deref().is_some_and(|text| text.trim().is_empty()) {
        out.push(path.key("degraded_response").problem("must not be empty (omit it for none)"));
    }
    if raw.targets.is_empty() {
        out.push(path.key("targets").problem("a model needs at least one target"));
    }
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (index, target) in raw.targets.into_iter().enumerate() {
        let target_path = path.key("targets").index(index);
        let weight = target.weight.unwrap_or(1.0);
        if target.weight.is_some() && routing != Routing::Weighted {
            out.push(target_path.key("weight").problem("only used with `routing: weighted`"));
        } else if !(weight.is_finite() && weight > 0.0) {
            out.push(target_path.key("weight").problem("must be a number above 0"));
        }
        if target.model.trim().is_empty() {
            out.push(target_path.key("model").problem("the upstream model name is empty"));
        }
        match providers.iter().find(|p| p.name == target.provider) {
            Some(provider) => targets.push(TargetConfig {
                provider: Arc::clone(provider),
                model: target.model,
                weight,
            }),
            // A provider that exists but is invalid has its own problem already.
            None if provider_names.contains(&target.provider) => {}
            None => out.push(target_path.key("provider").problem(format!(
                "unknown provider `{}` (configured: {})",
                target.provider,
                provider_names.iter().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
    let degraded_response = raw.degraded_response;
    let cache = raw.cache.unwrap_or(true);
    (!targets.is_empty()).then_some(ModelConfig {
        name,
        routing,
        targets,
        degraded_response,
        cache,
    })
}

fn auth_config(path: &YamlPath, raw: RawAuth, out: &mut Vec<ConfigProblem>) -> AuthConfig {
    let keys_path = path.key("keys");
    if raw.keys.is_empty() {
        out.push(
            keys_path.problem("at least one key is required (remove `auth` for an open gateway)"),
        );
    }
    let mut names = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (index, key) in raw.keys.into_iter().enumerate() {
        let key_path = keys_path.index(index);
        if key.name.trim().is_empty() {
            out.push(key_path.key("name").problem("must not be empty"));
        } else if !names.insert(key.name.clone()) {
            out.push(
                key_path.key("name").problem(format!("`{}` is used by another key", key.name)),
            );
        }
        let Some(secret) = required_key(&key_path.key("key"), key.key, out) else { continue };
        if secret.expose().len() < 16 {
            out.push(key_path.key("key").problem("must be at least 16 characters long"));
        } else if !secrets.insert(secret.expose().to_owned()) {
            // The message must not help find the value: it names only the other key's position.
            out.push(key_path.key("key").problem("is the same as another key's"));
        }
        for (pattern_index, pattern) in key.models.iter().flatten().enumerate() {
            if pattern.is_empty() || pattern.chars().any(|c| matches!(c, '[' | ']' | '{' | '}')) {
                out.push(
                    key_path
                        .key("models")
                        .index(pattern_index)
                        .problem("a model name or a glob with `*` and `?`"),
                );
            }
        }
        let rate_limit = key.rate_limit.map(|limit| {
            if limit.requests_per_minute == Some(0) || limit.tokens_per_minute == Some(0) {
                out.push(
                    key_path
                        .key("rate_limit")
                        .problem("limits must be at least 1 (omit one for no limit)"),
                );
            }
            RateLimit {
                requests_per_minute: limit.requests_per_minute,
                tokens_per_minute: limit.tokens_per_minute,
            }
        });
        keys.push(GatewayKey { name: key.name, key: secret, models: key.models, rate_limit });
    }
    AuthConfig { keys }
}

/// A credential that must be there and not be empty.
fn required_key(
    path: &YamlPath,
    value: Option<String>,
    out: &mut Vec<ConfigProblem>,
) -> Option<Secret> {
    match value.filter(|v| !v.is_empty()) {
        Some(value) => Some(Secret::new(value)),
        None => {
            out.push(path.problem("required (e.g. `${API_KEY}` to take it from the environment)"));
            None
        }
    }
}

fn cache_config(path: &YamlPath, raw: RawCache, out: &mut Vec<ConfigProblem>) -> CacheConfig {
    let backend = match (raw.backend.as_deref(), raw.redis_url) {
        (None | Some("memory"), _) => CacheBackend::Memory,
        (Some("none"), _) => CacheBackend::None,
        (Some("redis"), Some(url))
            if url.starts_with("redis://") || url.starts_with("rediss://") =>
        {
            CacheBackend::Redis { url }
        }
        (Some("redis"), Some(url)) => {
            out.push(path.key("redis_url").problem(format!("`{url}` is not a redis:// URL")));
            CacheBackend::None
        }
        (Some("redis"), None) => {
            out.push(
                path.key("redis_url")
                    .problem("required with `backend: redis` (e.g. redis://127.0.0.1:6379)"),
            );
            CacheBackend::None
        }
        (Some(other), _) => {
            out.push(
                path.key("backend")
                    .problem(format!("unknown backend `{other}` (expected memory, redis or none)")),
            );
            CacheBackend::None
        }
    };
    let max_entries = raw.max_entries.unwrap_or(100_000);
    if max_entries == 0 {
        out.push(
            path.key("max_entries")
                .problem("must be at least 1 (use `backend: none` for no cache)"),
        );
    }
    CacheConfig {
        backend,
        ttl: duration(&path.key("ttl"), raw.ttl, 86_400, out),
        stale_ttl: duration_or_zero_default(&path.key("stale_ttl"), raw.stale_ttl, 7 * 86_400, out),
        max_entries,
        shared_across_keys: raw.shared_across_keys.unwrap_or(false),
    }
}

/// A duration that may be zero, `default_secs` when absent.
fn duration_or_zero_default(
    path: &YamlPath,
    text: Option<String>,
    default_secs: u64,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    match text {
        None => Duration::from_secs(default_secs),
        Some(text) => duration_or_zero(path, Some(text), out),
    }
}

fn pricing(
    path: &YamlPath,
    raw: std::collections::BTreeMap<String, RawPrice>,
    out: &mut Vec<ConfigProblem>,
) -> HashMap<String, Price> {
    let mut prices = HashMap::with_capacity(raw.len());
    for (model, price) in raw {
        let model_path = path.key(&model);
        for (key, value) in [("input", price.input), ("output", price.output)] {
            if !(value.is_finite() && value >= 0.0) {
                out.push(
                    model_path
                        .key(key)
                        .problem("must be a price of 0 or more (USD per million tokens)"),
                );
            }
        }
        prices.insert(model, Price { input: price.input, output: price.output });
    }
    prices
}

// === Field helpers ===

fn read<T: DeserializeOwned>(
    path: &YamlPath,
    value: Value,
    out: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            let inner = err.path().to_string();
            out.push(path.join(&inner).problem(err.into_inner().to_string()));
            None
        }
    }
}

fn mapping_key(path: &YamlPath, key: &Value, out: &mut Vec<ConfigProblem>) -> Option<String> {
    match key.as_str() {
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => {
            out.push(path.problem(format!("names must be non-empty text, found {key:?}")));
            None
        }
    }
}

fn reject_keys_for_kind(
    path: &YamlPath,
    kind: &str,
    keys: &[(&str, bool)],
    out: &mut Vec<ConfigProblem>,
) {
    for (key, present) in keys {
        if *present {
            out.push(path.key(key).problem(format!("not a setting of kind `{kind}`")));
        }
    }
}

fn timeouts(path: &YamlPath, raw: RawTimeouts, out: &mut Vec<ConfigProblem>) -> Timeouts {
    let d = DEFAULT_TIMEOUTS;
    Timeouts {
        connect: duration(&path.key("connect"), raw.connect, d.connect.as_secs(), out),
        first_byte: duration(&path.key("first_byte"), raw.first_byte, d.first_byte.as_secs(), out),
        idle: duration(&path.key("idle"), raw.idle, d.idle.as_secs(), out),
        total: duration(&path.key("total"), raw.total, d.total.as_secs(), out),
    }
}

/// A positive duration, `default_ms` milliseconds when absent.
fn duration_millis(
    path: &YamlPath,
    text: Option<String>,
    default_ms: u64,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    match text {
        None => Duration::from_millis(default_ms),
        Some(text) => duration(path, Some(text), 1, out),
    }
}

/// A positive duration, `default_secs` when absent.
fn duration(
    path: &YamlPath,
    text: Option<String>,
    default_secs: u64,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    let default = Duration::from_secs(default_secs);
    let Some(text) = text else { return default };
    match parse_duration(&text) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            out.push(path.problem("must be longer than zero"));
            default
        }
        Err(message) => {
            out.push(path.problem(message));
            default
        }
    }
}

/// A duration that may be zero, and is zero when absent.
fn duration_or_zero(
    path: &YamlPath,
    text: Option<String>,
    out: &mut Vec<ConfigProblem>,
) -> Duration {
    let Some(text) = text else {
        return Duration::ZERO;
    };
    parse_duration(&text).unwrap_or_else(|message| {
        out.push(path.problem(message));
        Duration::ZERO
    })
}

fn size(path: &YamlPath, text: Option<String>, default: u64, out: &mut Vec<ConfigProblem>) -> u64 {
    let Some(text) = text else { return default };
    match parse_size(&text) {
        Ok(0) => {
            out.push(path.problem("must be larger than zero"));
            default
        }
        Ok(bytes) => bytes,
        Err(message) => {
            out.push(path.problem(message));
            default
        }
    }
}

fn base_url(path: &YamlPath, text: Option<String>, out: &mut Vec<ConfigProblem>) -> Option<Url> {
    let Some(text) = text else {
        out.push(path.problem("required for this kind (e.g. https://api.openai.com/v1)"));
        return None;
    };
    match Url::parse(text.trim_end_matches('/')) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        Ok(_) => {
            out.push(path.problem(format!("`{text}` is not an http:// or https:// URL")));
            None
        }
        Err(err) => {
            out.push(path.problem(format!("`{text}` is not a URL: {err}")));
            None
        }
    }
}

fn headers(
    path: &YamlPath,
    raw: std::collections::BTreeMap<String, Value>,
    out: &mut Vec<ConfigProblem>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let header_path = path.key(&name);
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                out.push(header_path.problem("a header value must be text"));
                continue;
            }
        };
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(text)) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                headers.push((name, value));
            }
            (Err(_), _) => out.push(header_path.problem("not a valid HTTP header name")),
            (_, Err(_)) => out.push(header_path.problem("not a valid HTTP header value")),
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn problems(yaml: &str) -> Vec<String> {
        from_yaml(yaml, &no_env).unwrap_err().iter().map(ToString::to_string).collect()
    }

    const MINIMAL: &str = "
providers:
  demo: { kind: mock }
models:
  chat:
    targets: [{ provider: demo, model: m }]
";

    #[test]
    fn a_minimal_file_takes_the_documented_defaults() {
        let config = from_yaml(MINIMAL, &no_env).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.server.max_body_size, 10 << 20);
        assert_eq!(config.server.request_timeout, Duration::from_secs(300));
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.server.workers, crate::workers::default_count());
        assert_eq!(config.providers[0].timeouts, DEFAULT_TIMEOUTS);
        assert_eq!(config.models[0].targets[0].provider.name, "demo");
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
    fn gateway_keys_are_checked() {
        let found = problems(&format!(
            "{MINIMAL}auth:\n  keys:\n    - {{ name: a, key: short }}\n    - {{ name: a, key: '0123456789abcdef' }}\n    - {{ name: b, key: '0123456789abcdef', rate_limit: {{ requests_per_minute: 0 }} }}\n    - {{ name: c }}\n"
        ));
        let expect = [
            "auth.keys[0].key: must be at least 16 characters",
            "auth.keys[1].name: `a` is used by another key",
            "auth.keys[2].key: is the same as another key's",
            "auth.keys[2].rate_limit: limits must be at least 1",
            "auth.keys[3].key: required",
        ];
        for prefix in expect {
            assert!(found.iter().any(|p| p.starts_with(prefix)), "{prefix} not in {found:#?}");
        }
        assert!(!found.iter().any(|p| p.contains("0123456789abcdef")), "no problem quotes a key");
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
    fn resilience_settings_have_the_documented_defaults() {
        let config = from_yaml(MINIMAL, &no_env).unwrap();
        let provider = &config.providers[0];
        assert_eq!(
            provider.retry,
            RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(8)
            }
        );
        assert_eq!(
            provider.breaker,
            BreakerPolicy { consecutive_failures: 5, open_for: Duration::from_secs(30) }
        );
        assert_eq!(provider.max_concurrency, None);
        assert_eq!(config.models[0].routing, Routing::Ordered);
        assert_eq!(config.models[0].targets[0].weight, 1.0);
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
}
