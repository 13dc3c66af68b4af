//! Single-flight: identical concurrent misses make one upstream call, and a slow leader holds
//! its followers back only so long.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{Backend, cached_gateway, content, header, settle};
use crate::support::{
    self, FakeUpstream, NO_CACHE, Reply, StreamEnd, TestGateway, chat_request, chunk_events,
    read_stream, streamed_text,
};

#[tokio::test]
async fn fifty_identical_concurrent_misses_make_one_upstream_call() {
    for backend in Backend::both().await {
        let upstream = FakeUpstream::start().await;
        upstream.fallback(Reply::Delay(
            Duration::from_millis(300),
            Box::new(Reply::completion("shared")),
        ));
        let gateway = cached_gateway(&upstream, &backend, "1h", "1h").await;
        let request = chat_request(false);

        let answers = futures_util::future::join_all((0..50).map(|_| gateway.chat(&request))).await;

        for answer in answers {
            assert_eq!(answer.status(), 200);
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], "shared");
        }
        assert_eq!(upstream.hits(), 1, "{}", backend.name());
        let metrics =
            gateway.client.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("ballast_coalesced_requests_total{model=\"chat\"} 49"),
            "{metrics}"
        );
    }
}

/// A leader whose stream crawls (a slow upstream, or a client that stopped reading) holds its
/// followers back for the follower patience only: the longest `first_byte` of the model's
/// targets, 800 ms here (the leader's first content, behind a 500 ms gap, comes within it).
/// Then the follower calls the upstream itself, and its answer, stored first, is not replaced
/// by the leader's when that one ends.
#[tokio::test]
async fn a_follower_of_a_crawling_stream_calls_the_upstream_itself_after_its_patience() {
    for backend in Backend::both().await {
        let crawling = Reply::Stream {
            events: chunk_events(&["slow", " and", " steady"], true),
            gap: Duration::from_millis(500),
            end: StreamEnd::Finish,
        };
        let upstream =
            FakeUpstream::scripted([crawling, Reply::completion("the follower's own")]).await;
        let config =
            support::openai_config(&upstream.base_url(), "timeouts: { first_byte: 800ms }")
                .replace(NO_CACHE, &backend.yaml("1h", "1h"));
        let gateway = TestGateway::start(&config).await;
        let b = backend.name();
        let started = Instant::now();

        let leader = async {
            let events = read_stream(gateway.chat(&chat_request(true)).await).await;
            (started.elapsed(), events)
        };
        let follower = async {
            for _ in 0..200 {
                if upstream.hits() > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(upstream.hits(), 1, "{b}: the leader is streaming");
            let response = gateway.chat(&chat_request(false)).await;
            let cache = header(&response, "x-ballast-cache").to_owned();
            (started.elapsed(), cache, content(response).await)
        };
        let ((leader_done, events), (follower_done, follower_cache, follower_text)) =
            tokio::join!(leader, follower);

        assert_eq!(streamed_text(&events), "slow and steady", "{b}: the leader's own stream");
        assert!(leader_done >= Duration::from_millis(2000), "{b}: the leader took {leader_done:?}");
        assert!(
            follower_done < Duration::from_millis(1200),
            "{b}: the follower was answered after {follower_done:?}"
        );
        assert_eq!(
            (follower_cache.as_str(), follower_text.as_str()),
            ("miss", "the follower's own")
        );
        assert_eq!(upstream.hits(), 2, "{b}");
        settle().await;
        let later = gateway.chat(&chat_request(false)).await;
        assert_eq!(header(&later, "x-ballast-cache"), "hit", "{b}");
        assert_eq!(
            content(later).await,
            "the follower's own",
            "{b}: the first answer stored stays"
        );
        let metrics = gateway.metrics().await;
        assert!(!metrics.contains("ballast_coalesced_requests_total{"), "{b}: {metrics}");
    }
}
