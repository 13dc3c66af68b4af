//! The Messages request as the gateway reads it: a checked [`RawObject`] (kept as the client's
//! text, so that everything the gateway does not read, `thinking`, `context_management`, tools
//! with `defer_loading`, fields newer than this gateway, reaches an Anthropic upstream
//! unchanged) and the few fields the gateway needs, checked as the Messages API documents them:
//! `model`, `max_tokens` and a non-empty `messages` are required, `system` is a string or an
//! array of blocks, `stream` a boolean. The rest is the upstream's to judge (or the
//! translation's, for a target of another dialect).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::object::{MAX_OUTPUT_TOKENS, invalid, missing};
use crate::json::{InvalidRequest, RawObject};

/// A checked `POST /v1/messages` body.
#[derive(Clone, Debug)]
pub struct MessagesRequest {
    /// The model name the client sent: a configured alias.
    pub model: String,
    pub stream: bool,
    /// Required by the API. 0 is accepted: Anthropic documents it for filling the prompt cache
    /// without an answer.
    pub max_tokens: u64,
    object: RawObject,
}

impl MessagesRequest {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidRequest> {
        Self::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// [`from_slice`](Self::from_slice), keeping `bytes` without a copy.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, InvalidRequest> {
        Self::parse(bytes, true)
    }

    /// A `POST /v1/messages/count_tokens` body: a Messages request without `max_tokens`
    /// (reported as 0 when absent).
    pub fn for_counting(bytes: Bytes) -> Result<Self, InvalidRequest> {
        Self::parse(bytes, false)
    }

    fn parse(bytes: Bytes, needs_max_tokens: bool) -> Result<Self, InvalidRequest> {
        let object = RawObject::from_bytes(bytes)?;
        let model = object.required_string("model")?;
        let max_tokens = match object.member("max_tokens")? {
            Some(Value::Number(n)) => {
                n.as_u64().filter(|n| *n <= MAX_OUTPUT_TOKENS).ok_or_else(|| {
                    invalid(
                        Some("max_tokens"),
                        "invalid_value",
                        &format!("`max_tokens` must be an integer from 0 to {MAX_OUTPUT_TOKENS}."),
                    )
                })?
            }
            Some(_) => {
                return Err(invalid(
                    Some("max_tokens"),
                    "invalid_type",
                    "`max_tokens` must be an integer.",
                ));
            }
            None if needs_max_tokens => return Err(missing("max_tokens")),
            None => 0,
        };
        object.required_array("messages")?;
        if !matches!(
            object.member("system")?,
            None | Some(Value::Null | Value::String(_) | Value::Array(_))
        ) {
            return Err(invalid(
                Some("system"),
                "invalid_type",
                "`system` must be a string or an array of text blocks.",
            ));
        }
        let stream = object.flag("stream")?;
        Ok(Self { model, stream, max_tokens, object })
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

    /// The body for an Anthropic upstream: the client's own bytes, with `model`'s value
    /// replaced.
    pub fn for_upstream(&self, upstream_model: &str) -> Result<Vec<u8>, serde_json::Error> {
        self.object.with_model_in_place(upstream_model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_claude_code_sends_is_accepted_and_forwarded_as_written() {
        let body = br#"{"model":"claude-alias","max_tokens":32000,"stream":true,
            "system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],
            "thinking":{"type":"adaptive"},"context_management":{"edits":[{"type":"clear_thinking_20251015"}]},
            "output_config":{"effort":"high"},"tools":[{"name":"Read","input_schema":{"type":"object"},"defer_loading":true}],
            "metadata":{"user_id":"u"},"temperature":1.0}"#;
        let request = MessagesRequest::from_slice(body).unwrap();
        assert_eq!(
            (request.model.as_str(), request.stream, request.max_tokens),
            ("claude-alias", true, 32000)
        );
        let upstream = String::from_utf8(request.for_upstream("claude-opus-x").unwrap()).unwrap();
        for kept in [
            r#""model":"claude-opus-x""#,
            r#""thinking":{"type":"adaptive"}"#,
            r#""context_management":{"edits":[{"type":"clear_thinking_20251015"}]}"#,
            r#""defer_loading":true"#,
            r#""temperature":1.0"#,
            r#""stream":true"#,
        ] {
            assert!(upstream.contains(kept), "{kept} not in {upstream}");
        }
        assert!(!upstream.contains("claude-alias"));
    }

    #[test]
    fn names_the_offending_parameter() {
        let cases: [(&[u8], Option<&str>, &str); 9] = [
            (b"[1]", None, "invalid_type"),
            (br#"{"max_tokens":1,"messages":[{}]}"#, Some("model"), "missing_required_parameter"),
            (br#"{"model":"m","messages":[{}]}"#, Some("max_tokens"), "missing_required_parameter"),
            (
                br#"{"model":"m","max_tokens":-1,"messages":[{}]}"#,
                Some("max_tokens"),
                "invalid_value",
            ),
            (
                br#"{"model":"m","max_tokens":"9","messages":[{}]}"#,
                Some("max_tokens"),
                "invalid_type",
            ),
            (br#"{"model":"m","max_tokens":1}"#, Some("messages"), "missing_required_parameter"),
            (br#"{"model":"m","max_tokens":1,"messages":[]}"#, Some("messages"), "invalid_value"),
            (
                br#"{"model":"m","max_tokens":1,"messages":[{}],"system":{"a":1}}"#,
                Some("system"),
                "invalid_type",
            ),
            (
                br#"{"model":"m","max_tokens":1,"messages":[{}],"stream":1}"#,
                Some("stream"),
                "invalid_type",
            ),
        ];
        for (body, param, code) in cases {
            let err = MessagesRequest::from_slice(body).unwrap_err();
            assert_eq!((err.param, err.code), (param, code), "{}", String::from_utf8_lossy(body));
        }
        let zero = MessagesRequest::from_slice(br#"{"model":"m","max_tokens":0,"messages":[{}]}"#);
        assert_eq!(zero.unwrap().max_tokens, 0);
    }

    #[test]
    fn bodies_refused_by_a_json_parse_are_refused_here_too() {
        for body in [
            &br#"{"model":"m","max_tokens":1,"messages":[{}],"x":1e400}"#[..],
            b"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"content\":\"\xff\"}]}",
        ] {
            assert_eq!(MessagesRequest::from_slice(body).unwrap_err().code, "invalid_json");
        }
    }
}
