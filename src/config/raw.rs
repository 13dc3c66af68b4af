//! The serde mirror of the YAML file: every key the file may hold, no logic.
//!
//! Sections are kept as loose YAML values at the top level so that each one is read on its own:
//! a typo in `server` does not hide a problem in `models`. Every struct denies unknown keys.
//! Scalars that often come from the environment are read as text whatever their YAML type.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use yaml_serde::{Mapping, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTop {
    pub server: Option<Value>,
    pub auth: Option<Value>,
    pub providers: Option<Mapping>,
    pub models: Option<Mapping>,
    pub cache: Option<Value>,
    pub pricing: Option<BTreeMap<String, RawPrice>>,
    pub telemetry: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    #[serde(default, deserialize_with = "text")]
    pub otlp_endpoint: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub service_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub key: Option<String>,
    pub models: Option<Vec<String>>,
    pub rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub backend: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub redis_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub redis_ca_file: Option<String>,
    pub redis_cluster: Option<Vec<String>>,
    #[serde(default, deserialize_with = "text")]
    pub ttl: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub stale_ttl: Option<String>,
    pub max_entries: Option<u64>,
    #[serde(default, deserialize_with = "text")]
    pub max_bytes: Option<String>,
    pub shared_across_keys: Option<bool>,
}

/// USD per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default, deserialize_with = "text")]
    pub listen: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub metrics_listen: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub max_body_size: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub request_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub shutdown_grace: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub header_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub body_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub max_body_bytes_in_flight: Option<String>,
    pub max_connections: Option<u64>,
    pub workers: Option<u32>,
}

// A provider entry is read in three parts (validate/providers.rs): its `kind` first, then the keys
// every kind shares into `RawProviderCommon`, then the rest into the struct of that kind. The two
// structs are not joined with `#[serde(flatten)]`, because serde cannot deny unknown keys through a
// flattened struct and a typo would pass in silence; and the shared keys are not repeated in each
// kind's struct, where four copies could drift apart. Instead validation splits the entry's keys
// between the two structs by their own field names (`keys::of`) and refuses, with its path, every
// key that neither declares. Each struct still denies unknown keys, so a key is only ever accepted
// by a field declared for it, and there is no list of keys to keep by hand.

/// The keys every provider kind accepts, besides `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProviderCommon {
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<RawRetry>,
    pub circuit_breaker: Option<RawBreaker>,
    pub max_concurrency: Option<u32>,
}

/// The own keys of `kind: openai`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenAi {
    #[serde(default, deserialize_with = "text")]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub api_key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    pub native_responses: Option<bool>,
}

/// The own keys of `kind: azure`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAzure {
    #[serde(default, deserialize_with = "text")]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub api_key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub api_version: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
}

/// The own keys of `kind: anthropic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnthropic {
    #[serde(default, deserialize_with = "text")]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub api_key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    pub default_max_tokens: Option<u32>,
}

/// The own keys of `kind: mock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMock {
    #[serde(default, deserialize_with = "text")]
    pub latency: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub chunk_interval: Option<String>,
    pub failure_rate: Option<f64>,
    pub failure_status: Option<u16>,
    pub bad_answer: Option<String>,
    pub bad_answer_rate: Option<f64>,
    pub context_limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default, deserialize_with = "text")]
    pub connect: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub first_byte: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub idle: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub total: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_retries: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    pub base_delay: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub max_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub consecutive_failures: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    pub open_for: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub routing: Option<String>,
    pub targets: Vec<RawTarget>,
    pub cache: Option<bool>,
    pub degraded_response: Option<String>,
    pub answer_checks: Option<Vec<String>>,
    pub hedge: Option<RawHedge>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHedge {
    #[serde(default, deserialize_with = "text")]
    pub delay: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub max_share: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub provider: String,
    pub model: String,
    pub weight: Option<f64>,
    pub context_window: Option<u64>,
}

/// Reads a string, number or bool as text (`api_key: ${KEY}` may expand to digits).
pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a single value (text or number)")),
    }
}
