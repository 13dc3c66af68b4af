//! A Messages request to an OpenAI-compatible target: what the upstream receives (a chat
//! completions request carrying system prompts, images, tools, tool use and results, tool
//! choice, stop sequences, limits and the user), what the client gets back (a Message), and the
//! hints that are left out, named and counted, or the constraints refused without a call.

use serde_json::{Value, json};

use super::{anthropic_error, chat_completion, dropped, header, messages_request, text_of, within};
use crate::support::{CLIENT_KEY, FakeUpstream, Reply, TestGateway, metric_sum, openai_config};

/// A gateway whose model `chat` goes to one openai-kind target (`up`, upstream model
/// `upstream-model`) that answers `reply` once.
async fn answering(reply: Reply) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::scripted([reply]).await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;
    (upstream, gateway)
}

/// The chat body the openai-kind upstream received for `request`, which must be answered.
async fn translated(request: &Value) -> Value {
    let (upstream, gateway) = answering(Reply::completion("fine")).await;
    let response = gateway.messages(request).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let seen = &upstream.requests()[0];
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/chat/completions"));
    seen.body.clone()
}

/// `(role, text)` of each chat message.
fn roles_and_texts(chat: &Value) -> Vec<(String, String)> {
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), text_of(&m["content"])))
        .collect()
}

// === The answer ===

#[tokio::test]
async fn a_messages_request_to_an_openai_target_is_answered_as_a_message() {
    let (upstream, gateway) = answering(Reply::completion("Hello from chat")).await;

    let response = gateway.messages(&messages_request(false)).await;

    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("application/json"));
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(header(&response, "x-ballast-provider"), "up");
    assert_eq!(header(&response, "x-ballast-route"), "primary");
    assert_eq!(header(&response, "x-ballast-attempts"), "1");
    assert_eq!(header(&response, "x-ballast-cache"), "off");
    assert!(
        response.headers().get("x-ballast-dropped").is_none(),
        "nothing was dropped, so no header"
    );
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "chat", "the alias the client sent, not the upstream's model");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"), "{message}");
    assert_eq!(message["content"], json!([{"type": "text", "text": "Hello from chat"}]));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(message["usage"]["input_tokens"], 5);
    assert_eq!(message["usage"]["output_tokens"], 3);
    let seen = &upstream.requests()[0];
    assert_eq!(seen.body["model"], "upstream-model");
    assert_eq!(seen.body["messages"][0]["role"], "user");
    assert_eq!(text_of(&seen.body["messages"][0]["content"]), "Hello there");
    assert_ne!(seen.body["stream"], true);
    for (name, value) in &seen.headers {
        assert!(!value.contains(CLIENT_KEY), "the client's key reached the upstream in `{name}`");
    }
}

#[tokio::test]
async fn a_tool_call_answer_comes_back_as_a_tool_use_block_with_its_input_parsed() {
    let completion = chat_completion(
        "Let me check.",
        &[("call_abc123", "get_weather", r#"{"city":"Paris","unit":"celsius"}"#)],
        "tool_calls",
    );
    let (_upstream, gateway) = answering(Reply::json(200, &completion)).await;

    let message: Value = gateway.messages(&messages_request(false)).await.json().await.unwrap();

    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{message}");
    assert_eq!(content[0], json!({"type": "text", "text": "Let me check."}));
    let tool_use = &content[1];
    assert_eq!(tool_use["type"], "tool_use");
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(
        tool_use["input"],
        json!({"city": "Paris", "unit": "celsius"}),
        "parsed, not a string"
    );
    let id = tool_use["id"].as_str().unwrap();
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "Anthropic's id alphabet: {id}"
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["input_tokens"], 11);
    assert_eq!(message["usage"]["output_tokens"], 7);
}

#[tokio::test]
async fn finish_reasons_come_back_as_anthropic_stop_reasons() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;
    let call = [("call_1", "get_weather", r#"{"city":"Rome"}"#)];
    let cases = [
        (chat_completion("done", &[], "stop"), "end_turn"),
        (chat_completion("cut sho", &[], "length"), "max_tokens"),
        (chat_completion("", &call, "tool_calls"), "tool_use"),
    ];

    for (completion, stop_reason) in cases {
        upstream.push(Reply::json(200, &completion));
        let response = gateway.messages(&messages_request(false)).await;
        assert_eq!(response.status(), 200);
        let message: Value = response.json().await.unwrap();
        assert_eq!(message["stop_reason"], stop_reason, "{completion}");
    }
}

// === The request ===

#[tokio::test]
async fn system_prompts_reach_an_openai_target_as_system_messages_where_they_stand() {
    let chat = translated(&json!({
        "model": "chat", "max_tokens": 100,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "system", "content": "A reminder in the middle."},
            {"role": "user", "content": "second question"},
        ],
    }))
    .await;
    let expected = [
        ("system", "You are terse."),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("system", "A reminder in the middle."),
        ("user", "second question"),
    ]
    .map(|(role, text)| (role.to_owned(), text.to_owned()));
    assert_eq!(roles_and_texts(&chat), expected, "a system turn stays in its place");
    assert!(chat.get("system").is_none(), "chat has no `system` member");

    let chat = translated(&json!({
        "model": "chat", "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "messages": [{"role": "user", "content": "hi"}],
    }))
    .await;
    let messages = roles_and_texts(&chat);
    let first_user = messages.iter().position(|(role, _)| role == "user").unwrap();
    assert!(first_user > 0, "the system blocks come first: {messages:?}");
    assert!(messages[..first_user].iter().all(|(role, _)| role == "system"), "{messages:?}");
    let system: String =
        messages[..first_user].iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>().join("\n");
    let (brief, kind) = (system.find("Be brief.").unwrap(), system.find("Be kind.").unwrap());
    assert!(brief < kind, "in their order: {system:?}");
    assert_eq!(messages[first_user..], [("user".to_owned(), "hi".to_owned())]);
}

#[tokio::test]
async fn a_conversation_with_tools_and_an_image_reaches_an_openai_target_as_a_chat_request() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let chat = translated(&json!({
        "model": "chat", "max_tokens": 321, "temperature": 0.25,
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "user-7"},
        "tools": [{"name": "get_weather", "description": "Weather for a city.", "input_schema": schema}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this, and the weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"},
                {"type": "text", "text": "Thanks"},
            ]},
        ],
    }))
    .await;

    assert_eq!(chat["model"], "upstream-model");
    assert_eq!(chat["max_completion_tokens"], 321);
    assert_eq!(chat["temperature"], 0.25);
    assert_eq!(chat["stop"], json!(["END", "STOP"]));
    assert_eq!(chat["user"], "user-7");
    for anthropic_only in ["system", "stop_sequences", "metadata"] {
        assert!(chat.get(anthropic_only).is_none(), "{anthropic_only}: {chat}");
    }
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{chat}");

    assert_eq!(messages[0]["role"], "user");
    let parts = messages[0]["content"].as_array().unwrap();
    assert_eq!(text_of(&messages[0]["content"]), "What is this, and the weather in Paris?");
    let image = parts.iter().find(|part| part["type"] == "image_url").expect("an image part");
    assert_eq!(image["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");

    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(text_of(&messages[1]["content"]), "Let me check.");
    let calls = messages[1]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], "toolu_01");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));

    assert_eq!(messages[2]["role"], "tool", "the result comes first, right after the call");
    assert_eq!(messages[2]["tool_call_id"], "toolu_01");
    assert_eq!(text_of(&messages[2]["content"]), "18C and sunny");
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(text_of(&messages[3]["content"]), "Thanks");

    let tools = chat["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["type"], "function");
    assert_eq!(tools[0]["function"]["name"], "get_weather");
    assert_eq!(tools[0]["function"]["description"], "Weather for a city.");
    assert_eq!(tools[0]["function"]["parameters"], schema);
    assert_eq!(chat["tool_choice"], "required");
}

#[tokio::test]
async fn tool_choice_becomes_chats_auto_required_function_or_none() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;
    let cases = [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (
            json!({"type": "tool", "name": "get_weather"}),
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ),
        (json!({"type": "none"}), json!("none")),
    ];

    for (choice, _) in &cases {
        let mut request = messages_request(false);
        request["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
        request["tool_choice"] = choice.clone();
        assert_eq!(gateway.messages(&request).await.status(), 200, "{choice}");
    }

    let sent: Vec<Value> =
        upstream.requests().iter().map(|seen| seen.body["tool_choice"].clone()).collect();
    let expected: Vec<Value> = cases.iter().map(|(_, chat)| chat.clone()).collect();
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn a_messages_request_with_claude_codes_beta_query_is_served() {
    let (upstream, gateway) = answering(Reply::completion("with a query")).await;

    let response = gateway
        .anthropic_post("/v1/messages?beta=true")
        .header("x-api-key", CLIENT_KEY)
        .json(&messages_request(false))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "with a query");
    assert_eq!(upstream.hits(), 1);
}

// === Hints and constraints ===

#[tokio::test]
async fn hints_an_openai_target_cannot_express_are_dropped_named_and_counted() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;
    let mut request = messages_request(false);
    request["thinking"] = json!({"type": "adaptive"});
    request["context_management"] = json!({"edits": [{"type": "clear_tool_uses_20250919"}]});
    request["tools"] = json!([
        {"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}, "defer_loading": true},
        {"type": "web_search_20250305", "name": "web_search"},
    ]);

    let response = gateway.messages(&request).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        dropped(&response),
        ["context_management", "defer_loading", "thinking", "tools.web_search"],
        "{:?}",
        response.headers()
    );
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    let sent = &upstream.requests()[0].body;
    let text = sent.to_string();
    for hint in ["thinking", "context_management", "defer_loading", "web_search"] {
        assert!(!text.contains(hint), "{hint} reached the chat upstream: {text}");
    }
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "the client tool is kept, the server tool left out");
    assert_eq!(tools[0]["function"]["name"], "Read");

    let metrics = within(gateway.metrics()).await;
    // A tool's name is request content: its label is the closed `server_tool`.
    for field in ["thinking", "context_management", "defer_loading", "server_tool"] {
        let labels = [("api", "messages"), ("provider", "up"), ("field", field)];
        assert_eq!(
            metric_sum(&metrics, "ballast_translation_drops_total", &labels),
            1.0,
            "{field}"
        );
    }

    let plain = gateway.messages(&messages_request(false)).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("x-ballast-dropped").is_none(), "no header when nothing dropped");
}

#[tokio::test]
async fn a_forced_server_tool_or_max_tokens_zero_with_only_openai_targets_is_a_400_before_any_call()
{
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&openai_config(&upstream.base_url(), "")).await;
    let mut forced = messages_request(false);
    forced["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    forced["tool_choice"] = json!({"type": "tool", "name": "web_search"});
    let mut zero = messages_request(false);
    zero["max_tokens"] = json!(0);

    for request in [forced, zero] {
        for stream in [false, true] {
            let mut request = request.clone();
            request["stream"] = json!(stream);
            let error = anthropic_error(gateway.messages(&request).await, 400).await;
            assert_eq!(error["type"], "invalid_request_error", "{request}");
        }
    }
    assert_eq!(upstream.hits(), 0, "refused before any upstream call");
}
