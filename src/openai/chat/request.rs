//! The chat-completions request as the gateway reads it: a checked [`RawObject`] (kept as the
//! client's text, so fields the gateway does not know, such as vendor sampling parameters sent
//! through the SDK's `extra_body`, reach the upstream unchanged) and the few fields the gateway
//! itself needs, read out of it and checked. The whole body is parsed into values only when
//! something needs them (the mock and Anthropic providers, the token estimate), so an
//! OpenAI-shaped passthrough never builds them.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::object::MAX_OUTPUT_TOKENS;
use crate::json::{InvalidRequest, RawObject};

/// A checked `POST /v1/chat/completions` body.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The model name the client sent: a configured alias.
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: the client wants the final usage chunk.
    pub include_usage: bool,
    /// The body as the client sent it: an OpenAI-shaped upstream gets its values as they came.
    object: RawObject,
}

impl ChatRequest {
    /// Parses and checks the fields the gateway relies on; the upstream judges the rest.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidRequest> {
        Self::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// [`from_slice`](Self::from_slice), keeping `bytes` without a copy.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, InvalidRequest> {
        let object = RawObject::from_bytes(bytes)?;
        let model = object.required_string("model")?;
        object.required_array("messages")?;
        let stream = object.flag("stream")?;
        for (key, max) in [
            ("n", MAX_N),
            ("max_tokens", MAX_OUTPUT_TOKENS),
            ("max_completion_tokens", MAX_OUTPUT_TOKENS),
        ] {
            check_integer(object.member(key)?, key, 1, max)?;
        }
        let include_usage = stream
            && object
                .member("stream_options")?
                .and_then(|options| options.get("include_usage").and_then(Value::as_bool))
                .unwrap_or(false);
        Ok(Self { model, stream, include_usage, object })
    }

    /// The top-level members as the client wrote them, sorted by key, each with its value's JSON
    /// text (a later duplicate key having won): what the cache key is computed from, so that it
    /// sees numbers as the client spelled them.
    pub fn members(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.object.members()
    }

    /// The whole body as the client sent it, parsed on first use.
    pub fn body(&self) -> &Map<String, Value> {
        self.object.body()
    }

    /// Tests only: changes the parsed body (not the bytes an OpenAI upstream is sent), to build
    /// requests that parsing would refuse.
    #[cfg(test)]
    pub(crate) fn body_mut(&mut self) -> &mut Map<String, Value> {
        self.object.body_mut()
    }

    pub fn messages(&self) -> &[Value] {
        self.body().get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// The body for an OpenAI-shaped upstream: `model` replaced by the upstream's model name,
    /// every other member written as the client's own text (`RawObject::with_model`). A
    /// streamed request always asks for the final usage chunk (`stream_options.include_usage:
    /// true`), which the gateway needs for accounting; the client's other `stream_options` are
    /// kept.
    pub fn for_upstream(&self, upstream_model: &str) -> Result<Vec<u8>, serde_json::Error> {
        if !self.stream {
            return self.object.with_model(upstream_model, &[], b"");
        }
        let mut options = match self.object.member("stream_options") {
            Ok(Some(Value::Object(options))) => options,
            _ => Map::new(),
        };
        options.insert("include_usage".to_owned(), Value::Bool(true));
        let mut extra = b",\"stream_options\":".to_vec();
        serde_json::to_writer(&mut extra, &options)?;
        self.object.with_model(upstream_model, &["stream_options"], &extra)
    }
}

/// The most choices a request may ask for (OpenAI's own limit).
const MAX_N: u64 = 128;

/// `value` (the member `key`), when present and not null, must be an integer in `min..=max`.
fn check_integer(
    value: Option<Value>,
    key: &'static str,
    min: u64,
    max: u64,
) -> Result<(), InvalidRequest> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (min..=max).contains(&n)) => Ok(()),
        Some(_) => Err(InvalidRequest {
            message: format!("`{key}` must be an integer from {min} to {max}."),
            param: Some(key),
            code: "invalid_value",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::scan::{MAX_MEMBERS, MAX_VALUES};

    fn upstream_json(request: &ChatRequest, model: &str) -> Value {
        serde_json::from_slice(&request.for_upstream(model).unwrap()).unwrap()
    }

    #[test]
    fn keeps_unknown_fields_and_swaps_only_the_model() {
        let body = br#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"top_k":7,"stream":true,"stream_options":{"include_usage":true}}"#;
        let request = ChatRequest::from_slice(body).unwrap();
        assert!(request.stream && request.include_usage);
        let upstream: Value = upstream_json(&request, "gpt-x");
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
        let upstream = String::from_utf8(request.for_upstream("b").unwrap()).unwrap();
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
        let upstream: Value = upstream_json(&plain, "b");
        assert_eq!(upstream["stream_options"], serde_json::json!({"include_usage": true}));
        assert!(!plain.include_usage, "the client itself did not ask");

        let body = br#"{"model":"a","messages":[{}],"stream":true,"stream_options":{"include_obfuscation":false}}"#;
        let other = ChatRequest::from_slice(body).unwrap();
        let upstream: Value = upstream_json(&other, "b");
        assert_eq!(
            upstream["stream_options"],
            serde_json::json!({"include_obfuscation": false, "include_usage": true})
        );

        let whole = ChatRequest::from_slice(br#"{"model":"a","messages":[{}]}"#).unwrap();
        let upstream: Value = upstream_json(&whole, "b");
        assert!(upstream.get("stream_options").is_none());
    }

    #[test]
    fn the_whole_body_is_parsed_only_when_something_asks_for_it() {
        let body = br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1}}"#;
        let request = ChatRequest::from_slice(body).unwrap();
        let upstream = upstream_json(&request, "b");
        assert_eq!(upstream["stream_options"], serde_json::json!({"x": 1, "include_usage": true}));
        assert!(!request.object.is_parsed(), "the passthrough built no values");
        assert_eq!(request.messages()[0]["content"], "hi");
        assert!(request.object.is_parsed());
    }

    #[test]
    fn refuses_every_body_that_parsing_into_values_refuses() {
        let deep =
            format!(r#"{{"model":"m","messages":[{}1{}]}}"#, "[".repeat(200), "]".repeat(200));
        let cases: [&[u8]; 7] = [
            br#"{"model":"m","messages":[{}],"temperature":1e400}"#,
            br#"{"model":"m","messages":[{}],"top_p":1e400,"top_p":1}"#,
            br#"{"model":"m","messages":[{"content":"\ud800"}]}"#,
            b"{\"model\":\"m\",\"messages\":[{\"content\":\"\xff\"}]}",
            br#"{"model":"m","messages":[{}]} trailing"#,
            br#"{"model":"m","messages":[{}],"x":[1,]}"#,
            deep.as_bytes(),
        ];
        for body in cases {
            assert!(serde_json::from_slice::<Value>(body).is_err());
            let err = ChatRequest::from_slice(body).unwrap_err();
            assert_eq!(err.code, "invalid_json", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn bodies_that_would_parse_into_far_more_memory_than_they_take_are_refused() {
        let base = r#""model":"m","messages":[{"role":"user","content":"hi"}]"#;
        let duplicates = format!("{{{base}{}}}", r#","a":0"#.repeat(MAX_MEMBERS));
        let many = format!(r#"{{{base},"x":[{}0]}}"#, "0,".repeat(MAX_VALUES));
        let array = format!("[{}0]", "0,".repeat(MAX_VALUES));
        let wide = format!(r#"{{{base},"x":{{{}"b":0}}}}"#, r#""a":0,"#.repeat(MAX_MEMBERS));
        for body in [duplicates, many, array, wide] {
            let err = ChatRequest::from_slice(body.as_bytes()).unwrap_err();
            assert_eq!((err.code, err.param), ("request_too_complex", None), "{}", err.message);
        }
        let within = format!(r#"{{{base},"x":[{}0]}}"#, "0,".repeat(MAX_VALUES - 100));
        assert!(ChatRequest::from_slice(within.as_bytes()).is_ok());
    }

    #[test]
    fn a_fault_inside_a_member_is_named_in_the_message() {
        let body = br#"{"model":"m","messages":[{}],"temperature":1e400}"#;
        let err = ChatRequest::from_slice(body).unwrap_err();
        assert!(err.message.contains("in `temperature`, number out of range"), "{}", err.message);
        let whole = ChatRequest::from_slice(b"{\"model\":").unwrap_err();
        assert!(!whole.message.contains(" in `"), "{}", whole.message);
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
