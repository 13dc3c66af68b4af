//! Traces over OTLP/HTTP (SPEC §5), when `telemetry.otlp_endpoint` is set; nothing at all
//! otherwise (no span, no field, no header is added while [`on`] is false).
//!
//! The request span `http::router` opens for every request becomes an OpenTelemetry server
//! span (continuing the client's W3C `traceparent`), and each upstream attempt a client span
//! under it (`attempt_span`), which stays open while its stream is read and sends its own
//! `traceparent` upstream. Attributes are OpenTelemetry's GenAI ones and ballast's own, set
//! directly on the spans (never message contents), so they do not become log fields.
//!
//! Export never slows a request: a finished span is handed to a bounded queue
//! ([`QUEUE_SPANS`]) with `try_send`, and one thread of its own sends batches from it with a
//! timeout. A full queue, or a batch the collector did not take, is dropped and counted in
//! `ballast_trace_spans_dropped_total`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor, Tracer,
};
use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::TelemetryConfig;
use crate::failure::FailureClass;
use crate::metrics::{self, SpansDropped};
use crate::outcome::Api;
use crate::throttle::Throttle;

/// Finished spans waiting for export, at most; beyond, new ones are dropped (and counted).
pub const QUEUE_SPANS: usize = 4096;
/// Spans per export call, at most.
const BATCH_SPANS: usize = 512;
/// A batch is sent when it is full, or this long after the last span arrived.
const EXPORT_EVERY: Duration = Duration::from_millis(500);
/// One export call may take this long; then its batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// At exit, the queue has this long to drain.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported (set once, by `start`).
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The running exporter: flushed and stopped by [`Traces::shutdown`].
pub struct Traces {
    provider: SdkTracerProvider,
}

/// Starts exporting to `config.otlp_endpoint`; none when it is unset. The tracer goes to the
/// subscriber's OpenTelemetry layer (`telemetry::init`).
pub fn start(config: &TelemetryConfig) -> Result<Option<(Traces, Tracer)>, String> {
    let Some(base) = &config.otlp_endpoint else { return Ok(None) };
    let endpoint = format!("{}/v1/traces", base.as_str().trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|err| format!("cannot build the OTLP client: {err}"))?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .build()
        .map_err(|err| format!("cannot set up the OTLP exporter: {err}"))?;
    let resource = Resource::builder().with_service_name(config.service_name.clone()).build();
    exporter.set_resource(&resource);
    let processor = QueuedExport::start(exporter)?;
    let provider =
        SdkTracerProvider::builder().with_resource(resource).with_span_processor(processor).build();
    let tracer = provider.tracer("ballast");
    ON.store(true, Ordering::Relaxed);
    Ok(Some((Traces { provider }, tracer)))
}

impl Traces {
    /// Exports what is queued (for at most a couple of seconds) and stops.
    pub fn shutdown(self) {
        ON.store(false, Ordering::Relaxed);
        if let Err(err) = self.provider.shutdown_with_timeout(SHUTDOWN_WAIT) {
            tracing::warn!(error = %err, "spans still queued at exit were not exported");
        }
    }
}

// === Spans and their attributes ===

/// The request span's name, as HTTP server spans are named: `POST /v1/chat/completions` for
/// the gateway's routes, the method alone for any other path (a path is client input).
pub fn server_span_name(method: &http::Method, path: &str) -> String {
    const ROUTES: [&str; 10] = [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/status",
        "/metrics",
    ];
    match ROUTES.iter().find(|route| **route == path) {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    }
}

/// Continues the client's trace (`traceparent`, `tracestate`) in the request `span`.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Only fails when the span is not an OpenTelemetry one (it is, whenever traces are on).
    let _ = span.set_parent(parent);
}

/// What the request asks for: the GenAI request attributes of its span.
pub fn request_started(span: &tracing::Span, api: Api, model: &str) {
    let operation = operation(api);
    span.set_attribute("gen_ai.operation.name", operation);
    span.set_attribute("gen_ai.request.model", model.to_owned());
    span.set_attribute("ballast.api", api.as_str());
}

/// How the request was answered: by which provider, on which route, with what from the cache.
pub fn request_answered(span: &tracing::Span, provider: Option<&str>, route: &str, cache: &str) {
    if let Some(provider) = provider {
        span.set_attribute("gen_ai.provider.name", provider.to_owned());
    }
    span.set_attribute("ballast.route", route.to_owned());
    span.set_attribute("ballast.cache", cache.to_owned());
}

/// The request failed: no target answered.
pub fn request_failed(span: &tracing::Span, class: FailureClass) {
    span.set_attribute("ballast.route", "error");
    span.set_attribute("ballast.failure_class", class.as_str());
    span.set_status(Status::error(class.as_str()));
}

/// The span of one upstream attempt (`number`: its place among the request's attempts, from
/// 1), a child of the current (request) span; `Span::none()` while traces are off.
pub fn attempt_span(
    provider: &str,
    upstream_model: &str,
    api: Api,
    numbers: Option<&Arc<AtomicU32>>,
) -> tracing::Span {
    if !on() {
        return tracing::Span::none();
    }
    let operation = operation(api);
    let span = tracing::info_span!(
        "upstream attempt",
        otel.name = %format_args!("{operation} {upstream_model}"),
        otel.kind = "client",
    );
    span.set_attribute("gen_ai.operation.name", operation);
    span.set_attribute("gen_ai.provider.name", provider.to_owned());
    span.set_attribute("gen_ai.request.model", upstream_model.to_owned());
    if let Some(numbers) = numbers {
        let number = numbers.fetch_add(1, Ordering::Relaxed) + 1;
        span.set_attribute("ballast.attempt", i64::from(number));
    }
    span
}

/// An attempt's failure, when it failed.
pub fn attempt_failed(span: &tracing::Span, class: FailureClass) {
    if span.is_none() {
        return;
    }
    span.set_attribute("ballast.failure_class", class.as_str());
    span.set_status(Status::error(class.as_str()));
}

/// The tokens an answer reported, on its attempt's span.
pub fn usage(span: &tracing::Span, input: u64, output: u64) {
    if span.is_none() {
        return;
    }
    span.set_attribute("gen_ai.usage.input_tokens", i64::try_from(input).unwrap_or(i64::MAX));
    span.set_attribute("gen_ai.usage.output_tokens", i64::try_from(output).unwrap_or(i64::MAX));
}

/// The model the upstream says answered (`model`, or a Messages stream's `message.model`, or
/// a Responses event's `response.model`), read from a whole answer or a stream's first event
/// that names it; true once it is recorded.
pub fn response_model(span: &tracing::Span, json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        model: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        model: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        message: Option<Named<'a>>,
        #[serde(borrow)]
        response: Option<Named<'a>>,
    }
    let Ok(probe) = serde_json::from_slice::<Probe<'_>>(json) else { return false };
    let model = probe
        .model
        .or_else(|| probe.message.and_then(|m| m.model))
        .or_else(|| probe.response.and_then(|r| r.model));
    match model {
        Some(model) => {
            span.set_attribute("gen_ai.response.model", model.into_owned());
            true
        }
        None => false,
    }
}

/// `traceparent` (and `tracestate`) for an upstream call made in the current (attempt) span;
/// none while traces are off.
pub fn upstream_headers() -> Vec<(HeaderName, HeaderValue)> {
    if !on() {
        return Vec::new();
    }
    let context = tracing::Span::current().context();
    let mut headers = Outgoing(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    headers.0
}

fn operation(api: Api) -> &'static str {
    match api {
        Api::Embeddings => "embeddings",
        Api::Chat | Api::Messages | Api::Responses => "chat",
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct Outgoing(Vec<(HeaderName, HeaderValue)>);

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.push((name, value));
        }
    }
}

// === Export ===

/// The span processor: a bounded queue in front of one export thread.
#[derive(Debug)]
struct QueuedExport {
    queue: SyncSender<SpanData>,
    /// Set at shutdown: the thread sends what is queued and stops.
    closing: Arc<AtomicBool>,
    /// Told by the thread when it has stopped.
    stopped: Mutex<Option<Receiver<()>>>,
}

impl QueuedExport {
    fn start<E: SpanExporter + 'static>(exporter: E) -> Result<Self, String> {
        let (queue, spans) = mpsc::sync_channel(QUEUE_SPANS);
        let (stop_signal, stopped) = mpsc::channel();
        let closing = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the span exporter's runtime: {err}"))?;
        let stop = Arc::clone(&closing);
        std::thread::Builder::new()
            .name("ballast-otlp".into())
            .spawn(move || {
                export_loop(&runtime, &exporter, &spans, &stop);
                let _ = stop_signal.send(());
            })
            .map_err(|err| format!("cannot start the span exporter's thread: {err}"))?;
        Ok(Self { queue, closing, stopped: Mutex::new(Some(stopped)) })
    }
}

impl SpanProcessor for QueuedExport {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        match self.queue.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::record_spans_dropped(SpansDropped::QueueFull, 1);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.closing.store(true, Ordering::Relaxed);
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner).take();
        match stopped.map(|stopped| stopped.recv_timeout(timeout)) {
            Some(Ok(())) | None => Ok(()),
            Some(Err(_)) => Err(OTelSdkError::Timeout(timeout)),
        }
    }
}

/// Sends batches (full ones, or one `EXPORT_EVERY` after its first span) until `closing`,
/// then what is left; each send is bounded by `EXPORT_TIMEOUT`.
fn export_loop<E: SpanExporter>(
    runtime: &tokio::runtime::Runtime,
    exporter: &E,
    spans: &Receiver<SpanData>,
    closing: &AtomicBool,
) {
    let mut failures = Throttle::new(FAILURE_LOG_EVERY);
    let mut send = |batch: Vec<SpanData>| {
        let count = batch.len() as u64;
        // Made inside the runtime: the timer (and the client) need its context.
        let sent = runtime
            .block_on(async { tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await });
        let error = match sent {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err.to_string(),
            Err(_elapsed) => format!("no answer within {EXPORT_TIMEOUT:?}"),
        };
        metrics::record_spans_dropped(SpansDropped::ExportFailed, count);
        if failures.due() {
            tracing::warn!(error = %error, spans = count, "the OTLP collector did not take a batch of spans; dropped (logged at most once a minute)");
        }
    };
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait =
            oldest.map_or(EXPORT_EVERY, |first| EXPORT_EVERY.saturating_sub(first.elapsed()));
        let ended = match spans.recv_timeout(wait) {
            Ok(span) => {
                oldest.get_or_insert_with(Instant::now);
                batch.push(span);
                closing.load(Ordering::Relaxed)
            }
            Err(RecvTimeoutError::Timeout) => closing.load(Ordering::Relaxed),
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = batch.len() >= BATCH_SPANS
            || oldest.is_some_and(|first| first.elapsed() >= EXPORT_EVERY);
        if due || ended {
            if !batch.is_empty() {
                send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SPANS)));
            }
            oldest = None;
        }
        if ended {
            // What is still queued, in batches; then the thread ends.
            while let Ok(span) = spans.try_recv() {
                batch.push(span);
                if batch.len() >= BATCH_SPANS {
                    send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SPANS)));
                }
            }
            if !batch.is_empty() {
                send(batch);
            }
            return;
        }
    }
}
