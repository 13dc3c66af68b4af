//! `ballast warm`: JSONL of requests → the same pipeline → the shared cache.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use crate::support::{FakeUpstream, NO_CACHE, RedisServer, Reply, TestGateway, openai_config};
use serde_json::json;

async fn warm(config: &str, lines: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, file) = (dir.path().join("config.yaml"), dir.path().join("requests.jsonl"));
    std::fs::write(&config_path, config).unwrap();
    std::fs::write(&file, lines).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .arg("warm")
        .arg("--config")
        .arg(&config_path)
        .arg(&file)
        .output()
        .await
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

fn request(content: &str, stream: bool) -> serde_json::Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn warm_fills_the_shared_cache_so_requests_are_hits_while_the_upstream_is_down() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let config = openai_config(&upstream.base_url(), "").replace(NO_CACHE, &cache);
    let lines = [
        request("first question", false).to_string(),
        request("second question", true).to_string(),
        "{not json".to_owned(),
        String::new(),
        request("third question", false).to_string(),
    ]
    .join("\n");

    let (code, out) = warm(&config, &lines).await;

    assert_eq!(code, Some(1), "a bad line makes the run fail: {out}");
    assert!(out.contains("3 stored, 0 already fresh, 1 failed"), "{out}");
    assert!(out.contains("line 3:"), "the bad line is named by number: {out}");
    assert_eq!(upstream.hits(), 3);

    upstream.fallback(Reply::error(503, "down"));
    let gateway = TestGateway::start(&config).await;
    for (content, stream) in
        [("first question", false), ("second question", false), ("third question", true)]
    {
        let response = gateway.chat(&request(content, stream)).await;
        assert_eq!(response.status(), 200, "{content}");
        assert_eq!(response.headers()["x-ballast-cache"], "hit", "{content}");
    }
    assert_eq!(upstream.hits(), 3, "the gateway never asked the upstream");

    let good_lines: String =
        lines.lines().filter(|line| !line.contains("not json")).collect::<Vec<_>>().join("\n");
    let (code, out) = warm(&config, &good_lines).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 stored, 3 already fresh, 0 failed"), "{out}");
}

#[tokio::test]
async fn warm_refuses_the_memory_backend() {
    let upstream = FakeUpstream::start().await;
    let config =
        openai_config(&upstream.base_url(), "").replace(NO_CACHE, "cache: { backend: memory }");

    let (code, out) = warm(&config, &request("q", false).to_string()).await;

    assert_eq!(code, Some(1));
    assert!(out.contains("warm needs the shared cache"), "{out}");
    assert_eq!(upstream.hits(), 0);
}
