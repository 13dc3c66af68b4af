//! Upstream connections to a plain-HTTP upstream: kept open and reused across requests, never
//! reused once the upstream closed one or said it would.

use std::time::Duration;

use crate::support::{
    FakeUpstream, Reply, TestGateway, chat_request, metric_sum, read_body, read_stream,
};

/// The upstream attempts `gateway` counted with `outcome` (a failure class, or `ok`).
async fn attempts_that_ended(gateway: &TestGateway, outcome: &str) -> f64 {
    let metrics = gateway.metrics().await;
    metric_sum(&metrics, "ballast_upstream_requests_total", &[("outcome", outcome)])
}

#[tokio::test]
async fn one_upstream_connection_carries_request_after_request() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    for stream in [false, true, false, true] {
        let response = gateway.chat(&chat_request(stream)).await;
        assert_eq!(response.status(), 200);
        if stream {
            assert!(read_stream(response).await.iter().any(|data| data == "[DONE]"));
        } else {
            assert!(read_body(response).await.contains("fake answer"));
        }
    }
    assert_eq!((upstream.hits(), upstream.connections()), (4, 1));
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_costs_no_failed_attempt() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::ThenClose(Box::new(Reply::completion("closing"))));
    let gateway = TestGateway::in_front_of(&upstream).await;
    for _ in 0..3 {
        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.status(), 200);
        assert!(read_body(response).await.contains("closing"));
        // Long enough for the upstream's close to reach the gateway before the next request.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((upstream.hits(), upstream.connections()), (3, 3), "each request on a new one");
    assert_eq!(attempts_that_ended(&gateway, "ok").await, 3.0);
    assert_eq!(attempts_that_ended(&gateway, "server_error").await, 0.0);
}

#[tokio::test]
async fn an_answer_that_says_connection_close_ends_its_connections_use() {
    let upstream = FakeUpstream::start().await;
    let body = crate::support::completion_body("bye").to_string();
    let headers = vec![("connection".to_owned(), "close".to_owned())];
    upstream.fallback(Reply::Respond { status: 200, headers, body });
    let gateway = TestGateway::in_front_of(&upstream).await;
    for _ in 0..2 {
        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.status(), 200);
        assert!(read_body(response).await.contains("bye"));
    }
    assert_eq!((upstream.hits(), upstream.connections()), (2, 2));
}
