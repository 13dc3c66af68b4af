//! Cache key properties: equal for the same request however written, different when it differs.

use ballast::cache::key::cache_key;
use ballast::openai::chat::ChatRequest;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

use super::json::{
    DELIVERY_FIELDS, compact, extra_field, json_string, json_value, request_body, shuffled,
};
use super::{CASES, config};

/// Values a client may send for `stream`, `stream_options` and `user`; `None` leaves one out.
fn delivery_fields() -> impl Strategy<Value = [Option<Value>; 3]> {
    (
        prop::option::of(prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool)]),
        prop::option::of(prop_oneof![
            any::<bool>().prop_map(|usage| serde_json::json!({ "include_usage": usage })),
            json_value(),
        ]),
        prop::option::of(prop_oneof![json_string().prop_map(Value::String), json_value()]),
    )
        .prop_map(|(stream, options, user)| [stream, options, user])
}

fn with_delivery(body: &Map<String, Value>, fields: &[Option<Value>; 3]) -> Value {
    let mut body = body.clone();
    for (name, value) in DELIVERY_FIELDS.into_iter().zip(fields) {
        if let Some(value) = value {
            body.insert(name.to_owned(), value.clone());
        }
    }
    Value::Object(body)
}

fn key_of(scope: &str, json: &[u8]) -> Result<String, TestCaseError> {
    let request = ChatRequest::from_slice(json).map_err(|err| {
        TestCaseError::fail(format!("{err:?} for {}", String::from_utf8_lossy(json)))
    })?;
    Ok(cache_key(scope, &request.into()))
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn reordering_keys_at_any_depth_and_changing_whitespace_or_escapes_never_change_the_cache_key(
        body in request_body(),
        scope in "\\PC{0,12}",
        seed in any::<u64>(),
    ) {
        let value = Value::Object(body);
        let text = shuffled(&value, seed);
        // The serialiser itself is right: both texts are the same JSON.
        let reparsed: Value = serde_json::from_str(&text).map_err(|err| {
            TestCaseError::fail(format!("{err}: {text}"))
        })?;
        prop_assert_eq!(&reparsed, &serde_json::from_slice::<Value>(&compact(&value)).unwrap());
        prop_assert_eq!(key_of(&scope, &compact(&value))?, key_of(&scope, text.as_bytes())?);
    }

    #[test]
    fn adding_or_changing_stream_stream_options_and_user_never_changes_the_cache_key(
        body in request_body(),
        before in delivery_fields(),
        after in delivery_fields(),
        scope in "[a-z0-9-]{0,12}",
        seed in any::<u64>(),
    ) {
        let plain = key_of(&scope, &compact(&Value::Object(body.clone())))?;
        let first = with_delivery(&body, &before);
        let second = with_delivery(&body, &after);
        prop_assert_eq!(&key_of(&scope, &compact(&first))?, &plain);
        prop_assert_eq!(&key_of(&scope, shuffled(&second, seed).as_bytes())?, &plain);
    }

    #[test]
    fn changing_any_message_content_always_changes_the_cache_key(
        body in request_body(),
        which in any::<Index>(),
        content in prop_oneof![3 => json_string().prop_map(Value::String), 1 => json_value()],
        fields in delivery_fields(),
        seed in any::<u64>(),
    ) {
        let before = with_delivery(&body, &fields);
        let mut after = before.clone();
        let messages = after["messages"].as_array_mut().unwrap();
        let index = which.index(messages.len());
        prop_assume!(messages[index]["content"] != content);
        messages[index]["content"] = content;
        prop_assert_ne!(
            key_of("", &compact(&before))?,
            key_of("", shuffled(&after, seed).as_bytes())?
        );
    }

    #[test]
    fn changing_the_model_always_changes_the_cache_key(
        body in request_body(),
        model in "\\PC{1,20}",
        seed in any::<u64>(),
    ) {
        prop_assume!(body["model"] != model.as_str());
        let mut after = body.clone();
        after.insert("model".to_owned(), Value::from(model));
        prop_assert_ne!(
            key_of("s", &compact(&Value::Object(body)))?,
            key_of("s", shuffled(&Value::Object(after), seed).as_bytes())?
        );
    }

    #[test]
    fn adding_a_field_such_as_temperature_always_changes_the_cache_key(
        body in request_body(),
        field in prop_oneof![
            Just("temperature".to_owned()),
            Just("seed".to_owned()),
            Just("tools".to_owned()),
            extra_field(),
        ],
        value in prop_oneof![
            (0.0..2.0f64).prop_map(Value::from),
            (0..3u64).prop_map(Value::from),
            Just(Value::Null),
            json_value(),
        ],
        seed in any::<u64>(),
    ) {
        prop_assume!(!body.contains_key(&field));
        let mut after = body.clone();
        after.insert(field, value);
        prop_assert_ne!(
            key_of("", &compact(&Value::Object(body)))?,
            key_of("", shuffled(&Value::Object(after), seed).as_bytes())?
        );
    }

    #[test]
    fn different_scopes_always_give_different_cache_keys(
        body in request_body(),
        first in "\\PC{0,12}",
        second in prop_oneof!["\\PC{0,12}", "[a\u{0}{\"]{0,4}"],
    ) {
        prop_assume!(first != second);
        let json = compact(&Value::Object(body));
        let key = key_of(&first, &json)?;
        prop_assert!(key.starts_with("ballast:v2:") && key.len() == "ballast:v2:".len() + 64);
        prop_assert_ne!(key, key_of(&second, &json)?);
    }
}
