//! Answer checks (SPEC §4 "Answer checks"): whether a 200 is an answer worth giving.
//!
//! A model's `answer_checks` make a useless 200 a `bad_answer` failure, which the pipeline
//! retries and fails over like a server error (`pipeline/attempt.rs` runs the checks):
//! - `empty`: no text, no tool call and no refusal;
//! - `invalid_json`: the request asked for JSON (`response_format`, Responses' `text.format`,
//!   Messages' `output_config.format`) and the text does not parse, or does not validate against
//!   the request's JSON Schema;
//! - `refusal`: the model refused, or a content filter stopped it.
//!
//! A whole answer is read whole. A stream is judged on what was held before it reached the
//! client, up to and including its first content (`providers::content_ready`): it is `empty`
//! only when that content is the finish with nothing before it, and `invalid_json` does not
//! apply (the text is not there yet). Each dialect's answer is read for the same three facts
//! ([`Holds`]), so the checks themselves are written once.

use serde_json::Value;

use crate::dialect::{Api, Request};
use crate::outcome::AnswerCheck;

/// The checks a model runs; none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerChecks {
    empty: bool,
    invalid_json: bool,
    refusal: bool,
}

/// What an answer (or a stream's first events) holds, as the checks see it.
#[derive(Debug, Default, PartialEq)]
struct Holds {
    /// The visible text of each part that has some: per choice for chat, the whole answer's
    /// text blocks or output text for Messages and Responses.
    texts: Vec<String>,
    tool_call: bool,
    refusal: bool,
    /// Reasoning text: not an answer, but a stream that starts with it is not empty yet.
    reasoning: bool,
}

impl AnswerChecks {
    pub fn new(checks: &[AnswerCheck]) -> Self {
        Self {
            empty: checks.contains(&AnswerCheck::Empty),
            invalid_json: checks.contains(&AnswerCheck::InvalidJson),
            refusal: checks.contains(&AnswerCheck::Refusal),
        }
    }

    pub fn is_off(self) -> bool {
        self == Self::default()
    }

    /// The check a whole answer to `request` fails, if any. An answer that cannot be read is
    /// left alone: the provider already judged it an answer of the request's dialect.
    pub fn whole(self, request: &Request, body: &[u8]) -> Option<AnswerCheck> {
        if self.is_off() {
            return None;
        }
        let answer: Value = serde_json::from_slice(body).ok()?;
        let holds = match request.api() {
            Api::Chat => chat_completion(&answer),
            Api::Messages => message(&answer),
            Api::Responses => response(&answer),
            Api::Embeddings => return None,
        };
        if let Some(check) = self.judge(&holds, false) {
            return Some(check);
        }
        let wanted = self.invalid_json.then(|| json_wanted(request)).flatten()?;
        let invalid = holds.texts.iter().any(|text| !wanted.accepts(text));
        (invalid && !holds.tool_call).then_some(AnswerCheck::InvalidJson)
    }

    /// The check a stream of `api` fails on `held`: its events up to and including its first
    /// content.
    pub fn stream_head(self, api: Api, held: &[String]) -> Option<AnswerCheck> {
        if self.is_off() {
            return None;
        }
        let mut holds = Holds::default();
        for data in held {
            let Ok(event) = serde_json::from_str::<Value>(data) else { continue };
            match api {
                Api::Chat => chat_chunk(&event, &mut holds),
                Api::Messages => messages_event(&event, &mut holds),
                Api::Responses => responses_event(&event, &mut holds),
                Api::Embeddings => return None,
            }
        }
        self.judge(&holds, true)
    }

    /// `refusal` first (a refusal is neither empty nor JSON), then `empty`.
    fn judge(self, holds: &Holds, streaming: bool) -> Option<AnswerCheck> {
        if holds.refusal {
            return self.refusal.then_some(AnswerCheck::Refusal);
        }
        let nothing = holds.texts.is_empty() && !holds.tool_call && !(streaming && holds.reasoning);
        (self.empty && nothing).then_some(AnswerCheck::Empty)
    }
}

/// The JSON a request asked for: any JSON, or JSON valid against a schema.
enum JsonWanted {
    Any,
    Schema(jsonschema::Validator),
}

impl JsonWanted {
    fn accepts(&self, text: &str) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(text.trim()) else { return false };
        match self {
            Self::Any => true,
            Self::Schema(validator) => validator.is_valid(&value),
        }
    }
}

/// What JSON `request` asked for, if any. A schema that cannot be compiled (a remote `$ref`,
/// which is never fetched, or one that is not a schema) is checked as plain JSON.
fn json_wanted(request: &Request) -> Option<JsonWanted> {
    let body = request.body();
    let (format, schema) = match request.api() {
        Api::Chat => {
            let format = body.get("response_format")?;
            (format, format.pointer("/json_schema/schema"))
        }
        Api::Responses => {
            let format = body.get("text")?.get("format")?;
            (format, format.get("schema"))
        }
        Api::Messages => {
            let format = body
                .get("output_config")
                .and_then(|config| config.get("format"))
                .or_else(|| body.get("output_format"))?;
            (format, format.get("schema"))
        }
        Api::Embeddings => return None,
    };
    match (format.get("type").and_then(Value::as_str)?, schema) {
        ("json_object", _) => Some(JsonWanted::Any),
        ("json_schema", Some(schema)) => match jsonschema::validator_for(schema) {
            Ok(validator) => Some(JsonWanted::Schema(validator)),
            Err(err) => {
                tracing::debug!(error = %err, "the request's JSON Schema does not compile; checking for JSON only");
                Some(JsonWanted::Any)
            }
        },
        ("json_schema", None) => Some(JsonWanted::Any),
        _ => None,
    }
}

fn non_empty(value: &Value) -> Option<&str> {
    value.as_str().filter(|text| !text.trim().is_empty())
}

fn has_items(value: &Value) -> bool {
    value.as_array().is_some_and(|items| !items.is_empty())
}

/// A `chat.completion`: each choice's text (a string, or text parts), tool calls, refusal, and a
/// `content_filter` finish.
fn chat_completion(answer: &Value) -> Holds {
    let mut holds = Holds::default();
    for choice in answer["choices"].as_array().into_iter().flatten() {
        let message = &choice["message"];
        let text = match &message["content"] {
            Value::Array(parts) => {
                parts.iter().filter_map(|part| part["text"].as_str()).collect::<String>()
            }
            content => content.as_str().unwrap_or_default().to_owned(),
        };
        if !text.trim().is_empty() || !message["audio"].is_null() {
            holds.texts.push(text);
        }
        holds.tool_call |=
            has_items(&message["tool_calls"]) || message["function_call"].is_object();
        holds.refusal |=
            non_empty(&message["refusal"]).is_some() || choice["finish_reason"] == "content_filter";
        holds.reasoning |= ["reasoning_content", "reasoning"]
            .iter()
            .any(|key| non_empty(&message[*key]).is_some());
    }
    holds
}

/// A Message: its text blocks as one text, tool-use blocks, a `refusal` stop.
fn message(answer: &Value) -> Holds {
    let mut holds = Holds::default();
    let mut text = String::new();
    for block in answer["content"].as_array().into_iter().flatten() {
        match block["type"].as_str().unwrap_or_default() {
            "text" => text.push_str(block["text"].as_str().unwrap_or_default()),
            "thinking" | "redacted_thinking" => holds.reasoning = true,
            kind if kind.ends_with("tool_use") => holds.tool_call = true,
            _ => {}
        }
    }
    if !text.trim().is_empty() {
        holds.texts.push(text);
    }
    holds.refusal = answer["stop_reason"] == "refusal";
    holds
}

/// A Response: its output text as one text, refusal parts, tool-call items, and an incomplete
/// status for a content filter.
fn response(answer: &Value) -> Holds {
    let mut holds = Holds::default();
    let mut text = String::new();
    for item in answer["output"].as_array().into_iter().flatten() {
        match item["type"].as_str().unwrap_or_default() {
            "message" => {
                for part in item["content"].as_array().into_iter().flatten() {
                    match part["type"].as_str().unwrap_or_default() {
                        "output_text" => text.push_str(part["text"].as_str().unwrap_or_default()),
                        "refusal" => holds.refusal |= non_empty(&part["refusal"]).is_some(),
                        _ => {}
                    }
                }
            }
            "reasoning" => holds.reasoning = true,
            kind if kind.ends_with("_call") => holds.tool_call = true,
            _ => {}
        }
    }
    if !text.trim().is_empty() {
        holds.texts.push(text);
    }
    holds.refusal |= answer.pointer("/incomplete_details/reason").and_then(Value::as_str)
        == Some("content_filter");
    holds
}

/// A `chat.completion.chunk`'s deltas and finish.
fn chat_chunk(chunk: &Value, holds: &mut Holds) {
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|text| !text.is_empty()) {
            holds.texts.push(text.to_owned());
        }
        holds.tool_call |= has_items(&delta["tool_calls"]) || delta["function_call"].is_object();
        holds.refusal |= delta["refusal"].as_str().is_some_and(|text| !text.is_empty())
            || choice["finish_reason"] == "content_filter";
        holds.reasoning |= ["reasoning_content", "reasoning"]
            .iter()
            .any(|key| delta[*key].as_str().is_some_and(|text| !text.is_empty()));
    }
}

/// A Messages stream event: a block's start or delta, or the `message_delta` with the stop.
fn messages_event(event: &Value, holds: &mut Holds) {
    match event["type"].as_str().unwrap_or_default() {
        "content_block_start" => {
            let block = &event["content_block"];
            match block["type"].as_str().unwrap_or_default() {
                "text" => push_text(holds, &block["text"]),
                "thinking" | "redacted_thinking" => holds.reasoning = true,
                kind if kind.ends_with("tool_use") => holds.tool_call = true,
                _ => {}
            }
        }
        "content_block_delta" => {
            let delta = &event["delta"];
            match delta["type"].as_str().unwrap_or_default() {
                "text_delta" => push_text(holds, &delta["text"]),
                "input_json_delta" => holds.tool_call = true,
                "thinking_delta" | "signature_delta" => holds.reasoning = true,
                _ => {}
            }
        }
        "message_delta" => {
            holds.refusal |= event.pointer("/delta/stop_reason") == Some(&"refusal".into())
        }
        _ => {}
    }
}

/// A Responses stream event: text, refusal and reasoning deltas, tool-call items, and a terminal
/// event's whole Response.
fn responses_event(event: &Value, holds: &mut Holds) {
    let kind = event["type"].as_str().unwrap_or_default();
    match kind {
        "response.output_text.delta" => push_text(holds, &event["delta"]),
        "response.refusal.delta" | "response.refusal.done" => holds.refusal = true,
        "response.content_part.added" => match event["part"]["type"].as_str() {
            Some("output_text") => push_text(holds, &event["part"]["text"]),
            Some("refusal") => holds.refusal |= non_empty(&event["part"]["refusal"]).is_some(),
            _ => {}
        },
        "response.output_item.added" | "response.output_item.done" => {
            let item = &event["item"];
            match item["type"].as_str().unwrap_or_default() {
                "reasoning" => holds.reasoning |= has_items(&item["summary"]),
                kind if kind.ends_with("_call") => holds.tool_call = true,
                _ => {}
            }
        }
        "response.completed" | "response.incomplete" => {
            let whole = response(&event["response"]);
            holds.texts.extend(whole.texts);
            holds.tool_call |= whole.tool_call;
            holds.refusal |= whole.refusal;
        }
        kind if kind.starts_with("response.reasoning") => holds.reasoning = true,
        _ => {}
    }
}

fn push_text(holds: &mut Holds, text: &Value) {
    if let Some(text) = text.as_str().filter(|text| !text.is_empty()) {
        holds.texts.push(text.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::outcome::AnswerCheck::{Empty, InvalidJson, Refusal};

    const ALL: AnswerChecks = AnswerChecks { empty: true, invalid_json: true, refusal: true };

    fn chat(body: Value) -> Request {
        let bytes = serde_json::to_vec(&body).unwrap();
        Request::Chat(crate::openai::chat::ChatRequest::from_slice(&bytes).unwrap())
    }

    fn completion(message: Value, finish: &str) -> Vec<u8> {
        let answer = json!({"object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": finish}]});
        serde_json::to_vec(&answer).unwrap()
    }

    fn plain() -> Request {
        chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
    }

    #[test]
    fn a_whole_chat_answer_is_empty_without_text_tool_call_or_refusal() {
        let request = plain();
        let empty = completion(json!({"role": "assistant", "content": ""}), "stop");
        assert_eq!(ALL.whole(&request, &empty), Some(Empty));
        let spaces = completion(json!({"role": "assistant", "content": "  \n"}), "stop");
        assert_eq!(ALL.whole(&request, &spaces), Some(Empty));
        let reasoned = completion(
            json!({"role": "assistant", "content": null, "reasoning_content": "thinking..."}),
            "length",
        );
        assert_eq!(ALL.whole(&request, &reasoned), Some(Empty), "reasoning is not an answer");
        let text = completion(json!({"role": "assistant", "content": "Hello"}), "stop");
        assert_eq!(ALL.whole(&request, &text), None);
        let tool = completion(
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
            "tool_calls",
        );
        assert_eq!(ALL.whole(&request, &tool), None);
    }

    #[test]
    fn a_refusal_or_a_content_filter_is_a_refusal_not_an_empty_answer() {
        let request = plain();
        let refused = completion(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "stop",
        );
        assert_eq!(ALL.whole(&request, &refused), Some(Refusal));
        let filtered = completion(json!({"role": "assistant", "content": ""}), "content_filter");
        assert_eq!(ALL.whole(&request, &filtered), Some(Refusal));
        let only_empty = AnswerChecks::new(&[Empty]);
        assert_eq!(only_empty.whole(&request, &refused), None, "refusals pass unless checked");
    }

    #[test]
    fn invalid_json_applies_only_when_json_was_asked_for() {
        let prose = completion(json!({"role": "assistant", "content": "Sure! {\"a\": 1}"}), "stop");
        assert_eq!(ALL.whole(&plain(), &prose), None);
        let object = chat(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}),
        );
        assert_eq!(ALL.whole(&object, &prose), Some(InvalidJson));
        let json = completion(json!({"role": "assistant", "content": "{\"a\": 1}"}), "stop");
        assert_eq!(ALL.whole(&object, &json), None);
        let text_format = chat(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "text"}}),
        );
        assert_eq!(ALL.whole(&text_format, &prose), None);
    }

    #[test]
    fn invalid_json_validates_against_the_requests_schema() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
        let request = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": true}}}));
        let valid =
            completion(json!({"role": "assistant", "content": "{\"city\": \"Oslo\"}"}), "stop");
        assert_eq!(ALL.whole(&request, &valid), None);
        let wrong =
            completion(json!({"role": "assistant", "content": "{\"town\": \"Oslo\"}"}), "stop");
        assert_eq!(ALL.whole(&request, &wrong), Some(InvalidJson));
        let remote = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"$ref": "https://example.com/s.json"}}}}));
        assert_eq!(ALL.whole(&remote, &wrong), None, "a remote $ref is not fetched: JSON only");
    }

    #[test]
    fn messages_and_responses_answers_are_read_for_the_same_facts() {
        let messages = {
            let body =
                br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
            let request = crate::anthropic::MessagesRequest::from_slice(body).unwrap();
            Request::Messages(crate::dialect::Messages::new(request, Vec::new()))
        };
        let empty = json!({"type": "message", "content": [{"type": "text", "text": ""}], "stop_reason": "end_turn"});
        assert_eq!(ALL.whole(&messages, &serde_json::to_vec(&empty).unwrap()), Some(Empty));
        let refused = json!({"type": "message", "content": [], "stop_reason": "refusal"});
        assert_eq!(ALL.whole(&messages, &serde_json::to_vec(&refused).unwrap()), Some(Refusal));
        let tool = json!({"type": "message", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "stop_reason": "tool_use"});
        assert_eq!(ALL.whole(&messages, &serde_json::to_vec(&tool).unwrap()), None);

        let responses = {
            let body = br#"{"model":"m","input":"hi","text":{"format":{"type":"json_object"}}}"#;
            let request = crate::openai::responses::ResponsesRequest::from_slice(body).unwrap();
            Request::Responses(crate::dialect::Responses::new(request, None))
        };
        let answer = |content: Value| {
            let body = json!({"object": "response", "status": "completed", "output": [{"type": "message", "role": "assistant", "content": content}]});
            serde_json::to_vec(&body).unwrap()
        };
        assert_eq!(ALL.whole(&responses, &answer(json!([]))), Some(Empty));
        let prose = answer(json!([{"type": "output_text", "text": "not json"}]));
        assert_eq!(ALL.whole(&responses, &prose), Some(InvalidJson));
        let refusal = answer(json!([{"type": "refusal", "refusal": "no"}]));
        assert_eq!(ALL.whole(&responses, &refusal), Some(Refusal));
    }

    #[test]
    fn a_stream_is_empty_only_when_its_first_content_is_a_bare_finish() {
        let role =
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#.to_owned();
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Chat, &[role.clone(), finish]), Some(Empty));
        let text = r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Chat, &[role.clone(), text]), None);
        let thinking =
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"Hmm"}}]}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Chat, &[role.clone(), thinking]), None);
        let refusal = r#"{"choices":[{"index":0,"delta":{"refusal":"No"}}]}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Chat, &[role, refusal]), Some(Refusal));

        let start = r#"{"type":"message_start","message":{"content":[]}}"#.to_owned();
        let stop = r#"{"type":"message_delta","delta":{"stop_reason":"refusal"}}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Messages, &[start.clone(), stop]), Some(Refusal));
        let end = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Messages, &[start, end]), Some(Empty));

        let created = r#"{"type":"response.created","response":{"output":[]}}"#.to_owned();
        let done = r#"{"type":"response.completed","response":{"status":"completed","output":[]}}"#
            .to_owned();
        assert_eq!(ALL.stream_head(Api::Responses, &[created.clone(), done]), Some(Empty));
        let delta = r#"{"type":"response.output_text.delta","delta":"Hi"}"#.to_owned();
        assert_eq!(ALL.stream_head(Api::Responses, &[created, delta]), None);
    }

    #[test]
    fn no_checks_judge_nothing() {
        let off = AnswerChecks::new(&[]);
        let empty = completion(json!({"role": "assistant", "content": ""}), "stop");
        assert!(off.is_off());
        assert_eq!(off.whole(&plain(), &empty), None);
    }
}
