//! The rest of the HTTP surface: `/v1/models`, `/healthz`, `/readyz`, request ids, shutdown.

use std::time::Duration;

use crate::support::{
    self, FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, read_stream,
};
use serde_json::{Value, json};

const TWO_MODELS: &str = "
cache: { backend: none }
providers:
  offline: { kind: mock }
models:
  fast: { targets: [ { provider: offline, model: a } ] }
  smart: { targets: [ { provider: offline, model: b }, { provider: offline, model: c } ] }
";

#[tokio::test]
async fn models_lists_the_configured_names_in_a_format_both_sdks_parse() {
    let gateway = TestGateway::start(TWO_MODELS).await;

    let body: Value =
        gateway.client.get(gateway.url("/v1/models")).send().await.unwrap().json().await.unwrap();

    assert_eq!(body["object"], "list");
    let ids: Vec<&str> =
        body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fast", "smart"]);
    for model in body["data"].as_array().unwrap() {
        assert_eq!(model["object"], "model");
        assert!(model["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(model["owned_by"], "ballast");
        // Anthropic's fields too: one list both SDKs' `models.list()` parse.
        assert_eq!(model["type"], "model");
        assert_eq!(model["display_name"], model["id"]);
        let created_at = model["created_at"].as_str().unwrap();
        assert!(created_at.len() == 20 && created_at.ends_with('Z'), "{created_at}");
    }
    assert_eq!(body["has_more"], false);
    assert_eq!(
        (body["first_id"].as_str(), body["last_id"].as_str()),
        (Some("fast"), Some("smart"))
    );
}

#[tokio::test]
async fn healthz_and_readyz_answer_while_running() {
    let gateway = TestGateway::start(TWO_MODELS).await;

    let health = gateway.client.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = gateway.client.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({"ready": true, "reasons": []}));
}

#[tokio::test]
async fn a_well_formed_request_id_is_kept_and_a_bad_one_replaced() {
    let gateway = TestGateway::start(TWO_MODELS).await;
    let mut request = chat_request(false);
    request["model"] = json!("fast");
    let send = |id: &'static str| {
        gateway
            .client
            .post(gateway.url("/v1/chat/completions"))
            .header("x-request-id", id)
            .json(&request)
            .send()
    };

    let kept = send("my-trace-42").await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "my-trace-42");
    let replaced = send("bad id with spaces").await.unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 36, "{id}");
    let generated = gateway.client.get(gateway.url("/healthz")).send().await.unwrap();
    assert!(generated.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
}

#[tokio::test]
async fn shutdown_lets_an_open_stream_finish_and_refuses_new_connections() {
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: chunk_events(&["still", " going"], true),
        gap: Duration::from_millis(300),
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let addr = gateway.addr;
    let response = gateway.chat(&chat_request(true)).await;

    let stopping = tokio::spawn(gateway.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(addr).await;

    let events = read_stream(response).await;
    assert_eq!(events.last().unwrap(), "[DONE]", "the in-flight stream completed: {events:?}");
    assert!(refused.is_err(), "no new connections while draining");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_stream_still_open_when_the_grace_ends_gets_an_error_event() {
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: chunk_events(&["never", " ends"], true),
        gap: Duration::from_secs(5),
        end: StreamEnd::Finish,
    }])
    .await;
    let config = support::openai_config(&upstream.base_url(), "")
        .replace("shutdown_grace: 2s", "shutdown_grace: 300ms");
    let gateway = TestGateway::start(&config).await;
    let response = gateway.chat(&chat_request(true)).await;

    let stopping = tokio::spawn(gateway.stop());
    let events = read_stream(response).await;

    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "gateway_shutting_down");
    stopping.await.unwrap();
}

#[tokio::test]
async fn clients_may_speak_http2() {
    let gateway = TestGateway::start(TWO_MODELS).await;
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mut request = chat_request(false);
    request["model"] = json!("fast");

    let response =
        client.post(gateway.url("/v1/chat/completions")).json(&request).send().await.unwrap();

    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}
