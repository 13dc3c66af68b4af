//! A fake OpenAI-compatible upstream whose behaviour is switched at runtime, for
//! `benches/outage-drill.sh`: the drill runs two of these (a primary and a secondary) behind the
//! gateway and walks the primary through an outage.
//!
//! ```text
//! cargo run --release --example drill_upstream -- --listen 127.0.0.1:0 [--latency 20ms] [--threads 1]
//! ```
//!
//! - `POST /v1/chat/completions`: counted (every mode), then, by the current mode:
//!   - `healthy`: a fixed small `chat.completion` after `--latency` (default 20 ms, so that a
//!     healthy upstream's own latency is visible in the drill's figures);
//!   - `503`: at once, 503 with an OpenAI-shaped `server_error` body (an overloaded upstream);
//!   - `hang`: never answers; the connection stays open until the client goes away (the handler
//!     is dropped then, which the `hanging` gauge of `/stats` shows);
//!   - `429`: at once, 429 with `retry-after: 30` and an OpenAI-shaped `rate_limit_exceeded`
//!     body.
//! - `POST /control` with `{"mode":"healthy"|"503"|"hang"|"429"}`: switches the mode; answers
//!   `{"mode":...,"previous":...}`. Anything else gets a 400.
//! - `GET /stats`: `{"calls":N,"hanging":H,"mode":"..."}`: chat-completion requests received
//!   so far (answered or not) and requests being held open right now.
//! - `GET /health`: 200 `ok`.
//!
//! On start it prints `listening 127.0.0.1:PORT` on stdout (so `--listen 127.0.0.1:0` works).
//! Accepted sockets get TCP_NODELAY (axum 0.8's `serve` does not set it; without it Nagle and
//! delayed ACKs can add ~40 ms to an answer). SIGINT or SIGTERM stops it at once, without
//! waiting for held-open requests.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "drill_upstream",
    about = "A fake OpenAI upstream with a runtime-switchable failure mode"
)]
struct Args {
    /// Address to listen on (port 0: any free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// How long a healthy answer takes, e.g. `20ms`, `0.5s`, `0`.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    latency: Duration,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1e-3) // a bare number: milliseconds
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("`{text}` is not a duration like 20ms or 1s"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Healthy = 0,
    ServiceUnavailable = 1,
    Hang = 2,
    RateLimited = 3,
}

impl Mode {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "healthy" => Some(Self::Healthy),
            "503" => Some(Self::ServiceUnavailable),
            "hang" => Some(Self::Hang),
            "429" => Some(Self::RateLimited),
            _ => None,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::ServiceUnavailable,
            2 => Self::Hang,
            3 => Self::RateLimited,
            _ => Self::Healthy,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::ServiceUnavailable => "503",
            Self::Hang => "hang",
            Self::RateLimited => "429",
        }
    }
}

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    calls: AtomicU64,
    hanging: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    latency: Duration,
    completion: Bytes,
}

/// Counts a held-open request for as long as its handler lives (hyper drops the handler when
/// the client closes the connection).
struct Hanging(Arc<Shared>);

impl Hanging {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.hanging.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(shared))
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.0.hanging.fetch_sub(1, Ordering::Relaxed);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "drill_upstream: cannot start tokio: {err}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.listen, args.latency)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "drill_upstream: {err}"));
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr, latency: Duration) -> std::io::Result<()> {
    let state =
        AppState { shared: Arc::default(), latency, completion: Bytes::from(completion_body()) };
    let shared = Arc::clone(&state.shared);
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/control", post(control))
        .route("/stats", get(stats))
        .route("/health", get(|| async { "ok" }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|stream| {
        // Best effort: a socket that refuses it still works, only slower.
        drop(stream.set_nodelay(true));
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
    }
    // Not a graceful shutdown: held-open ("hang") requests would keep it waiting forever.
    tokio::select! {
        result = axum::serve(listener, app).into_future() => result?,
        () = ballast::server::shutdown_signal() => {}
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "stopped: {} calls", shared.calls.load(Ordering::Relaxed))?;
    Ok(())
}

async fn chat_completions(State(state): State<AppState>) -> Response {
    state.shared.calls.fetch_add(1, Ordering::Relaxed);
    match Mode::from_u8(state.shared.mode.load(Ordering::Relaxed)) {
        Mode::Healthy => {
            if !state.latency.is_zero() {
                tokio::time::sleep(state.latency).await;
            }
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                state.completion,
            )
                .into_response()
        }
        Mode::ServiceUnavailable => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is overloaded or not ready yet.",
            "server_error",
            None,
        ),
        Mode::RateLimited => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests. Please try again in 30s.",
                "requests",
                Some("rate_limit_exceeded"),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            response
        }
        Mode::Hang => {
            let _held = Hanging::new(&state.shared);
            std::future::pending::<Response>().await
        }
    }
}

async fn control(State(state): State<AppState>, body: Bytes) -> Response {
    let mode = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("mode").and_then(|m| m.as_str()).and_then(Mode::parse));
    let Some(mode) = mode else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"mode\":\"healthy\"|\"503\"|\"hang\"|\"429\"}",
            "invalid_request_error",
            None,
        );
    };
    let previous = Mode::from_u8(state.shared.mode.swap(mode as u8, Ordering::Relaxed));
    axum::Json(serde_json::json!({ "mode": mode.name(), "previous": previous.name() }))
        .into_response()
}

async fn stats(State(state): State<AppState>) -> Response {
    let shared = &state.shared;
    axum::Json(serde_json::json!({
        "calls": shared.calls.load(Ordering::Relaxed),
        "hanging": shared.hanging.load(Ordering::Relaxed),
        "mode": Mode::from_u8(shared.mode.load(Ordering::Relaxed)).name(),
    }))
    .into_response()
}

/// An OpenAI-shaped error answer.
fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    (status, axum::Json(body)).into_response()
}

/// A fixed non-streamed answer.
fn completion_body() -> Vec<u8> {
    let body = serde_json::json!({
        "id": "chatcmpl-drill-0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "drill-upstream-model",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Hello from drill_upstream.", "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 8, "completion_tokens": 6, "total_tokens": 14 },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
