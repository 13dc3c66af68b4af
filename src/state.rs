//! `AppState`: what every handler shares, built once at start-up; cheap to clone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::{CacheBackend, Config};
use crate::conversations::Conversations;
use crate::http::body::BodyLimits;
use crate::metrics::Metrics;
use crate::pipeline::{self, Pipeline, ProviderHealth, RetryBudget, Upstream};
use crate::rate_limit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    parts: Arc<Parts>,
}

struct Parts {
    config: Config,
    /// Gateway keys; none when the gateway is open.
    auth: Option<Auth>,
    limiter: Arc<RateLimiter>,
    /// Request-body limits, with the gateway-wide budget of body bytes.
    body_limits: BodyLimits,
    metrics: Arc<Metrics>,
    /// None for `cache.backend: none`.
    cache: Option<Arc<Cache>>,
    /// Responses kept for their continuations, in the cache's store.
    conversations: Conversations,
    pipelines: HashMap<String, Pipeline>,
    /// The cache space keys share (and an open gateway uses): "", allocated once.
    shared_scope: Arc<str>,
    /// By provider name.
    health: HashMap<String, Arc<ProviderHealth>>,
    /// Unix time the config was loaded: the `created` of every listed model.
    loaded_at: u64,
    draining: AtomicBool,
    /// Cancelled when the shutdown grace has passed: open streams end with an error event.
    streams_cut: CancellationToken,
}

impl AppState {
    /// Builds the providers (their connection pools and health) and each model's pipeline.
    pub fn new(config: Config) -> Result<Self, String> {
        let mut upstreams = HashMap::new();
        for provider in &config.providers {
            upstreams.insert(
                provider.name.clone(),
                Upstream::from_config(provider, config.server.workers)?,
            );
        }
        let metrics =
            Arc::new(Metrics::new().map_err(|err| format!("cannot register metrics: {err}"))?);
        let cache = Cache::from_config(&config.cache, &metrics)?;
        let shared = pipeline::Shared {
            budget: Arc::new(RetryBudget::default()),
            metrics: Arc::clone(&metrics),
            cache: cache.clone(),
        };
        let mut pipelines = HashMap::new();
        for model in &config.models {
            let pipeline = Pipeline::build(model, &upstreams, &shared, &config.pricing)
                .ok_or_else(|| format!("model `{}` has no usable target", model.name))?;
            pipelines.insert(model.name.clone(), pipeline);
        }
        let health =
            upstreams.into_iter().map(|(name, upstream)| (name, upstream.health)).collect();
        let loaded_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let redis_url = match &config.cache.backend {
            CacheBackend::Redis { url } => Some(url.as_str()),
            _ => None,
        };
        let limiter = Arc::new(RateLimiter::new(redis_url)?);
        let auth = config.auth.as_ref().map(Auth::from_config);
        let server = &config.server;
        let body_limits = BodyLimits::new(
            server.max_body_size,
            server.body_timeout,
            server.max_body_bytes_in_flight,
        );
        let parts = Parts {
            auth,
            body_limits,
            limiter,
            config,
            metrics,
            conversations: Conversations::new(cache.clone()),
            cache,
            pipelines,
            shared_scope: Arc::from(""),
            health,
            loaded_at,
            draining: AtomicBool::new(false),
            streams_cut: CancellationToken::new(),
        };
        Ok(Self { parts: Arc::new(parts) })
    }

    pub fn config(&self) -> &Config {
        &self.parts.config
    }

    /// None when the gateway is open (no `auth` in the config).
    pub fn auth(&self) -> Option<&Auth> {
        self.parts.auth.as_ref()
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.parts.limiter
    }

    pub fn body_limits(&self) -> &BodyLimits {
        &self.parts.body_limits
    }

    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.parts.cache.as_ref()
    }

    pub fn conversations(&self) -> &Conversations {
        &self.parts.conversations
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.parts.metrics
    }

    pub fn pipeline(&self, model: &str) -> Option<&Pipeline> {
        self.parts.pipelines.get(model)
    }

    /// The cache space of a request made with the gateway key named `key` (none: the gateway is
    /// open): the key's own space, or the one all keys share with `cache.shared_across_keys`.
    /// Decided here only, for live requests and `ballast warm` alike.
    pub fn cache_scope(&self, key: Option<&Arc<str>>) -> Arc<str> {
        match key {
            Some(name) if !self.parts.config.cache.shared_across_keys => Arc::clone(name),
            _ => Arc::clone(&self.parts.shared_scope),
        }
    }

    /// The health of the provider named `name`.
    pub fn health(&self, name: &str) -> Option<&Arc<ProviderHealth>> {
        self.parts.health.get(name)
    }

    pub fn loaded_at(&self) -> u64 {
        self.parts.loaded_at
    }

    /// Marks the gateway as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.parts.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.parts.draining.load(Ordering::Relaxed)
    }

    pub fn streams_cut(&self) -> &CancellationToken {
        &self.parts.streams_cut
    }
}
