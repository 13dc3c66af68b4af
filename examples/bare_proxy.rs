//! The floor for `benches/compare.py`: the same HTTP stack as ballast (axum server, reqwest
//! client) forwarding `POST /v1/chat/completions` to one upstream and doing nothing else, on a
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
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Clone)]
struct Forward {
    client: reqwest::Client,
    upstream: reqwest::Url,
}

async fn forward(State(forward): State<Forward>, body: Bytes) -> Response {
    let sent = forward
        .client
        .post(forward.upstream.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(response) => response.bytes().await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        drop(writeln!(std::io::stderr(), "usage: bare_proxy LISTEN_ADDR UPSTREAM_URL"));
        return ExitCode::from(2);
    };
    let Ok(upstream) = reqwest::Url::parse(upstream) else {
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

async fn serve(listen: &str, upstream: reqwest::Url) -> std::io::Result<()> {
    let client =
        reqwest::Client::builder().tcp_nodelay(true).build().map_err(std::io::Error::other)?;
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(Forward { client, upstream });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {}", listener.local_addr()?)?;
    stdout.flush()?;
    axum::serve(listener, app).with_graceful_shutdown(ballast::server::shutdown_signal()).await
}
