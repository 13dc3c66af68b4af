//! `AppState`: what every handler shares, one generation of it per loaded config; cheap to
//! clone.
//!
//! A reload (`crate::reload`) builds the next generation from the current one with
//! [`AppState::next`]: what a new config did not change carries over (each unchanged provider's
//! connection pools, circuit and health; the cache and its single-flight; the rate limiter and
//! the retry budget; the metrics), the rest is built anew. Requests hold the generation they
//! started on until they end, streams included. Shutdown state is one for all generations.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::{CacheBackend, Config, RedisConfig};
use crate::conversations::Conversations;
use crate::http::body::BodyLimits;
use crate::metrics::Metrics;
use crate::pipeline::{self, Pipeline, ProviderHealth, RetryBudget, Upstream};
use crate::rate_limit::RateLimiter;
use crate::reload::{ReloadOutcome, ReloadRequest};

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
    body_limits: Arc<BodyLimits>,
    budget: Arc<RetryBudget>,
    metrics: Arc<Metrics>,
    /// None for `cache.backend: none`.
    cache: Option<Arc<Cache>>,
    /// Responses kept for their continuations, in the cache's store.
    conversations: Conversations,
    pipelines: HashMap<String, Pipeline>,
    /// The cache space keys share (and an open gateway uses): "", allocated once.
    shared_scope: Arc<str>,
    /// By provider name: its client (connection pools) and health (circuit included).
    upstreams: HashMap<String, Upstream>,
    /// Unix time the config was loaded: the `created` of every listed model.
    loaded_at: u64,
    lifecycle: Arc<Lifecycle>,
}

/// What every generation shares: shutdown, and the way to ask for a reload.
struct Lifecycle {
    draining: AtomicBool,
    /// Cancelled when the shutdown grace has passed: open streams end with an error event.
    streams_cut: CancellationToken,
    /// To `crate::reload`'s task, when the gateway serves from a config file.
    reloads: std::sync::OnceLock<mpsc::Sender<ReloadRequest>>,
}

impl AppState {
    /// Builds the providers (their connection pools and health) and each model's pipeline.
    pub fn new(config: Config) -> Result<Self, String> {
        Self::build(config, None)
    }

    /// The generation after this one, for `config`: what it leaves unchanged carries over.
    pub fn next(&self, config: Config) -> Result<Self, String> {
        Self::build(config, Some(&self.parts))
    }

    fn build(config: Config, previous: Option<&Parts>) -> Result<Self, String> {
        let mut upstreams = HashMap::new();
        for provider in &config.providers {
            let before = previous.and_then(|previous| {
                let old = previous.config.providers.iter().find(|p| p.name == provider.name)?;
                Some((old, previous.upstreams.get(&provider.name)?))
            });
            let upstream = match before {
                Some((old, upstream)) if **old == **provider => upstream.clone(),
                before => {
                    let upstream = Upstream::from_config(provider, config.server.workers)?;
                    // An operator's drain outlives a change of the provider's settings.
                    if let Some(forced) = before.and_then(|(_, old)| old.health.breaker.forced()) {
                        upstream.health.breaker.force(Some(forced));
                    }
                    upstream
                }
            };
            upstreams.insert(provider.name.clone(), upstream);
        }
        let metrics = match previous {
            Some(previous) => Arc::clone(&previous.metrics),
            None => {
                Arc::new(Metrics::new().map_err(|err| format!("cannot register metrics: {err}"))?)
            }
        };
        let cache = match previous {
            Some(previous) if previous.config.cache == config.cache => previous.cache.clone(),
            _ => Cache::from_config(&config.cache, &metrics)?,
        };
        let budget =
            previous.map_or_else(|| Arc::new(RetryBudget::default()), |p| Arc::clone(&p.budget));
        let shared = pipeline::Shared {
            budget: Arc::clone(&budget),
            metrics: Arc::clone(&metrics),
            cache: cache.clone(),
        };
        let mut pipelines = HashMap::new();
        for model in &config.models {
            let pipeline = Pipeline::build(model, &upstreams, &shared, &config.pricing)
                .ok_or_else(|| format!("model `{}` has no usable target", model.name))?;
            pipelines.insert(model.name.clone(), pipeline);
        }
        let loaded_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if previous.is_none() {
            metrics.set_loaded_at(loaded_at);
        }
        let limiter = match previous {
            Some(previous) if shared_redis(&previous.config) == shared_redis(&config) => {
                Arc::clone(&previous.limiter)
            }
            _ => Arc::new(RateLimiter::new(shared_redis(&config))?),
        };
        let auth = config.auth.as_ref().map(Auth::from_config);
        let server = &config.server;
        let body_limits = match previous {
            Some(previous) if same_body_limits(&previous.config, &config) => {
                Arc::clone(&previous.body_limits)
            }
            _ => Arc::new(BodyLimits::new(
                server.max_body_size,
                server.body_timeout,
                server.max_body_bytes_in_flight,
            )),
        };
        let lifecycle = match previous {
            Some(previous) => Arc::clone(&previous.lifecycle),
            None => Arc::new(Lifecycle {
                draining: AtomicBool::new(false),
                streams_cut: CancellationToken::new(),
                reloads: std::sync::OnceLock::new(),
            }),
        };
        let parts = Parts {
            auth,
            body_limits,
            budget,
            limiter,
            config,
            metrics,
            conversations: Conversations::new(cache.clone()),
            cache,
            pipelines,
            shared_scope: Arc::from(""),
            upstreams,
            loaded_at,
            lifecycle,
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
        self.parts.upstreams.get(name).map(|upstream| &upstream.health)
    }

    pub fn loaded_at(&self) -> u64 {
        self.parts.loaded_at
    }

    /// Marks the gateway as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.parts.lifecycle.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.parts.lifecycle.draining.load(Ordering::Relaxed)
    }

    pub fn streams_cut(&self) -> &CancellationToken {
        &self.parts.lifecycle.streams_cut
    }

    /// Where reload requests go (set once, by the server, when it serves from a file).
    pub(crate) fn accept_reloads(&self, requests: mpsc::Sender<ReloadRequest>) {
        // Set once per process: a second call (there is none) would change nothing.
        let _ = self.parts.lifecycle.reloads.set(requests);
    }

    /// Reloads the config file, as SIGHUP does; `None` when the gateway was not started from a
    /// file (an embedded gateway) or is shutting down.
    pub async fn reload(&self) -> Option<ReloadOutcome> {
        let requests = self.parts.lifecycle.reloads.get()?;
        let (reply, outcome) = oneshot::channel();
        requests.send(reply).await.ok()?;
        outcome.await.ok()
    }
}

/// The Redis the cache and the rate limits share, if any.
fn shared_redis(config: &Config) -> Option<&RedisConfig> {
    match &config.cache.backend {
        CacheBackend::Redis(redis) => Some(redis),
        _ => None,
    }
}

fn same_body_limits(before: &Config, after: &Config) -> bool {
    let (before, after) = (&before.server, &after.server);
    (before.max_body_size, before.body_timeout, before.max_body_bytes_in_flight)
        == (after.max_body_size, after.body_timeout, after.max_body_bytes_in_flight)
}
