//! The floor for `benches/compare.py` and `benches/hop.py`: the same HTTP stack as ballast
//! (axum server, hyper-util's pooled client) forwarding `POST /v1/chat/completions` to one upstream and doing nothing else, on a
//! single-threaded tokio runtime. What ballast adds above this proxy is its own work.
//!
//! ```text
//! cargo run --release --example bare_proxy -- 127.0.0.1:0 http://127.0.0.1:PORT/v1/chat/completions
//! ```
//!
//! Prints `listening 127.0.0.1:PORT` once bound. Non-streamed answers only (it reads the whole
//! upstream body before answering). An upstream failure is a 502. SIGINT or SIGTERM stops it.

use std::io::Write as _;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Clone)]
struct Forward {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
}

async fn forward(State(forward): State<Forward>, body: Bytes) -> Response {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = forward.upstream.clone();
    let json = HeaderValue::from_static("application/json");
    request.headers_mut().insert(header::CONTENT_TYPE, json);
    let answer = match forward.client.request(request).await {
        Ok(response) => response.into_body().collect().await.map(|body| body.to_bytes()).ok(),
        Err(_) => None,
    };
    match answer {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        drop(writeln!(std::io::stderr(), "usage: bare_proxy LISTEN_ADDR UPSTREAM_URL"));
        return ExitCode::from(2);
    };
    let Ok(upstream) = upstream.parse::<Uri>() else {
        drop(writeln!(std::io::stderr(), "bare_proxy: `{upstream}` is not a URL"));
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "bare_proxy: no runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(listen, upstream)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            drop(writeln!(std::io::stderr(), "bare_proxy: {err}"));
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: &str, upstream: Uri) -> std::io::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(Forward { client, upstream });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {}", listener.local_addr()?)?;
    stdout.flush()?;
    axum::serve(listener, app).with_graceful_shutdown(ballast::server::shutdown_signal()).await
}
