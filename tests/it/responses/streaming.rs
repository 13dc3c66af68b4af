//! Streams never lie (SPEC §4): a Responses stream is held until its first content, so an
//! upstream that opens one (`response.created`, `response.in_progress`, an empty item or part)
//! and then fails is an ordinary failed attempt and the client sees one clean stream from the
//! next target; once content has been sent, a break ends the stream with an `error` event and
//! `response.failed`, its sequence numbers continuing, never `response.completed`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    NATIVE, ResponseStream, header, named_event, numbered, opening_events, response_events,
    responses_request, sse_blocks,
};
use crate::support::{
    FakeUpstream, NO_CACHE, Reply, StreamEnd, TestGateway, chunk_events, read_body, sse_events,
    targets_config,
};

/// The opening of a native stream, its message added empty and the message's part added empty:
/// nothing a client can show yet.
fn empty_opening(id: &str) -> Vec<Value> {
    let events = response_events(id, &["never sent"]);
    events[..4].to_vec()
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_content_fails_over_and_the_client_sees_one_clean_stream()
 {
    let error_event = json!({"type": "error", "error": {"type": "server_error", "code": "server_error",
        "message": "The server had an error while processing your request.", "param": null}});
    let failed = {
        let mut failed = opening_events("resp_first")[0]["response"].clone();
        failed["status"] = json!("failed");
        failed["error"] = json!({"code": "server_error", "message": "The model failed."});
        json!({"type": "response.failed", "response": failed})
    };
    let with = |mut events: Vec<Value>, last: Value| {
        events.push(last);
        numbered(events)
    };
    let cases: Vec<(&str, &str, Reply, &str)> = vec![
        (
            "an error event after the opening",
            "openai",
            Reply::responses_stream(
                &with(opening_events("resp_first"), error_event),
                StreamEnd::Finish,
            ),
            NATIVE,
        ),
        (
            "response.failed after an empty item and part",
            "openai",
            Reply::responses_stream(&with(empty_opening("resp_first"), failed), StreamEnd::Finish),
            NATIVE,
        ),
        (
            "a close after an empty item and part",
            "azure",
            Reply::responses_stream(&empty_opening("resp_first"), StreamEnd::Close),
            "",
        ),
        (
            "a reset after the opening",
            "openai",
            Reply::responses_stream(&opening_events("resp_first"), StreamEnd::Reset),
            NATIVE,
        ),
        (
            "a clean end with no terminal event",
            "openai",
            Reply::responses_stream(&empty_opening("resp_first"), StreamEnd::Finish),
            NATIVE,
        ),
        (
            "a stall past first_byte after the opening",
            "openai",
            Reply::responses_stream(&opening_events("resp_first"), StreamEnd::Stall),
            "native_responses: true, timeouts: { first_byte: 300ms }",
        ),
        (
            "a chat target's close after its role chunk",
            "openai",
            Reply::Stream {
                events: chunk_events(&["never"], false)[..1].to_vec(),
                gap: Duration::ZERO,
                end: StreamEnd::Close,
            },
            "",
        ),
    ];
    for (what, kind, reply, extra) in cases {
        let primary = FakeUpstream::scripted([reply]).await;
        let events = response_events("resp_backup", &["from ", "the backup"]);
        let backup =
            FakeUpstream::scripted([Reply::responses_stream(&events, StreamEnd::Finish)]).await;
        let config = targets_config(
            &[("primary", kind, &primary, extra), ("backup", "openai", &backup, NATIVE)],
            NO_CACHE,
            "",
        );
        let gateway = TestGateway::start(&config).await;

        let response = gateway.responses(&responses_request(true)).await;

        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(header(&response, "x-ballast-provider"), "backup", "{what}");
        assert_eq!(header(&response, "x-ballast-route"), "failover", "{what}");
        let body = read_body(response).await;
        let sent: Vec<String> = events.iter().map(named_event).collect();
        assert_eq!(sse_blocks(&body), sent, "{what}: the backup's stream and nothing else");
        let stream = ResponseStream::of(&sse_events(&body));
        stream.assert_complete();
        assert_eq!(stream.text, "from the backup", "{what}");
        assert_eq!((primary.hits(), backup.hits()), (1, 1), "{what}");
    }
}

#[tokio::test]
async fn a_native_stream_cut_after_content_ends_with_an_error_event_then_response_failed() {
    let content = response_events("resp_cut", &["partial", " answer"])[..5].to_vec();
    let upstream_error = json!({"type": "error", "sequence_number": 5,
        "error": {"type": "server_error", "code": "server_error", "message": "boom", "param": null}});
    let mut with_error = content.clone();
    with_error.push(upstream_error);
    let stalling = "native_responses: true, timeouts: { idle: 200ms }";
    for (what, reply, extra) in [
        ("a reset", Reply::responses_stream(&content, StreamEnd::Reset), NATIVE),
        ("a close", Reply::responses_stream(&content, StreamEnd::Close), NATIVE),
        (
            "a clean end with no terminal event",
            Reply::responses_stream(&content, StreamEnd::Finish),
            NATIVE,
        ),
        (
            "an upstream error event",
            Reply::responses_stream(&with_error, StreamEnd::Finish),
            NATIVE,
        ),
        ("a stall past idle", Reply::responses_stream(&content, StreamEnd::Stall), stalling),
    ] {
        let primary = FakeUpstream::scripted([reply]).await;
        let backup = FakeUpstream::start().await;
        let config = targets_config(
            &[("primary", "openai", &primary, extra), ("backup", "openai", &backup, NATIVE)],
            NO_CACHE,
            "",
        );
        let gateway = TestGateway::start(&config).await;

        let response = gateway.responses(&responses_request(true)).await;

        assert_eq!(response.status(), 200, "{what}");
        let body = read_body(response).await;
        let blocks = sse_blocks(&body);
        let sent: Vec<String> = content.iter().map(named_event).collect();
        assert_eq!(blocks[..sent.len()], sent[..], "{what}: the upstream's events, unchanged");
        assert_eq!(blocks.len(), sent.len() + 2, "{what}: then two events: {blocks:#?}");
        let stream = ResponseStream::of(&sse_events(&body));
        stream.assert_broken();
        assert_eq!(stream.text, "partial", "{what}: what came before the break");
        let error = stream.error.as_ref().unwrap();
        assert_eq!(error["sequence_number"], 5, "{what}: the numbering goes on");
        assert_eq!(stream.terminal.as_ref().unwrap()["sequence_number"], 6, "{what}");
        assert_eq!(stream.response()["id"], "resp_cut", "{what}: the response that broke");
        assert_eq!((primary.hits(), backup.hits()), (1, 0), "{what}: nothing is sent again");
    }
}

#[tokio::test]
async fn a_translated_stream_cut_after_content_ends_with_an_error_event_then_response_failed() {
    for end in [StreamEnd::Reset, StreamEnd::Close] {
        let events = chunk_events(&["partial", " answer"], false)[..2].to_vec();
        let primary =
            FakeUpstream::scripted([Reply::Stream { events, gap: Duration::ZERO, end }]).await;
        let backup = FakeUpstream::start().await;
        let config = targets_config(
            &[("primary", "openai", &primary, ""), ("backup", "openai", &backup, "")],
            NO_CACHE,
            "",
        );
        let gateway = TestGateway::start(&config).await;

        let stream = ResponseStream::read(gateway.responses(&responses_request(true)).await).await;

        stream.assert_broken();
        assert_eq!(stream.text, "partial", "{end:?}");
        assert_eq!(stream.response()["id"], stream.created["id"], "{end:?}");
        assert_eq!((primary.hits(), backup.hits()), (1, 0), "{end:?}");
    }
}
