//! Responses in the cache: a repeated request is a hit, whatever the target's dialect and
//! whatever is in the members that do not change an answer (`user`, `metadata`); a
//! whole answer serves a streaming repeat as Responses events ending in `response.completed`,
//! and a streamed one is replayed as it came.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    MEMORY, NATIVE, ResponseStream, chat_completion, header, named_event, output_text,
    response_body, response_events, responses_request, sse_blocks,
};
use crate::support::{FakeUpstream, Reply, StreamEnd, TestGateway, read_body, targets_config};

/// Lets the background cache write land.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

/// A caching gateway in front of one target, `up`, native (`openai` with `native_responses`)
/// or chat (`openai` without), which answers `reply` whenever asked.
async fn cached(kind: &str, reply: Reply) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(reply);
    let extra = if kind == "native" { NATIVE } else { "" };
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, extra)], MEMORY, ""))
            .await;
    (upstream, gateway)
}

#[tokio::test]
async fn a_repeated_identical_responses_request_is_a_cache_hit() {
    for kind in ["native", "chat"] {
        let reply = if kind == "native" {
            Reply::json(200, &response_body("resp_cached", "cached words"))
        } else {
            Reply::json(200, &chat_completion("cached words", &[], "stop"))
        };
        let (upstream, gateway) = cached(kind, reply).await;

        let first = gateway.responses(&responses_request(false)).await;
        assert_eq!(first.status(), 200, "{kind}");
        assert_eq!(header(&first, "x-ballast-cache"), "miss", "{kind}");
        let first: Value = first.json().await.unwrap();
        assert_eq!(output_text(&first), "cached words", "{kind}");
        settle().await;
        let mut same = responses_request(false);
        same["user"] = json!("someone-else");
        same["metadata"] = json!({"trace": "t-1"});
        for request in [responses_request(false), same] {
            let again = gateway.responses(&request).await;

            assert_eq!(again.status(), 200, "{kind}");
            assert_eq!(header(&again, "x-ballast-cache"), "hit", "{kind}: {request}");
            assert_eq!(header(&again, "x-ballast-route"), "cache", "{kind}");
            assert_eq!(header(&again, "x-ballast-attempts"), "0", "{kind}");
            assert_eq!(header(&again, "x-ballast-provider"), "up", "{kind}: who produced it");
            assert_eq!(again.json::<Value>().await.unwrap(), first, "{kind}: the same Response");
        }
        assert_eq!(upstream.hits(), 1, "{kind}");
        let mut other = responses_request(false);
        other["input"] = json!("a different question");
        let other = gateway.responses(&other).await;
        assert_eq!(header(&other, "x-ballast-cache"), "miss", "{kind}");
    }
}

#[tokio::test]
async fn a_whole_answer_serves_a_streamed_repeat_as_events_ending_in_response_completed() {
    let (upstream, gateway) =
        cached("native", Reply::json(200, &response_body("resp_whole", "stored whole"))).await;

    let first = gateway.responses(&responses_request(false)).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    settle().await;
    let again = gateway.responses(&responses_request(true)).await;

    assert_eq!(header(&again, "x-ballast-cache"), "hit");
    let stream = ResponseStream::read(again).await;
    stream.assert_complete();
    assert_eq!(stream.text, "stored whole");
    assert_eq!(stream.created["id"], "resp_whole");
    assert_eq!(stream.response()["output"], first["output"], "the stored Response, whole");
    assert_eq!(stream.response()["usage"], first["usage"]);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_streamed_answer_is_replayed_as_it_came_and_serves_a_whole_repeat() {
    let events = response_events("resp_streamed", &["stored ", "streamed"]);
    let (upstream, gateway) =
        cached("native", Reply::responses_stream(&events, StreamEnd::Finish)).await;

    let first = gateway.responses(&responses_request(true)).await;
    assert_eq!(header(&first, "x-ballast-cache"), "miss");
    read_body(first).await;
    settle().await;
    let streamed = gateway.responses(&responses_request(true)).await;
    let whole = gateway.responses(&responses_request(false)).await;

    assert_eq!(header(&streamed, "x-ballast-cache"), "hit");
    let body = read_body(streamed).await;
    let sent: Vec<String> = events.iter().map(named_event).collect();
    assert_eq!(sse_blocks(&body), sent, "the upstream's events, replayed");
    assert_eq!(header(&whole, "x-ballast-cache"), "hit");
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(whole, events.last().unwrap()["response"], "the terminal event's Response");
    assert_eq!(upstream.hits(), 1);
}
