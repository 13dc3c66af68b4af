//! Test harness: the real gateway on 127.0.0.1:0, scripted fake upstreams, client helpers.
//!
//! `FakeUpstream` is a raw HTTP/1.1 server on a TCP socket rather than an axum app, so that it
//! can do what real upstreams do on bad days: hang, reset the connection, cut a stream after K
//! chunks, stall mid-stream. It records every request it receives and notices when the gateway
//! hangs up on it.

#![expect(dead_code, reason = "each test file uses a different part of the harness")]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed unwrap is a failed test"
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// The key test clients send; it must never reach an upstream.
pub const CLIENT_KEY: &str = "client-secret-key-123";
/// The key the gateway's config gives the fake upstream.
pub const UPSTREAM_KEY: &str = "upstream-key-456";

// === The gateway ===

pub struct TestGateway {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestGateway {
    /// Starts the gateway in this process with `yaml` as its config, on a free port.
    pub async fn start(yaml: &str) -> Self {
        let config = ballast::config::from_yaml(yaml, &|_| None)
            .unwrap_or_else(|problems| panic!("test config is invalid: {problems:#?}"));
        let gateway = ballast::server::Gateway::bind(config, Some(([127, 0, 0, 1], 0).into()))
            .await
            .expect("gateway binds");
        let addr = gateway.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async {
            let _ = signal.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, client, shutdown: Some(shutdown), task }
    }

    /// A gateway with one model, `chat`, on one `openai`-kind target: `upstream`.
    pub async fn in_front_of(upstream: &FakeUpstream) -> Self {
        Self::start(&openai_config(&upstream.base_url(), "")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` to `/v1/chat/completions` with the client's own key.
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("gateway stops within 10 s")
            .unwrap();
    }
}

/// The cache line of the harness configs: off, so that repeated identical requests all reach
/// the upstream. Cache tests replace it.
pub const NO_CACHE: &str = "cache: { backend: none }";

/// A config with model `chat` → provider `up` (kind openai) at `base_url`; `extra` is appended
/// to the provider's flow mapping (e.g. `timeouts: { total: 200ms }`). Unless `extra` sets its
/// own `retry`, the provider makes one attempt, so a scripted failure is what the client sees.
pub fn openai_config(base_url: &str, extra: &str) -> String {
    let retry = if extra.contains("retry:") { "" } else { ", retry: { max_retries: 0 }" };
    let extra = if extra.is_empty() { retry.to_owned() } else { format!(", {extra}{retry}") };
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
{NO_CACHE}
providers:
  up: {{ kind: openai, base_url: '{base_url}', api_key: {UPSTREAM_KEY}{extra} }}
models:
  chat:
    targets: [ {{ provider: up, model: upstream-model }} ]
"
    )
}

/// Model `chat` → targets `primary` then `backup` (both kind openai). `primary_extra` is added
/// to the primary's settings (one attempt unless it sets `retry`), `model_extra` to the model's.
pub fn two_targets_config(
    primary: &FakeUpstream,
    backup: &FakeUpstream,
    primary_extra: &str,
    model_extra: &str,
) -> String {
    let retry = if primary_extra.contains("retry:") { "" } else { "retry: { max_retries: 0 }, " };
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
{NO_CACHE}
providers:
  primary: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, {retry}{primary_extra} }}
  backup: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 0 }} }}
models:
  chat:
    {model_extra}
    targets: [ {{ provider: primary, model: primary-model }}, {{ provider: backup, model: backup-model }} ]
",
        primary.base_url(),
        backup.base_url()
    )
}

/// A chat request for model `chat`.
pub fn chat_request(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "Hello there"}]})
}

// === Reading answers ===

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let lines: Vec<&str> =
                event.lines().filter_map(|line| line.strip_prefix("data: ")).collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// Reads a whole streamed answer and returns its `data:` payloads.
pub async fn read_stream(response: reqwest::Response) -> Vec<String> {
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("stream ends within 10 s")
        .expect("stream body reads");
    sse_data(&text)
}

/// The content text carried by chat-completion chunks.
pub fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

// === The fake upstream ===

/// What the fake upstream does with the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An HTTP response with this status, extra headers and body.
    Respond { status: u16, headers: Vec<(String, String)>, body: String },
    /// A `text/event-stream` answer: each string is one event's `data:`, sent `gap` apart.
    Stream { events: Vec<String>, gap: Duration, end: StreamEnd },
    /// Read the request, then never answer (the connection stays open).
    Hang,
    /// Read the request, then reset the connection (RST).
    Reset,
    /// Wait, then do the inner reply.
    Delay(Duration, Box<Reply>),
    /// A `text/event-stream` answer of whole SSE events (`event:` and `data:` lines, as
    /// Anthropic sends them), each sent as written followed by a blank line, `gap` apart.
    Events { events: Vec<String>, gap: Duration, end: StreamEnd },
}

/// How a streamed reply ends after its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The chunked body ends properly.
    Finish,
    /// The connection is closed without ending the chunked body.
    Close,
    /// The connection is reset.
    Reset,
    /// Nothing more is sent; the connection stays open.
    Stall,
}

impl Reply {
    /// A 200 `chat.completion` whose answer is `text`.
    pub fn completion(text: &str) -> Self {
        Self::json(200, &completion_body(text))
    }

    pub fn json(status: u16, body: &Value) -> Self {
        Self::Respond { status, headers: Vec::new(), body: body.to_string() }
    }

    /// An OpenAI-shaped error with `status`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
        )
    }

    /// A well-formed stream: a role chunk, one chunk per piece, a finish chunk, `[DONE]`.
    pub fn chunks(pieces: &[&str]) -> Self {
        Self::Stream {
            events: chunk_events(pieces, true),
            gap: Duration::ZERO,
            end: StreamEnd::Finish,
        }
    }

    pub fn with_header(self, name: &str, value: &str) -> Self {
        match self {
            Self::Respond { status, mut headers, body } => {
                headers.push((name.to_owned(), value.to_owned()));
                Self::Respond { status, headers, body }
            }
            other => other,
        }
    }
}

pub fn completion_body(text: &str) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    })
}

/// Chunk payloads for `pieces`, with a finish chunk and (when `done`) a `[DONE]`.
pub fn chunk_events(pieces: &[&str], done: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
               "model": "upstream-model",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    events.extend(pieces.iter().map(|piece| chunk(json!({"content": piece}), Value::Null)));
    events.push(chunk(json!({}), json!("stop")));
    if done {
        events.push("[DONE]".to_owned());
    }
    events
}

/// One request as the fake upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When the request arrived.
    pub at: tokio::time::Instant,
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    /// Played when the script is empty; `None` means a short well-formed answer.
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    hang_ups: Mutex<usize>,
    hung_up: Notify,
}

pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts on a free port. With an empty script it answers `Reply::completion("fake answer")`
    /// (or a short well-formed stream when the request asks for one).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                // Head and body go out in separate writes: without this, Nagle's algorithm and
                // delayed ACKs add ~40 ms to every answer.
                let _ = stream.set_nodelay(true);
                connections.spawn(serve_connection(stream, Arc::clone(&accept_shared)));
            }
        });
        Self { addr, shared, task }
    }

    /// Starts with `replies` queued.
    pub async fn scripted(replies: impl IntoIterator<Item = Reply>) -> Self {
        let upstream = Self::start().await;
        for reply in replies {
            upstream.push(reply);
        }
        upstream
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    /// What to answer once the script is used up (e.g. a 503 for an outage).
    pub fn fallback(&self, reply: Reply) {
        *self.shared.fallback.lock().unwrap() = Some(reply);
    }

    /// Back to healthy answers once the script is used up.
    pub fn heal(&self) {
        *self.shared.fallback.lock().unwrap() = None;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Waits (at most `limit`) until the gateway has closed a connection during a reply.
    pub async fn wait_for_hang_up(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.hung_up.notified();
            if *self.shared.hang_ups.lock().unwrap() > 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let wants_stream = request.body["stream"] == json!(true);
        shared.requests.lock().unwrap().push(request);
        let scripted = shared.script.lock().unwrap().pop_front();
        let fallback = shared.fallback.lock().unwrap().clone();
        let reply = scripted.or(fallback).unwrap_or_else(|| {
            if wants_stream {
                Reply::chunks(&["fake", " answer"])
            } else {
                Reply::completion("fake answer")
            }
        });
        if !play(reply, &mut stream, &shared).await {
            return;
        }
    }
}

/// Plays one reply; false when the connection is finished with.
async fn play(mut reply: Reply, stream: &mut TcpStream, shared: &Shared) -> bool {
    while let Reply::Delay(wait, inner) = reply {
        tokio::time::sleep(wait).await;
        reply = *inner;
    }
    match reply {
        Reply::Respond { status, headers, body } => {
            let mut head = format!(
                "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(body.as_bytes()).await.is_ok()
        }
        Reply::Stream { events, gap, end } => {
            let events: Vec<String> = events.iter().map(|data| format!("data: {data}")).collect();
            play_stream(stream, &events, gap, end, shared).await
        }
        Reply::Events { events, gap, end } => play_stream(stream, &events, gap, end, shared).await,
        Reply::Hang => {
            wait_for_close(stream, Duration::from_secs(60), shared).await;
            false
        }
        Reply::Reset => {
            let _ = stream.set_zero_linger();
            false
        }
        Reply::Delay(..) => unreachable!("delays are unwrapped above"),
    }
}

async fn play_stream(
    stream: &mut TcpStream,
    events: &[String],
    gap: Duration,
    end: StreamEnd,
    shared: &Shared,
) -> bool {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    for (index, data) in events.iter().enumerate() {
        if index > 0 && !gap.is_zero() && wait_for_close(stream, gap, shared).await {
            return false;
        }
        let event = format!("{data}\n\n");
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            note_hang_up(shared);
            return false;
        }
    }
    match end {
        StreamEnd::Finish => stream.write_all(b"0\r\n\r\n").await.is_ok(),
        StreamEnd::Close => {
            let _ = stream.shutdown().await;
            false
        }
        StreamEnd::Reset => {
            let _ = stream.set_zero_linger();
            false
        }
        StreamEnd::Stall => {
            wait_for_close(stream, Duration::from_secs(60), shared).await;
            false
        }
    }
}

/// Waits `wait` while watching the socket; true (and noted) when the peer closed it meanwhile.
async fn wait_for_close(stream: &mut TcpStream, wait: Duration, shared: &Shared) -> bool {
    let mut byte = [0u8; 1];
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        read = stream.read(&mut byte) => {
            if matches!(read, Ok(0) | Err(_)) {
                note_hang_up(shared);
                true
            } else {
                false
            }
        }
    }
}

fn note_hang_up(shared: &Shared) {
    *shared.hang_ups.lock().unwrap() += 1;
    shared.hung_up.notify_waiters();
}

/// Reads one request (head and `content-length` body); None at end of connection.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body =
        serde_json::from_slice(&buffer[body_start..body_start + length]).unwrap_or(Value::Null);
    buffer.drain(..body_start + length);
    let at = tokio::time::Instant::now();
    Some(Recorded { at, method, path, headers, body })
}

// === The gateway as a separate process ===

/// The `ballast` binary serving `yaml` on a free port, its stderr (the logs) collected.
pub struct GatewayProcess {
    pub addr: SocketAddr,
    child: std::process::Child,
    logs: std::thread::JoinHandle<String>,
}

impl GatewayProcess {
    /// Starts `ballast serve` with `env` added, and waits for its `listening` line.
    pub fn start(yaml: &str, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            let line = lines.next().expect("ballast logs `listening` before exiting").unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("\"listening\"") {
                let log: Value = serde_json::from_str(&line).unwrap();
                break log["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        };
        let logs = std::thread::spawn(move || {
            drop(dir);
            lines.map_while(Result::ok).fold(seen, |mut all, line| {
                all.push_str(&line);
                all.push('\n');
                all
            })
        });
        Self { addr, child, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then everything it logged; panics unless it exits 0 within 10 s.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success()
        );
        let (done, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(self.child.wait().unwrap()));
        let status =
            exited.recv_timeout(Duration::from_secs(10)).expect("ballast stops within 10 s");
        assert_eq!(status.code(), Some(0));
        self.logs.join().unwrap()
    }
}

// === Redis ===

/// A `redis-server` of this test's own, on a free port; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the server is gone at once, connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process does not die of SIGKILL until it is continued.
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a hung server that still holds its connections.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if paused { "-STOP" } else { "-CONT" };
        assert!(
            std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success()
        );
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/run.sh installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// === Anthropic and Azure upstreams ===

impl FakeUpstream {
    /// `http://127.0.0.1:PORT`, the base URL of an `anthropic` or `azure` provider.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A file of `tests/support/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("fixture {}: {err}", path.display()))
}

/// A JSON fixture.
pub fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// An SSE fixture as its events (the text between blank lines).
pub fn sse_fixture(name: &str) -> Vec<String> {
    fixture(name)
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|event| !event.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Reply {
    /// The events of an SSE fixture, at once, ending properly.
    pub fn sse(name: &str) -> Self {
        Self::Events { events: sse_fixture(name), gap: Duration::ZERO, end: StreamEnd::Finish }
    }

    /// One Anthropic SSE event: `event: {type}` and the JSON.
    pub fn anthropic_event(data: &Value) -> String {
        format!("event: {}\ndata: {data}", data["type"].as_str().unwrap_or("unknown"))
    }

    /// An Anthropic error answer: `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_error(status: u16, kind: &str, message: &str) -> Self {
        Self::json(
            status,
            &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}),
        )
    }
}

/// Model `chat` → provider `claude` (kind anthropic) at `upstream`, upstream model
/// `claude-test`; `extra` is added to the provider (one attempt unless it sets `retry`).
pub fn anthropic_config(upstream: &FakeUpstream, extra: &str) -> String {
    single_target_config("claude", "anthropic", upstream, "claude-test", extra)
}

/// Model `chat` → provider `azure` (kind azure) at `upstream`, deployment `gpt4o-deploy`;
/// `extra` is added to the provider (one attempt unless it sets `retry`).
pub fn azure_config(upstream: &FakeUpstream, extra: &str) -> String {
    single_target_config("azure", "azure", upstream, "gpt4o-deploy", extra)
}

/// [`openai_config`] with provider `name` of `kind` at `upstream`'s root URL, naming `model`.
fn single_target_config(
    name: &str,
    kind: &str,
    upstream: &FakeUpstream,
    model: &str,
    extra: &str,
) -> String {
    openai_config(&upstream.base_url(), extra)
        .replacen(
            &format!("up: {{ kind: openai, base_url: '{}'", upstream.base_url()),
            &format!("{name}: {{ kind: {kind}, base_url: '{}'", upstream.root_url()),
            1,
        )
        .replacen(
            "provider: up, model: upstream-model",
            &format!("provider: {name}, model: {model}"),
            1,
        )
}

/// [`two_targets_config`] with each target's kind chosen: `primary` and `backup` are
/// `(kind, upstream)` with kind `openai`, `azure` or `anthropic`; one attempt each.
pub fn mixed_targets_config(
    primary: (&str, &FakeUpstream),
    backup: (&str, &FakeUpstream),
) -> String {
    let mut config = two_targets_config(primary.1, backup.1, "", "");
    for (kind, upstream) in [primary, backup] {
        let openai = format!("kind: openai, base_url: '{}'", upstream.base_url());
        let other = format!("kind: {kind}, base_url: '{}'", upstream.root_url());
        config = config.replacen(&openai, &other, 1);
    }
    config
}

impl TestGateway {
    /// The `/metrics` exposition text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

/// The sum of the samples of metric `name` whose labels include every `(key, value)` given.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let has_label = |series: &str, (key, value): &(&str, &str)| {
        let pair = format!("{key}=\"{value}\"");
        series.contains(&format!("{{{pair}")) || series.contains(&format!(",{pair}"))
    };
    exposition
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .filter(|(series, _)| labels.iter().all(|label| has_label(series, label)))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// The prompt and completion tokens `/metrics` counted for model `chat` on `provider`.
pub fn tokens_counted(exposition: &str, provider: &str) -> (f64, f64) {
    let count = |kind| {
        let labels = [("model", "chat"), ("provider", provider), ("kind", kind)];
        metric_sum(exposition, "ballast_tokens_total", &labels)
    };
    (count("prompt"), count("completion"))
}

/// A streamed chat request for model `chat` whose client asks for the usage chunk.
pub fn chat_request_with_usage() -> Value {
    let mut request = chat_request(true);
    request["stream_options"] = json!({"include_usage": true});
    request
}
