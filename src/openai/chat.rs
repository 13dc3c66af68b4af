//! The chat-completions request as the gateway reads it, and the response types it writes.
//!
//! The request is kept as the client's JSON object so that fields the gateway does not know
//! (vendor sampling parameters sent through the SDK's `extra_body`) reach the upstream unchanged.
//! Only what the gateway itself needs is read out of it and checked.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::ser::{Error as _, Serialize, SerializeMap, Serializer};
use serde::{Deserialize, Serialize as DeriveSerialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A checked `POST /v1/chat/completions` body.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The model name the client sent: a configured alias.
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: the client wants the final usage chunk.
    pub include_usage: bool,
    /// The whole body as sent, parsed. Private so that it cannot drift from `raw`.
    body: Map<String, Value>,
    /// The body's bytes: an OpenAI-shaped upstream gets the client's values as they came.
    raw: Bytes,
}

/// Why a request body was refused; `param` names the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
    pub code: &'static str,
}

impl ChatRequest {
    /// Parses and checks the fields the gateway relies on; the upstream judges the rest.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidRequest> {
        Self::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// [`from_slice`](Self::from_slice), keeping `bytes` without a copy.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, InvalidRequest> {
        let value: Value = serde_json::from_slice(&bytes).map_err(|err| InvalidRequest {
            message: format!("The request body is not valid JSON: {err}."),
            param: None,
            code: "invalid_json",
        })?;
        let Value::Object(body) = value else {
            return Err(invalid(None, "invalid_type", "The request body must be a JSON object."));
        };
        let model = match body.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            Some(_) => {
                return Err(invalid(Some("model"), "invalid_type", "`model` must be a string."));
            }
            None => return Err(missing("model")),
        };
        match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {}
            Some(Value::Array(_)) => {
                return Err(invalid(
                    Some("messages"),
                    "invalid_value",
                    "`messages` must not be empty.",
                ));
            }
            Some(_) => {
                return Err(invalid(
                    Some("messages"),
                    "invalid_type",
                    "`messages` must be an array.",
                ));
            }
            None => return Err(missing("messages")),
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => {
                return Err(invalid(Some("stream"), "invalid_type", "`stream` must be a boolean."));
            }
        };
        check_integer(&body, "n", 1, MAX_N)?;
        check_integer(&body, "max_tokens", 1, MAX_TOKENS)?;
        check_integer(&body, "max_completion_tokens", 1, MAX_TOKENS)?;
        let include_usage = stream
            && body
                .get("stream_options")
                .and_then(|options| options.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        Ok(Self { model, stream, include_usage, body, raw: bytes })
    }

    /// The whole body as the client sent it.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// Tests only: changes the parsed body (not the bytes an OpenAI upstream is sent), to build
    /// requests that parsing would refuse.
    #[cfg(test)]
    pub(crate) fn body_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.body
    }

    /// The size of the body as the client sent it, in bytes.
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    pub fn messages(&self) -> &[Value] {
        self.body.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// The body with `model` replaced by the upstream's model name, ready to serialise.
    pub fn for_upstream<'a>(&'a self, upstream_model: &'a str) -> UpstreamBody<'a> {
        UpstreamBody { request: self, model: upstream_model }
    }
}

/// The most choices a request may ask for (OpenAI's own limit).
const MAX_N: u64 = 128;
/// Far above any model's output limit; larger values are mistakes or abuse.
const MAX_TOKENS: u64 = 10_000_000;

/// `key`, when present (and not null), must be an integer in `min..=max`.
fn check_integer(
    body: &Map<String, Value>,
    key: &'static str,
    min: u64,
    max: u64,
) -> Result<(), InvalidRequest> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (min..=max).contains(&n)) => Ok(()),
        Some(_) => Err(InvalidRequest {
            message: format!("`{key}` must be an integer from {min} to {max}."),
            param: Some(key),
            code: "invalid_value",
        }),
    }
}

fn invalid(param: Option<&'static str>, code: &'static str, message: &str) -> InvalidRequest {
    InvalidRequest { message: message.to_owned(), param, code }
}

fn missing(param: &'static str) -> InvalidRequest {
    InvalidRequest {
        message: format!("Missing required parameter: '{param}'."),
        param: Some(param),
        code: "missing_required_parameter",
    }
}

/// Serialises a request's body with another `model`, without copying the body. A streamed
/// request always asks for the final usage chunk (`stream_options.include_usage: true`), which
/// the gateway needs for accounting; the client's other `stream_options` are kept.
///
/// Every other value is written as the client's text, not encoded again from the parsed body:
/// a long conversation costs a scan instead of a character-by-character escape, and numbers
/// keep the client's exact spelling.
pub struct UpstreamBody<'a> {
    request: &'a ChatRequest,
    model: &'a str,
}

impl Serialize for UpstreamBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The same bytes parsed as `body` was (a later duplicate key wins in both), so the two
        // have the same keys.
        let body: BTreeMap<String, &RawValue> =
            serde_json::from_slice(&self.request.raw).map_err(S::Error::custom)?;
        let add_options = self.request.stream && !body.contains_key("stream_options");
        let mut map = serializer.serialize_map(Some(body.len() + usize::from(add_options)))?;
        map.serialize_entry("model", self.model)?;
        for (key, value) in &body {
            match key.as_str() {
                "model" => {}
                "stream_options" if self.request.stream => {
                    let options = self.request.body.get("stream_options");
                    let mut options =
                        options.and_then(Value::as_object).cloned().unwrap_or_default();
                    options.insert("include_usage".to_owned(), Value::Bool(true));
                    map.serialize_entry(key, &options)?;
                }
                _ => map.serialize_entry(key, *value)?,
            }
        }
        if add_options {
            map.serialize_entry("stream_options", &serde_json::json!({"include_usage": true}))?;
        }
        map.end()
    }
}

// === Response types (written by the gateway's own providers) ===

#[derive(Clone, Debug, DeriveSerialize, Deserialize, PartialEq)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Clone, Debug, DeriveSerialize, Deserialize, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<Value>,
    pub finish_reason: String,
}

#[derive(Clone, Debug, DeriveSerialize, Deserialize, PartialEq)]
pub struct AssistantMessage {
    pub role: String,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Clone, Debug, DeriveSerialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Clone, Debug, DeriveSerialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    pub arguments: String,
}

#[derive(Clone, Copy, Debug, Default, DeriveSerialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unknown_fields_and_swaps_only_the_model() {
        let body = br#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"top_k":7,"stream":true,"stream_options":{"include_usage":true}}"#;
        let request = ChatRequest::from_slice(body).unwrap();
        assert!(request.stream && request.include_usage);
        let upstream: Value = serde_json::to_value(request.for_upstream("gpt-x")).unwrap();
        assert_eq!(upstream["model"], "gpt-x");
        assert_eq!(upstream["top_k"], 7);
        assert_eq!(upstream["messages"][0]["content"], "hi");
    }

    #[test]
    fn the_client_values_reach_the_upstream_as_written() {
        let body =
            br#"{"model":"alias", "messages":[{"role":"user","content":"caf\u00e9 \"quoted\""}],
            "seed":123456789012345678901234567890,"temperature":1.0,"logit_bias":{"50256":-100},
            "top_p":0.5,"top_p":0.25}"#;
        let request = ChatRequest::from_slice(body).unwrap();
        let upstream =
            String::from_utf8(serde_json::to_vec(&request.for_upstream("b")).unwrap()).unwrap();
        for kept in [
            r#""content":"caf\u00e9 \"quoted\"""#,
            r#""seed":123456789012345678901234567890"#,
            r#""temperature":1.0"#,
            r#""logit_bias":{"50256":-100}"#,
            r#""top_p":0.25"#,
            r#""model":"b""#,
        ] {
            assert!(upstream.contains(kept), "{kept} not in {upstream}");
        }
        assert!(!upstream.contains("0.5") && !upstream.contains("alias"), "{upstream}");
    }

    #[test]
    fn streamed_requests_always_ask_upstream_for_usage() {
        let plain =
            ChatRequest::from_slice(br#"{"model":"a","messages":[{}],"stream":true}"#).unwrap();
        let upstream: Value = serde_json::to_value(plain.for_upstream("b")).unwrap();
        assert_eq!(upstream["stream_options"], serde_json::json!({"include_usage": true}));
        assert!(!plain.include_usage, "the client itself did not ask");

        let body = br#"{"model":"a","messages":[{}],"stream":true,"stream_options":{"include_obfuscation":false}}"#;
        let other = ChatRequest::from_slice(body).unwrap();
        let upstream: Value = serde_json::to_value(other.for_upstream("b")).unwrap();
        assert_eq!(
            upstream["stream_options"],
            serde_json::json!({"include_obfuscation": false, "include_usage": true})
        );

        let whole = ChatRequest::from_slice(br#"{"model":"a","messages":[{}]}"#).unwrap();
        let upstream: Value = serde_json::to_value(whole.for_upstream("b")).unwrap();
        assert!(upstream.get("stream_options").is_none());
    }

    #[test]
    fn names_the_offending_parameter() {
        let cases: [(&[u8], Option<&str>, &str); 10] = [
            (b"not json", None, "invalid_json"),
            (b"[1]", None, "invalid_type"),
            (br#"{"messages":[{}]}"#, Some("model"), "missing_required_parameter"),
            (br#"{"model":"m"}"#, Some("messages"), "missing_required_parameter"),
            (br#"{"model":"m","messages":[]}"#, Some("messages"), "invalid_value"),
            (br#"{"model":"m","messages":[{}],"stream":"yes"}"#, Some("stream"), "invalid_type"),
            (br#"{"model":"m","messages":[{}],"n":0}"#, Some("n"), "invalid_value"),
            (br#"{"model":"m","messages":[{}],"n":-3}"#, Some("n"), "invalid_value"),
            (
                br#"{"model":"m","messages":[{}],"max_tokens":1e12}"#,
                Some("max_tokens"),
                "invalid_value",
            ),
            (
                br#"{"model":"m","messages":[{}],"max_completion_tokens":"lots"}"#,
                Some("max_completion_tokens"),
                "invalid_value",
            ),
        ];
        for (body, param, code) in cases {
            let err = ChatRequest::from_slice(body).unwrap_err();
            assert_eq!((err.param, err.code), (param, code), "{}", String::from_utf8_lossy(body));
        }
    }
}
