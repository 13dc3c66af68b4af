//! Managed Redis as production runs it: over TLS (`rediss://`, verified against
//! `redis_ca_file`) and as a Redis Cluster, TLS or not. The outage rules hold on each: a
//! certificate that does not verify, or a cluster node that dies, never fails a request.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::time::Duration;

use serde_json::{Value, json};

use super::{Backend, cached_gateway, header, settle};
use crate::support::{FakeUpstream, RedisCluster, RedisServer, TestCa, chat_request};

fn tls_keys(server: &RedisServer, ca: &TestCa) -> Backend {
    Backend::RedisKeys(format!(
        "redis_url: '{}', redis_ca_file: '{}'",
        server.url(),
        ca.ca_file().display()
    ))
}

fn cluster_keys(cluster: &RedisCluster, ca: Option<&TestCa>) -> Backend {
    let seeds: Vec<String> = cluster.seeds().iter().map(|url| format!("'{url}'")).collect();
    let mut keys = format!("redis_cluster: [{}]", seeds.join(", "));
    if let Some(ca) = ca {
        keys.push_str(&format!(", redis_ca_file: '{}'", ca.ca_file().display()));
    }
    Backend::RedisKeys(keys)
}

fn question(index: usize) -> Value {
    let mut request = chat_request(false);
    request["messages"][0]["content"] = json!(format!("question {index}"));
    request
}

async fn cache_status(gateway: &crate::support::TestGateway) -> Value {
    let status: Value =
        gateway.client.get(gateway.url("/status")).send().await.unwrap().json().await.unwrap();
    status["cache"].clone()
}

#[tokio::test]
async fn caches_through_redis_over_tls_verified_against_redis_ca_file() {
    let ca = TestCa::new();
    let redis = RedisServer::start_tls(&ca).await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &tls_keys(&redis, &ca), "1h", "1h").await;

    gateway.chat(&chat_request(false)).await.text().await.unwrap();
    settle().await;
    let again = gateway.chat(&chat_request(false)).await;

    assert_eq!(header(&again, "x-ballast-cache"), "hit");
    assert_eq!(upstream.hits(), 1);
    assert_eq!(redis.cli(&["dbsize"]), "1", "the entry is in the TLS server");
    assert_eq!(cache_status(&gateway).await, json!({"backend": "redis", "reachable": true}));
}

#[tokio::test]
async fn a_redis_certificate_that_does_not_verify_is_never_trusted_and_fails_no_request() {
    let (redis_ca, other_ca) = (TestCa::new(), TestCa::new());
    let redis = RedisServer::start_tls(&redis_ca).await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &tls_keys(&redis, &other_ca), "1h", "1h").await;

    for round in 0..3 {
        let response = gateway.chat(&chat_request(false)).await;
        assert_eq!(response.status(), 200, "round {round}");
        assert_ne!(header(&response, "x-ballast-cache"), "hit", "round {round}");
        settle().await;
    }

    assert_eq!(upstream.hits(), 3, "nothing was cached");
    assert_eq!(redis.cli(&["dbsize"]), "0", "nothing was written to the untrusted server");
    assert_eq!(cache_status(&gateway).await, json!({"backend": "redis", "reachable": false}));
}

#[tokio::test]
async fn caches_across_the_slots_of_a_redis_cluster() {
    let cluster = RedisCluster::start(3, None).await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &cluster_keys(&cluster, None), "1h", "1h").await;

    for index in 0..12 {
        gateway.chat(&question(index)).await.text().await.unwrap();
    }
    settle().await;
    for index in 0..12 {
        let again = gateway.chat(&question(index)).await;
        assert_eq!(header(&again, "x-ballast-cache"), "hit", "question {index}");
    }

    assert_eq!(upstream.hits(), 12);
    let keys = cluster.keys_per_node();
    assert_eq!(keys.iter().sum::<u64>(), 12, "{keys:?}");
    assert!(keys.iter().filter(|&&count| count > 0).count() >= 2, "spread over slots: {keys:?}");
}

#[tokio::test]
async fn caches_through_a_redis_cluster_over_tls() {
    let ca = TestCa::new();
    let cluster = RedisCluster::start(3, Some(&ca)).await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &cluster_keys(&cluster, Some(&ca)), "1h", "1h").await;

    for index in 0..6 {
        gateway.chat(&question(index)).await.text().await.unwrap();
    }
    settle().await;
    for index in 0..6 {
        let again = gateway.chat(&question(index)).await;
        assert_eq!(header(&again, "x-ballast-cache"), "hit", "question {index}");
    }

    assert_eq!(upstream.hits(), 6);
    assert_eq!(cluster.keys_per_node().iter().sum::<u64>(), 6);
}

#[tokio::test]
async fn a_cluster_node_killed_mid_run_fails_no_request_and_caching_resumes() {
    let mut cluster = RedisCluster::start(3, None).await;
    let upstream = FakeUpstream::start().await;
    let gateway = cached_gateway(&upstream, &cluster_keys(&cluster, None), "1h", "1h").await;
    for index in 0..9 {
        gateway.chat(&question(index)).await.text().await.unwrap();
    }
    settle().await;

    // Requests run while a node dies and stays down past the cluster's node timeout (1 s).
    let load = tokio::spawn({
        let (client, url) = (gateway.client.clone(), gateway.url("/v1/chat/completions"));
        async move {
            let mut statuses = Vec::new();
            for round in 0..60 {
                let response = client.post(&url).json(&question(round % 12)).send().await.unwrap();
                statuses.push(response.status().as_u16());
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            statuses
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.nodes[1].kill();
    let statuses = load.await.unwrap();
    assert!(statuses.iter().all(|&status| status == 200), "{statuses:?}");

    cluster.nodes[1].restart().await;
    cluster.wait_until_ok().await;
    // The restarted node lost its entries (no persistence): a pass stores them again, and a
    // pass in which every question hits shows every slot is served again.
    let mut all_hit = false;
    for pass in 0..20 {
        let mut hits = 0;
        for index in 0..12 {
            let response = gateway.chat(&question(index)).await;
            assert_eq!(response.status(), 200, "pass {pass}");
            hits += usize::from(header(&response, "x-ballast-cache") == "hit");
        }
        if hits == 12 {
            all_hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(all_hit, "caching resumes on every slot once the node is back");
    assert!(cluster.keys_per_node()[1] > 0, "the restarted node holds entries again");
}
