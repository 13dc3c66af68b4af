//! Failover across dialects: a Messages request moves from an `anthropic` target (a
//! passthrough) to an OpenAI-compatible one (a translation) and back, and a stream whose
//! upstream failed before any content (after `message_start`, or with only it) is an ordinary
//! failed attempt: the client sees one clean stream from the next target.

use serde_json::{Value, json};

use super::{MessageStream, header, messages_request, sse_blocks};
use crate::support::{
    FakeUpstream, Reply, StreamEnd, TestGateway, UPSTREAM_KEY, json_fixture, mixed_targets_config,
    read_body, sse_events, sse_fixture,
};

/// Model `chat` → the targets `(name, kind, upstream, model)` in this order, one attempt each.
fn targets_config(targets: &[(&str, &str, &FakeUpstream, &str)]) -> String {
    let mut providers = String::new();
    let mut list = Vec::new();
    for (name, kind, upstream, model) in targets {
        let url = if *kind == "openai" { upstream.base_url() } else { upstream.root_url() };
        providers.push_str(&format!(
            "  {name}: {{ kind: {kind}, base_url: '{url}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 0 }} }}\n"
        ));
        list.push(format!("{{ provider: {name}, model: {model} }}"));
    }
    format!(
        "server: {{ listen: 127.0.0.1:0, request_timeout: 10s, shutdown_grace: 2s }}
cache: {{ backend: none }}
providers:
{providers}models:
  chat:
    targets: [ {} ]
",
        list.join(", ")
    )
}

fn message_start() -> Value {
    json!({"type": "message_start", "message": {"id": "msg_first", "type": "message", "role": "assistant",
           "model": "claude-first", "content": [], "stop_reason": null, "stop_sequence": null,
           "usage": {"input_tokens": 10, "output_tokens": 1}}})
}

#[tokio::test]
async fn a_529_from_an_anthropic_target_mid_way_through_the_list_fails_over_to_an_openai_target() {
    let claude =
        FakeUpstream::scripted([Reply::anthropic_error(529, "overloaded_error", "Overloaded")])
            .await;
    let up = FakeUpstream::scripted([Reply::completion("from the openai target")]).await;
    let spare = FakeUpstream::start().await;
    let gateway = TestGateway::start(&targets_config(&[
        ("claude", "anthropic", &claude, "claude-test"),
        ("up", "openai", &up, "gpt-up"),
        ("spare", "openai", &spare, "gpt-spare"),
    ]))
    .await;

    let response = gateway.messages(&messages_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-route"), "failover");
    assert_eq!(header(&response, "x-ballast-attempts"), "2");
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["model"], "chat");
    assert_eq!(message["content"][0]["text"], "from the openai target");
    assert_eq!((claude.hits(), up.hits(), spare.hits()), (1, 1, 0));
    let to_claude = &claude.requests()[0];
    assert_eq!(to_claude.path, "/v1/messages");
    assert_eq!(to_claude.body["model"], "claude-test");
    assert_eq!(to_claude.body["max_tokens"], 256);
    let to_up = &up.requests()[0];
    assert_eq!(to_up.path, "/v1/chat/completions", "translated for the openai target");
    assert_eq!(to_up.body["model"], "gpt-up");
    assert_eq!(to_up.body["max_completion_tokens"], 256);
}

#[tokio::test]
async fn a_failing_openai_target_fails_over_to_an_anthropic_target_that_passes_through() {
    let first = FakeUpstream::scripted([Reply::error(503, "down")]).await;
    let message = json_fixture("anthropic_message.json");
    let claude = FakeUpstream::scripted([Reply::json(200, &message)]).await;
    let gateway =
        TestGateway::start(&mixed_targets_config(("openai", &first), ("anthropic", &claude))).await;

    let response = gateway.messages(&messages_request(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "backup");
    assert_eq!(header(&response, "x-ballast-route"), "failover");
    assert_eq!(response.json::<Value>().await.unwrap(), message, "the upstream's Message");
    assert!(first.requests()[0].path.ends_with("/chat/completions"));
    let to_claude = &claude.requests()[0];
    assert_eq!(to_claude.path, "/v1/messages");
    let mut expected = messages_request(false);
    expected["model"] = json!("backup-model");
    assert_eq!(to_claude.body, expected, "the client's request, not the translation");
}

#[tokio::test]
async fn a_stream_whose_anthropic_upstream_fails_before_content_fails_over_to_one_clean_stream() {
    let ping = json!({"type": "ping"});
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let failures = [
        (
            "an error event",
            Reply::anthropic_stream(
                &[message_start(), ping.clone(), overloaded],
                StreamEnd::Finish,
            ),
        ),
        ("a close", Reply::anthropic_stream(&[message_start(), ping.clone()], StreamEnd::Close)),
        (
            "a stall past first_byte",
            Reply::anthropic_stream(&[message_start(), ping], StreamEnd::Stall),
        ),
    ];
    for (failure, failing) in failures {
        for backup_kind in ["openai", "anthropic"] {
            let primary = FakeUpstream::scripted([failing.clone()]).await;
            let backup_reply = if backup_kind == "openai" {
                Reply::chunks(&["clean", " answer"])
            } else {
                Reply::sse("anthropic_stream.sse")
            };
            let backup = FakeUpstream::scripted([backup_reply]).await;
            let mut config = mixed_targets_config(("anthropic", &primary), (backup_kind, &backup));
            if failure.starts_with("a stall") {
                let primary_retry = "retry: { max_retries: 0 }, ";
                let with_timeout = "retry: { max_retries: 0 }, timeouts: { first_byte: 300ms }, ";
                config = config.replacen(primary_retry, with_timeout, 1);
            }
            let gateway = TestGateway::start(&config).await;

            let response = gateway.messages(&messages_request(true)).await;

            assert_eq!(response.status(), 200, "{failure} → {backup_kind}");
            assert_eq!(header(&response, "x-ballast-route"), "failover");
            assert_eq!(header(&response, "x-ballast-provider"), "backup");
            let body = read_body(response).await;
            let stream = MessageStream::of(&sse_events(&body));
            stream.assert_complete();
            assert_ne!(stream.start["id"], "msg_first", "nothing of the failed attempt: {body}");
            if backup_kind == "openai" {
                assert_eq!(stream.text, "clean answer");
                assert_eq!(stream.start["model"], "chat");
            } else {
                assert_eq!(sse_blocks(&body), sse_fixture("anthropic_stream.sse"));
            }
            assert_eq!((primary.hits(), backup.hits()), (1, 1));
        }
    }
}

#[tokio::test]
async fn a_request_offering_a_server_tool_goes_to_the_anthropic_target_first() {
    let openai = FakeUpstream::start().await;
    let message = json_fixture("anthropic_message.json");
    let claude = FakeUpstream::scripted([Reply::json(200, &message)]).await;
    let config = targets_config(&[
        ("first", "openai", &openai, "gpt-x"),
        ("claude", "anthropic", &claude, "claude-x"),
    ]);
    let gateway = TestGateway::start(&config).await;
    let mut request = messages_request(false);
    request["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);

    let response = gateway.messages(&request).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "claude", "the tool runs natively there");
    assert_eq!(header(&response, "x-ballast-route"), "primary", "first in this request's order");
    assert_eq!((openai.hits(), claude.hits()), (0, 1));

    // Without one, the configured order holds.
    let plain = gateway.messages(&messages_request(false)).await;
    assert_eq!(header(&plain, "x-ballast-provider"), "first");
    assert_eq!((openai.hits(), claude.hits()), (1, 1));
}
