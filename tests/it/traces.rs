//! OpenTelemetry traces (SPEC §5) through the front door: the binary exports over OTLP/HTTP to a
//! fake collector (a `FakeUpstream` that records what it is sent, decoded here from protobuf):
//! a server span per request continuing the client's `traceparent`, a client span per upstream
//! attempt with the GenAI attributes, `traceparent` sent upstream; a collector that hangs or
//! refuses never slows a request, and what it refused is counted.

#![expect(clippy::unwrap_used, clippy::panic, reason = "helpers: a failed unwrap is a failed test")]

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::support::{
    FakeUpstream, GatewayProcess, NO_CACHE, Reply, StreamEnd, UPSTREAM_KEY, chat_request,
    chunk_events, metric_sum,
};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Model `chat` → provider `up` (one retry, no backoff to speak of), traces to `collector`.
fn config(upstream: &FakeUpstream, collector: &str) -> String {
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
{NO_CACHE}
telemetry: {{ otlp_endpoint: '{collector}', service_name: ballast-test }}
providers:
  up: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 1, base_delay: 1ms, max_delay: 1ms }} }}
models:
  chat:
    targets: [ {{ provider: up, model: upstream-model }} ]
",
        upstream.base_url()
    )
}

/// A collector that answers every export 200 with an empty (valid) response.
async fn collector() -> FakeUpstream {
    let collector = FakeUpstream::start().await;
    collector.fallback(Reply::Respond {
        status: 200,
        headers: vec![("content-type".into(), "application/x-protobuf".into())],
        body: String::new(),
    });
    collector
}

/// Every span the collector was sent, with the resources' `service.name`s.
fn received(collector: &FakeUpstream) -> (Vec<Span>, Vec<String>) {
    let (mut spans, mut services) = (Vec::new(), Vec::new());
    for request in collector.requests() {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.header("content-type"), Some("application/x-protobuf"));
        let export = ExportTraceServiceRequest::decode(request.bytes.as_slice()).unwrap();
        for resource in export.resource_spans {
            let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
            services.extend(
                attributes
                    .iter()
                    .filter(|kv| kv.key == "service.name")
                    .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref()))),
            );
            spans.extend(resource.scope_spans.into_iter().flat_map(|scope| scope.spans));
        }
    }
    (spans, services)
}

/// Waits (at most 10 s) until the collector holds `count` spans.
async fn wait_for_spans(collector: &FakeUpstream, count: usize) -> (Vec<Span>, Vec<String>) {
    for _ in 0..100 {
        let (spans, services) = received(collector);
        if spans.len() >= count {
            return (spans, services);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the collector got {} spans, expected {count}", received(collector).0.len());
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(number)) => number.to_string(),
        Some(AnyValue::BoolValue(flag)) => flag.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref().and_then(|v| v.value.as_ref()))))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_request_is_a_server_span_and_each_attempt_a_client_span_with_gen_ai_attributes() {
    let upstream = FakeUpstream::scripted([Reply::error(503, "busy")]).await;
    let collector = collector().await;
    let gateway = GatewayProcess::start(&config(&upstream, &collector.root_url()), &[]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&chat_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    let (spans, services) = wait_for_spans(&collector, 3).await;
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();

    assert!(services.iter().all(|name| name == "ballast-test"), "{services:?}");
    let server = spans
        .iter()
        .find(|span| span.name == "POST /v1/chat/completions")
        .unwrap_or_else(|| panic!("no request span in {names:?}"));
    assert_eq!(hex(&server.trace_id), CLIENT_TRACE, "the client's trace is continued");
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(server.kind, 2, "a server span");
    let request = attributes(server);
    assert_eq!(request["gen_ai.operation.name"], "chat");
    assert_eq!(request["gen_ai.request.model"], "chat");
    assert_eq!(request["gen_ai.provider.name"], "up");
    assert_eq!(request["ballast.route"], "primary");
    assert_eq!(request["ballast.cache"], "off", "the model has no cache");

    let mut attempts: Vec<&Span> =
        spans.iter().filter(|span| span.name == "chat upstream-model").collect();
    attempts.sort_by_key(|span| attributes(span)["ballast.attempt"].clone());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.kind, 3, "a client span");
        assert_eq!(attempt.parent_span_id, server.span_id, "a child of the request");
        assert_eq!(attempt.trace_id, server.trace_id);
    }
    let (failed, answered) = (attributes(attempts[0]), attributes(attempts[1]));
    assert_eq!(failed["ballast.attempt"], "1");
    assert_eq!(failed["ballast.failure_class"], "server_error");
    assert_eq!(attempts[0].status.as_ref().map(|s| s.code), Some(2), "an error status");
    assert_eq!(answered["ballast.attempt"], "2");
    assert_eq!(answered["gen_ai.provider.name"], "up");
    assert_eq!(answered["gen_ai.request.model"], "upstream-model");
    assert_eq!(answered["gen_ai.response.model"], "upstream-model");
    assert_eq!(answered["gen_ai.usage.input_tokens"], "5");
    assert_eq!(answered["gen_ai.usage.output_tokens"], "3");
    assert!(!answered.contains_key("ballast.failure_class"));

    // Each upstream call carried its own attempt's traceparent, never the client's.
    let sent: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.header("traceparent").unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = attempts
        .iter()
        .map(|attempt| format!("00-{CLIENT_TRACE}-{}-01", hex(&attempt.span_id)))
        .collect();
    assert_eq!(sent, expected);
    let everything = format!("{spans:?}");
    assert!(!everything.contains("Hello there"), "no message content in any span");
    drop(gateway.stop());
}

#[tokio::test]
async fn a_streamed_attempt_span_lasts_until_the_stream_ends_and_carries_its_usage() {
    let mut events = chunk_events(&["one ", "two ", "three"], false);
    events.push(
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
               "model": "upstream-model", "choices": [],
               "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
        .to_string(),
    );
    events.push("[DONE]".to_owned());
    let stream = Reply::Stream { events, gap: Duration::from_millis(150), end: StreamEnd::Finish };
    let upstream = FakeUpstream::scripted([stream]).await;
    let collector = collector().await;
    let gateway = GatewayProcess::start(&config(&upstream, &collector.root_url()), &[]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat_request(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    let (spans, _) = wait_for_spans(&collector, 2).await;

    let attempt = spans.iter().find(|span| span.name == "chat upstream-model").unwrap();
    let took = Duration::from_nanos(attempt.end_time_unix_nano - attempt.start_time_unix_nano);
    assert!(took >= Duration::from_millis(600), "open while the stream ran: {took:?}");
    let seen = attributes(attempt);
    assert_eq!(seen["gen_ai.usage.input_tokens"], "7");
    assert_eq!(seen["gen_ai.usage.output_tokens"], "3");
    assert_eq!(seen["gen_ai.response.model"], "upstream-model");
    let server = spans.iter().find(|span| span.name == "POST /v1/chat/completions").unwrap();
    let served = Duration::from_nanos(server.end_time_unix_nano - server.start_time_unix_nano);
    assert!(served >= took, "the request's span lasts as long as its stream: {served:?}");
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(server.parent_span_id, Vec::<u8>::new(), "no traceparent: a new trace");
    drop(gateway.stop());
}

#[tokio::test]
async fn a_hung_or_refusing_collector_never_slows_a_request_and_refused_spans_are_counted() {
    let upstream = FakeUpstream::start().await;
    let hung = FakeUpstream::start().await;
    hung.fallback(Reply::Hang);
    let refusing = FakeUpstream::start().await;
    refusing.fallback(Reply::error(500, "collector down"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    for collector in [&hung, &refusing] {
        let gateway = GatewayProcess::start(&config(&upstream, &collector.root_url()), &[]);
        let mut slowest = Duration::ZERO;
        // Across more than one export interval (500 ms), so batches are sent meanwhile.
        for round in 0..40 {
            let started = tokio::time::Instant::now();
            let response = client
                .post(gateway.url("/v1/chat/completions"))
                .json(&chat_request(false))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "round {round}");
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(slowest < Duration::from_millis(300), "slowest request {slowest:?}");
        if std::ptr::eq(collector, &refusing) {
            let mut counted = 0.0;
            for _ in 0..50 {
                let metrics =
                    client.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
                let labels = [("reason", "export_failed")];
                counted = metric_sum(&metrics, "ballast_trace_spans_dropped_total", &labels);
                if counted > 0.0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(counted > 0.0, "the refused spans are counted");
        }
        // Stopping waits at most a moment for the queue (the hung collector never answers).
        let started = tokio::time::Instant::now();
        let logs = gateway.stop();
        assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
        assert!(!logs.contains("\"level\":\"ERROR\""), "{logs}");
    }
    assert!(hung.hits() > 0, "the hung collector was tried");
}
