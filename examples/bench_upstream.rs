//! A fast fake OpenAI-compatible upstream for `benches/run.sh`: it answers at once, so what a
//! benchmark measures through the gateway is the gateway's own cost.
//!
//! ```text
//! cargo run --release --example bench_upstream -- --listen 127.0.0.1:0 [--threads 1]
//! ```
//!
//! - `POST /v1/chat/completions`: with `"stream": true` in the body, a `text/event-stream` of
//!   10 `chat.completion.chunk` events and `data: [DONE]`, all written straight away (chunked,
//!   one frame per event); otherwise a fixed ~600-byte `chat.completion`. A body that is not
//!   JSON gets an OpenAI-shaped 400.
//! - `POST /v1/embeddings`: a fixed answer of one 1536-dimension vector, base64-encoded (what
//!   the OpenAI SDKs ask for), about 8 KiB.
//! - `GET /stats`: `{"completions":N,"streams":M,"embeddings":E}`, the requests answered so far (the bench
//!   script uses it to check that the gateway really went through this upstream).
//! - `GET /health`: 200 `ok`.
//!
//! `--chunk-interval-ms N` (default 0) waits N ms before each streamed event after the first, and
//! `--chunks N` (default 10) sets the number of chunk events: `benches/hop.py` holds 512 streams
//! open through a gateway with a second instance started that way.
//!
//! On start it prints `listening 127.0.0.1:PORT` on stdout (so `--listen 127.0.0.1:0` works).
//! It runs a multi-thread tokio runtime with `--threads` workers (default 1): the benchmark
//! machine has 2 cores, shared with the load generator and the gateway, and one worker is
//! plenty for answering fixed bytes. SIGINT or SIGTERM stops it.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde::Deserialize;

/// The default number of `chat.completion.chunk` events in a streamed answer (before `[DONE]`).
const STREAM_CHUNKS: usize = 10;

#[derive(Default)]
struct Counters {
    completions: AtomicU64,
    streams: AtomicU64,
    embeddings: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    counters: Arc<Counters>,
    completion: Bytes,
    events: Arc<[Bytes]>,
    embedding: Bytes,
    /// The wait before each streamed event after the first (zero: none).
    interval: Duration,
}

/// All the handler reads of a request body; other fields are ignored.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    stream: Option<bool>,
}

struct Args {
    listen: SocketAddr,
    threads: usize,
    chunks: usize,
    interval: Duration,
}

const USAGE: &str = "usage: bench_upstream [--listen 127.0.0.1:PORT] [--threads N] [--chunks N] \
    [--chunk-interval-ms N]\n";

fn positive(name: &str, text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("bad {name} `{text}`: a positive number"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: 1,
        chunks: STREAM_CHUNKS,
        interval: Duration::ZERO,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline.clone().or_else(|| iter.next()).ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--listen" => {
                let text = value()?;
                args.listen =
                    text.parse().map_err(|err| format!("bad --listen `{text}`: {err}"))?;
            }
            "--threads" => args.threads = positive(&name, &value()?)?,
            "--chunks" => args.chunks = positive(&name, &value()?)?,
            "--chunk-interval-ms" => {
                let text = value()?;
                let ms = text
                    .parse()
                    .map_err(|err| format!("bad --chunk-interval-ms `{text}`: {err}"))?;
                args.interval = Duration::from_millis(ms);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            let mut err = std::io::stderr().lock();
            if !message.is_empty() {
                drop(writeln!(err, "bench_upstream: {message}"));
            }
            drop(err.write_all(USAGE.as_bytes()));
            return if message.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "bench_upstream: cannot start tokio: {err}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "bench_upstream: {err}"));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &Args) -> std::io::Result<()> {
    let state = AppState {
        counters: Arc::default(),
        completion: Bytes::from(completion_body()),
        events: stream_events(args.chunks).into(),
        embedding: Bytes::from(embedding_body()),
        interval: args.interval,
    };
    let counters = Arc::clone(&state.counters);
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/stats", get(stats))
        .route("/health", get(|| async { "ok" }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
    }
    axum::serve(listener, app).with_graceful_shutdown(ballast::server::shutdown_signal()).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "stopped: {} completions, {} streams",
        counters.completions.load(Ordering::Relaxed),
        counters.streams.load(Ordering::Relaxed)
    )?;
    Ok(())
}

async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Response {
    let stream = match serde_json::from_slice::<Probe>(&body) {
        Ok(probe) => probe.stream.unwrap_or(false),
        Err(err) => return bad_request(&format!("The request body is not valid JSON: {err}.")),
    };
    if !stream {
        state.counters.completions.fetch_add(1, Ordering::Relaxed);
        return (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            state.completion,
        )
            .into_response();
    }
    state.counters.streams.fetch_add(1, Ordering::Relaxed);
    // One body frame per event, as a real upstream writes them; no delay between them unless
    // --chunk-interval-ms asks for one.
    let frames = state.events.iter().cloned().map(Ok::<Bytes, Infallible>).collect::<Vec<_>>();
    let body = if state.interval.is_zero() {
        Body::from_stream(futures_util::stream::iter(frames))
    } else {
        let interval = state.interval;
        Body::from_stream(futures_util::stream::iter(frames).enumerate().then(
            move |(i, frame)| async move {
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                frame
            },
        ))
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn embeddings(State(state): State<AppState>) -> Response {
    state.counters.embeddings.fetch_add(1, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], state.embedding)
        .into_response()
}

async fn stats(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({
        "completions": state.counters.completions.load(Ordering::Relaxed),
        "streams": state.counters.streams.load(Ordering::Relaxed),
        "embeddings": state.counters.embeddings.load(Ordering::Relaxed),
    });
    axum::Json(body).into_response()
}

fn bad_request(message: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": null,
            "code": "invalid_json",
        }
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// A fixed embeddings answer: one 1536-dimension vector as base64 little-endian float32.
fn embedding_body() -> Vec<u8> {
    let bytes: Vec<u8> =
        (0..1536u32).flat_map(|i| ((i as f32 * 0.37).sin() / 27.7).to_le_bytes()).collect();
    let body = serde_json::json!({
        "object": "list",
        "data": [{ "object": "embedding", "index": 0,
                   "embedding": base64::engine::general_purpose::STANDARD.encode(bytes) }],
        "model": "bench-embedding-model",
        "usage": { "prompt_tokens": 2, "total_tokens": 2 },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A fixed non-streamed answer, about 600 bytes.
fn completion_body() -> Vec<u8> {
    let content = "This is a canned answer from bench_upstream, the fake upstream used by \
        ballast's load benchmark. It is long enough to make the whole body about six hundred \
        bytes, which is close to a short real chat completion: a few sentences of text, a usage \
        block and the usual metadata.";
    let body = serde_json::json!({
        "id": "chatcmpl-bench-0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "bench-upstream-model",
        "system_fingerprint": "fp_bench",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 42, "total_tokens": 51 },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The SSE frames of a streamed answer: a role chunk, content chunks, a finish chunk, `[DONE]`.
fn stream_events(chunks: usize) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(chunks + 1);
    for i in 0..chunks {
        let delta = if i == 0 {
            serde_json::json!({ "role": "assistant", "content": "" })
        } else if i + 1 == chunks {
            serde_json::json!({})
        } else {
            serde_json::json!({ "content": format!("word{i} ") })
        };
        let finish =
            if i + 1 == chunks { serde_json::json!("stop") } else { serde_json::Value::Null };
        let chunk = serde_json::json!({
            "id": "chatcmpl-bench-0001",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "bench-upstream-model",
            "system_fingerprint": "fp_bench",
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        events.push(Bytes::from(format!("data: {chunk}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}
