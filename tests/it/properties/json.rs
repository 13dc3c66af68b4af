//! JSON for the request properties: value and request strategies, and a shuffling serialiser.
//!
//! Requests are generated as `serde_json::Value`s and written by this module's own serialiser,
//! which shuffles object keys, sprinkles whitespace and escapes characters at random, so that the
//! cache key's normalisation is tested against text serde_json itself would never write.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::Rng;

// === JSON written with shuffled keys, random whitespace and random escapes ===

fn whitespace(rng: &mut Rng, out: &mut String) {
    for _ in 0..rng.below(3) {
        out.push([' ', '\n', '\t', '\r', ' '][rng.below(5)]);
    }
}

fn write_string(text: &str, rng: &mut Rng, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if rng.chance(2) => out.push_str("\\/"),
            '\n' if rng.chance(2) => out.push_str("\\n"),
            '\t' if rng.chance(2) => out.push_str("\\t"),
            c if (c as u32) < 0x20 || rng.chance(4) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if rng.chance(2) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// JSON text for `value`, keys in a random order, random whitespace between all tokens.
fn write_shuffled(value: &Value, rng: &mut Rng, out: &mut String) {
    whitespace(rng, out);
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => write_string(text, rng, out),
        Value::Array(items) => {
            out.push('[');
            whitespace(rng, out);
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_shuffled(item, rng, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            for i in (1..keys.len()).rev() {
                keys.swap(i, rng.below(i + 1));
            }
            out.push('{');
            whitespace(rng, out);
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                    whitespace(rng, out);
                }
                write_string(key, rng, out);
                whitespace(rng, out);
                out.push(':');
                write_shuffled(&map[key], rng, out);
            }
            out.push('}');
        }
    }
    whitespace(rng, out);
}

pub fn shuffled(value: &Value, seed: u64) -> String {
    let mut out = String::new();
    write_shuffled(value, &mut Rng(seed), &mut out);
    out
}

pub fn compact(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn object_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-z_]{1,8}", 1 => "\\PC{0,6}", 1 => "[\"\\\\/\u{1}\n\u{e9}\u{1F600}]{0,3}"]
}

pub fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-zA-Z0-9 .,!?]{0,16}", 1 => "\\PC{0,8}", 1 => "[\"\\\\/\u{0}-\u{1f}\u{7f}\u{2028}\u{1F600}]{0,4}"]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        json_string().prop_map(Value::String),
    ]
}

/// Any JSON value, nested up to three levels (four and more inside requests, whose messages
/// and fields are themselves nested).
pub fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(object_key(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

pub const DELIVERY_FIELDS: [&str; 3] = ["stream", "stream_options", "user"];
const CHECKED_FIELDS: [&str; 2] = ["model", "messages"];
/// Fields that, when present and not null, must be integers in these ranges.
pub const BOUNDED_INTEGERS: [(&str, u64, u64); 3] =
    [("n", 1, 128), ("max_tokens", 1, 10_000_000), ("max_completion_tokens", 1, 10_000_000)];

/// A top-level field name that is neither checked by parsing nor ignored by the cache key.
pub fn extra_field() -> impl Strategy<Value = String> {
    object_key().prop_filter("not a field with special meaning", |key| {
        !DELIVERY_FIELDS.contains(&key.as_str())
            && !CHECKED_FIELDS.contains(&key.as_str())
            && !BOUNDED_INTEGERS.iter().any(|(name, _, _)| name == key)
    })
}

fn message() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["system", "user", "assistant", "tool", "developer"]),
        prop_oneof![3 => json_string().prop_map(Value::String), 1 => json_value()],
        prop::collection::btree_map(
            object_key()
                .prop_filter("role and content set above", |k| k != "role" && k != "content"),
            json_value(),
            0..3,
        ),
    )
        .prop_map(|(role, content, extra)| {
            let mut message: Map<String, Value> = extra.into_iter().collect();
            message.insert("role".to_owned(), Value::from(role));
            message.insert("content".to_owned(), content);
            Value::Object(message)
        })
}

/// A valid request body without delivery fields: model, messages, and other fields at any depth.
pub fn request_body() -> impl Strategy<Value = Map<String, Value>> {
    (
        "[a-zA-Z0-9._/-]{1,20}",
        prop::collection::vec(message(), 1..5),
        prop::collection::btree_map(extra_field(), json_value(), 0..5),
    )
        .prop_map(|(model, messages, extra)| {
            let mut body: Map<String, Value> = extra.into_iter().collect();
            body.insert("model".to_owned(), Value::from(model));
            body.insert("messages".to_owned(), Value::Array(messages));
            body
        })
}
