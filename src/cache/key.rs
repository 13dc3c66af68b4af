//! Cache keys: a hash of the normalised request within a scope (the auth key's space).
//!
//! The request is normalised by dropping what does not change the answer (`stream`,
//! `stream_options`, `user`) and writing the rest as canonical JSON (object keys sorted at every
//! level, no whitespace), so field order and formatting never change the key. The hash is
//! BLAKE3 (cryptographic: a crafted collision would serve one request another's answer). The key
//! carries a format version: a change of normalisation or entry format bumps it, and old
//! entries are simply never read again.

use serde_json::Value;

use crate::openai::chat::ChatRequest;

/// Bump when normalisation or the stored entry format changes.
pub const KEY_VERSION: &str = "v1";
const IGNORED: [&str; 3] = ["stream", "stream_options", "user"];

/// `ballast:v1:<64 hex>` for `request` in the cache space `scope`.
pub fn cache_key(scope: &str, request: &ChatRequest) -> String {
    let mut canonical = Vec::with_capacity(256);
    canonical.extend_from_slice(scope.as_bytes());
    canonical.push(0);
    canonical.push(b'{');
    let mut first = true;
    for key in sorted_keys(request.body()) {
        if IGNORED.contains(&key.as_str()) {
            continue;
        }
        if !first {
            canonical.push(b',');
        }
        first = false;
        write_string(key, &mut canonical);
        canonical.push(b':');
        write_canonical(&request.body()[key], &mut canonical);
    }
    canonical.push(b'}');
    format!("ballast:{KEY_VERSION}:{}", blake3::hash(&canonical).to_hex())
}

fn sorted_keys(map: &serde_json::Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            for (index, key) in sorted_keys(map).into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::from(text).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &str, body: &str) -> String {
        cache_key(scope, &ChatRequest::from_slice(body.as_bytes()).unwrap())
    }

    #[test]
    fn field_order_formatting_and_delivery_fields_do_not_change_the_key() {
        let a =
            key("", r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#);
        let b = key(
            "",
            r#"{ "temperature": 0, "messages": [ {"content": "hi", "role": "user"} ], "model": "m",
                         "stream": true, "stream_options": {"include_usage": true}, "user": "u-42" }"#,
        );
        assert_eq!(a, b);
        assert!(a.starts_with("ballast:v1:") && a.len() == "ballast:v1:".len() + 64);
    }

    #[test]
    fn what_changes_the_answer_changes_the_key() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let variants = [
            r#"{"model":"m2","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
        ];
        for variant in variants {
            assert_ne!(key("", base), key("", variant), "{variant}");
        }
        assert_ne!(key("team-a", base), key("team-b", base), "scopes are separate spaces");
    }
}
