//! Logs: one line per request with what happened to it, and never a message content or a key,
//! at any level.

use crate::support::{self, CLIENT_KEY, FakeUpstream, GatewayProcess, UPSTREAM_KEY, openai_config};
use serde_json::{Value, json};

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

#[tokio::test]
async fn no_key_appears_in_any_output_after_a_run_at_trace_level() {
    const GATEWAY_KEY: &str = "gw-key-team-a-abcdef012345";
    let upstream = FakeUpstream::start().await;
    upstream
        .push(support::Reply::error(401, &format!("Incorrect API key provided: {UPSTREAM_KEY}")));
    let config = openai_config(&upstream.base_url(), "headers: { x-org-secret: hdr-secret-0815 }")
        .replace(
            "models:\n",
            &format!("auth:\n  keys:\n    - {{ name: team-a, key: '{GATEWAY_KEY}' }}\nmodels:\n"),
        );
    let gateway = GatewayProcess::start(&config, &[("BALLAST_LOG", "trace")]);
    let client = reqwest::Client::new();
    let mut seen = String::new();
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": PROMPT}]});
    for key in [GATEWAY_KEY, GATEWAY_KEY, "not-the-key-0000000000"] {
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        seen.push_str(&format!("{:?}", response.headers()));
        seen.push_str(&response.text().await.unwrap());
    }
    for path in ["/status", "/metrics", "/v1/models", "/readyz"] {
        let response = client.get(gateway.url(path)).bearer_auth(GATEWAY_KEY).send().await.unwrap();
        seen.push_str(&response.text().await.unwrap());
    }

    seen.push_str(&gateway.stop());

    for secret in [GATEWAY_KEY, UPSTREAM_KEY, "hdr-secret-0815", PROMPT] {
        assert!(!seen.contains(secret), "`{secret}` appears in what the gateway wrote");
    }
    assert!(seen.contains("team-a"), "the key's name is what identifies the caller");
}

#[test]
fn an_open_gateway_warns_when_it_listens_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.yaml");
    std::fs::write(&path, "providers:\n  m: { kind: mock }\nmodels:\n  chat: { targets: [ { provider: m, model: x } ] }\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["serve", "--log-format", "json", "--listen", "0.0.0.0:0", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in
        std::io::BufRead::lines(std::io::BufReader::new(stderr)).take(20).map_while(Result::ok)
    {
        let done = line.contains("\"listening\"");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    assert!(lines.iter().any(|line| line.contains("no `auth` keys")), "{lines:#?}");
}

/// Out of process, so that no other test's thread shares the tracing callsites: the in-process
/// version of this check depended on process-wide callsite caching and failed one run in ten.
#[tokio::test]
async fn a_request_with_a_thousand_invalid_tool_arguments_logs_one_line_that_counts_them() {
    let upstream = FakeUpstream::scripted([support::Reply::json(
        200,
        &support::json_fixture("anthropic_message.json"),
    )])
    .await;
    let gateway = GatewayProcess::start(&support::anthropic_config(&upstream, ""), &[]);
    let calls: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"id": format!("call_{i}"), "type": "function",
                   "function": {"name": "f", "arguments": "not json"}})
        })
        .collect();
    let body = json!({"model": "chat", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": calls},
        {"role": "user", "content": "and?"},
    ]});
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let logs = gateway.stop();
    let warnings: Vec<&str> =
        logs.lines().filter(|line| line.contains("are not JSON objects")).collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("\"count\":1000"), "{}", warnings[0]);
}

#[tokio::test]
async fn requests_are_answered_while_stderr_is_stuck_and_the_dropped_lines_are_counted() {
    let upstream = FakeUpstream::start().await;
    let config = openai_config(&upstream.base_url(), "");
    // At trace every request logs many lines (the server's, hyper's; upstream connections are
    // ballast's own and say little): the pipe (64 KiB) fills, then the 4 MiB that may wait,
    // and only then are lines dropped.
    let gateway = GatewayProcess::start_with_logs_unread(&config, &[("BALLAST_LOG", "trace")]);
    let client = reqwest::Client::new();
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let dropped = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("ballast_log_lines_dropped_total "))
            .map_or(0, |value| value.trim().parse().unwrap())
    };
    let mut seen = 0;
    for _ in 0..400 {
        let sends = (0..20).map(|_| {
            let request = client
                .post(gateway.url("/v1/chat/completions"))
                .bearer_auth(CLIENT_KEY)
                .json(&body)
                .timeout(std::time::Duration::from_secs(5))
                .send();
            async move { request.await.unwrap().status() }
        });
        for status in futures_util::future::join_all(sends).await {
            assert_eq!(status, 200, "a stuck stderr must not hold requests up");
        }
        let metrics = client.get(gateway.url("/metrics")).send().await.unwrap();
        seen = dropped(&metrics.text().await.unwrap());
        if seen > 0 {
            break;
        }
    }
    assert!(seen > 0, "lines beyond the 4 MiB that may wait are dropped and counted");

    let logs = gateway.stop();
    assert!(logs.contains("finished processing request"), "what waited is written in the end");
}
