//! Messages requests in `/metrics`: `ballast_requests_total` and
//! `ballast_request_duration_seconds` tell them from chat requests by their `api` label.

use crate::support::{FakeUpstream, TestGateway, chat_request, metric_sum, read_body};

use super::{messages_request, within};

#[tokio::test]
async fn messages_requests_are_counted_and_timed_with_api_messages() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::in_front_of(&upstream).await;
    for stream in [false, true] {
        let response = gateway.messages(&messages_request(stream)).await;
        assert_eq!(response.status(), 200);
        read_body(response).await;
    }
    within(within(gateway.chat(&chat_request(false))).await.text()).await.unwrap();

    let metrics = within(gateway.metrics()).await;

    let requests = |api| {
        let labels = [("api", api), ("model", "chat"), ("route", "primary"), ("status", "200")];
        metric_sum(&metrics, "ballast_requests_total", &labels)
    };
    assert_eq!(requests("messages"), 2.0, "{metrics}");
    assert_eq!(requests("chat"), 1.0);
    for stream in ["true", "false"] {
        let labels = [("api", "messages"), ("model", "chat"), ("stream", stream)];
        assert_eq!(
            metric_sum(&metrics, "ballast_request_duration_seconds_count", &labels),
            1.0,
            "stream={stream}"
        );
    }
}
