//! The configuration: validated runtime types, and `load` from a YAML file.
//!
//! Loading is `text → YAML tree → ${VAR} expansion → raw serde mirror → validated Config`.
//! Every problem found on the way is collected with its YAML path, so `ballast check` lists
//! all of them at once instead of stopping at the first.

pub(crate) mod defaults;
mod env;
mod keys;
mod path;
mod raw;
mod secret;
pub mod units;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::outcome::{AnswerCheck, Api, Carriage};
use reqwest::Url;

pub use env::Lookup;
pub use secret::{Secret, redacted_url};

/// The config file used when neither `--config` nor `$BALLAST_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "config/ballast.yaml";

/// A validated configuration. Built only by [`load`] or [`from_yaml`].
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    /// In file order.
    pub providers: Vec<Arc<ProviderConfig>>,
    /// In file order; the order `/v1/models` lists them in.
    pub models: Vec<ModelConfig>,
    /// By upstream model name.
    pub pricing: HashMap<String, Price>,
    pub cache: CacheConfig,
    /// Gateway keys; none means the gateway is open.
    pub auth: Option<AuthConfig>,
    pub telemetry: TelemetryConfig,
}

/// Where traces go (SPEC §5): nowhere unless `otlp_endpoint` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The collector's base URL; spans are POSTed to `{otlp_endpoint}/v1/traces` (OTLP/HTTP,
    /// protobuf).
    pub otlp_endpoint: Option<Url>,
    /// The `service.name` of every span.
    pub service_name: String,
}

#[derive(Debug)]
pub struct AuthConfig {
    pub keys: Vec<GatewayKey>,
}

/// One client key of the gateway.
#[derive(Debug)]
pub struct GatewayKey {
    /// Appears in logs and metrics and names the key's cache space; the key itself never does.
    pub name: String,
    pub key: Secret,
    /// Glob patterns (`*`, `?`) of the model names this key may use; none means all.
    pub models: Option<Vec<String>>,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, PartialEq)]
pub struct CacheConfig {
    pub backend: CacheBackend,
    /// How long an entry is fresh.
    pub ttl: Duration,
    /// How much longer it is kept, to be served only when every target failed.
    pub stale_ttl: Duration,
    /// The memory backend holds at most this many entries...
    pub max_entries: u64,
    /// ...and at most this many bytes, each entry weighed by its size.
    pub max_bytes: u64,
    /// One cache space for all auth keys instead of one per key.
    pub shared_across_keys: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheBackend {
    Memory,
    Redis(RedisConfig),
    None,
}

/// The Redis that replicas share (the cache, rate limits, kept conversations), and how to
/// trust it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    pub nodes: RedisNodes,
    /// `redis_ca_file`: certificates to trust for `rediss://` instead of the system roots.
    pub ca: Option<CaBundle>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisNodes {
    /// `redis_url`: one server (`redis://` or `rediss://`).
    Single(String),
    /// `redis_cluster`: seed URLs of a Redis Cluster, all of one scheme.
    Cluster(Vec<String>),
}

/// A PEM bundle, read when the config is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// Whether the connection is TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        match &self.nodes {
            RedisNodes::Single(url) => url.starts_with("rediss://"),
            RedisNodes::Cluster(seeds) => seeds.iter().all(|url| url.starts_with("rediss://")),
        }
    }

    /// For the log and `check`: the URLs with their passwords left out.
    pub fn describe(&self) -> String {
        let mut text = match &self.nodes {
            RedisNodes::Single(url) => redacted_url(url),
            RedisNodes::Cluster(seeds) => format!(
                "cluster of {} seed{} ({})",
                seeds.len(),
                if seeds.len() == 1 { "" } else { "s" },
                seeds.iter().map(|url| redacted_url(url)).collect::<Vec<_>>().join(", ")
            ),
        };
        if let Some(ca) = &self.ca {
            text.push_str(&format!(", trusting {}", ca.path.display()));
        }
        text
    }
}

/// USD per million tokens of one upstream model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1_000_000.0
    }
}

#[derive(Debug, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Serve `/metrics` and `/status` here instead of on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub max_body_size: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// A client has this long to send its request headers (slow-loris protection).
    pub header_timeout: Duration,
    /// A client has this long, from its request head, to send the whole body.
    pub body_timeout: Duration,
    /// Request-body bytes all requests together may hold while they are read and answered;
    /// beyond it a request is refused with 503 instead of read.
    pub max_body_bytes_in_flight: usize,
    /// Client connections held at once on `listen`, over every worker (`server::Gateway::serve`).
    pub max_connections: usize,
    /// Serving threads, each with its own runtime and upstream connections (`crate::workers`).
    pub workers: usize,
}

#[derive(Debug, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    /// At most this many calls in flight; when full the target is skipped for the request.
    pub max_concurrency: Option<usize>,
}

/// Retries on one provider (SPEC §4): backoff before retry k is uniform in
/// `[0, min(max_delay, base_delay × 2^k)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// The provider's circuit opens after `consecutive_failures` and stays open for `open_for`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub consecutive_failures: u32,
    pub open_for: Duration,
}

#[derive(Debug, PartialEq)]
pub enum ProviderKind {
    /// Any server speaking OpenAI's chat completions: OpenAI, vLLM, Ollama, LiteLLM...
    OpenAi(OpenAiSettings),
    /// Azure OpenAI: a deployment URL with `api-version`, the `api-key` header.
    Azure(AzureSettings),
    /// Anthropic's Messages API, translated to and from OpenAI's chat completions.
    Anthropic(AnthropicSettings),
    /// The built-in offline provider.
    Mock(MockSettings),
}

impl ProviderKind {
    /// How a provider of this kind carries a request of `api` (SPEC §4 "Dialects"):
    /// OpenAI-shaped providers speak chat and embeddings, and Responses when the server serves
    /// it (Azure, and `openai` with `native_responses`); Anthropic speaks Messages; the mock
    /// speaks chat and embeddings. Chat, Messages and Responses reach the others translated;
    /// embeddings do not reach Anthropic at all.
    /// The provider's `base_url` (a mock has none).
    pub fn base_url(&self) -> Option<&Url> {
        match self {
            Self::OpenAi(settings) => Some(&settings.base_url),
            Self::Azure(settings) => Some(&settings.base_url),
            Self::Anthropic(settings) => Some(&settings.base_url),
            Self::Mock(_) => None,
        }
    }

    pub fn carries(&self, api: Api) -> Carriage {
        let native = match (self, api) {
            (Self::Anthropic(_), Api::Embeddings) => return Carriage::Not,
            (Self::Anthropic(_), api) => api == Api::Messages,
            (Self::OpenAi(settings), Api::Responses) => settings.native_responses,
            (Self::Azure(_), Api::Responses) => true,
            (_, api) => matches!(api, Api::Chat | Api::Embeddings),
        };
        if native { Carriage::Native } else { Carriage::Translated }
    }
}

#[derive(Debug, PartialEq)]
pub struct AzureSettings {
    /// `https://RESOURCE.openai.azure.com`; `/openai/deployments/{model}/chat/completions` follows.
    pub base_url: Url,
    pub api_key: Secret,
    pub api_version: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, PartialEq)]
pub struct AnthropicSettings {
    /// `https://api.anthropic.com`; `/v1/messages` follows.
    pub base_url: Url,
    pub api_key: Secret,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `max_tokens` when the request names none (Anthropic requires one).
    pub default_max_tokens: u32,
}

#[derive(Debug, PartialEq)]
pub struct OpenAiSettings {
    /// Ends with `/v1` for OpenAI; `chat/completions` is appended to it.
    pub base_url: Url,
    pub api_key: Option<Secret>,
    /// Extra static headers, all marked sensitive (they may carry credentials).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The server serves `/responses` itself (a passthrough); else Responses requests are
    /// translated to chat. Default: true for OpenAI's own `api.openai.com`, false for other
    /// OpenAI-compatible servers.
    pub native_responses: bool,
}

#[derive(Debug, PartialEq)]
pub struct MockSettings {
    /// Time to the first byte of an answer.
    pub latency: Duration,
    /// Gap between two streamed chunks.
    pub chunk_interval: Duration,
    /// Fraction of requests answered with `failure_status`.
    pub failure_rate: f64,
    pub failure_status: StatusCode,
    /// Answers made useless on purpose, for the answer checks to catch: which, and how often.
    pub bad_answer: Option<(MockBadAnswer, f64)>,
    /// The mock model's own context window (its rough count of prompt tokens plus the asked
    /// `max_tokens`): a larger request gets OpenAI's 400 `context_length_exceeded`.
    pub context_limit: Option<u64>,
}

/// The useless answer a mock gives (`bad_answer`): each is what one answer check catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockBadAnswer {
    /// An empty text.
    Empty,
    /// A text that is not JSON (caught only when JSON was asked for).
    InvalidJson,
    /// A refusal (`message.refusal`).
    Refusal,
}

/// Per-attempt timeouts of one provider (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// A streamed attempt, from sending the request to the upstream's first event.
    pub first_byte: Duration,
    /// Any gap between two reads of a response body.
    pub idle: Duration,
    /// A non-streamed attempt, from sending the request to the last byte of the answer.
    pub total: Duration,
}

#[derive(Debug)]
pub struct ModelConfig {
    /// The name clients send as `model`.
    pub name: String,
    pub routing: Routing,
    /// In configured order; never empty.
    pub targets: Vec<TargetConfig>,
    /// The reply of last resort when every target failed.
    pub degraded_response: Option<String>,
    /// Answers of this model are cached (when the cache is on).
    pub cache: bool,
    /// What makes an answer of this model a failure (SPEC §4 "Answer checks"); each at most once.
    pub answer_checks: Vec<AnswerCheck>,
    /// When a second target races a slow first one (SPEC §4 "Hedging"); none by default.
    pub hedge: Option<HedgePolicy>,
}

/// `hedge`: when a slow attempt gets a second one on another provider, and how often.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgePolicy {
    pub delay: HedgeDelay,
    /// At most this fraction (0–1] of the model's requests over the last 10 s start a hedge.
    pub max_share: f64,
}

/// How long the first attempt has before a hedge starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeDelay {
    /// The first attempt's provider's recent p95 time to first byte (at least 50 ms).
    Auto,
    Fixed(Duration),
}

/// The order in which a request tries a model's targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// The configured order.
    Ordered,
    /// A random order, each target's chance to come first proportional to its `weight`.
    Weighted,
    /// Fastest recent latency first.
    LeastLatency,
}

#[derive(Debug)]
pub struct TargetConfig {
    pub provider: Arc<ProviderConfig>,
    /// The model name sent upstream.
    pub model: String,
    /// For `routing: weighted`; 1 by default.
    pub weight: f64,
    /// The upstream model's context window in tokens, when configured: a prompt that cannot fit
    /// is not sent to it (SPEC §4 "Context windows").
    pub context_window: Option<u64>,
}

/// One thing wrong with a config file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// A YAML path such as `providers.openai.timeouts.connect`; empty for the file itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl Config {
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|model| model.name == name)
    }
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordered => "ordered",
            Self::Weighted => "weighted",
            Self::LeastLatency => "least_latency",
        }
    }
}

impl ProviderKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::OpenAi(_) => "openai",
            Self::Azure(_) => "azure",
            Self::Anthropic(_) => "anthropic",
            Self::Mock(_) => "mock",
        }
    }
}

/// The config path: `--config`, else `$BALLAST_CONFIG`, else [`DEFAULT_CONFIG_PATH`].
pub fn resolve_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| env::process_env("BALLAST_CONFIG").filter(|p| !p.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Reads and validates the file at `path`, expanding variables from the process environment.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        vec![ConfigProblem {
            path: String::new(),
            message: format!("cannot read {}: {err}", path.display()),
        }]
    })?;
    from_yaml(&text, &env::process_env)
}

/// Validates a config given as YAML text, expanding variables through `lookup`.
pub fn from_yaml(text: &str, lookup: Lookup<'_>) -> Result<Config, Vec<ConfigProblem>> {
    validate::from_yaml(text, lookup)
}
