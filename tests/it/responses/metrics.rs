//! Responses requests in `/metrics`: `ballast_requests_total` tells them from chat requests by
//! their `api` label, and their tokens and cost are counted from Responses' usage names, whole
//! or streamed.

use super::{NATIVE, response_body, response_events, responses_request};
use crate::support::{
    FakeUpstream, NO_CACHE, Reply, StreamEnd, TestGateway, metric_sum, read_body, targets_config,
    tokens_counted,
};

#[tokio::test]
async fn responses_requests_are_counted_with_api_responses_and_their_tokens_from_usage() {
    let upstream = FakeUpstream::scripted([
        Reply::json(200, &response_body("resp_counted", "counted")),
        Reply::json(200, &response_body("resp_counted", "counted")),
        Reply::responses_stream(
            &response_events("resp_streamed", &["count", "ed"]),
            StreamEnd::Finish,
        ),
    ])
    .await;
    let config = targets_config(&[("up", "openai", &upstream, NATIVE)], NO_CACHE, "")
        + "pricing:\n  up-model: { input: 1.0, output: 2.0 }\n";
    let gateway = TestGateway::start(&config).await;
    for stream in [false, false, true] {
        let response = gateway.responses(&responses_request(stream)).await;
        assert_eq!(response.status(), 200);
        read_body(response).await;
    }

    let metrics = gateway.metrics().await;

    let labels = [("api", "responses"), ("model", "chat"), ("route", "primary"), ("status", "200")];
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &labels), 3.0, "{metrics}");
    assert_eq!(metric_sum(&metrics, "ballast_requests_total", &[("api", "chat")]), 0.0);
    assert_eq!(tokens_counted(&metrics, "up"), (36.0, 15.0), "12 in and 5 out, three times");
    let cost =
        metric_sum(&metrics, "ballast_cost_usd_total", &[("model", "chat"), ("provider", "up")]);
    assert!((cost - 3.0 * 22e-6).abs() < 1e-9, "12 × $1 + 5 × $2 per million, three times: {cost}");
}
