//! Logs: one line per request with what happened to it, and never a message content or a key,
//! at any level.

mod support;

use serde_json::{Value, json};
use support::{CLIENT_KEY, FakeUpstream, GatewayProcess, UPSTREAM_KEY, openai_config};

const PROMPT: &str = "my-private-prompt-text-4711";

#[tokio::test]
async fn logs_one_line_per_request_and_never_contents_or_keys_even_at_trace() {
    let upstream = FakeUpstream::start().await;
    let config =
        openai_config(&upstream.base_url(), "headers: { x-extra-secret: hdr-secret-0815 }");
    let gateway = GatewayProcess::start(&config, &[("BALLAST_LOG", "trace")]);
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let body = json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]});
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .header("x-request-id", format!("trace-me-{stream}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }

    let logs = gateway.stop();

    assert!(logs.lines().any(|line| line.contains("\"level\":\"TRACE\"")), "trace logging was on");
    for secret in [PROMPT, CLIENT_KEY, UPSTREAM_KEY, "hdr-secret-0815", "fake answer"] {
        assert!(!logs.contains(secret), "`{secret}` appears in the logs");
    }
    let finished: Vec<Value> = logs
        .lines()
        .filter(|line| {
            line.contains("finished processing request") && line.contains("/v1/chat/completions")
        })
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(finished.len(), 2, "one line per request");
    for line in &finished {
        let span = &line["span"];
        assert!(span["request_id"].as_str().unwrap().starts_with("trace-me-"), "{line}");
        assert_eq!(span["model"], "chat");
        assert_eq!(span["provider"], "up");
        assert_eq!(span["route"], "primary");
        assert_eq!(span["attempts"], 1);
        assert_eq!(span["cache"], "off");
        assert_eq!(line["fields"]["status"], 200);
        assert!(line["fields"]["latency"].is_string());
    }
}
