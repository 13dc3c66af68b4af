//! Streamed completions: chunk-by-chunk forwarding, `[DONE]`, usage chunks, mid-stream breaks,
//! and client disconnects cancelling the upstream call.

use std::time::Duration;

use crate::support::{
    self, FakeUpstream, Reply, StreamEnd, TestGateway, chat_request, chunk_events, read_stream,
    sse_data, streamed_text,
};
use serde_json::{Value, json};

#[tokio::test]
async fn forwards_every_chunk_then_done() {
    let upstream = FakeUpstream::scripted([Reply::chunks(&["Hel", "lo", "!"])]).await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-ballast-provider"], "up");
    let events = read_stream(response).await;
    assert_eq!(events, chunk_events(&["Hel", "lo", "!"], true));
    assert_eq!(events.iter().filter(|e| *e == "[DONE]").count(), 1);
    assert_eq!(upstream.requests()[0].header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn the_first_chunk_reaches_the_client_before_the_upstream_finishes() {
    // Chunk 1 (the role chunk) goes out at once; everything after waits 2 s per event.
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: chunk_events(&["slow"], true),
        gap: Duration::from_secs(2),
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut response = gateway.chat(&chat_request(true)).await;

    let first = tokio::time::timeout(Duration::from_millis(1500), response.chunk())
        .await
        .expect("the first chunk arrives while the upstream is still waiting")
        .unwrap()
        .unwrap();

    let text = String::from_utf8_lossy(&first);
    assert_eq!(sse_data(&text)[0], chunk_events(&[], false)[0]);
}

#[tokio::test]
async fn include_usage_is_passed_upstream_and_its_usage_chunk_comes_back() {
    let mut events = chunk_events(&["a"], false);
    let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
                       "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}});
    events.push(usage.to_string());
    events.push("[DONE]".to_owned());
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: events.clone(),
        gap: Duration::ZERO,
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut request = chat_request(true);
    request["stream_options"] = json!({"include_usage": true});

    let received = read_stream(gateway.chat(&request).await).await;

    assert_eq!(upstream.requests()[0].body["stream_options"], json!({"include_usage": true}));
    assert_eq!(received, events);
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event_and_no_done() {
    for end in [StreamEnd::Close, StreamEnd::Reset] {
        let events = chunk_events(&["partial", " answer"], false);
        let upstream = FakeUpstream::scripted([Reply::Stream {
            events: events[..2].to_vec(),
            gap: Duration::ZERO,
            end,
        }])
        .await;
        let gateway = TestGateway::in_front_of(&upstream).await;

        let received = read_stream(gateway.chat(&chat_request(true)).await).await;

        assert_eq!(received[..2], events[..2], "{end:?}: chunks before the cut are delivered");
        assert_eq!(received.len(), 3, "{end:?}: one error event follows: {received:?}");
        let error: Value = serde_json::from_str(&received[2]).unwrap();
        assert_eq!(error["error"]["code"], "upstream_stream_error", "{end:?}");
        assert_eq!(error["error"]["type"], "api_error");
        assert!(!received.contains(&"[DONE]".to_owned()));
        assert_eq!(upstream.hits(), 1, "{end:?}: a broken stream is never sent again");
    }
}

#[tokio::test]
async fn a_stream_that_ends_without_done_is_an_error_not_a_clean_end() {
    // The upstream finishes its HTTP body properly but never sent `[DONE]`.
    let events = chunk_events(&["no", " terminator"], false);
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events,
        gap: Duration::ZERO,
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let received = read_stream(gateway.chat(&chat_request(true)).await).await;

    let last: Value = serde_json::from_str(received.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_error");
}

#[tokio::test]
async fn an_error_event_before_the_first_chunk_is_a_failed_attempt() {
    let error = json!({"error": {"message": "overloaded", "type": "server_error"}}).to_string();
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: vec![error],
        gap: Duration::ZERO,
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let response = gateway.chat(&chat_request(true)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-should-retry"], "false");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: chunk_events(
            &["one", "two", "three", "four", "five", "six", "seven", "eight"],
            true,
        ),
        gap: Duration::from_millis(200),
        end: StreamEnd::Finish,
    }])
    .await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    let mut response = gateway.chat(&chat_request(true)).await;
    response.chunk().await.unwrap().unwrap();

    drop(response);

    assert!(
        upstream.wait_for_hang_up(Duration::from_secs(3)).await,
        "the gateway closes its upstream connection once the client is gone"
    );
}

const MOCK: &str = "
cache: { backend: none }
providers:
  offline: { kind: mock }
models:
  chat:
    targets: [ { provider: offline, model: mock-model } ]
";

#[tokio::test]
async fn the_mock_provider_streams_the_same_text_it_answers_whole() {
    let gateway = TestGateway::start(MOCK).await;
    let whole: Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();

    let events = read_stream(gateway.chat(&chat_request(true)).await).await;

    assert_eq!(streamed_text(&events), whole["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.len() > 5, "one chunk per word, not one giant chunk");
    let usage_chunks = events.iter().filter(|e| e.contains("\"choices\":[]")).count();
    assert_eq!(usage_chunks, 0, "no usage chunk unless asked for");
}

#[tokio::test]
async fn the_mock_provider_sends_a_usage_chunk_when_asked() {
    let gateway = TestGateway::start(MOCK).await;
    let whole: Value = gateway.chat(&chat_request(false)).await.json().await.unwrap();
    let mut request = chat_request(true);
    request["stream_options"] = json!({"include_usage": true});

    let events = read_stream(gateway.chat(&request).await).await;

    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);
}

#[tokio::test]
async fn request_timeout_bounds_a_stream_only_up_to_its_first_chunk() {
    // Five events 150 ms apart: the stream lasts far longer than request_timeout (300 ms).
    let upstream = FakeUpstream::scripted([Reply::Stream {
        events: chunk_events(&["a", "b", "c"], true),
        gap: Duration::from_millis(150),
        end: StreamEnd::Finish,
    }])
    .await;
    let config = support::openai_config(&upstream.base_url(), "")
        .replace("request_timeout: 10s", "request_timeout: 300ms");
    let gateway = TestGateway::start(&config).await;

    let events = read_stream(gateway.chat(&chat_request(true)).await).await;

    assert_eq!(events.last().unwrap(), "[DONE]", "{events:?}");
    assert_eq!(streamed_text(&events), "abc");
}

#[tokio::test]
async fn a_client_that_gives_up_waiting_cancels_the_upstream_call() {
    let upstream = FakeUpstream::scripted([Reply::Hang]).await;
    let gateway = TestGateway::in_front_of(&upstream).await;

    let waiting =
        tokio::time::timeout(Duration::from_millis(300), gateway.chat(&chat_request(false))).await;

    assert!(waiting.is_err(), "the upstream never answers");
    assert!(
        upstream.wait_for_hang_up(Duration::from_secs(3)).await,
        "the gateway drops the upstream call once its client is gone"
    );
}
