//! Responses requests in `/metrics`: `ballast_requests_total` tells them from chat requests by
//! their `api` label, and their tokens are counted from Responses' usage names.

use super::{NATIVE, response_body, responses_request};
use crate::support::{
    FakeUpstream, NO_CACHE, Reply, TestGateway, metric_sum, read_body, targets_config,
    tokens_counted,
};

#[tokio::test]
async fn responses_requests_are_counted_with_api_responses_and_their_tokens_from_usage() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &response_body("resp_counted", "counted")));
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, NATIVE)], NO_CACHE, ""))
            .await;
    for _ in 0..2 {
        let response = gateway.responses(&responses_request(false)).await;
        assert_eq!(response.status(), 200);
        read_body(response).await;
    }

    let metrics = gateway.metrics().await;

    let labels = [("api", "responses"), ("model", "chat"), ("route", "primary"), ("status", "200")];
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &labels), 2.0, "{metrics}");
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &[("api", "chat")]), 0.0);
    assert_eq!(tokens_counted(&metrics, "up"), (24.0, 10.0), "12 in and 5 out, twice");
}
