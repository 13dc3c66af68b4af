//! A fake OpenAI-compatible upstream whose behaviour is switched at runtime, for
//! `benches/outage-drill.sh`: the drill runs two of these (a primary and a secondary) behind the
//! gateway and walks the primary through an outage.
//!
//! ```text
//! cargo run --release --example drill_upstream -- --listen 127.0.0.1:0 [--latency 20ms] [--threads 1]
//! ```
//!
//! - `POST /v1/chat/completions`: counted (every mode), then, by the current mode and by whether
//!   the body asks for `"stream": true` (a body that is not JSON is taken as non-streamed):
//!   - `healthy`: after `--latency` (default 20 ms, so that a healthy upstream's own latency is
//!     visible in the drill's figures), a fixed small `chat.completion`; streamed, a
//!     `text/event-stream` of a role chunk, two content chunks (`"drill"`, `" ok"`), a finish
//!     chunk and `data: [DONE]`, written together;
//!   - `503`: at once, 503 with an OpenAI-shaped `server_error` body (an overloaded upstream);
//!   - `hang`: never answers; the connection stays open until the client goes away (the handler
//!     is dropped then, which the `hanging` gauge of `/stats` shows);
//!   - `429`: at once, 429 with `retry-after: 30` and an OpenAI-shaped `rate_limit_exceeded`
//!     body;
//!   - `empty`: after `--latency`, a 200 `chat.completion` whose only choice has `"content": ""`
//!     (`finish_reason` `stop`, usage present): an answer with nothing in it; streamed, a role
//!     chunk, a finish chunk without content and `data: [DONE]`;
//!   - `role_error`: streamed, after `--latency`, a 200 `text/event-stream` with a role-only
//!     chunk (`"content": ""`), then an in-band error event
//!     (`data: {"error":{"message":"upstream broke","type":"server_error","code":null}}`), then
//!     the end of the body, without `[DONE]`; non-streamed, at once, 500 with an OpenAI-shaped
//!     `server_error` body;
//!   - `slow`: streamed or not, after a flat 2 s (instead of `--latency`, not on top of it), the
//!     `healthy` answer: an upstream that works, but too slowly;
//!   - `tail`: the `healthy` answer, after `--latency`, except for every 40th call counted in
//!     this mode (the 40th, 80th, ... since the `/control` request that set it), which waits a
//!     flat 5 s instead: a latency tail of 1 answer in 40 (2.5 %), deterministic.
//! - `POST /control` with
//!   `{"mode":"healthy"|"503"|"hang"|"429"|"empty"|"role_error"|"slow"|"tail"}`: switches the
//!   mode (`tail` also restarts its count of calls, even when it was already the mode); answers
//!   `{"mode":...,"previous":...}`. Anything else gets a 400.
//! - `GET /stats`: `{"calls":N,"delayed":D,"hanging":H,"mode":"..."}`: chat-completion requests
//!   received so far (answered or not); those of them that were given a `slow` or `tail` delay
//!   (2 s or 5 s) so far; and requests being held open right now: hung (`hang`) or waiting out a
//!   `slow`/`tail` delay (the ordinary `--latency` wait is not counted). A request whose client
//!   goes away (a gateway that gave up on it, or cancelled it because another attempt won) is
//!   dropped, and leaves the gauge, at once.
//! - `GET /health`: 200 `ok`.
//!
//! On start it prints `listening 127.0.0.1:PORT` on stdout (so `--listen 127.0.0.1:0` works).
//! Accepted sockets get TCP_NODELAY (axum 0.8's `serve` does not set it; without it Nagle and
//! delayed ACKs can add ~40 ms to an answer). SIGINT or SIGTERM stops it at once, without
//! waiting for held-open requests.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use clap::Parser;
use serde::Deserialize;

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
    Empty = 4,
    RoleError = 5,
    Slow = 6,
    Tail = 7,
}

/// How long every answer waits in the `slow` mode (instead of `--latency`).
const SLOW_DELAY: Duration = Duration::from_secs(2);
/// In the `tail` mode, every this-many-th call waits [`TAIL_DELAY`] instead of `--latency`.
const TAIL_EVERY: u64 = 40;
/// How long a `tail` call picked by [`TAIL_EVERY`] waits.
const TAIL_DELAY: Duration = Duration::from_secs(5);

impl Mode {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "healthy" => Some(Self::Healthy),
            "503" => Some(Self::ServiceUnavailable),
            "hang" => Some(Self::Hang),
            "429" => Some(Self::RateLimited),
            "empty" => Some(Self::Empty),
            "role_error" => Some(Self::RoleError),
            "slow" => Some(Self::Slow),
            "tail" => Some(Self::Tail),
            _ => None,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::ServiceUnavailable,
            2 => Self::Hang,
            3 => Self::RateLimited,
            4 => Self::Empty,
            5 => Self::RoleError,
            6 => Self::Slow,
            7 => Self::Tail,
            _ => Self::Healthy,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::ServiceUnavailable => "503",
            Self::Hang => "hang",
            Self::RateLimited => "429",
            Self::Empty => "empty",
            Self::RoleError => "role_error",
            Self::Slow => "slow",
            Self::Tail => "tail",
        }
    }
}

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    calls: AtomicU64,
    /// Calls given a `slow` or `tail` delay.
    delayed: AtomicU64,
    hanging: AtomicU64,
    /// Calls received in the `tail` mode since it was last set.
    tail_calls: AtomicU64,
}

/// The fixed answers, made once.
struct Answers {
    completion: Bytes,
    stream: Arc<[Bytes]>,
    empty: Bytes,
    empty_stream: Arc<[Bytes]>,
    role_error_stream: Arc<[Bytes]>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    latency: Duration,
    answers: Arc<Answers>,
}

/// All the handler reads of a request body; other fields are ignored.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    stream: Option<bool>,
}

/// Counts a held-open request (hung, or waiting out a `slow`/`tail` delay) for as long as its
/// handler lives (hyper drops the handler when the client closes the connection).
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
    let answers = Answers {
        completion: Bytes::from(completion_body("Hello from drill_upstream.")),
        stream: stream_events(&["drill", " ok"]).into(),
        empty: Bytes::from(completion_body("")),
        empty_stream: stream_events(&[]).into(),
        role_error_stream: role_error_events().into(),
    };
    let state = AppState { shared: Arc::default(), latency, answers: Arc::new(answers) };
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

async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Response {
    state.shared.calls.fetch_add(1, Ordering::Relaxed);
    let stream =
        serde_json::from_slice::<Probe>(&body).ok().and_then(|probe| probe.stream).unwrap_or(false);
    let answers = &state.answers;
    match Mode::from_u8(state.shared.mode.load(Ordering::Relaxed)) {
        Mode::Healthy => {
            sleep(state.latency).await;
            healthy(answers, stream)
        }
        Mode::Slow => {
            delay(&state.shared, SLOW_DELAY).await;
            healthy(answers, stream)
        }
        Mode::Tail => {
            let n = state.shared.tail_calls.fetch_add(1, Ordering::Relaxed) + 1;
            if n % TAIL_EVERY == 0 {
                delay(&state.shared, TAIL_DELAY).await;
            } else {
                sleep(state.latency).await;
            }
            healthy(answers, stream)
        }
        Mode::Empty if stream => {
            sleep(state.latency).await;
            event_stream(&answers.empty_stream)
        }
        Mode::Empty => {
            sleep(state.latency).await;
            json(answers.empty.clone())
        }
        Mode::RoleError if stream => {
            sleep(state.latency).await;
            event_stream(&answers.role_error_stream)
        }
        Mode::RoleError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
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
            "expected {\"mode\":\"healthy\"|\"503\"|\"hang\"|\"429\"|\"empty\"|\"role_error\"|\"slow\"|\"tail\"}",
            "invalid_request_error",
            None,
        );
    };
    if mode == Mode::Tail {
        // Before the switch, so that the first call in the mode is call 1 of the new count.
        state.shared.tail_calls.store(0, Ordering::Relaxed);
    }
    let previous = Mode::from_u8(state.shared.mode.swap(mode as u8, Ordering::Relaxed));
    axum::Json(serde_json::json!({ "mode": mode.name(), "previous": previous.name() }))
        .into_response()
}

async fn stats(State(state): State<AppState>) -> Response {
    let shared = &state.shared;
    axum::Json(serde_json::json!({
        "calls": shared.calls.load(Ordering::Relaxed),
        "delayed": shared.delayed.load(Ordering::Relaxed),
        "hanging": shared.hanging.load(Ordering::Relaxed),
        "mode": Mode::from_u8(shared.mode.load(Ordering::Relaxed)).name(),
    }))
    .into_response()
}

/// Waits `latency` (nothing when it is zero).
async fn sleep(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// A `slow`/`tail` delay: counted in `delayed`, and in `hanging` while it lasts (or until the
/// client goes away and the handler is dropped).
async fn delay(shared: &Arc<Shared>, delay: Duration) {
    shared.delayed.fetch_add(1, Ordering::Relaxed);
    let _held = Hanging::new(shared);
    tokio::time::sleep(delay).await;
}

/// The `healthy` answer, streamed or not.
fn healthy(answers: &Answers, stream: bool) -> Response {
    if stream { event_stream(&answers.stream) } else { json(answers.completion.clone()) }
}

/// A 200 JSON answer of fixed bytes.
fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// A 200 `text/event-stream` of fixed events, one body frame each, written without delay; the
/// body ends after the last one.
fn event_stream(events: &[Bytes]) -> Response {
    let frames = events.iter().cloned().map(Ok::<Bytes, Infallible>).collect::<Vec<_>>();
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(futures_util::stream::iter(frames)),
    )
        .into_response()
}

/// An OpenAI-shaped error answer.
fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    (status, axum::Json(body)).into_response()
}

/// A fixed non-streamed answer with `content` as its text (empty for the `empty` mode).
fn completion_body(content: &str) -> Vec<u8> {
    let completion_tokens = if content.is_empty() { 0 } else { 6 };
    let body = serde_json::json!({
        "id": "chatcmpl-drill-0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "drill-upstream-model",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": 8,
            "completion_tokens": completion_tokens,
            "total_tokens": 8 + completion_tokens,
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One `chat.completion.chunk` event with `delta` and `finish_reason`.
fn chunk_event(delta: &serde_json::Value, finish: Option<&str>) -> Bytes {
    let chunk = serde_json::json!({
        "id": "chatcmpl-drill-0001",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "drill-upstream-model",
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The role-only opening chunk every stream here starts with.
fn role_event() -> Bytes {
    chunk_event(&serde_json::json!({ "role": "assistant", "content": "" }), None)
}

/// A streamed answer: the role chunk, one chunk per piece of `content` (none: an empty answer),
/// a finish chunk without content, `[DONE]`.
fn stream_events(content: &[&str]) -> Vec<Bytes> {
    let mut events = vec![role_event()];
    events.extend(
        content.iter().map(|text| chunk_event(&serde_json::json!({ "content": text }), None)),
    );
    events.push(chunk_event(&serde_json::json!({}), Some("stop")));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// The `role_error` stream: the role chunk, then an in-band error event, then the end of the
/// body (no `[DONE]`).
fn role_error_events() -> Vec<Bytes> {
    let error = serde_json::json!({
        "error": { "message": "upstream broke", "type": "server_error", "code": null }
    });
    vec![role_event(), Bytes::from(format!("data: {error}\n\n"))]
}
