//! Thread per core (`server.workers`): every worker accepts and answers on its own, and a
//! shutdown waits for the requests of all of them.

#![expect(clippy::unwrap_used, reason = "tests: a failed unwrap is a failed test")]

use std::time::Duration;

use crate::support::{
    self, FakeUpstream, GatewayProcess, Reply, StreamEnd, TestGateway, chat_request, chunk_events,
    read_stream,
};

fn with_workers(yaml: &str, workers: usize) -> String {
    yaml.replace("shutdown_grace: 2s", &format!("shutdown_grace: 2s, workers: {workers}"))
}

/// Starts the gateway (worker 0 on `stalled`, a runtime nobody drives afterwards) and asks it
/// one question from `driven`. Returns whether an answer came within a second.
fn answered_while_worker_zero_is_stalled(workers: usize) -> bool {
    let driven = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let stalled = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let upstream = driven.block_on(FakeUpstream::start());
    let config = with_workers(&support::openai_config(&upstream.base_url(), ""), workers);
    let gateway = stalled.block_on(async {
        let gateway = TestGateway::start(&config).await;
        // Serving has begun (and with it the other workers) once this is answered.
        gateway.client.get(gateway.url("/healthz")).send().await.unwrap();
        gateway
    });
    // From here on `stalled` runs nothing: worker 0 neither accepts nor answers.
    let answered = driven.block_on(async {
        // A client of this runtime: `gateway.client` keeps a connection driven by `stalled`.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let request = client.post(gateway.url("/v1/chat/completions"));
        let sent = request.json(&chat_request(false)).send();
        matches!(tokio::time::timeout(Duration::from_secs(1), sent).await, Ok(Ok(r)) if r.status() == 200)
    });
    drop(gateway);
    drop(stalled);
    answered
}

#[test]
fn another_worker_answers_while_worker_zero_is_busy() {
    assert!(answered_while_worker_zero_is_stalled(2), "worker 1 accepts and answers by itself");
}

#[test]
fn with_one_worker_nothing_answers_while_it_is_busy() {
    // The contrast that shows the test above measures what it claims.
    assert!(!answered_while_worker_zero_is_stalled(1));
}

#[test]
fn shutdown_with_several_workers_lets_every_stream_finish() {
    const STREAMS: usize = 6;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let upstream = runtime.block_on(FakeUpstream::start());
    for _ in 0..STREAMS {
        upstream.push(Reply::Stream {
            events: chunk_events(&["still", " going"], true),
            gap: Duration::from_millis(400),
            end: StreamEnd::Finish,
        });
    }
    let config = with_workers(&support::openai_config(&upstream.base_url(), ""), 3);
    let gateway = GatewayProcess::start(&config, &[]);
    let url = gateway.url("/v1/chat/completions");

    let events = runtime.block_on(async {
        // A client (so a connection) per stream: they spread over the workers.
        let mut responses = Vec::new();
        for _ in 0..STREAMS {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            responses.push(client.post(&url).json(&chat_request(true)).send().await.unwrap());
        }
        let stopping = tokio::task::spawn_blocking(move || gateway.stop());
        let mut events = Vec::new();
        for response in responses {
            events.push(read_stream(response).await);
        }
        let logs = stopping.await.unwrap();
        assert_eq!(logs.matches("all requests finished").count(), 3, "each worker drained: {logs}");
        events
    });

    assert_eq!(upstream.hits(), STREAMS);
    for stream in events {
        assert_eq!(stream.last().map(String::as_str), Some("[DONE]"), "{stream:?}");
    }
}
