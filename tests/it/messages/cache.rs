//! Messages answers in the cache: a repeated request is a hit, whatever the target's dialect;
//! Messages and chat entries never answer each other; a whole answer serves a streaming repeat
//! as Anthropic's events.

use std::time::Duration;

use serde_json::{Value, json};

use super::{MessageStream, header, messages_request, within};
use crate::support::{
    FakeUpstream, NO_CACHE, Reply, TestGateway, anthropic_config, json_fixture, openai_config,
};

const MEMORY: &str = "cache: { backend: memory, ttl: 1h, stale_ttl: 1h }";

/// A caching gateway in front of `upstream` as a target of `kind` (openai or anthropic), which
/// answers whole requests with `text` (openai) or the fixture Message (anthropic).
async fn cached(kind: &str) -> (FakeUpstream, TestGateway, String) {
    let upstream = FakeUpstream::start().await;
    let (config, text) = if kind == "openai" {
        upstream.fallback(Reply::completion("cached words"));
        (openai_config(&upstream.base_url(), ""), "cached words")
    } else {
        upstream.fallback(Reply::json(200, &json_fixture("anthropic_message.json")));
        (anthropic_config(&upstream, ""), "Hi! My name is Claude.")
    };
    let gateway = TestGateway::start(&config.replace(NO_CACHE, MEMORY)).await;
    (upstream, gateway, text.to_owned())
}

/// Lets the background cache write land.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

#[tokio::test]
async fn a_repeated_identical_messages_request_is_a_cache_hit() {
    for kind in ["openai", "anthropic"] {
        let (upstream, gateway, text) = cached(kind).await;

        let first = gateway.messages(&messages_request(false)).await;
        assert_eq!(first.status(), 200, "{kind}");
        assert_eq!(header(&first, "x-ballast-cache"), "miss", "{kind}");
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["content"][0]["text"], text.as_str(), "{kind}");
        settle().await;
        let second = gateway.messages(&messages_request(false)).await;

        assert_eq!(second.status(), 200, "{kind}");
        assert_eq!(header(&second, "x-ballast-cache"), "hit", "{kind}");
        assert_eq!(header(&second, "x-ballast-route"), "cache", "{kind}");
        assert_eq!(header(&second, "x-ballast-attempts"), "0", "{kind}");
        assert!(!header(&second, "x-ballast-provider").is_empty(), "{kind}: who produced it");
        assert_eq!(second.json::<Value>().await.unwrap(), first, "{kind}: the same Message");
        assert_eq!(upstream.hits(), 1, "{kind}");
        let mut other = messages_request(false);
        other["messages"][0]["content"] = json!("a different question");
        assert_eq!(header(&gateway.messages(&other).await, "x-ballast-cache"), "miss", "{kind}");
    }
}

#[tokio::test]
async fn chat_and_messages_requests_with_the_same_content_never_answer_each_other() {
    let (upstream, gateway, _) = cached("openai").await;
    let chat = json!({"model": "chat", "max_tokens": 256, "stream": false,
                      "messages": [{"role": "user", "content": "Hello there"}]});
    let messages = messages_request(false);

    let first_chat = within(gateway.chat(&chat)).await;
    assert_eq!(header(&first_chat, "x-ballast-cache"), "miss");
    within(first_chat.text()).await.unwrap();
    settle().await;
    let first_messages = gateway.messages(&messages).await;
    assert_eq!(first_messages.status(), 200);
    assert_eq!(header(&first_messages, "x-ballast-cache"), "miss", "a chat entry is not a Message");
    first_messages.text().await.unwrap();
    settle().await;

    let chat_again = within(gateway.chat(&chat)).await;
    assert_eq!(header(&chat_again, "x-ballast-cache"), "hit");
    let chat_again: Value = within(chat_again.json()).await.unwrap();
    assert_eq!(chat_again["object"], "chat.completion");
    let messages_again = gateway.messages(&messages).await;
    assert_eq!(header(&messages_again, "x-ballast-cache"), "hit");
    let messages_again: Value = messages_again.json().await.unwrap();
    assert_eq!(messages_again["type"], "message", "{messages_again}");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_streaming_repeat_of_a_whole_messages_answer_is_served_from_cache_as_events() {
    for kind in ["openai", "anthropic"] {
        let (upstream, gateway, text) = cached(kind).await;
        let whole: Value = gateway.messages(&messages_request(false)).await.json().await.unwrap();
        settle().await;

        let response = gateway.messages(&messages_request(true)).await;

        assert_eq!(response.status(), 200, "{kind}");
        assert_eq!(header(&response, "x-ballast-cache"), "hit", "{kind}");
        assert_eq!(header(&response, "x-ballast-attempts"), "0", "{kind}");
        let stream = MessageStream::read(response).await;
        stream.assert_complete();
        assert_eq!(stream.text, text, "{kind}");
        assert_eq!(stream.stop_reason.as_deref(), whole["stop_reason"].as_str(), "{kind}");
        assert_eq!(stream.output_tokens, whole["usage"]["output_tokens"].as_u64(), "{kind}");
        assert_eq!(upstream.hits(), 1, "{kind}");
    }
}

#[tokio::test]
async fn when_every_target_fails_a_stored_message_answers_stale_in_its_own_shape() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::completion("remembered words"));
    let short = "cache: { backend: memory, ttl: 300ms, stale_ttl: 1h }";
    let config = openai_config(&upstream.base_url(), "").replace(NO_CACHE, short);
    let gateway = TestGateway::start(&config).await;
    let fresh: Value = gateway.messages(&messages_request(false)).await.json().await.unwrap();
    upstream.fallback(Reply::error(503, "down"));
    tokio::time::sleep(Duration::from_millis(400)).await;

    for stream in [false, true] {
        let response = gateway.messages(&messages_request(stream)).await;

        assert_eq!(response.status(), 200, "stream {stream}");
        assert_eq!(header(&response, "x-ballast-route"), "stale", "stream {stream}");
        if stream {
            let events = MessageStream::read(response).await;
            events.assert_complete();
            assert_eq!(events.text, "remembered words");
        } else {
            assert_eq!(response.json::<Value>().await.unwrap(), fresh, "the stored Message");
        }
    }
}

#[tokio::test]
async fn a_degraded_reply_to_a_messages_request_is_a_message() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::error(503, "down"));
    let degraded = "  chat:\n    degraded_response: \"Busy; try later.\"\n";
    let config = openai_config(&upstream.base_url(), "").replacen("  chat:\n", degraded, 1);
    let gateway = TestGateway::start(&config).await;

    let whole = gateway.messages(&messages_request(false)).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "x-ballast-route"), "degraded");
    let message: Value = whole.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "Busy; try later.");
    assert_eq!(message["stop_reason"], "end_turn");

    let streamed = gateway.messages(&messages_request(true)).await;
    assert_eq!(header(&streamed, "x-ballast-route"), "degraded");
    let events = MessageStream::read(streamed).await;
    events.assert_complete();
    assert_eq!(events.text, "Busy; try later.");
}
