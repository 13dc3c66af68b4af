//! Built-in tools (`web_search` and every tool type but `function`) run only where OpenAI runs
//! them: a request offering one goes to the native targets first, whatever the list's order; on a
//! chat target an unforced one is left out and named in `x-ballast-dropped`; a forced one (like
//! `background: true`) is a 400 before any call when no target can serve it.

use serde_json::{Value, json};

use super::{NATIVE, chat_completion, dropped, header, openai_error, output_text, response_body};
use crate::support::{FakeUpstream, NO_CACHE, Reply, TestGateway, metric_sum, targets_config};

/// A request offering web search and one function.
fn with_web_search() -> Value {
    json!({"model": "chat", "input": "What happened today?",
           "tools": [{"type": "web_search"},
                     {"type": "function", "name": "lookup", "parameters": {"type": "object"}}]})
}

#[tokio::test]
async fn an_unforced_built_in_tool_is_left_out_on_a_chat_target_and_named() {
    let upstream = FakeUpstream::scripted([Reply::json(
        200,
        &chat_completion("No search here.", &[], "stop"),
    )])
    .await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], NO_CACHE, "")).await;

    let response = gateway.responses(&with_web_search()).await;

    assert_eq!(response.status(), 200);
    assert_eq!(dropped(&response), ["web_search"]);
    assert_eq!(output_text(&response.json::<Value>().await.unwrap()), "No search here.");
    let sent = &upstream.requests()[0].body;
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]),
        "the function stays, the built-in goes"
    );
    let metrics = gateway.metrics().await;
    let labels = [("api", "responses"), ("provider", "up"), ("field", "web_search")];
    assert_eq!(metric_sum(&metrics, "ballast_translation_drops_total", &labels), 1.0, "{metrics}");
}

#[tokio::test]
async fn a_forced_built_in_tool_or_background_with_no_native_target_is_a_400_before_any_call() {
    let upstream = FakeUpstream::start().await;
    let gateway =
        TestGateway::start(&targets_config(&[("up", "openai", &upstream, "")], NO_CACHE, "")).await;
    let mut forced = with_web_search();
    forced["tool_choice"] = json!({"type": "web_search"});
    let background = json!({"model": "chat", "input": "Write a long essay.", "background": true});

    for (request, param) in [(forced, "tool_choice"), (background, "background")] {
        let response = gateway.responses(&request).await;

        let error = openai_error(response, 400).await;
        assert_eq!(error["type"], "invalid_request_error", "{error}");
        assert_eq!(error["param"], param, "{error}");
        assert_eq!(error["code"], "unsupported_parameter", "{error}");
    }
    assert_eq!(upstream.hits(), 0, "refused before any call");
}

#[tokio::test]
async fn a_request_with_a_built_in_tool_goes_to_the_native_target_first_even_when_it_is_second() {
    let chat = FakeUpstream::start().await;
    chat.fallback(Reply::json(200, &chat_completion("from chat", &[], "stop")));
    let native = FakeUpstream::start().await;
    native.fallback(Reply::json(200, &response_body("resp_native", "searched")));
    let config = targets_config(
        &[("chat", "openai", &chat, ""), ("native", "openai", &native, NATIVE)],
        NO_CACHE,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let searching = gateway.responses(&with_web_search()).await;
    let plain = gateway.responses(&json!({"model": "chat", "input": "Hi"})).await;

    assert_eq!(searching.status(), 200);
    assert_eq!(header(&searching, "x-ballast-provider"), "native");
    assert_eq!(dropped(&searching), Vec::<String>::new(), "nothing left out where it runs");
    assert_eq!(native.requests()[0].body["tools"], with_web_search()["tools"]);
    assert_eq!(header(&plain, "x-ballast-provider"), "chat", "without one, the list's order");
    assert_eq!((chat.hits(), native.hits()), (1, 1));
}

#[tokio::test]
async fn a_built_in_tool_falls_back_to_a_chat_target_when_the_native_one_fails() {
    let chat =
        FakeUpstream::scripted([Reply::json(200, &chat_completion("from chat", &[], "stop"))])
            .await;
    let native = FakeUpstream::scripted([Reply::error(503, "down")]).await;
    let config = targets_config(
        &[("chat", "openai", &chat, ""), ("native", "openai", &native, NATIVE)],
        NO_CACHE,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.responses(&with_web_search()).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "chat");
    assert_eq!(header(&response, "x-ballast-route"), "failover");
    assert_eq!(dropped(&response), ["web_search"]);
    assert_eq!((native.hits(), chat.hits()), (1, 1), "native first, then the chat target");
}
