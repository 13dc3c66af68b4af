//! What is stored and served: hits that skip the upstream, streamed and whole answers sharing
//! one entry, errors and broken streams never stored, stale answers when every target fails.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Backend, cached_gateway, header, settle};
use crate::support::{
    self, FakeUpstream, NO_CACHE, Reply, StreamEnd, TestGateway, chat_request, chunk_events,
    read_stream, streamed_text, two_targets_config,
};

#[tokio::test]
async fn a_second_identical_request_is_a_hit_that_skips_the_upstream() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted([Reply::completion("cached words")]).await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;

        let first = gateway.chat(&chat_request(false)).await;
        assert_eq!(
            (header(&first, "x-ballast-cache"), header(&first, "x-ballast-route")),
            ("miss", "primary")
        );
        let first: Value = first.json().await.unwrap();
        settle().await;
        let second = gateway.chat(&chat_request(false)).await;

        let b = backend.name();
        assert_eq!(header(&second, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(header(&second, "x-ballast-route"), "cache", "{b}");
        assert_eq!(header(&second, "x-ballast-attempts"), "0", "{b}");
        assert_eq!(header(&second, "x-ballast-provider"), "up", "{b}: who produced it first");
        assert!(second.headers().contains_key("age"), "{b}");
        assert_eq!(second.json::<Value>().await.unwrap(), first, "{b}");
        assert_eq!(upstream.hits(), 1, "{b}");
        let mut other = chat_request(false);
        other["messages"][0]["content"] = json!("a different question");
        assert_eq!(header(&gateway.chat(&other).await, "x-ballast-cache"), "miss", "{b}");
    }
}

#[tokio::test]
async fn a_streamed_answer_serves_whole_requests_and_replays_with_its_chunking() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted([Reply::chunks(&["one", " two", " three"])]).await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        let original = read_stream(gateway.chat(&chat_request(true)).await).await;
        settle().await;

        let whole = gateway.chat(&chat_request(false)).await;
        assert_eq!(header(&whole, "x-ballast-cache"), "hit", "{}", backend.name());
        let whole: Value = whole.json().await.unwrap();
        assert_eq!(whole["choices"][0]["message"]["content"], "one two three");
        assert_eq!(whole["object"], "chat.completion");
        let replay = gateway.chat(&chat_request(true)).await;
        assert_eq!(header(&replay, "x-ballast-cache"), "hit");
        let replayed = read_stream(replay).await;
        assert_eq!(replayed, original, "{}: the same chunks, the same [DONE]", backend.name());
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn a_whole_answer_serves_stream_requests_as_a_valid_stream() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted([Reply::completion("a whole cached answer")]).await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        gateway.chat(&chat_request(false)).await.text().await.unwrap();
        settle().await;

        let events = read_stream(gateway.chat(&chat_request(true)).await).await;

        assert_eq!(streamed_text(&events), "a whole cached answer", "{}", backend.name());
        assert_eq!(events.last().unwrap(), "[DONE]");
        assert!(events.len() > 4, "replayed in pieces, not one giant chunk");
        assert!(
            !events.iter().any(|e| e.contains("\"choices\":[]")),
            "no usage chunk unless asked for"
        );
        let mut with_usage = chat_request(true);
        with_usage["stream_options"] = json!({"include_usage": true});
        let events = read_stream(gateway.chat(&with_usage).await).await;
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 8);
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn errors_and_broken_streams_are_never_cached() {
    for backend in Backend::both().await {
        let cut = Reply::Stream {
            events: chunk_events(&["partial"], false)[..2].to_vec(),
            gap: Duration::ZERO,
            end: StreamEnd::Close,
        };
        let upstream =
            FakeUpstream::scripted([Reply::error(500, "boom"), Reply::error(400, "bad"), cut])
                .await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;

        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 503);
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 400);
        read_stream(gateway.chat(&chat_request(true)).await).await;
        settle().await;
        let next = gateway.chat(&chat_request(false)).await;

        assert_eq!(header(&next, "x-ballast-cache"), "miss", "{}", backend.name());
        assert_eq!(upstream.hits(), 4);
    }
}

#[tokio::test]
async fn a_stale_answer_is_served_when_every_target_fails_but_not_after_stale_ttl() {
    for backend in Backend::both().await {
        let primary = FakeUpstream::scripted([Reply::completion("remembered")]).await;
        let backup = FakeUpstream::start().await;
        let config = two_targets_config(&primary, &backup, "", "")
            .replace(NO_CACHE, &backend.yaml("300ms", "1s"));
        let gateway = TestGateway::start(&config).await;
        gateway.chat(&chat_request(false)).await.text().await.unwrap();
        primary.fallback(Reply::error(503, "down"));
        backup.fallback(Reply::Reset);
        tokio::time::sleep(Duration::from_millis(400)).await;

        let stale = gateway.chat(&chat_request(false)).await;

        let b = backend.name();
        assert_eq!(stale.status(), 200, "{b}");
        assert_eq!(header(&stale, "x-ballast-cache"), "stale", "{b}");
        assert_eq!(header(&stale, "x-ballast-route"), "stale", "{b}");
        assert_eq!(header(&stale, "x-ballast-attempts"), "2", "{b}: both targets were tried first");
        assert!(stale.headers().contains_key("age"));
        assert_eq!(
            stale.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
            "remembered"
        );

        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(gateway.chat(&chat_request(false)).await.status(), 503, "{b}: past stale_ttl");
    }
}

#[tokio::test]
async fn a_stale_answer_never_replaces_a_client_error() {
    let upstream = FakeUpstream::scripted([Reply::completion("old")]).await;
    let gateway = cached_gateway(&upstream, &Backend::Memory, "200ms", "1h").await;
    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    upstream.fallback(Reply::error(400, "now your request is wrong"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(gateway.chat(&chat_request(false)).await.status(), 400);
}

#[tokio::test]
async fn a_model_with_cache_false_is_not_cached() {
    let upstream = FakeUpstream::start().await;
    let config = support::openai_config(&upstream.base_url(), "")
        .replace(NO_CACHE, "cache: { backend: memory }")
        .replace("  chat:\n", "  chat:\n    cache: false\n");
    let gateway = TestGateway::start(&config).await;

    for _ in 0..2 {
        assert_eq!(header(&gateway.chat(&chat_request(false)).await, "x-ballast-cache"), "off");
    }
    assert_eq!(upstream.hits(), 2);
}
