//! The request's `Cache-Control`, and what one client's directives may not change for the
//! others sharing its cache space.

use std::time::Duration;

use super::{Backend, cached_gateway, chat_with, content, header, settle};
use crate::support::{FakeUpstream, Reply, chat_request};

#[tokio::test]
async fn cache_control_no_cache_no_store_and_max_age_are_honoured() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::start().await;
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        let b = backend.name();

        let stored = chat_with(&gateway, &chat_request(false), "no-store").await;
        assert_eq!(header(&stored, "x-ballast-cache"), "bypass", "{b}");
        settle().await;
        let after_no_store = gateway.chat(&chat_request(false)).await;
        assert_eq!(
            header(&after_no_store, "x-ballast-cache"),
            "miss",
            "{b}: no-store stored nothing"
        );
        settle().await;
        let fresh = chat_with(&gateway, &chat_request(false), "no-cache").await;
        assert_eq!(header(&fresh, "x-ballast-cache"), "bypass", "{b}: no-cache does not read");
        assert_eq!(upstream.hits(), 3, "{b}");

        tokio::time::sleep(Duration::from_millis(1100)).await;
        let too_old = chat_with(&gateway, &chat_request(false), "max-age=1").await;
        assert_eq!(header(&too_old, "x-ballast-cache"), "miss", "{b}: older than max-age");
        settle().await;
        let young_enough = chat_with(&gateway, &chat_request(false), "max-age=60").await;
        assert_eq!(header(&young_enough, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(upstream.hits(), 4, "{b}");
    }
}

/// A re-roll (`no-cache`) gets a new answer of its own, and so does a client whose `max-age` the
/// entry is too old for, but neither replaces the fresh entry everyone else sharing the cache
/// space is answered with. Once that entry is stale, a new answer replaces it.
#[tokio::test]
async fn a_reroll_gets_a_new_answer_but_never_replaces_a_fresh_entry_only_a_stale_one() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::scripted(
            ["answer 1", "re-roll", "younger", "after ttl"].map(Reply::completion),
        )
        .await;
        let gateway = cached_gateway(&upstream, &backend, "2s", "1h").await;
        let b = backend.name();

        let first = gateway.chat(&chat_request(false)).await;
        assert_eq!(header(&first, "x-ballast-cache"), "miss", "{b}");
        assert_eq!(content(first).await, "answer 1", "{b}");
        settle().await;
        let reroll = chat_with(&gateway, &chat_request(false), "no-cache").await;
        assert_eq!(header(&reroll, "x-ballast-cache"), "bypass", "{b}");
        assert_eq!(content(reroll).await, "re-roll", "{b}: the re-roll's own new answer");
        settle().await;
        let younger = chat_with(&gateway, &chat_request(false), "max-age=0").await;
        assert_eq!(header(&younger, "x-ballast-cache"), "miss", "{b}");
        assert_eq!(content(younger).await, "younger", "{b}");
        settle().await;
        let shared = gateway.chat(&chat_request(false)).await;
        assert_eq!(header(&shared, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(content(shared).await, "answer 1", "{b}: the fresh entry stayed");

        tokio::time::sleep(Duration::from_millis(2100)).await;
        let reroll = chat_with(&gateway, &chat_request(false), "no-cache").await;
        assert_eq!(content(reroll).await, "after ttl", "{b}");
        settle().await;
        let shared = gateway.chat(&chat_request(false)).await;
        assert_eq!(header(&shared, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(content(shared).await, "after ttl", "{b}: the stale entry was replaced");
        assert_eq!(upstream.hits(), 4, "{b}");
    }
}
