//! Conversations survive a provider outage (SPEC §4 "Dialects"): each Response the gateway
//! serves is kept by its id, as the whole conversation up to it. A request that continues one
//! (`previous_response_id`) goes first, as it is, to the native provider that produced (and
//! stored) it; every other target gets the whole conversation (the kept items without their ids
//! or reasoning items, then the new input) and no id. An id the gateway does not know goes to
//! native targets only; `store: false` keeps nothing.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    MEMORY, NATIVE, chat_completion, dropped, header, message_item, openai_error, output_text,
    response_body, response_events, response_with,
};
use crate::support::{FakeUpstream, Reply, StreamEnd, TestGateway, read_body, targets_config};

/// Lets the background write of the kept conversation land.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

/// The first turn: instructions and a string input.
fn first_turn() -> Value {
    json!({"model": "chat", "instructions": "Be brief.", "input": "My name is Ada."})
}

/// The second turn, continuing `id`.
fn second_turn(id: &str) -> Value {
    json!({"model": "chat", "instructions": "Be brief.", "previous_response_id": id,
           "input": [{"role": "user", "content": "What is my name?"}]})
}

/// The first turn's Response from a native upstream: a reasoning item, then the message.
fn first_answer() -> Value {
    response_with(
        "resp_turn1",
        vec![
            json!({"id": "rs_turn1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAAB"}),
            message_item("turn1", "Hello Ada."),
        ],
    )
}

/// What the client sent, with `model` as the target names it: what a passthrough sends.
fn as_sent(body: &Value, model: &str) -> Vec<u8> {
    let mut body = body.clone();
    body["model"] = json!(model);
    serde_json::to_vec(&body).unwrap()
}

/// The first turn's conversation as a chat target is sent it, followed by the second turn.
fn whole_chat_conversation(model: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"}
    ]})
}

#[tokio::test]
async fn a_conversation_goes_on_at_the_next_target_with_its_whole_history_when_the_provider_that_stored_it_is_down()
 {
    for (kind, extra) in [("native", NATIVE), ("chat", "")] {
        let primary =
            FakeUpstream::scripted([Reply::json(200, &first_answer()), Reply::error(503, "down")])
                .await;
        let answer = if kind == "native" {
            Reply::json(200, &response_body("resp_turn2", "Your name is Ada."))
        } else {
            Reply::json(200, &chat_completion("Your name is Ada.", &[], "stop"))
        };
        let backup = FakeUpstream::scripted([answer]).await;
        let config = targets_config(
            &[("primary", "openai", &primary, NATIVE), ("backup", "openai", &backup, extra)],
            MEMORY,
            "",
        );
        let gateway = TestGateway::start(&config).await;

        let first = gateway.responses(&first_turn()).await;
        assert_eq!(first.status(), 200, "{kind}");
        assert_eq!(first.json::<Value>().await.unwrap()["id"], "resp_turn1");
        settle().await;
        let second = gateway.responses(&second_turn("resp_turn1")).await;

        assert_eq!(second.status(), 200, "{kind}");
        assert_eq!(header(&second, "x-ballast-provider"), "backup", "{kind}");
        assert_eq!(header(&second, "x-ballast-route"), "failover", "{kind}");
        assert_eq!(dropped(&second), ["reasoning"], "{kind}: the kept reasoning item is named");
        assert_eq!(output_text(&second.json::<Value>().await.unwrap()), "Your name is Ada.");
        let tried = &primary.requests()[1];
        assert_eq!(
            String::from_utf8_lossy(&tried.bytes),
            String::from_utf8_lossy(&as_sent(&second_turn("resp_turn1"), "primary-model")),
            "{kind}: the provider that stored it was asked first, with the id, as is"
        );
        let received = &backup.requests()[0];
        if kind == "native" {
            assert_eq!(received.path, "/v1/responses");
            assert_eq!(
                received.body,
                json!({
                    "model": "backup-model",
                    "instructions": "Be brief.",
                    "input": [
                        {"type": "message", "role": "user", "content": "My name is Ada."},
                        {"type": "message", "status": "completed", "role": "assistant",
                         "content": [{"type": "output_text", "text": "Hello Ada.", "annotations": [], "logprobs": []}]},
                        {"role": "user", "content": "What is my name?"}
                    ]
                }),
                "the kept items without ids or reasoning, then the new input, and no id"
            );
        } else {
            assert_eq!(received.path, "/v1/chat/completions");
            assert_eq!(received.body, whole_chat_conversation("backup-model"));
        }
    }
}

#[tokio::test]
async fn while_the_provider_that_stored_it_is_up_the_next_turn_goes_to_it_as_is_with_the_id() {
    let primary = FakeUpstream::scripted([
        Reply::json(200, &first_answer()),
        Reply::json(200, &response_body("resp_turn2", "Your name is Ada.")),
    ])
    .await;
    let backup = FakeUpstream::start().await;
    let config = targets_config(
        &[("primary", "openai", &primary, NATIVE), ("backup", "openai", &backup, NATIVE)],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    assert_eq!(gateway.responses(&first_turn()).await.status(), 200);
    settle().await;
    let second = gateway.responses(&second_turn("resp_turn1")).await;

    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-ballast-provider"), "primary");
    assert_eq!(header(&second, "x-ballast-route"), "primary");
    assert_eq!(second.json::<Value>().await.unwrap()["id"], "resp_turn2");
    let received = &primary.requests()[1];
    assert_eq!(
        String::from_utf8_lossy(&received.bytes),
        String::from_utf8_lossy(&as_sent(&second_turn("resp_turn1"), "primary-model")),
        "the client's bytes: the upstream holds the conversation itself"
    );
    assert_eq!(backup.hits(), 0);
}

#[tokio::test]
async fn a_continuation_goes_first_to_the_native_provider_that_produced_it_even_when_it_is_second_in_the_list()
 {
    let primary = FakeUpstream::scripted([Reply::error(503, "down for a moment")]).await;
    let backup = FakeUpstream::scripted([
        Reply::json(200, &first_answer()),
        Reply::json(200, &response_body("resp_turn2", "Your name is Ada.")),
    ])
    .await;
    let config = targets_config(
        &[("primary", "openai", &primary, NATIVE), ("backup", "azure", &backup, "")],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let first = gateway.responses(&first_turn()).await;
    assert_eq!(header(&first, "x-ballast-provider"), "backup");
    settle().await;
    let second = gateway.responses(&second_turn("resp_turn1")).await;

    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-ballast-provider"), "backup");
    assert_eq!(primary.hits(), 1, "the healthy primary is not asked: it does not hold it");
    let received = &backup.requests()[1];
    assert_eq!(received.path, "/openai/v1/responses");
    assert_eq!(
        String::from_utf8_lossy(&received.bytes),
        String::from_utf8_lossy(&as_sent(&second_turn("resp_turn1"), "backup-model"))
    );
}

#[tokio::test]
async fn a_streamed_response_is_kept_whole_and_continued_elsewhere() {
    let events = response_events("resp_streamed", &["Hello ", "Ada."]);
    let primary = FakeUpstream::scripted([
        Reply::responses_stream(&events, StreamEnd::Finish),
        Reply::error(503, "down"),
    ])
    .await;
    let backup =
        FakeUpstream::scripted([Reply::json(200, &chat_completion("Ada.", &[], "stop"))]).await;
    let config = targets_config(
        &[("primary", "openai", &primary, NATIVE), ("backup", "openai", &backup, "")],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;
    let mut streamed = first_turn();
    streamed["stream"] = json!(true);

    let first = gateway.responses(&streamed).await;
    assert_eq!(first.status(), 200);
    read_body(first).await;
    settle().await;
    let second = gateway.responses(&second_turn("resp_streamed")).await;

    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-ballast-provider"), "backup");
    assert_eq!(backup.requests()[0].body, whole_chat_conversation("backup-model"));
}

#[tokio::test]
async fn a_translated_response_is_continued_with_its_whole_history_and_store_false_keeps_nothing() {
    let upstream = FakeUpstream::scripted([
        Reply::json(200, &chat_completion("Hello Ada.", &[], "stop")),
        Reply::json(200, &chat_completion("Your name is Ada.", &[], "stop")),
        Reply::json(200, &chat_completion("Hello Ada.", &[], "stop")),
    ])
    .await;
    let config = targets_config(&[("up", "openai", &upstream, "")], MEMORY, "");
    let gateway = TestGateway::start(&config).await;

    let first = gateway.responses(&first_turn()).await;
    assert_eq!(first.status(), 200);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    settle().await;
    let second = gateway.responses(&second_turn(&id)).await;
    assert_eq!(second.status(), 200);
    assert_eq!(upstream.requests()[1].body, whole_chat_conversation("up-model"));

    let mut unkept = first_turn();
    unkept["store"] = json!(false);
    unkept["input"] = json!("My name is Bob.");
    let first = gateway.responses(&unkept).await;
    assert_eq!(first.status(), 200);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    settle().await;
    let second = gateway.responses(&second_turn(&id)).await;

    let error = openai_error(second, 400).await;
    assert_eq!(error["param"], "previous_response_id", "{error}");
    assert_eq!(upstream.hits(), 3, "no call for a continuation nobody holds");
}

#[tokio::test]
async fn an_id_the_gateway_does_not_know_goes_as_is_to_native_targets_only() {
    let chat = FakeUpstream::start().await;
    let native =
        FakeUpstream::scripted([Reply::json(200, &response_body("resp_next", "go on"))]).await;
    let config = targets_config(
        &[("chat", "openai", &chat, ""), ("native", "openai", &native, NATIVE)],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    let response = gateway.responses(&second_turn("resp_from_elsewhere")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ballast-provider"), "native");
    assert_eq!(chat.hits(), 0, "a chat target cannot continue what it never saw");
    assert_eq!(
        String::from_utf8_lossy(&native.requests()[0].bytes),
        String::from_utf8_lossy(&as_sent(&second_turn("resp_from_elsewhere"), "native-model"))
    );
}

/// A `background` response is answered `queued`, with its output to come from OpenAI later: the
/// gateway cannot keep its conversation, so its continuation stays OpenAI's.
#[tokio::test]
async fn a_background_response_is_not_kept_so_its_continuation_goes_only_to_native_targets() {
    let mut queued = response_with("resp_bg", Vec::new());
    queued["status"] = json!("queued");
    let native =
        FakeUpstream::scripted([Reply::json(200, &queued), Reply::error(503, "down")]).await;
    let chat = FakeUpstream::start().await;
    let config = targets_config(
        &[("native", "openai", &native, NATIVE), ("chat", "openai", &chat, "")],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;
    let mut first = first_turn();
    first["background"] = json!(true);

    let answered = gateway.responses(&first).await;
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.json::<Value>().await.unwrap()["status"], "queued");
    settle().await;
    let next = gateway.responses(&second_turn("resp_bg")).await;

    assert_eq!(next.status(), 503, "only the native target could continue it, and it is down");
    assert_eq!(chat.hits(), 0, "nothing was kept to send the chat target");
}

#[tokio::test]
async fn an_unknown_id_on_a_model_with_only_chat_targets_is_a_400_before_any_call() {
    let upstream = FakeUpstream::start().await;
    let config = targets_config(&[("up", "openai", &upstream, "")], MEMORY, "");
    let gateway = TestGateway::start(&config).await;

    let response = gateway.responses(&second_turn("resp_from_elsewhere")).await;

    let error = openai_error(response, 400).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "previous_response_id", "{error}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_kept_conversation_belongs_to_the_key_that_made_it() {
    const KEY_A: &str = "sk-gw-team-a-0123456789";
    const KEY_B: &str = "sk-gw-team-b-0123456789";
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &chat_completion("Hello Ada.", &[], "stop")));
    let config = targets_config(&[("up", "openai", &upstream, "")], MEMORY, "").replacen(
        "providers:",
        &format!("auth:\n  keys:\n    - {{ name: a, key: {KEY_A} }}\n    - {{ name: b, key: {KEY_B} }}\nproviders:"),
        1,
    );
    let gateway = TestGateway::start(&config).await;
    let post = |key: &'static str, body: Value| {
        gateway
            .client
            .post(gateway.url("/v1/responses"))
            .bearer_auth(key)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
    };

    let first = post(KEY_A, first_turn()).await.unwrap();
    assert_eq!(first.status(), 200);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    settle().await;

    let other_key = post(KEY_B, second_turn(&id)).await.unwrap();
    let error = openai_error(other_key, 400).await;
    assert_eq!(error["param"], "previous_response_id", "another key cannot read it: {error}");
    let own_key = post(KEY_A, second_turn(&id)).await.unwrap();
    assert_eq!(own_key.status(), 200);
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_function_call_turn_goes_on_at_a_chat_target_with_the_call_and_its_output_paired() {
    let call = json!({"id": "fc_turn1", "type": "function_call", "status": "completed",
                      "call_id": "call_weather", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"});
    let reasoning = json!({"id": "rs_turn1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAAB"});
    let primary = FakeUpstream::scripted([
        Reply::json(200, &response_with("resp_call", vec![reasoning, call])),
        Reply::error(503, "down"),
    ])
    .await;
    let backup =
        FakeUpstream::scripted([Reply::json(200, &chat_completion("18C in Paris.", &[], "stop"))])
            .await;
    let config = targets_config(
        &[("primary", "openai", &primary, NATIVE), ("backup", "openai", &backup, "")],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;
    let tool = json!({"type": "function", "name": "get_weather", "parameters": {"type": "object"}});

    let first = gateway
        .responses(&json!({"model": "chat", "input": "Weather in Paris?", "tools": [tool]}))
        .await;
    assert_eq!(first.status(), 200);
    settle().await;
    let second = gateway
        .responses(&json!({"model": "chat", "previous_response_id": "resp_call", "tools": [tool],
            "input": [{"type": "function_call_output", "call_id": "call_weather", "output": "18C"}]}))
        .await;

    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-ballast-provider"), "backup");
    assert_eq!(output_text(&second.json::<Value>().await.unwrap()), "18C in Paris.");
    let sent = &backup.requests()[0].body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_weather", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_weather", "content": "18C"}
        ]),
        "the kept call and the new output, paired by call_id"
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn three_turns_across_two_providers_keep_the_whole_conversation() {
    let primary = FakeUpstream::scripted([
        Reply::json(200, &first_answer()),
        Reply::error(503, "down for one turn"),
        Reply::json(200, &response_body("resp_turn3", "You are Ada, from London.")),
    ])
    .await;
    let backup = FakeUpstream::scripted([Reply::json(
        200,
        &chat_completion("Your name is Ada.", &[], "stop"),
    )])
    .await;
    let config = targets_config(
        &[("primary", "openai", &primary, NATIVE), ("backup", "openai", &backup, "")],
        MEMORY,
        "",
    );
    let gateway = TestGateway::start(&config).await;

    assert_eq!(gateway.responses(&first_turn()).await.status(), 200);
    settle().await;
    let second = gateway.responses(&second_turn("resp_turn1")).await;
    assert_eq!(header(&second, "x-ballast-provider"), "backup");
    let second: Value = second.json().await.unwrap();
    let second_id = second["id"].as_str().unwrap().to_owned();
    settle().await;
    let third = gateway
        .responses(&json!({"model": "chat", "previous_response_id": second_id,
                           "input": "And where am I from?"}))
        .await;

    assert_eq!(third.status(), 200);
    assert_eq!(header(&third, "x-ballast-provider"), "primary");
    let sent = &primary.requests()[2];
    assert!(
        sent.body.get("previous_response_id").is_none(),
        "the primary never saw the second turn: it gets the whole conversation"
    );
    let assistant = |text: &str| {
        json!({"type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    };
    let mut kept_reply = second["output"][0].clone();
    kept_reply.as_object_mut().unwrap().remove("id");
    assert_eq!(
        sent.body,
        json!({"model": "primary-model", "input": [
            {"type": "message", "role": "user", "content": "My name is Ada."},
            assistant("Hello Ada."),
            {"role": "user", "content": "What is my name?"},
            kept_reply,
            {"type": "message", "role": "user", "content": "And where am I from?"}
        ]})
    );
    assert_eq!(output_text(&json!({"output": [sent.body["input"][3]]})), "Your name is Ada.");
}

#[tokio::test]
async fn an_answer_made_with_store_false_is_not_served_from_the_cache_to_a_request_that_stores() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &chat_completion("Hello Ada.", &[], "stop")));
    let config = targets_config(&[("up", "openai", &upstream, "")], MEMORY, "");
    let gateway = TestGateway::start(&config).await;
    let mut unkept = first_turn();
    unkept["store"] = json!(false);

    let first = gateway.responses(&unkept).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["store"], false);
    settle().await;
    let stored = gateway.responses(&first_turn()).await;
    assert_eq!(stored.status(), 200);
    let stored: Value = stored.json().await.unwrap();
    assert_eq!(stored["store"], true, "the answer says what this request asked: {stored}");
    settle().await;
    let next = gateway.responses(&second_turn(stored["id"].as_str().unwrap())).await;

    assert_eq!(next.status(), 200, "a response the client asked to store can be continued");
    assert_eq!(upstream.requests().last().unwrap().body, whole_chat_conversation("up-model"));
}

#[tokio::test]
async fn an_empty_or_null_previous_response_id_continues_nothing_on_any_target() {
    let upstream = FakeUpstream::start().await;
    upstream.fallback(Reply::json(200, &chat_completion("Hello.", &[], "stop")));
    let config = targets_config(&[("up", "openai", &upstream, "")], MEMORY, "");
    let gateway = TestGateway::start(&config).await;

    for id in [json!(""), Value::Null] {
        let mut request = first_turn();
        request["previous_response_id"] = id.clone();

        let response = gateway.responses(&request).await;

        assert_eq!(response.status(), 200, "previous_response_id {id}");
        assert_eq!(output_text(&response.json::<Value>().await.unwrap()), "Hello.");
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_conversation_kept_in_redis_is_continued_by_another_replica() {
    let redis = crate::support::RedisServer::start().await;
    let upstream = FakeUpstream::scripted([
        Reply::json(200, &chat_completion("Hello Ada.", &[], "stop")),
        Reply::json(200, &chat_completion("Your name is Ada.", &[], "stop")),
    ])
    .await;
    let cache = format!("cache: {{ backend: redis, redis_url: '{}' }}", redis.url());
    let config = targets_config(&[("up", "openai", &upstream, "")], &cache, "");
    let (one, other) = (TestGateway::start(&config).await, TestGateway::start(&config).await);

    let first = one.responses(&first_turn()).await;
    assert_eq!(first.status(), 200);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    settle().await;
    let second = other.responses(&second_turn(&id)).await;

    assert_eq!(second.status(), 200, "the other replica knows the conversation");
    assert_eq!(upstream.requests()[1].body, whole_chat_conversation("up-model"));
}
