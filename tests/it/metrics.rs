//! Metrics through the front door: names and labels after scripted traffic, and counters that
//! move as they should (failover, retries, tokens, cost, quality, circuits, in-flight).

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    self, FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, completion_body,
    read_stream, two_targets_config,
};
use serde_json::json;

/// The value of the sample `name{labels}` (labels given as `k="v"` pairs, in any order).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let matches = series_name == name
            && labels
                .iter()
                .all(|(k, v)| series_labels.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        if matches { value.parse().ok() } else { None }
    })
}

async fn scrape(gateway: &TestGateway) -> String {
    let response = gateway.client.get(gateway.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}

const PRICED_MOCK: &str = "
cache: { backend: none }
providers:
  offline: { kind: mock }
models:
  chat:
    targets: [ { provider: offline, model: mock-model } ]
pricing:
  mock-model: { input: 2.0, output: 10.0 }
";

#[tokio::test]
async fn requests_are_counted_by_model_route_status_and_timed() {
    let gateway = TestGateway::start(PRICED_MOCK).await;
    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    read_stream(gateway.chat(&chat_request(true)).await).await;

    let text = scrape(&gateway).await;

    let labels = [("model", "chat"), ("route", "primary"), ("status", "200")];
    assert_eq!(sample(&text, "ballast_requests_total", &labels), Some(2.0));
    for stream in ["true", "false"] {
        let labels = [("model", "chat"), ("route", "primary"), ("stream", stream)];
        assert_eq!(
            sample(&text, "ballast_request_duration_seconds_count", &labels),
            Some(1.0),
            "{stream}"
        );
    }
    let ttft = [("model", "chat"), ("provider", "offline")];
    assert_eq!(sample(&text, "ballast_time_to_first_token_seconds_count", &ttft), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "ballast_upstream_requests_total",
            &[("provider", "offline"), ("outcome", "ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "ballast_upstream_duration_seconds_count", &[("provider", "offline")]),
        Some(2.0)
    );
    assert_eq!(sample(&text, "ballast_overhead_seconds_count", &[]), Some(2.0));
    assert_eq!(
        sample(&text, "ballast_inflight_requests", &[]),
        Some(0.0),
        "back to zero when done"
    );
    assert_eq!(sample(&text, "ballast_circuit_state", &[("provider", "offline")]), Some(0.0));
}

#[tokio::test]
async fn streamed_and_whole_answers_count_the_same_tokens_and_cost() {
    let gateway = TestGateway::start(PRICED_MOCK).await;
    let tokens = |text: &str, kind: &str| {
        sample(
            text,
            "ballast_tokens_total",
            &[("model", "chat"), ("provider", "offline"), ("kind", kind)],
        )
        .unwrap()
    };
    let cost = |text: &str| {
        sample(text, "ballast_cost_usd_total", &[("model", "chat"), ("provider", "offline")])
            .unwrap()
    };

    let whole: serde_json::Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();
    let after_whole = scrape(&gateway).await;
    let events = read_stream(gateway.chat(&chat_request(true)).await).await;
    let after_stream = scrape(&gateway).await;

    let (prompt, completion) = (
        whole["usage"]["prompt_tokens"].as_f64().unwrap(),
        whole["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    assert_eq!(
        (tokens(&after_whole, "prompt"), tokens(&after_whole, "completion")),
        (prompt, completion)
    );
    assert_eq!(
        (tokens(&after_stream, "prompt"), tokens(&after_stream, "completion")),
        (2.0 * prompt, 2.0 * completion)
    );
    let expected_cost = (prompt * 2.0 + completion * 10.0) / 1_000_000.0;
    assert!((cost(&after_whole) - expected_cost).abs() < 1e-12);
    assert!((cost(&after_stream) - 2.0 * expected_cost).abs() < 1e-12);
    assert!(
        !events.iter().any(|e| e.contains("\"choices\":[]")),
        "the usage chunk the gateway asked for is not forwarded"
    );
}

#[tokio::test]
async fn failovers_retries_and_upstream_outcomes_are_counted() {
    let primary = FakeUpstream::scripted([Reply::error(503, "a"), Reply::error(429, "b")]).await;
    let backup = FakeUpstream::start().await;
    let config = two_targets_config(
        &primary,
        &backup,
        "retry: { max_retries: 1, base_delay: 1ms, max_delay: 5ms }",
        "",
    );
    let gateway = TestGateway::start(&config).await;

    assert_eq!(gateway.chat(&chat_request(false)).await.headers()["x-ballast-route"], "failover");
    let text = scrape(&gateway).await;

    let outcome = |provider: &str, outcome: &str| {
        sample(
            &text,
            "ballast_upstream_requests_total",
            &[("provider", provider), ("outcome", outcome)],
        )
    };
    assert_eq!(outcome("primary", "server_error"), Some(1.0));
    assert_eq!(outcome("primary", "rate_limit"), Some(1.0));
    assert_eq!(outcome("backup", "ok"), Some(1.0));
    assert_eq!(sample(&text, "ballast_retries_total", &[("provider", "primary")]), Some(1.0));
    let failover = [("model", "chat"), ("from", "primary"), ("to", "backup")];
    assert_eq!(sample(&text, "ballast_failovers_total", &failover), Some(1.0));
    let request = [("model", "chat"), ("route", "failover"), ("status", "200")];
    assert_eq!(sample(&text, "ballast_requests_total", &request), Some(1.0));
}

#[tokio::test]
async fn failed_requests_and_open_circuits_are_visible() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::error(500, "down"));
    let config = support::openai_config(
        &upstream.base_url(),
        "circuit_breaker: { consecutive_failures: 1, open_for: 30s }",
    );
    let gateway = TestGateway::start(&config).await;
    gateway.chat(&chat_request(false)).await;
    gateway.chat(&chat_request(false)).await;

    let text = scrape(&gateway).await;

    assert_eq!(
        sample(&text, "ballast_requests_total", &[("route", "error"), ("status", "503")]),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "ballast_upstream_requests_total",
            &[("provider", "up"), ("outcome", "server_error")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "ballast_circuit_state", &[("provider", "up")]), Some(2.0));
}

#[tokio::test]
async fn quality_flags_mark_truncated_filtered_and_empty_answers() {
    let with = |finish: &str, content: &str| {
        let mut body = completion_body(content);
        body["choices"][0]["finish_reason"] = json!(finish);
        Reply::json(200, &body)
    };
    let upstream = FakeUpstream::scripted([
        with("stop", "fine"),
        with("length", "cut"),
        with("content_filter", ""),
        with("stop", ""),
    ])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    for _ in 0..4 {
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 200);
    }

    let text = scrape(&gateway).await;

    for flag in ["ok", "truncated", "content_filter", "empty"] {
        let labels = [("model", "chat"), ("provider", "up"), ("flag", flag)];
        assert_eq!(sample(&text, "ballast_response_quality_total", &labels), Some(1.0), "{flag}");
    }
}

#[tokio::test]
async fn a_stream_counts_as_in_flight_until_it_ends() {
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: chunk_events(&["slow"], true),
        gap: Duration::from_millis(400),
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut response = gateway.chat(&chat_request(true)).await;
    response.chunk().await.unwrap();

    assert_eq!(sample(&scrape(&gateway).await, "ballast_inflight_requests", &[]), Some(1.0));
    read_stream(response).await;
    assert_eq!(sample(&scrape(&gateway).await, "ballast_inflight_requests", &[]), Some(0.0));
}

#[tokio::test]
async fn metrics_listen_moves_metrics_and_status_off_the_main_listener() {
    let config =
        PRICED_MOCK.to_owned() + "server: { listen: 127.0.0.1:0, metrics_listen: 127.0.0.1:0 }\n";
    let parsed = ballast::config::from_yaml(&config, &|_| None).unwrap();
    let gateway = ballast::server::Gateway::bind(parsed, None).await.unwrap();
    let (main, operator) = (gateway.local_addr().unwrap(), gateway.operator_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    for path in ["/metrics", "/status"] {
        let public = client.get(format!("http://{main}{path}")).send().await.unwrap();
        assert_eq!(public.status(), 404, "{path} is not public");
        let private = client.get(format!("http://{operator}{path}")).send().await.unwrap();
        assert_eq!(private.status(), 200, "{path} on metrics_listen");
    }
    let chat = client.get(format!("http://{operator}/v1/models")).send().await.unwrap();
    assert_eq!(chat.status(), 404, "the operator listener serves no API");

    stop.send(()).unwrap();
    task.await.unwrap();
}

/// `ballast_stream_endings_total` says how each stream sent to a client ended: complete, broken
/// off upstream after content (`upstream_error`), or left by its client (`client_gone`).
#[tokio::test]
async fn stream_endings_are_counted_by_how_each_stream_ended() {
    let broken = chunk_events(&["half"], false)[..2].to_vec();
    let crawling = Reply::Stream {
        events: chunk_events(&["one", " two", " three"], true),
        gap: Duration::from_millis(300),
        end: StreamEnd::Finish,
    };
    let upstream = FakeUpstream::scripted([
        Reply::chunks(&["all", " of", " it"]),
        Reply::Stream { events: broken, gap: Duration::ZERO, end: StreamEnd::Reset },
        crawling,
    ])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    read_stream(gateway.chat(&chat_request(true)).await).await;
    read_stream(gateway.chat(&chat_request(true)).await).await;
    let mut left = gateway.chat(&chat_request(true)).await;
    assert!(left.chunk().await.unwrap().is_some(), "the third stream started");
    drop(left);

    let mut counted = (0.0, 0.0, 0.0);
    for _ in 0..100 {
        let text = scrape(&gateway).await;
        let ending = |ending| {
            support::metric_sum(
                &text,
                "ballast_stream_endings_total",
                &[("api", "chat"), ("ending", ending)],
            )
        };
        counted = (ending("complete"), ending("upstream_error"), ending("client_gone"));
        if counted == (1.0, 1.0, 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counted, (1.0, 1.0, 1.0), "complete, upstream_error, client_gone");
}
