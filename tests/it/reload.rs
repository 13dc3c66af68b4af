//! Reloading the config (SIGHUP, `POST /admin/reload`) and the operator's endpoints, through
//! the front door: a change applies to new requests with none failing; in-flight streams finish
//! on their config; unchanged providers keep their circuit; an invalid file is refused whole;
//! `/admin/*` exists only on `server.metrics_listen`; a drained provider is skipped until `auto`.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    FakeUpstream, GatewayProcess, NO_CACHE, Reply, TestGateway, UPSTREAM_KEY, chat_request,
    metric_sum,
};

/// The weight that takes (nearly) every request: against 1, the other target is picked once in
/// a billion, so an assertion on who served is never a coin toss (with 1000 against 1, one in
/// about thirty runs of the suite failed one).
const HEAVY: u32 = 1_000_000_000;

/// Model `chat` → `primary` and `backup` (one attempt each, a circuit that opens after one
/// failure), with `routing` and `weights` (primary's, backup's); the operator listener on
/// `operator` (a port, `0` for any).
fn config(
    primary: &FakeUpstream,
    backup: &FakeUpstream,
    weights: (u32, u32),
    operator: u16,
) -> String {
    format!(
        "server: {{ listen: 127.0.0.1:0, metrics_listen: '127.0.0.1:{operator}', request_timeout: 10s, shutdown_grace: 2s }}
{NO_CACHE}
providers:
  primary: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 0 }}, circuit_breaker: {{ consecutive_failures: 1, open_for: 60s }} }}
  backup: {{ kind: openai, base_url: '{}', api_key: {UPSTREAM_KEY}, retry: {{ max_retries: 0 }} }}
models:
  chat:
    routing: weighted
    targets: [ {{ provider: primary, model: p, weight: {} }}, {{ provider: backup, model: b, weight: {} }} ]
",
        primary.base_url(),
        backup.base_url(),
        weights.0,
        weights.1,
    )
}

/// A config file the test keeps (and rewrites).
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ballast.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self { _dir: dir, path }
    }

    /// Replaces the file at once (written aside, then renamed), as a ConfigMap update does.
    fn write(&self, yaml: &str) {
        let aside = self.path.with_extension("next");
        std::fs::write(&aside, yaml).unwrap();
        std::fs::rename(&aside, &self.path).unwrap();
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

async fn admin_reload(gateway: &TestGateway) -> (u16, Value) {
    let response = gateway.client.post(gateway.operator_url("/admin/reload")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn set_circuit(gateway: &TestGateway, provider: &str, state: &str) -> (u16, Value) {
    let url = gateway.operator_url(&format!("/admin/providers/{provider}/circuit"));
    let response = gateway.client.post(url).json(&json!({"state": state})).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn provider_status(gateway: &TestGateway, provider: &str) -> Value {
    let status: Value = gateway
        .client
        .get(gateway.operator_url("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["providers"][provider].clone()
}

async fn operator_metrics(gateway: &TestGateway) -> String {
    gateway.client.get(gateway.operator_url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The upstream model of an answer: which target served it.
async fn served_by(gateway: &TestGateway) -> String {
    let response = gateway.chat(&chat_request(false)).await;
    assert_eq!(response.status(), 200);
    response.headers()["x-ballast-provider"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_reload_applies_a_weight_change_under_load_with_no_failed_request() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;

    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn({
        let (client, url) = (gateway.client.clone(), gateway.url("/v1/chat/completions"));
        let done = std::sync::Arc::clone(&done);
        async move {
            let mut served = Vec::new();
            for _ in 0..150 {
                let response = client.post(&url).json(&chat_request(false)).send().await.unwrap();
                let provider = response.headers().get("x-ballast-provider").cloned();
                served.push((response.status().as_u16(), provider));
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            served
        }
    });
    // Reload once a good share of the load was served on the old weights, however slow the
    // machine (bounded: at most 10 s).
    for _ in 0..1000 {
        if done.load(std::sync::atomic::Ordering::Relaxed) >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    file.write(&config(&primary, &backup, (1, HEAVY), 0));
    let (status, body) = admin_reload(&gateway).await;
    let served = load.await.unwrap();

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "reloaded");
    assert!(body["route_table"].as_str().unwrap().contains("weighted"), "{body}");
    assert!(served.iter().all(|(status, _)| *status == 200), "no request failed: {served:?}");
    let by =
        |name: &str| served.iter().filter(|(_, p)| p.as_ref().is_some_and(|p| p == name)).count();
    assert!(by("primary") > 20 && by("backup") > 20, "both weights served: {served:?}");
    for _ in 0..20 {
        assert_eq!(served_by(&gateway).await, "backup", "new requests follow the new weights");
    }
    let metrics = operator_metrics(&gateway).await;
    assert_eq!(metric_sum(&metrics, "ballast_config_reloads_total", &[("result", "ok")]), 1.0);
    let stamp = metric_sum(&metrics, "ballast_config_last_reload_success_timestamp_seconds", &[]);
    assert!(stamp > 1.7e9, "{stamp}");
}

#[tokio::test]
async fn an_invalid_config_is_refused_whole_and_the_running_one_stays() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;
    let loaded = metric_sum(
        &operator_metrics(&gateway).await,
        "ballast_config_last_reload_success_timestamp_seconds",
        &[],
    );

    // Two problems, one of them in an otherwise good change (the weights): nothing applies.
    let broken = config(&primary, &backup, (1, HEAVY), 0)
        .replace("open_for: 60s } }", "open_for: 60s }, colour: red }")
        .replace("request_timeout: 10s", "request_timeout: soon");
    file.write(&broken);
    let (status, body) = admin_reload(&gateway).await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_config");
    let problems: Vec<&str> =
        body["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(problems.iter().any(|p| p.starts_with("server.request_timeout")), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("providers.primary")), "{problems:?}");
    for _ in 0..10 {
        assert_eq!(served_by(&gateway).await, "primary", "the old weights still apply");
    }
    let metrics = operator_metrics(&gateway).await;
    assert_eq!(metric_sum(&metrics, "ballast_config_reloads_total", &[("result", "error")]), 1.0);
    assert_eq!(
        metric_sum(&metrics, "ballast_config_last_reload_success_timestamp_seconds", &[]),
        loaded,
        "a refused reload is not a success"
    );
}

#[tokio::test]
async fn unchanged_providers_keep_their_circuit_and_changed_ones_start_afresh() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;
    // The primary fails once and its circuit opens; the request fails over to the backup.
    primary.push(Reply::error(503, "down"));
    let mut opened = false;
    for _ in 0..20 {
        if served_by(&gateway).await == "backup"
            && provider_status(&gateway, "primary").await["circuit"] == "open"
        {
            opened = true;
            break;
        }
    }
    assert!(opened, "the primary's circuit opened");

    // Only the model changes (the weights): the primary's circuit is still open after it.
    file.write(&config(&primary, &backup, (999, 1), 0));
    assert_eq!(admin_reload(&gateway).await.0, 200);
    assert_eq!(provider_status(&gateway, "primary").await["circuit"], "open");
    assert_eq!(served_by(&gateway).await, "backup", "the open circuit is still skipped");

    // The primary's own settings change: a new provider, with a closed circuit.
    let changed = config(&primary, &backup, (999, 1), 0).replace(
        "consecutive_failures: 1, open_for: 60s",
        "consecutive_failures: 2, open_for: 60s",
    );
    file.write(&changed);
    assert_eq!(admin_reload(&gateway).await.0, 200);
    assert_eq!(provider_status(&gateway, "primary").await["circuit"], "closed");
    assert_eq!(served_by(&gateway).await, "primary");
}

#[tokio::test]
async fn an_in_flight_stream_finishes_on_the_config_it_started_with() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;
    primary.push(Reply::Stream {
        events: crate::support::chunk_events(&["one ", "two ", "three ", "four"], true),
        gap: Duration::from_millis(150),
        end: crate::support::StreamEnd::Finish,
    });
    let stream = gateway.chat(&chat_request(true)).await;
    assert_eq!(stream.headers()["x-ballast-provider"], "primary");

    // The primary is removed while the stream runs.
    let without_primary = config(&primary, &backup, (HEAVY, 1), 0)
        .replace(&format!("[ {{ provider: primary, model: p, weight: {HEAVY} }}, "), "[ ");
    file.write(&without_primary);
    let (status, body) = admin_reload(&gateway).await;
    assert_eq!(status, 200, "{body}");

    let text = crate::support::streamed_text(&crate::support::read_stream(stream).await);
    assert_eq!(text, "one two three four", "the stream ran to its end on the old config");
    assert_eq!(served_by(&gateway).await, "backup");
}

#[tokio::test]
async fn restart_only_settings_keep_their_running_values_and_are_named() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;

    let moved = config(&primary, &backup, (HEAVY, 1), 0)
        .replace("listen: 127.0.0.1:0,", "listen: 127.0.0.1:1,")
        .replace("shutdown_grace: 2s", "shutdown_grace: 3s");
    file.write(&moved);
    let (status, body) = admin_reload(&gateway).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_needed"], json!(["server.listen", "server.shutdown_grace"]));
    assert_eq!(served_by(&gateway).await, "primary", "still served where it was");
}

#[tokio::test]
async fn admin_endpoints_exist_only_on_the_operator_listener() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;

    for path in ["/admin/reload", "/admin/providers/primary/circuit"] {
        let public = gateway.client.post(gateway.url(path)).json(&json!({"state": "open"})).send();
        assert_eq!(public.await.unwrap().status(), 404, "{path} on the public listener");
    }
    assert_eq!(admin_reload(&gateway).await.0, 200);

    // Without metrics_listen, /metrics is on the public listener and /admin is nowhere.
    let open = crate::support::openai_config(&primary.base_url(), "");
    let plain = TestGateway::start(&open).await;
    let response = plain.client.post(plain.url("/admin/reload")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_drained_provider_is_skipped_until_auto_returns_it_to_the_breaker() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), 0));
    let gateway = TestGateway::start_from_file(file.path()).await;

    let (status, body) = set_circuit(&gateway, "primary", "open").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"provider": "primary", "forced": "open", "circuit": "open"}));
    let before = primary.hits();
    for _ in 0..10 {
        assert_eq!(served_by(&gateway).await, "backup");
    }
    assert_eq!(primary.hits(), before, "a drained provider is not called");
    assert_eq!(provider_status(&gateway, "primary").await["forced"], "open");

    // A reload keeps the drain, even of a provider whose settings changed.
    let changed =
        config(&primary, &backup, (HEAVY, 1), 0).replace("open_for: 60s", "open_for: 30s");
    file.write(&changed);
    assert_eq!(admin_reload(&gateway).await.0, 200);
    assert_eq!(served_by(&gateway).await, "backup");

    // Held closed, the primary is called even after failures that would open its circuit.
    assert_eq!(set_circuit(&gateway, "primary", "closed").await.0, 200);
    primary.push(Reply::error(503, "down"));
    primary.push(Reply::error(503, "down"));
    for _ in 0..2 {
        gateway.chat(&chat_request(false)).await.text().await.unwrap();
    }
    assert_eq!(provider_status(&gateway, "primary").await["circuit"], "closed");
    assert_eq!(served_by(&gateway).await, "primary");

    let (status, body) = set_circuit(&gateway, "primary", "auto").await;
    assert_eq!(status, 200);
    assert_eq!(body["forced"], Value::Null);
    assert_eq!(provider_status(&gateway, "primary").await["forced"], Value::Null);

    let (unknown, body) = set_circuit(&gateway, "nobody", "open").await;
    assert_eq!(unknown, 404);
    assert_eq!(body["error"]["code"], "provider_not_found");
    assert_eq!(set_circuit(&gateway, "primary", "ajar").await.0, 400);
}

#[tokio::test]
async fn sighup_reloads_the_config_file_of_a_running_gateway() {
    let (primary, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let operator = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let file = ConfigFile::new(&config(&primary, &backup, (HEAVY, 1), operator));
    let gateway = GatewayProcess::start_from_file(file.path(), &[]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let ask = || async {
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .json(&chat_request(false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.headers()["x-ballast-provider"].to_str().unwrap().to_owned()
    };
    assert_eq!(ask().await, "primary");

    file.write(&config(&primary, &backup, (1, HEAVY), operator));
    gateway.hangup();
    let mut moved = false;
    for _ in 0..50 {
        if ask().await == "backup" && ask().await == "backup" {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(moved, "the new weights apply after SIGHUP");
    let metrics = client
        .get(format!("http://127.0.0.1:{operator}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric_sum(&metrics, "ballast_config_reloads_total", &[("result", "ok")]), 1.0);
    let logs = gateway.stop();
    assert!(logs.contains("SIGHUP: reloading the config"), "{logs}");
    assert!(logs.contains("config reloaded"), "{logs}");
}
