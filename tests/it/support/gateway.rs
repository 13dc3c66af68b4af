//! `TestGateway`: the real gateway in this process on 127.0.0.1:0, and its client helpers.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{CLIENT_KEY, FakeUpstream, openai_config};

/// The real gateway serving `ballast::server::Gateway` in this test's runtime, and a client.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// `server.metrics_listen`'s address, when the config sets one.
    pub operator: Option<SocketAddr>,
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
        Self::serve(gateway)
    }

    /// Starts the gateway on the config file at `path`, reloading it as `ballast serve` does
    /// (`POST /admin/reload` on the operator listener; SIGHUP is for `GatewayProcess`).
    pub async fn start_from_file(path: &std::path::Path) -> Self {
        let config = ballast::config::load(path)
            .unwrap_or_else(|problems| panic!("test config is invalid: {problems:#?}"));
        let gateway = ballast::server::Gateway::bind(config, Some(([127, 0, 0, 1], 0).into()))
            .await
            .expect("gateway binds")
            .reloading_from(path.to_path_buf());
        Self::serve(gateway)
    }

    fn serve(gateway: ballast::server::Gateway) -> Self {
        let addr = gateway.local_addr().unwrap();
        let operator = gateway.operator_addr();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async {
            let _ = signal.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, operator, client, shutdown: Some(shutdown), task }
    }

    /// A gateway with one model, `chat`, on one `openai`-kind target: `upstream`.
    pub async fn in_front_of(upstream: &FakeUpstream) -> Self {
        Self::start(&openai_config(&upstream.base_url(), "")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the operator listener (`server.metrics_listen`).
    pub fn operator_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.operator.expect("the config sets metrics_listen"))
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

    /// A POST to `path` (a Messages route, e.g. `/v1/messages/count_tokens`) as the Anthropic SDK
    /// starts one: `anthropic-version: 2023-06-01`, no key (add `x-api-key` or a bearer token),
    /// no body, and a 10 s limit on the whole exchange, body included.
    pub fn anthropic_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("anthropic-version", "2023-06-01")
            .timeout(Duration::from_secs(10))
    }

    /// POSTs `body` to `/v1/messages` as the Anthropic SDK does: the client's own key as
    /// `x-api-key`, `anthropic-version: 2023-06-01` (see [`TestGateway::anthropic_post`]).
    pub async fn messages(&self, body: &Value) -> reqwest::Response {
        self.anthropic_post("/v1/messages")
            .header("x-api-key", CLIENT_KEY)
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// POSTs `body` to `path` (`/v1/responses`, `/v1/embeddings`) as the OpenAI SDK does: the
    /// client's own key as a bearer token, and a 10 s limit on the whole exchange, body included.
    pub async fn openai_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(CLIENT_KEY)
            .timeout(Duration::from_secs(10))
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// POSTs `body` to `/v1/responses` (see [`TestGateway::openai_post`]).
    pub async fn responses(&self, body: &Value) -> reqwest::Response {
        self.openai_post("/v1/responses", body).await
    }

    /// POSTs `body` to `/v1/embeddings` (see [`TestGateway::openai_post`]).
    pub async fn embeddings(&self, body: &Value) -> reqwest::Response {
        self.openai_post("/v1/embeddings", body).await
    }

    /// POSTs `body`, as it is, to `/v1/chat/completions` as JSON (no key).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
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

    /// The `/metrics` exposition text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

// === Requests ===

/// A chat request for model `chat`.
pub fn chat_request(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "Hello there"}]})
}

/// A streamed chat request for model `chat` whose client asks for the usage chunk.
pub fn chat_request_with_usage() -> Value {
    let mut request = chat_request(true);
    request["stream_options"] = json!({"include_usage": true});
    request
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
    sse_data(&read_body(response).await)
}

/// The events of an SSE body as Anthropic names them: `(event, data)` for each event, in order
/// (the `event:` line's value, empty when there is none, and the `data:` lines joined by a
/// newline). Comment-only events (keep-alives, `:` lines) are left out.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    let field = |line: &str, name: &str| {
        line.strip_prefix(name).map(|value| value.strip_prefix(' ').unwrap_or(value).to_owned())
    };
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let mut name = None;
            let mut data = Vec::new();
            for line in event.lines() {
                if let Some(value) = field(line, "event:") {
                    name = Some(value);
                } else if let Some(value) = field(line, "data:") {
                    data.push(value);
                }
            }
            (name.is_some() || !data.is_empty())
                .then(|| (name.unwrap_or_default(), data.join("\n")))
        })
        .collect()
}

/// Reads a whole streamed answer (within 10 s) and returns its text.
pub async fn read_body(response: reqwest::Response) -> String {
    tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("stream ends within 10 s")
        .expect("stream body reads")
}

/// The content text carried by chat-completion chunks.
pub fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
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
