//! A whole chat completion as a Response, for a Responses client answered by a chat target.
//!
//! [`head`] is the Response's members but its `output`, `status` and `usage`, echoing the
//! request's settings as OpenAI does (the SDKs' models need `parallel_tool_calls`,
//! `tool_choice` and `tools`; the rest is optional but clients read it); the whole answer and
//! its stream share it. The first choice's text becomes a `message` item with an `output_text`
//! part (none when empty), a refusal a `refusal` part of that message, and each tool call a
//! `function_call` item whose `call_id` is the upstream's tool call id (made up when absent or
//! already used: the SDKs key calls by it) and whose `arguments` are `"{}"` when empty. Status:
//! `incomplete` with `incomplete_details.reason` `max_output_tokens` for finish `length` and
//! `content_filter` for `content_filter`, else `completed`. Usage takes OpenAI's Responses
//! names. Reasoning text some OpenAI-compatible servers add is not made a `reasoning` item: it
//! has no `encrypted_content`, and a reasoning item without it cannot be replayed to OpenAI.

use serde_json::{Map, Value, json};

/// The Response's members but `output`, `status` and `usage`, for the request `request` (its
/// settings echoed, OpenAI's defaults for those it left out), answered under the alias `model`.
pub fn head(
    request: &Map<String, Value>,
    model: &str,
    id: &str,
    created_at: u64,
) -> Map<String, Value> {
    let echo = |key: &str, default: Value| {
        request.get(key).filter(|value| !value.is_null()).cloned().unwrap_or(default)
    };
    let mut text = match request.get("text") {
        Some(Value::Object(text)) => text.clone(),
        _ => Map::new(),
    };
    if text.get("format").is_none_or(Value::is_null) {
        text.insert("format".to_owned(), json!({"type": "text"}));
    }
    let mut head = Map::new();
    head.insert("id".to_owned(), json!(id));
    head.insert("object".to_owned(), json!("response"));
    head.insert("created_at".to_owned(), json!(created_at));
    head.insert("model".to_owned(), json!(model));
    head.insert("error".to_owned(), Value::Null);
    head.insert("incomplete_details".to_owned(), Value::Null);
    head.insert("instructions".to_owned(), echo("instructions", Value::Null));
    head.insert("max_output_tokens".to_owned(), echo("max_output_tokens", Value::Null));
    head.insert("metadata".to_owned(), echo("metadata", json!({})));
    head.insert("parallel_tool_calls".to_owned(), echo("parallel_tool_calls", json!(true)));
    head.insert("previous_response_id".to_owned(), echo("previous_response_id", Value::Null));
    head.insert(
        "reasoning".to_owned(),
        echo("reasoning", json!({"effort": null, "summary": null})),
    );
    head.insert("store".to_owned(), echo("store", json!(true)));
    head.insert("temperature".to_owned(), echo("temperature", json!(1.0)));
    head.insert("text".to_owned(), Value::Object(text));
    head.insert("tool_choice".to_owned(), echo("tool_choice", json!("auto")));
    head.insert("tools".to_owned(), echo("tools", json!([])));
    head.insert("top_p".to_owned(), echo("top_p", json!(1.0)));
    head.insert("truncation".to_owned(), echo("truncation", json!("disabled")));
    head.insert("user".to_owned(), echo("user", Value::Null));
    head
}

/// A new Response id: `resp_` and 48 random hex digits, as OpenAI's look.
pub fn new_response_id() -> String {
    format!("resp_{}", random_hex())
}

/// A new `message` item id.
pub fn new_message_id() -> String {
    format!("msg_{}", random_hex())
}

/// A new `function_call` item id (not its `call_id`).
pub fn new_function_call_id() -> String {
    format!("fc_{}", random_hex())
}

/// A `call_id` for a tool call the upstream sent without a usable id.
pub fn new_call_id() -> String {
    format!("call_{:024x}", rand::random::<u128>() >> 32)
}

fn random_hex() -> String {
    format!("{:032x}{:016x}", rand::random::<u128>(), rand::random::<u64>())
}

/// The Response for the chat completion `completion`, with the members of `head`; `None` when
/// `completion` is not a chat completion (a failure of the upstream that sent it).
pub fn to_response(completion: &[u8], head: &Map<String, Value>) -> Option<Vec<u8>> {
    let completion: Value = serde_json::from_slice(completion).ok()?;
    let choice = completion.get("choices")?.as_array()?.first()?;
    let message = choice.get("message").filter(|message| message.is_object())?;
    let mut output = Vec::new();
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|text| !text.is_empty()) {
        content.push(output_text(text));
    }
    if let Some(text) = message["refusal"].as_str().filter(|text| !text.is_empty()) {
        content.push(refusal(text));
    }
    if !content.is_empty() {
        output.push(message_item(&new_message_id(), "completed", content));
    }
    let mut call_ids: Vec<String> = Vec::new();
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let function = &call["function"];
        let Some(name) = function["name"].as_str().filter(|name| !name.is_empty()) else {
            continue;
        };
        let call_id = call_id(call["id"].as_str(), &call_ids);
        let arguments = function["arguments"].as_str().unwrap_or("");
        let arguments = if arguments.trim().is_empty() { "{}" } else { arguments };
        let mut item = function_call(&new_function_call_id(), &call_id, name);
        item.insert("arguments".to_owned(), json!(arguments));
        item.insert("status".to_owned(), json!("completed"));
        output.push(Value::Object(item));
        call_ids.push(call_id);
    }
    let (status, incomplete) = outcome(choice["finish_reason"].as_str());
    let mut response = head.clone();
    response.insert("status".to_owned(), json!(status));
    response.insert("incomplete_details".to_owned(), incomplete);
    response.insert("output".to_owned(), Value::Array(output));
    response.insert("usage".to_owned(), usage(&completion["usage"]));
    serde_json::to_vec(&response).ok()
}

/// The Response's status and `incomplete_details` for a chat `finish_reason`.
pub fn outcome(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The Responses usage for chat's `usage` (absent: zeros).
pub fn usage(usage: &Value) -> Value {
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let input = count(&usage["prompt_tokens"]);
    let output = count(&usage["completion_tokens"]);
    let total = usage["total_tokens"].as_u64().unwrap_or(input + output);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": count(&usage["prompt_tokens_details"]["cached_tokens"])},
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": count(&usage["completion_tokens_details"]["reasoning_tokens"]),
        },
        "total_tokens": total,
    })
}

/// The upstream's tool call id when it has one not yet taken by another call of the answer,
/// else a new one: the SDKs refuse two calls with one `call_id`.
pub fn call_id(upstream: Option<&str>, taken: &[String]) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) if !taken.iter().any(|known| known == id) => id.to_owned(),
        _ => new_call_id(),
    }
}

/// An `output_text` part.
pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `refusal` part.
pub fn refusal(text: &str) -> Value {
    json!({"type": "refusal", "refusal": text})
}

/// An assistant `message` item.
pub fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// A `function_call` item's identity: `id`, `type`, `call_id` and `name` (no arguments or
/// status yet).
pub fn function_call(id: &str, call_id: &str, name: &str) -> Map<String, Value> {
    let mut item = Map::new();
    item.insert("id".to_owned(), json!(id));
    item.insert("type".to_owned(), json!("function_call"));
    item.insert("call_id".to_owned(), json!(call_id));
    item.insert("name".to_owned(), json!(name));
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Map<String, Value> {
        json!({"model": "alias", "input": "hi", "instructions": "Be brief.", "temperature": 0.2,
               "tools": [{"type": "function", "name": "get_weather", "parameters": {}}]})
        .as_object()
        .unwrap()
        .clone()
    }

    fn response(completion: Value) -> Value {
        let head = head(&request(), "alias", "resp_1", 1_700_000_000);
        serde_json::from_slice(&to_response(completion.to_string().as_bytes(), &head).unwrap())
            .unwrap()
    }

    #[test]
    fn the_head_echoes_the_request_and_fills_openai_defaults() {
        let head = Value::Object(head(&request(), "alias", "resp_1", 1_700_000_000));
        assert_eq!(
            head,
            json!({
                "id": "resp_1", "object": "response", "created_at": 1_700_000_000, "model": "alias",
                "error": null, "incomplete_details": null, "instructions": "Be brief.",
                "max_output_tokens": null, "metadata": {}, "parallel_tool_calls": true,
                "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
                "store": true, "temperature": 0.2, "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
                "top_p": 1.0, "truncation": "disabled", "user": null,
            })
        );
    }

    #[test]
    fn ids_look_like_openais() {
        let id = new_response_id();
        assert_eq!(id.len(), "resp_".len() + 48);
        assert!(id["resp_".len()..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_response_id(), id);
        assert!(new_message_id().starts_with("msg_"));
        assert!(new_function_call_id().starts_with("fc_"));
        assert_eq!(new_call_id().len(), "call_".len() + 24);
    }

    #[test]
    fn a_completion_with_text_and_tool_calls_becomes_a_message_and_function_call_items() {
        let response = response(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-up",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.",
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
                ]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                      "prompt_tokens_details": {"cached_tokens": 60},
                      "completion_tokens_details": {"reasoning_tokens": 5}},
        }));
        assert_eq!(response["status"], "completed");
        assert_eq!(response["incomplete_details"], Value::Null);
        assert_eq!(response["model"], "alias");
        assert_eq!(response["id"], "resp_1");
        let output = response["output"].as_array().unwrap();
        assert_eq!(output.len(), 3);
        let message = &output[0];
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(
            message["content"],
            json!([{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}])
        );
        assert_eq!(
            (&message["type"], &message["role"], &message["status"]),
            (&json!("message"), &json!("assistant"), &json!("completed"))
        );
        let call = &output[1];
        assert!(call["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(
            (&call["type"], &call["call_id"], &call["name"], &call["arguments"], &call["status"]),
            (
                &json!("function_call"),
                &json!("call_a"),
                &json!("get_weather"),
                &json!("{\"city\":\"Paris\"}"),
                &json!("completed")
            )
        );
        assert_eq!(output[2]["arguments"], "{}", "empty arguments are an empty object");
        assert_ne!(output[2]["call_id"], "call_a", "a call_id is never used twice");
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
                   "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 5},
                   "total_tokens": 120})
        );
    }

    #[test]
    fn finish_length_or_content_filter_is_incomplete_and_a_refusal_is_a_refusal_part() {
        for (finish, reason) in
            [("length", "max_output_tokens"), ("content_filter", "content_filter")]
        {
            let response = response(json!({"id": "x", "choices": [{"index": 0,
                "finish_reason": finish, "message": {"role": "assistant", "content": "t"}}]}));
            assert_eq!(response["status"], "incomplete", "{finish}");
            assert_eq!(response["incomplete_details"], json!({"reason": reason}));
            assert_eq!(response["usage"]["total_tokens"], 0, "no usage: zeros");
        }
        let refused = response(json!({"id": "x", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]}));
        assert_eq!(
            refused["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't help with that."}])
        );
        let empty = response(json!({"id": "x", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": ""}}]}));
        assert_eq!(empty["output"], json!([]), "no empty message item");
    }

    #[test]
    fn a_body_that_is_not_a_completion_is_refused() {
        let head = head(&request(), "alias", "resp_1", 0);
        for body in [&b"not json"[..], br#"{"choices": []}"#, br#"{"error": {"message": "x"}}"#] {
            assert!(to_response(body, &head).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }
}
