//! `ballast warm`: JSONL of requests → the same pipeline → the shared cache.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use crate::support::{FakeUpstream, NO_CACHE, RedisServer, Reply, TestGateway, openai_config};
use serde_json::json;

async fn warm(config: &str, lines: &str) -> (Option<i32>, String) {
    warm_with(config, lines, &[]).await
}

/// Runs `ballast warm` with `args` before the file.
async fn warm_with(config: &str, lines: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, file) = (dir.path().join("config.yaml"), dir.path().join("requests.jsonl"));
    std::fs::write(&config_path, config).unwrap();
    std::fs::write(&file, lines).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .arg("warm")
        .arg("--config")
        .arg(&config_path)
        .args(args)
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
async fn warm_with_api_messages_fills_messages_entries_and_no_chat_ones() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let config = openai_config(&upstream.base_url(), "").replace(NO_CACHE, &cache);
    let messages = |content: &str| {
        json!({"model": "chat", "max_tokens": 64,
               "messages": [{"role": "user", "content": content}]})
    };
    let lines = [messages("first question").to_string(), messages("second question").to_string()];

    let (code, out) = warm_with(&config, &lines.join("\n"), &["--api", "messages"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 stored, 0 already fresh, 0 failed"), "{out}");
    let (code, out) = warm_with(&config, &lines.join("\n"), &["--api", "messages"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 stored, 2 already fresh, 0 failed"), "{out}");
    assert_eq!(upstream.hits(), 2);

    upstream.fallback(Reply::error(503, "down"));
    let gateway = TestGateway::start(&config).await;
    let response = gateway.messages(&messages("first question")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-cache"], "hit");
    let message: serde_json::Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message", "stored as a Message");
    let chat = gateway.chat(&request("first question", false)).await;
    assert_ne!(chat.status(), 200, "no chat entry was warmed, and the upstream is down");
    assert_eq!(upstream.hits(), 2 + 1, "only the chat request reached the upstream");
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

const KEY_A: &str = "sk-gw-team-a-0123456789";
const KEY_B: &str = "sk-gw-team-b-0123456789";

/// Model `chat` behind gateway keys `team-a` and `team-b`, each with its own cache space.
fn keyed_config(upstream: &FakeUpstream, redis: &RedisServer) -> String {
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let auth = format!(
        "auth:\n  keys:\n    - {{ name: team-a, key: '{KEY_A}' }}\n    - {{ name: team-b, key: '{KEY_B}' }}\n"
    );
    openai_config(&upstream.base_url(), "").replace(NO_CACHE, &format!("{cache}\n{auth}"))
}

async fn ask_with_key(gateway: &TestGateway, key: &str, content: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&request(content, false))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn warm_with_key_name_fills_that_keys_cache_space_and_no_other() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let config = keyed_config(&upstream, &redis);

    let (code, out) =
        warm_with(&config, &request("warmed", false).to_string(), &["--key-name", "team-a"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 stored, 0 already fresh, 0 failed"), "{out}");

    let gateway = TestGateway::start(&config).await;
    let response = ask_with_key(&gateway, KEY_A, "warmed").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-cache"], "hit", "team-a reads its warmed space");
    let response = ask_with_key(&gateway, KEY_B, "warmed").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ballast-cache"], "miss", "team-b's space was not warmed");
    assert_eq!(upstream.hits(), 2, "one call to warm, one for team-b");
}

#[tokio::test]
async fn warm_refuses_what_would_fill_a_space_no_client_reads() {
    let redis = RedisServer::start().await;
    let upstream = FakeUpstream::start().await;
    let keyed = keyed_config(&upstream, &redis);
    let line = request("q", false).to_string();

    let (code, out) = warm(&keyed, &line).await;
    assert_eq!(code, Some(1));
    assert!(out.contains("name the key whose space to warm with --key-name"), "{out}");

    let (code, out) = warm_with(&keyed, &line, &["--key-name", "team-c"]).await;
    assert_eq!(code, Some(1));
    assert!(out.contains("no gateway key has that name"), "{out}");

    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let open = openai_config(&upstream.base_url(), "").replace(NO_CACHE, &cache);
    let (code, out) = warm_with(&open, &line, &["--key-name", "team-a"]).await;
    assert_eq!(code, Some(1));
    assert!(out.contains("this config has no `auth` keys"), "{out}");
    assert_eq!(upstream.hits(), 0, "nothing was warmed");
}
