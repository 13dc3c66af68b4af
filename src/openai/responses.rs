//! The Responses API request as the gateway reads it (`POST /v1/responses`): a checked
//! [`RawObject`] (kept as the client's text, so that everything the gateway does not read,
//! reasoning settings, `include`, built-in tools, fields newer than this gateway, reaches an
//! OpenAI upstream unchanged) and the few fields the gateway needs, checked as OpenAI documents
//! them: `model` is required, `input` is a string or an array of items, `stream` and
//! `background` are booleans, `previous_response_id` a string, `instructions` a string. The rest
//! is the upstream's to judge (or the translation's, for a target that speaks only chat).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::object::{MAX_OUTPUT_TOKENS, invalid};
use crate::json::scan::Shape;
use crate::json::{InvalidRequest, RawObject};

/// A checked `POST /v1/responses` body.
#[derive(Clone, Debug)]
pub struct ResponsesRequest {
    /// The model name the client sent: a configured alias.
    pub model: String,
    pub stream: bool,
    /// `background: true`: answered later, through `GET /v1/responses/{id}`; only an OpenAI
    /// target can keep that promise.
    pub background: bool,
    /// The response this one continues, when the client sent one.
    pub previous_response_id: Option<String>,
    object: RawObject,
}

impl ResponsesRequest {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidRequest> {
        Self::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// [`from_slice`](Self::from_slice), keeping `bytes` without a copy.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, InvalidRequest> {
        let object = RawObject::from_bytes(bytes)?;
        let model = object.required_string("model")?;
        // Its shape only: a long conversation is not parsed here (a passthrough never parses it).
        let scalar_input = match object.shape("input") {
            None | Some(Shape::Array { .. }) => false,
            Some(Shape::Scalar) => true,
            Some(Shape::Object) => return Err(bad_input()),
        };
        if scalar_input && !matches!(object.member("input")?, Some(Value::Null | Value::String(_)))
        {
            return Err(bad_input());
        }
        for key in ["instructions", "previous_response_id"] {
            if !matches!(object.member(key)?, None | Some(Value::Null | Value::String(_))) {
                return Err(invalid(
                    Some(key),
                    "invalid_type",
                    &format!("`{key}` must be a string."),
                ));
            }
        }
        match object.member("max_output_tokens")? {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= MAX_OUTPUT_TOKENS) => {}
            Some(_) => {
                return Err(invalid(
                    Some("max_output_tokens"),
                    "invalid_value",
                    &format!("`max_output_tokens` must be an integer up to {MAX_OUTPUT_TOKENS}."),
                ));
            }
        }
        let previous_response_id = match object.member("previous_response_id")? {
            Some(Value::String(id)) if !id.is_empty() => Some(id),
            _ => None,
        };
        let stream = object.flag("stream")?;
        let background = object.flag("background")?;
        Ok(Self { model, stream, background, previous_response_id, object })
    }

    /// The top-level members as the client wrote them, sorted by key, each with its value's JSON
    /// text (a later duplicate key having won).
    pub fn members(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.object.members()
    }

    /// The top-level member `key`, parsed alone (the rest of the body is not).
    pub fn member(&self, key: &str) -> Result<Option<Value>, InvalidRequest> {
        self.object.member(key)
    }

    /// The whole body as the client sent it, parsed on first use.
    pub fn body(&self) -> &Map<String, Value> {
        self.object.body()
    }

    /// The body for an OpenAI-shaped upstream: the client's own bytes, with `model`'s value
    /// replaced.
    pub fn for_upstream(&self, upstream_model: &str) -> Result<Vec<u8>, serde_json::Error> {
        self.object.with_model_in_place(upstream_model)
    }

    /// This request's own input as items: a string input is one user message.
    pub fn input_items(&self) -> Vec<Value> {
        match self.body().get("input") {
            Some(Value::String(text)) => {
                vec![serde_json::json!({"type": "message", "role": "user", "content": text})]
            }
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    }
}

fn bad_input() -> InvalidRequest {
    invalid(Some("input"), "invalid_type", "`input` must be a string or an array of input items.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_agents_sdk_sends_is_accepted_and_forwarded_as_written() {
        let body = br#"{"model":"alias","input":[{"role":"user","content":"hi"}],
            "instructions":"be brief","tools":[{"type":"function","name":"f","parameters":{}}],
            "include":[],"stream":false,"previous_response_id":"resp_1","store":true}"#;
        let request = ResponsesRequest::from_slice(body).unwrap();
        assert_eq!(request.model, "alias");
        assert_eq!(request.previous_response_id.as_deref(), Some("resp_1"));
        assert!(!request.stream && !request.background);
        let upstream = String::from_utf8(request.for_upstream("gpt-x").unwrap()).unwrap();
        assert!(upstream.starts_with(r#"{"model":"gpt-x","input""#), "{upstream}");
        assert_eq!(request.input_items().len(), 1);
    }

    #[test]
    fn a_string_input_is_one_user_message() {
        let request = ResponsesRequest::from_slice(br#"{"model":"m","input":"hello"}"#).unwrap();
        assert_eq!(
            request.input_items(),
            vec![serde_json::json!({"type": "message", "role": "user", "content": "hello"})]
        );
    }

    #[test]
    fn malformed_members_are_refused_by_name() {
        for (body, param) in [
            (r#"{"input":"x"}"#, "model"),
            (r#"{"model":"m","input":3}"#, "input"),
            (r#"{"model":"m","input":"x","instructions":{}}"#, "instructions"),
            (r#"{"model":"m","input":"x","previous_response_id":1}"#, "previous_response_id"),
            (r#"{"model":"m","input":"x","stream":"yes"}"#, "stream"),
            (r#"{"model":"m","input":"x","max_output_tokens":-1}"#, "max_output_tokens"),
        ] {
            let refused = ResponsesRequest::from_slice(body.as_bytes()).unwrap_err();
            assert_eq!(refused.param, Some(param), "{body}");
        }
    }
}
