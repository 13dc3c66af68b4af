//! The chat-completions request as the gateway reads it: checked, kept as the client's text.
//!
//! The request is kept as the client's JSON text so that fields the gateway does not know
//! (vendor sampling parameters sent through the SDK's `extra_body`) reach the upstream unchanged.
//! Only what the gateway itself needs is read out of it and checked; the whole body is parsed
//! into values only when something needs them (the cache key, the mock and Anthropic
//! providers), so an OpenAI-shaped passthrough never builds them.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::scan::{Budget, MAX_MEMBERS, MAX_VALUES, ScanError, Shape, TooComplex};

/// A checked `POST /v1/chat/completions` body.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The model name the client sent: a configured alias.
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: the client wants the final usage chunk.
    pub include_usage: bool,
    /// The body's bytes: an OpenAI-shaped upstream gets the client's values as they came.
    raw: Bytes,
    /// The top-level members, sorted by key, each with where its value lies in `raw`. A later
    /// duplicate key wins, as it does in `body`.
    fields: Vec<(String, Range<usize>)>,
    /// The whole body parsed, made on first use. Private so that it cannot drift from `raw`.
    body: OnceLock<Map<String, Value>>,
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
    ///
    /// The top-level members are located, then each is checked as strictly as parsing it into
    /// values would (syntax, UTF-8, escapes, number range, nesting depth) without building them,
    /// and only the few the gateway reads are parsed.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, InvalidRequest> {
        let mut budget = Budget::new();
        let members = match budget.members(&bytes) {
            Ok(members) => members,
            Err(ScanError::TooComplex(bound)) => return Err(too_complex(bound)),
            // Not an object of JSON values: say which (only on this path is the whole body
            // checked again).
            Err(ScanError::Json(err)) => {
                return Err(match Budget::new().shape_of(&bytes) {
                    Ok(_) if !err.is_syntax() && !err.is_eof() => {
                        invalid(None, "invalid_type", "The request body must be a JSON object.")
                    }
                    Ok(_) => not_json(None, &err),
                    Err(ScanError::Json(err)) => not_json(None, &err),
                    Err(ScanError::TooComplex(bound)) => too_complex(bound),
                });
            }
        };
        let base = bytes.as_ptr() as usize;
        let mut fields = Vec::with_capacity(members.len());
        let mut messages = None;
        // Every member is checked, a duplicate key's earlier values too: a parse into values
        // reads those as well before the last one wins.
        for (key, value) in members {
            let text = value.get();
            let shape = budget.shape(text).map_err(|err| match err {
                ScanError::Json(err) => not_json(Some(&key), &err),
                ScanError::TooComplex(bound) => too_complex(bound),
            })?;
            if key == "messages" {
                messages = Some(shape);
            }
            // `value` borrows from `bytes`, so its text lies inside them.
            let start = (text.as_ptr() as usize)
                .checked_sub(base)
                .filter(|start| start + text.len() <= bytes.len())
                .ok_or_else(|| invalid(None, "invalid_json", "The request body is unreadable."))?;
            fields.push((key, start..start + text.len()));
        }
        // Sorted by key (stably, so a duplicate's values stay in the order sent), then each
        // duplicate key keeps its last value, as in `body`.
        fields.sort_by(|(a, _), (b, _)| a.cmp(b));
        fields.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        let mut request = Self {
            model: String::new(),
            stream: false,
            include_usage: false,
            raw: bytes,
            fields,
            body: OnceLock::new(),
        };
        request.model = match request.member("model")? {
            Some(Value::String(model)) if !model.is_empty() => model,
            Some(_) => {
                return Err(invalid(Some("model"), "invalid_type", "`model` must be a string."));
            }
            None => return Err(missing("model")),
        };
        match messages {
            Some(Shape::Array { empty: false }) => {}
            Some(Shape::Array { empty: true }) => {
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
        request.stream = match request.member("stream")? {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => stream,
            Some(_) => {
                return Err(invalid(Some("stream"), "invalid_type", "`stream` must be a boolean."));
            }
        };
        for (key, max) in
            [("n", MAX_N), ("max_tokens", MAX_TOKENS), ("max_completion_tokens", MAX_TOKENS)]
        {
            check_integer(request.member(key)?, key, 1, max)?;
        }
        request.include_usage = request.stream
            && request
                .member("stream_options")?
                .and_then(|options| options.get("include_usage").and_then(Value::as_bool))
                .unwrap_or(false);
        Ok(request)
    }

    /// The JSON text of the top-level member `key`.
    fn slice(&self, key: &str) -> Option<&[u8]> {
        let index = self.fields.binary_search_by(|(name, _)| name.as_str().cmp(key)).ok()?;
        self.raw.get(self.fields[index].1.clone())
    }

    /// The top-level member `key`, parsed (it was checked, so it parses).
    fn member(&self, key: &str) -> Result<Option<Value>, InvalidRequest> {
        self.slice(key)
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|err| not_json(Some(key), &err))
    }

    /// The top-level members as the client wrote them, sorted by key, each with its value's JSON
    /// text (a later duplicate key having won): what the cache key is computed from, so that it
    /// sees numbers as the client spelled them.
    pub fn members(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|(key, range)| (key.as_str(), self.raw.get(range.clone()).unwrap_or(b"null")))
    }

    /// The whole body as the client sent it, parsed on first use.
    pub fn body(&self) -> &Map<String, Value> {
        // Does not fail: `from_bytes` accepted the body by the same rules as this parse (both
        // go through serde_json's `deserialize_any`); tests/it/properties/ and the fuzz target
        // check that.
        self.body.get_or_init(|| serde_json::from_slice(&self.raw).unwrap_or_default())
    }

    /// Tests only: changes the parsed body (not the bytes an OpenAI upstream is sent), to build
    /// requests that parsing would refuse.
    #[cfg(test)]
    pub(crate) fn body_mut(&mut self) -> &mut Map<String, Value> {
        self.body();
        self.body.get_mut().expect("parsed just above")
    }

    /// The size of the body as the client sent it, in bytes.
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    pub fn messages(&self) -> &[Value] {
        self.body().get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// The body for an OpenAI-shaped upstream: `model` replaced by the upstream's model name,
    /// every other member written as the client's own text. Not encoded again, a long
    /// conversation costs a copy instead of a character-by-character escape, and numbers keep
    /// the client's exact spelling. A streamed request always asks for the final usage chunk
    /// (`stream_options.include_usage: true`), which the gateway needs for accounting; the
    /// client's other `stream_options` are kept.
    pub fn for_upstream(&self, upstream_model: &str) -> Result<Vec<u8>, serde_json::Error> {
        // Sized up front: growing a long conversation by doubling would copy it several times.
        let mut out = Vec::with_capacity(self.raw.len() + upstream_model.len() + 48);
        out.extend_from_slice(b"{\"model\":");
        serde_json::to_writer(&mut out, upstream_model)?;
        for (key, range) in &self.fields {
            if key == "model" || (self.stream && key == "stream_options") {
                continue;
            }
            out.push(b',');
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            out.extend_from_slice(self.raw.get(range.clone()).unwrap_or(b"null"));
        }
        if self.stream {
            let mut options = match self.member("stream_options") {
                Ok(Some(Value::Object(options))) => options,
                _ => Map::new(),
            };
            options.insert("include_usage".to_owned(), Value::Bool(true));
            out.extend_from_slice(b",\"stream_options\":");
            serde_json::to_writer(&mut out, &options)?;
        }
        out.push(b'}');
        Ok(out)
    }
}

/// The most choices a request may ask for (OpenAI's own limit).
const MAX_N: u64 = 128;
/// Far above any model's output limit; larger values are mistakes or abuse.
const MAX_TOKENS: u64 = 10_000_000;

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

/// The body, or its top-level `member`, is not JSON.
fn not_json(member: Option<&str>, err: &serde_json::Error) -> InvalidRequest {
    let place = member.map(|member| format!("in `{member}`, ")).unwrap_or_default();
    InvalidRequest {
        message: format!("The request body is not valid JSON: {place}{err}."),
        param: None,
        code: "invalid_json",
    }
}

/// A body beyond a bound of `scan`: refused before any part of it is parsed into values.
fn too_complex(bound: TooComplex) -> InvalidRequest {
    let message = match bound {
        TooComplex::Members => {
            format!("The request body has an object with more than {MAX_MEMBERS} members.")
        }
        TooComplex::Values => {
            format!("The request body holds more than {MAX_VALUES} JSON values.")
        }
    };
    InvalidRequest { message, param: None, code: "request_too_complex" }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(request.body.get().is_none(), "the passthrough built no values");
        assert_eq!(request.messages()[0]["content"], "hi");
        assert!(request.body.get().is_some());
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
