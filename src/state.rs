//! `AppState`: what every handler shares, built once at start-up; cheap to clone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::{CacheBackend, Config};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, ProviderHealth, RetryBudget, Shared as PipelineShared, Upstream};
use crate::rate_limit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    /// Gateway keys; none when the gateway is open.
    auth: Option<Auth>,
    limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    /// None for `cache.backend: none`.
    cache: Option<Arc<Cache>>,
    pipelines: HashMap<String, Pipeline>,
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
        let cache = Cache::from_config(&config.cache, &metrics, &config.pricing)?;
        let shared = PipelineShared {
            budget: Arc::new(RetryBudget::default()),
            metrics: Arc::clone(&metrics),
            pricing: config.pricing.clone(),
            cache: cache.clone(),
        };
        let mut pipelines = HashMap::new();
        for model in &config.models {
            let pipeline = Pipeline::build(model, &upstreams, &shared)
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
        let shared = Shared {
            auth,
            limiter,
            config,
            metrics,
            cache,
            pipelines,
            health,
            loaded_at,
            draining: AtomicBool::new(false),
            streams_cut: CancellationToken::new(),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// None when the gateway is open (no `auth` in the config).
    pub fn auth(&self) -> Option<&Auth> {
        self.shared.auth.as_ref()
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.shared.limiter
    }

    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.shared.cache.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    pub fn pipeline(&self, model: &str) -> Option<&Pipeline> {
        self.shared.pipelines.get(model)
    }

    /// The health of the provider named `name`.
    pub fn health(&self, name: &str) -> Option<&Arc<ProviderHealth>> {
        self.shared.health.get(name)
    }

    pub fn loaded_at(&self) -> u64 {
        self.shared.loaded_at
    }

    /// Marks the gateway as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Relaxed)
    }

    pub fn streams_cut(&self) -> &CancellationToken {
        &self.shared.streams_cut
    }
}
