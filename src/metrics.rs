//! Every Prometheus metric of SPEC §5, registered once, with typed recording functions.
//!
//! This is the only module that names a metric. Label values come from the config (model and
//! provider names) or from closed enums (`Route`, `CacheStatus` and `CircuitState` of
//! `outcome.rs`, `FailureClass`, `QualityFlag`, token kinds), never from request content, so the
//! number of series is bounded by the config.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::failure::FailureClass;
use crate::outcome::{
    AnswerCheck, Api, CacheStatus, CircuitState, HedgeOutcome, Route, StreamEnding,
};
use crate::translate::messages_chat::request::TOOL_HINTS;
use crate::translate::responses_chat;

/// From 5 ms to 5 min: cache hits, fast completions and minutes-long generations alike.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// From 50 µs to 100 ms: the gateway's own share of a request.
const OVERHEAD_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// The `flag` label of `ballast_response_quality_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QualityFlag {
    Ok,
    Empty,
    Truncated,
    ContentFilter,
}

/// Why finished spans were not exported (`ballast_trace_spans_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpansDropped {
    /// The export queue was full (the collector is slow or away).
    QueueFull,
    /// The collector did not take a batch (refused, unreachable, or too slow).
    ExportFailed,
}

/// The one counter of the process-wide span exporter (`telemetry::traces`), registered in
/// every gateway's registry as well. None only if its fixed name were invalid.
static SPANS_DROPPED: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    let opts = Opts::new(
        "ballast_trace_spans_dropped_total",
        "Finished spans not exported: the queue was full, or the collector did not take them.",
    );
    IntCounterVec::new(opts, &["reason"]).ok()
});

/// Counts `count` spans dropped for `reason`.
pub fn record_spans_dropped(reason: SpansDropped, count: u64) {
    let label = match reason {
        SpansDropped::QueueFull => "queue_full",
        SpansDropped::ExportFailed => "export_failed",
    };
    if let Some(counter) = &*SPANS_DROPPED {
        counter.with_label_values(&[label]).inc_by(count);
    }
}

/// The one counter of the process-wide log writer (`telemetry::json_log`), registered in every
/// gateway's registry as well. None only if its fixed name were invalid.
static LOG_LINES_DROPPED: LazyLock<Option<prometheus::IntCounter>> = LazyLock::new(|| {
    prometheus::IntCounter::new(
        "ballast_log_lines_dropped_total",
        "Log lines dropped because stderr did not keep up (4 MiB were waiting to be written).",
    )
    .ok()
});

/// Counts one log line dropped.
pub fn record_log_line_dropped() {
    if let Some(counter) = &*LOG_LINES_DROPPED {
        counter.inc();
    }
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    time_to_first_token: HistogramVec,
    upstream_requests: IntCounterVec,
    upstream_duration: HistogramVec,
    retries: IntCounterVec,
    failovers: IntCounterVec,
    cache_requests: IntCounterVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    quality: IntCounterVec,
    circuit_state: IntGaugeVec,
    inflight: IntGauge,
    coalesced: IntCounterVec,
    cache_saved: CounterVec,
    overhead: Histogram,
    translation_drops: IntCounterVec,
    stream_endings: IntCounterVec,
    answer_check_failures: IntCounterVec,
    context_skips: IntCounterVec,
    hedges: IntCounterVec,
    config_reloads: IntCounterVec,
    last_reload_success: prometheus::Gauge,
}

/// The `field` values of `ballast_translation_drops_total`: the hints a translation knows by
/// name, these and its tool flags (`TOOL_HINTS`), and the Responses translation's hints and
/// built-in tool and item types (`responses_chat::HINTS`, `BUILT_INS`). Anything else it left out (a member newer
/// than the gateway, an Anthropic-only tool) is counted as `other` or `server_tool`, since label
/// values never come from request content.
const DROPPED_FIELDS: [&str; 6] = [
    "thinking",
    "context_management",
    "top_k",
    "service_tier",
    "output_config.effort",
    "container",
];

impl QualityFlag {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Empty => "empty",
            Self::Truncated => "truncated",
            Self::ContentFilter => "content_filter",
        }
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry (one per gateway, so tests can run several).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let histogram = |name: &str,
                         help: &str,
                         labels: &[&str],
                         buckets: &[f64]|
         -> Result<HistogramVec, prometheus::Error> {
            let metric = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let usd =
            |name: &str, help: &str, labels: &[&str]| -> Result<CounterVec, prometheus::Error> {
                let metric = CounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let metrics = Self {
            requests: counter(
                "ballast_requests_total",
                "Client requests by how they were answered.",
                &["api", "model", "route", "status"],
            )?,
            request_duration: histogram(
                "ballast_request_duration_seconds",
                "Client request duration, to the last byte.",
                &["api", "model", "route", "stream"],
                LATENCY_BUCKETS,
            )?,
            time_to_first_token: histogram(
                "ballast_time_to_first_token_seconds",
                "Time from a streamed request's arrival to its first chunk.",
                &["model", "provider"],
                LATENCY_BUCKETS,
            )?,
            upstream_requests: counter(
                "ballast_upstream_requests_total",
                "Upstream attempts by outcome.",
                &["provider", "outcome"],
            )?,
            upstream_duration: histogram(
                "ballast_upstream_duration_seconds",
                "Upstream attempt duration (to the first chunk for streams).",
                &["provider"],
                LATENCY_BUCKETS,
            )?,
            retries: counter(
                "ballast_retries_total",
                "Retries on the same provider.",
                &["provider"],
            )?,
            failovers: counter(
                "ballast_failovers_total",
                "Moves from a failed target to the next.",
                &["model", "from", "to"],
            )?,
            cache_requests: counter(
                "ballast_cache_requests_total",
                "Cache lookups by result.",
                &["result"],
            )?,
            tokens: counter(
                "ballast_tokens_total",
                "Tokens upstreams reported in their usage.",
                &["model", "provider", "kind"],
            )?,
            cost: usd(
                "ballast_cost_usd_total",
                "Cost of upstream answers, from the pricing table.",
                &["model", "provider"],
            )?,
            quality: counter(
                "ballast_response_quality_total",
                "Upstream answers by quality flag.",
                &["model", "provider", "flag"],
            )?,
            circuit_state: {
                let metric = IntGaugeVec::new(
                    Opts::new(
                        "ballast_circuit_state",
                        "Circuit per provider: 0 closed, 1 half-open, 2 open.",
                    ),
                    &["provider"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            inflight: {
                let metric = IntGauge::new(
                    "ballast_inflight_requests",
                    "Requests being served, streams included.",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            coalesced: counter(
                "ballast_coalesced_requests_total",
                "Requests that waited on an identical in-flight call.",
                &["model"],
            )?,
            cache_saved: usd(
                "ballast_cache_saved_usd_total",
                "What cache hits would have cost upstream.",
                &["model"],
            )?,
            overhead: {
                let metric = Histogram::with_opts(
                    HistogramOpts::new(
                        "ballast_overhead_seconds",
                        "Time spent in the gateway itself, upstream time excluded.",
                    )
                    .buckets(OVERHEAD_BUCKETS.to_vec()),
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            translation_drops: counter(
                "ballast_translation_drops_total",
                "Hints and unforced built-in tools left out of a translated request.",
                &["api", "provider", "field"],
            )?,
            stream_endings: counter(
                "ballast_stream_endings_total",
                "Streams sent to clients, by how they ended.",
                &["api", "model", "ending"],
            )?,
            answer_check_failures: counter(
                "ballast_answer_check_failures_total",
                "Upstream 200s that failed one of the model's answer checks.",
                &["model", "provider", "check"],
            )?,
            context_skips: counter(
                "ballast_context_skips_total",
                "Targets skipped or failed over because the prompt did not fit their context window.",
                &["model", "provider"],
            )?,
            hedges: counter(
                "ballast_hedges_total",
                "Hedges started, by how their race ended.",
                &["model", "outcome"],
            )?,
            config_reloads: counter(
                "ballast_config_reloads_total",
                "Config reloads (SIGHUP, POST /admin/reload), applied or refused.",
                &["result"],
            )?,
            last_reload_success: {
                let metric = prometheus::Gauge::new(
                    "ballast_config_last_reload_success_timestamp_seconds",
                    "Unix time the running config was loaded (at start, then by each applied reload).",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            registry,
        };
        if let Some(dropped) = &*SPANS_DROPPED {
            metrics.registry.register(Box::new(dropped.clone()))?;
        }
        if let Some(dropped) = &*LOG_LINES_DROPPED {
            metrics.registry.register(Box::new(dropped.clone()))?;
        }
        Ok(metrics)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %err, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// One client request: `route` is how it was answered, none when it was not (`error`).
    pub fn record_request(
        &self,
        api: Api,
        model: &str,
        route: Option<Route>,
        status: u16,
        stream: bool,
        elapsed: Duration,
    ) {
        let (api, route) = (api.as_str(), route.map_or("error", Route::as_str));
        // A status's own text (no string made per request for a valid code).
        let code = http::StatusCode::from_u16(status).ok();
        let status = match &code {
            Some(code) => std::borrow::Cow::Borrowed(code.as_str()),
            None => std::borrow::Cow::Owned(status.to_string()),
        };
        self.requests.with_label_values(&[api, model, route, &status]).inc();
        let stream = if stream { "true" } else { "false" };
        self.request_duration
            .with_label_values(&[api, model, route, stream])
            .observe(elapsed.as_secs_f64());
    }

    /// How a stream sent to a client of `api` for `model` ended.
    pub fn record_stream_ending(&self, api: Api, model: &str, ending: StreamEnding) {
        self.stream_endings.with_label_values(&[api.as_str(), model, ending.as_str()]).inc();
    }

    /// An answer of `provider` for `model` that failed `check`.
    pub fn record_answer_check_failure(&self, model: &str, provider: &str, check: AnswerCheck) {
        self.answer_check_failures.with_label_values(&[model, provider, check.as_str()]).inc();
    }

    /// A hedge started for a request of `model`, and how its race ended.
    pub fn record_hedge(&self, model: &str, outcome: HedgeOutcome) {
        self.hedges.with_label_values(&[model, outcome.as_str()]).inc();
    }

    /// A target of `model` on `provider` the prompt did not fit: skipped, or failed over from.
    pub fn record_context_skip(&self, model: &str, provider: &str) {
        self.context_skips.with_label_values(&[model, provider]).inc();
    }

    /// What a translation for `provider` left out of an answered request, by name (`dropped`
    /// as `x-ballast-dropped` shows it; the label is one of a closed set).
    pub fn record_translation_drops(&self, api: Api, provider: &str, dropped: &[String]) {
        for name in dropped {
            let known = DROPPED_FIELDS
                .iter()
                .chain(&TOOL_HINTS)
                .chain(&responses_chat::HINTS)
                .chain(&responses_chat::BUILT_INS)
                .find(|known| **known == name);
            let field = if let Some(known) = known {
                known
            } else if name.starts_with("tools.") {
                "server_tool"
            } else if name.starts_with("metadata.") {
                "metadata"
            } else {
                "other"
            };
            self.translation_drops.with_label_values(&[api.as_str(), provider, field]).inc();
        }
    }

    pub fn record_first_token(&self, model: &str, provider: &str, elapsed: Duration) {
        self.time_to_first_token
            .with_label_values(&[model, provider])
            .observe(elapsed.as_secs_f64());
    }

    /// One upstream attempt: `None` for success, else its failure class.
    pub fn record_upstream(
        &self,
        provider: &str,
        failure: Option<FailureClass>,
        elapsed: Duration,
    ) {
        let outcome = failure.map_or("ok", FailureClass::as_str);
        self.upstream_requests.with_label_values(&[provider, outcome]).inc();
        self.upstream_duration.with_label_values(&[provider]).observe(elapsed.as_secs_f64());
    }

    pub fn record_retry(&self, provider: &str) {
        self.retries.with_label_values(&[provider]).inc();
    }

    pub fn record_failover(&self, model: &str, from: &str, to: &str) {
        self.failovers.with_label_values(&[model, from, to]).inc();
    }

    /// What one lookup gave; `Off` is not a lookup and is not counted.
    pub fn record_cache(&self, status: CacheStatus) {
        let result = match status {
            CacheStatus::Off => return,
            other => other.as_str(),
        };
        self.cache_requests.with_label_values(&[result]).inc();
    }

    /// A store that failed to answer a lookup or to take a write (`result="error"`).
    pub fn record_cache_error(&self) {
        self.cache_requests.with_label_values(&["error"]).inc();
    }

    pub fn record_usage(
        &self,
        model: &str,
        provider: &str,
        prompt: u64,
        completion: u64,
        cost_usd: f64,
    ) {
        self.tokens.with_label_values(&[model, provider, "prompt"]).inc_by(prompt);
        self.tokens.with_label_values(&[model, provider, "completion"]).inc_by(completion);
        self.cost.with_label_values(&[model, provider]).inc_by(cost_usd);
    }

    pub fn record_quality(&self, model: &str, provider: &str, flag: QualityFlag) {
        self.quality.with_label_values(&[model, provider, flag.as_str()]).inc();
    }

    pub fn set_circuit_state(&self, provider: &str, state: CircuitState) {
        // SPEC §5: 0 closed, 1 half-open, 2 open.
        let value = match state {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        };
        self.circuit_state.with_label_values(&[provider]).set(value);
    }

    pub fn inflight(&self) -> &IntGauge {
        &self.inflight
    }

    pub fn record_coalesced(&self, model: &str) {
        self.coalesced.with_label_values(&[model]).inc();
    }

    pub fn record_cache_saved(&self, model: &str, usd: f64) {
        self.cache_saved.with_label_values(&[model]).inc_by(usd);
    }

    /// A reload applied, the config it loaded at `unix_seconds`.
    pub fn record_reload_applied(&self, unix_seconds: u64) {
        self.config_reloads.with_label_values(&["ok"]).inc();
        self.set_loaded_at(unix_seconds);
    }

    /// A reload refused: the running config stays, and so does its load time.
    pub fn record_reload_refused(&self) {
        self.config_reloads.with_label_values(&["error"]).inc();
    }

    /// When the running config was loaded.
    pub fn set_loaded_at(&self, unix_seconds: u64) {
        self.last_reload_success.set(unix_seconds as f64);
    }

    pub fn record_overhead(&self, elapsed: Duration) {
        self.overhead.observe(elapsed.as_secs_f64());
    }
}
