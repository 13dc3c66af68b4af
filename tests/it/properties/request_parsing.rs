//! Request parsing: never panics, accepts exactly the valid requests, forwards numbers unchanged.

use ballast::cache::key::cache_key;
use ballast::openai::chat::ChatRequest;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

use super::json::{BOUNDED_INTEGERS, compact, extra_field, json_value, shuffled};
use super::{CASES, config};

/// What `ChatRequest::from_slice` must accept: a JSON object with a non-empty string `model`, a
/// non-empty array `messages`, `stream` absent, null or a boolean, and `n`, `max_tokens` and
/// `max_completion_tokens` absent, null or integers in their ranges.
fn acceptable(bytes: &[u8]) -> bool {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    matches!(body.get("model"), Some(Value::String(model)) if !model.is_empty())
        && matches!(body.get("messages"), Some(Value::Array(messages)) if !messages.is_empty())
        && matches!(body.get("stream"), None | Some(Value::Null | Value::Bool(_)))
        && BOUNDED_INTEGERS.iter().all(|(name, min, max)| match body.get(*name) {
            None | Some(Value::Null) => true,
            Some(value) => value.as_u64().is_some_and(|n| (*min..=*max).contains(&n)),
        })
}

/// Checks `from_slice` on `bytes` against [`acceptable`], and what an accepted request gives.
fn check_parsing(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = ChatRequest::from_slice(bytes);
    let shown = String::from_utf8_lossy(bytes);
    prop_assert_eq!(parsed.is_ok(), acceptable(bytes), "{:?}: {}", parsed.as_ref().err(), shown);
    let Ok(request) = parsed else {
        return Ok(());
    };
    prop_assert_eq!(Some(request.model.as_str()), request.body()["model"].as_str());
    prop_assert_eq!(request.stream, request.body().get("stream") == Some(&Value::Bool(true)));
    prop_assert!(!request.messages().is_empty());
    let key = cache_key("scope", &request.clone().into());
    prop_assert!(key.starts_with("ballast:v2:"));
    let upstream =
        request.for_upstream("m").map_err(|err| TestCaseError::fail(format!("{err}: {shown}")))?;
    let upstream: Value = serde_json::from_slice(&upstream)
        .map_err(|err| TestCaseError::fail(format!("{err}: {shown}")))?;
    prop_assert_eq!(&upstream["model"], "m");
    // Compared after the same trip through text: see the float test below for why.
    let messages: Value = serde_json::to_vec(&request.body()["messages"])
        .and_then(|text| serde_json::from_slice(&text))
        .map_err(|err| TestCaseError::fail(format!("{err}: {shown}")))?;
    prop_assert_eq!(&upstream["messages"], &messages);
    if request.stream {
        prop_assert_eq!(&upstream["stream_options"]["include_usage"], true);
    }
    Ok(())
}

/// A JSON object whose checked fields are present or absent, of the right type or not.
fn maybe_request() -> impl Strategy<Value = Value> {
    let model = prop::option::of(prop_oneof![
        3 => "\\PC{1,10}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => json_value(),
    ]);
    let messages = prop::option::of(prop_oneof![
        3 => prop::collection::vec(json_value(), 1..3).prop_map(Value::Array),
        1 => Just(Value::Array(Vec::new())),
        1 => json_value(),
    ]);
    let stream = prop::option::of(prop_oneof![
        2 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => json_value(),
    ]);
    let extra = prop::collection::btree_map(extra_field(), json_value(), 0..3);
    // `n`, `max_tokens` or `max_completion_tokens`, in range, at its edges, or beyond them.
    let bounded = prop::option::of((
        prop::sample::select(BOUNDED_INTEGERS.to_vec()),
        prop_oneof![
            Just(Value::Null),
            (0..4u64).prop_map(Value::from),
            prop::sample::select(vec![127u64, 128, 129, 9_999_999, 10_000_000, 10_000_001])
                .prop_map(Value::from),
            prop::sample::select(vec![-1.0f64, 1.0, 2.5, 1e12]).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            json_value(),
        ],
    ));
    (model, messages, stream, extra, prop::option::of(json_value()), bounded).prop_map(
        |(model, messages, stream, extra, options, bounded)| {
            let mut body: Map<String, Value> = extra.into_iter().collect();
            if let Some(((name, _, _), value)) = bounded {
                body.insert(name.to_owned(), value);
            }
            for (name, value) in [
                ("model", model),
                ("messages", messages),
                ("stream", stream),
                ("stream_options", options),
            ] {
                if let Some(value) = value {
                    body.insert(name.to_owned(), value);
                }
            }
            Value::Object(body)
        },
    )
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn request_parsing_never_panics_on_arbitrary_bytes_and_accepts_only_valid_requests(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,64}".prop_map(String::into_bytes),
            json_value().prop_map(|value| compact(&value)),
        ],
    ) {
        check_parsing(&bytes)?;
    }

    #[test]
    fn request_parsing_accepts_exactly_objects_with_a_model_messages_and_a_boolean_stream(
        request in maybe_request(),
        seed in any::<u64>(),
    ) {
        check_parsing(shuffled(&request, seed).as_bytes())?;
    }

    #[test]
    fn request_parsing_never_panics_on_a_mangled_request(
        request in maybe_request(),
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut bytes = shuffled(&request, seed).into_bytes();
        for (at, byte, kind) in edits {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => bytes[at] = byte,
                _ => bytes.truncate(at),
            }
        }
        check_parsing(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Found by this property: without serde_json's `float_roundtrip` feature some floats were
    /// parsed to a neighbouring `f64`, and the gateway forwarded a number the client did not send
    /// (`{"model":"m","messages":[1],"x":1.5531401726683896e-7}` reached the upstream as
    /// `"x":1.5531401726683898e-7`). The feature is now on.
    #[test]
    fn an_accepted_request_reaches_the_upstream_with_its_numbers_unchanged(
        number in any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()),
    ) {
        // `{:e}` is Rust's shortest round-tripping form, as a client's JSON library would write.
        let body = format!(r#"{{"model":"m","messages":[1],"x":{number:e}}}"#);
        let request = ChatRequest::from_slice(body.as_bytes())
            .map_err(|err| TestCaseError::fail(format!("{err:?}: {body}")))?;
        let upstream: Value = request
            .for_upstream("m")
            .and_then(|bytes| serde_json::from_slice(&bytes))
            .map_err(|err| TestCaseError::fail(format!("{err}: {body}")))?;
        let text = upstream["x"].to_string();
        let forwarded: f64 = text.parse().map_err(|_| TestCaseError::fail(text.clone()))?;
        prop_assert_eq!(forwarded.to_bits(), number.to_bits(), "{} forwarded as {}", body, text);
    }
}
