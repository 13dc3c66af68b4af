//! A Responses request to a target that serves the Responses API itself (an `openai` provider
//! with `native_responses`, an `azure` one on its v1 surface) is a passthrough: the client's
//! bytes with only `model` swapped and the provider's key (never the client's), and the
//! upstream's answer, stream and client errors back unchanged; a 503 fails over.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    NATIVE, ResponseStream, assert_provider_key_only, header, named_event, response_body,
    response_events, responses_request, sse_blocks,
};
use crate::support::{
    CLIENT_KEY, FakeUpstream, NO_CACHE, Reply, StreamEnd, TestGateway, read_body, sse_events,
    targets_config,
};

/// A client body written the way no serializer would: escapes, odd spacing inside members,
/// numbers spelled unusually, a built-in tool, reasoning settings and a member no API knows yet.
const CLIENT_BODY: &str = r#"{"model":"chat","input":[{"role":"user","content":[{"type":"input_text","text":"caf\u00e9 \ud83d\ude00  two  spaces \"quoted\""}]}],"instructions":"Be brief.","reasoning":{ "effort" : "high", "summary":"auto" },"include":["reasoning.encrypted_content"],"tools":[{"type":"web_search"},{"type":"function","name":"f","parameters":{"type":"object"},"strict":true}],"temperature":0.50,"x_future_field":[1e2, 0.10],"store":true}"#;

/// A gateway in front of one native target of `kind` (`openai` with `native_responses`, or
/// `azure`), provider `up`, answering `replies`.
async fn native(kind: &str, replies: Vec<Reply>) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::scripted(replies).await;
    let extra = if kind == "openai" { NATIVE } else { "" };
    let gateway =
        TestGateway::start(&targets_config(&[("up", kind, &upstream, extra)], NO_CACHE, "")).await;
    (upstream, gateway)
}

/// POSTs `body` as it is to `/v1/responses` with the client's key in every header a client
/// might put one in, and a header of its own.
async fn post_bytes(gateway: &TestGateway, body: &'static str) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/v1/responses"))
        .timeout(Duration::from_secs(10))
        .bearer_auth(CLIENT_KEY)
        .header("x-api-key", CLIENT_KEY)
        .header("api-key", CLIENT_KEY)
        .header("x-custom-client", "not-for-upstream")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_responses_request_reaches_a_native_openai_target_as_the_clients_bytes_with_the_model_swapped()
 {
    let (upstream, gateway) =
        native("openai", vec![Reply::json(200, &response_body("resp_pass", "ok"))]).await;

    let response = post_bytes(&gateway, CLIENT_BODY).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert!(
        response.headers().get("x-ballast-dropped").is_none(),
        "nothing is dropped on the same API, built-in tools and reasoning included"
    );
    let seen = &upstream.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/responses"));
    let expected = CLIENT_BODY.replacen(r#""model":"chat""#, r#""model":"up-model""#, 1);
    assert_eq!(
        String::from_utf8_lossy(&seen.bytes),
        expected,
        "every member but `model` as the client wrote it"
    );
    assert_provider_key_only(&seen.headers, "authorization");
    assert_eq!(seen.header("x-custom-client"), None, "client headers are never forwarded");
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(seen.header("api-key"), None);
}

#[tokio::test]
async fn a_native_targets_answer_reaches_the_client_byte_for_byte() {
    let answer = "{\n  \"id\": \"resp_bytes\",\n  \"object\": \"response\",\n  \"created_at\": 1741476777,\n  \"status\": \"completed\",\n  \"model\": \"gpt-4o-2024-08-06\",\n  \"output\": [{\"id\": \"msg_1\", \"type\": \"message\", \"status\": \"completed\", \"role\": \"assistant\", \"content\": [{\"type\": \"output_text\", \"text\": \"Caf\\u00e9 \\u2014 ok\", \"annotations\": []}]}],\n  \"usage\": {\"input_tokens\": 10, \"output_tokens\": 4, \"total_tokens\": 14},\n  \"x_new_field\": 1.50\n}".to_owned();
    let (_upstream, gateway) = native(
        "openai",
        vec![Reply::Respond { status: 200, headers: Vec::new(), body: answer.clone() }],
    )
    .await;

    let response = gateway.responses(&responses_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-route"), "primary");
    assert_eq!(header(&response, "x-ballast-attempts"), "1");
    assert_eq!(header(&response, "x-ballast-cache"), "off");
    assert!(response.headers().contains_key("x-request-id"));
    assert!(header(&response, "content-type").starts_with("application/json"));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&bytes), answer, "the upstream's bytes, unchanged");
}

#[tokio::test]
async fn an_azure_target_gets_the_request_on_its_v1_surface_with_the_deployment_as_model_and_its_api_key()
 {
    let (upstream, gateway) =
        native("azure", vec![Reply::json(200, &response_body("resp_azure", "from azure"))]).await;

    let response = post_bytes(&gateway, CLIENT_BODY).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, response_body("resp_azure", "from azure"), "the upstream's Response");
    let seen = &upstream.requests()[0];
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/openai/v1/responses"),
        "the v1 surface takes no api-version"
    );
    let expected = CLIENT_BODY.replacen(r#""model":"chat""#, r#""model":"up-model""#, 1);
    assert_eq!(String::from_utf8_lossy(&seen.bytes), expected, "the deployment as `model`");
    assert_provider_key_only(&seen.headers, "api-key");
    assert_eq!(seen.header("authorization"), None, "Azure takes its key in api-key");
    assert_eq!(seen.header("x-custom-client"), None);
}

#[tokio::test]
async fn a_native_targets_stream_reaches_the_client_event_for_event() {
    for kind in ["openai", "azure"] {
        let events = response_events("resp_stream", &["Hel", "lo", " world"]);
        let (upstream, gateway) =
            native(kind, vec![Reply::responses_stream(&events, StreamEnd::Finish)]).await;

        let response = gateway.responses(&responses_request(true)).await;

        assert_eq!(response.status(), 200, "{kind}");
        assert!(header(&response, "content-type").starts_with("text/event-stream"), "{kind}");
        assert_eq!(header(&response, "x-ballast-provider"), "up", "{kind}");
        let body = read_body(response).await;
        let sent: Vec<String> = events.iter().map(named_event).collect();
        assert_eq!(sse_blocks(&body), sent, "{kind}: every event: and data: line as sent");
        let stream = ResponseStream::of(&sse_events(&body));
        stream.assert_complete();
        assert_eq!(stream.text, "Hello world", "{kind}");
        assert!(!body.contains("[DONE]"), "{kind}: a Responses stream has no [DONE]");
        let seen = &upstream.requests()[0];
        assert_eq!(seen.body["stream"], true, "{kind}");
        assert_eq!(seen.body["model"], "up-model", "{kind}");
    }
}

#[tokio::test]
async fn a_native_targets_client_error_comes_back_verbatim_without_retry_or_failover() {
    for kind in ["openai", "azure"] {
        for status in [400, 404, 422] {
            let body = format!(
                r#"{{"error": {{"message": "upstream says {status}", "type": "invalid_request_error", "param": "input", "code": "invalid_value"}}}}"#
            );
            let primary = FakeUpstream::scripted([Reply::Respond {
                status,
                headers: Vec::new(),
                body: body.clone(),
            }])
            .await;
            let backup = FakeUpstream::start().await;
            let extra = if kind == "openai" {
                "native_responses: true, retry: { max_retries: 3, base_delay: 1ms }"
            } else {
                "retry: { max_retries: 3, base_delay: 1ms }"
            };
            let config = targets_config(
                &[("primary", kind, &primary, extra), ("backup", "openai", &backup, NATIVE)],
                NO_CACHE,
                "",
            );
            let gateway = TestGateway::start(&config).await;

            let response = gateway.responses(&responses_request(false)).await;

            assert_eq!(response.status(), status, "{kind} {status}");
            assert!(response.headers().contains_key("x-request-id"));
            let text = response.text().await.unwrap();
            assert_eq!(text, body, "{kind} {status}: the upstream's body, verbatim");
            assert_eq!(
                (primary.hits(), backup.hits()),
                (1, 0),
                "{kind} {status}: never retried or failed over"
            );
        }
    }
}

#[tokio::test]
async fn a_native_target_that_fails_hands_the_request_to_the_next_one_unchanged() {
    let failed = {
        let mut failed = response_body("resp_failed", "");
        failed["status"] = json!("failed");
        failed["error"] = json!({"code": "server_error", "message": "The model failed."});
        failed
    };
    for (what, reply) in [
        ("a 503", Reply::error(503, "overloaded")),
        ("a 200 chat completion", Reply::completion("not a Response")),
        ("a 200 failed Response", Reply::json(200, &failed)),
    ] {
        let primary = FakeUpstream::scripted([reply]).await;
        let backup =
            FakeUpstream::scripted([Reply::json(200, &response_body("resp_backup", "backup"))])
                .await;
        let config = targets_config(
            &[("primary", "openai", &primary, NATIVE), ("backup", "azure", &backup, "")],
            NO_CACHE,
            "",
        );
        let gateway = TestGateway::start(&config).await;

        let response = gateway.responses(&responses_request(false)).await;

        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(header(&response, "x-ballast-provider"), "backup", "{what}");
        assert_eq!(header(&response, "x-ballast-route"), "failover", "{what}");
        assert_eq!(header(&response, "x-ballast-attempts"), "2", "{what}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["id"], "resp_backup", "{what}");
        let (first, second) = (&primary.requests()[0], &backup.requests()[0]);
        assert_eq!(first.path, "/v1/responses");
        assert_eq!(second.path, "/openai/v1/responses");
        let mut expected = responses_request(false);
        expected["model"] = json!("backup-model");
        assert_eq!(second.body, expected, "{what}: the same request, for the next target");
    }
}
