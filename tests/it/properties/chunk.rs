//! Properties of the chunk reader (`openai::chunk`): its one-pass walk agrees with the full
//! parse on every chunk it is sure of, is sure of the chunks upstreams send, and never panics.

use ballast::openai::chunk::ChunkFacts;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use super::json::{json_string, json_value, shuffled};
use super::{CASES, config};

/// A value for a member that is usually of its own type (`usual`), sometimes null, and now and
/// then anything at all.
fn member(usual: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop_oneof![24 => usual, 2 => Just(Value::Null), 1 => json_value()])
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![3 => json_string().prop_map(Value::String), 1 => Just(json!(""))]
}

/// Members the reader does not read, at any depth.
fn extra() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("index".to_owned()),
        Just("logprobs".to_owned()),
        "[a-z_]{1,8}"
    ];
    prop::collection::btree_map(key, json_value(), 0..3).prop_map(|map| map.into_iter().collect())
}

fn with(mut object: Map<String, Value>, members: Vec<(&str, Option<Value>)>) -> Value {
    for (key, value) in members {
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
    }
    Value::Object(object)
}

fn tool_call() -> impl Strategy<Value = Value> {
    (member(text()), member(text()), extra()).prop_map(|(name, arguments, extra)| {
        let function = with(Map::new(), vec![("name", name), ("arguments", arguments)]);
        with(extra, vec![("function", Some(function))])
    })
}

fn delta() -> impl Strategy<Value = Value> {
    let calls = prop::collection::vec(tool_call(), 0..3).prop_map(Value::Array);
    (member(text()), member(text()), member(text()), member(text()), member(calls), extra())
        .prop_map(|(content, refusal, reasoning_content, reasoning, tool_calls, extra)| {
            let members = vec![
                ("content", content),
                ("refusal", refusal),
                ("reasoning_content", reasoning_content),
                ("reasoning", reasoning),
                ("tool_calls", tool_calls),
            ];
            with(extra, members)
        })
}

fn choice() -> impl Strategy<Value = Value> {
    let reason = prop_oneof![
        Just(json!("stop")),
        Just(json!("length")),
        Just(json!("content_filter")),
        Just(json!("tool_calls")),
        json_string().prop_map(Value::String)
    ];
    (member(reason), member(delta()), extra()).prop_map(|(finish_reason, delta, extra)| {
        with(extra, vec![("finish_reason", finish_reason), ("delta", delta)])
    })
}

fn usage() -> impl Strategy<Value = Value> {
    let count = prop_oneof![12 => any::<u64>().prop_map(Value::from), 1 => json_value()];
    (prop::option::of(count.clone()), prop::option::of(count.clone()), prop::option::of(count))
        .prop_map(|(prompt, completion, total)| {
            let members = vec![
                ("prompt_tokens", prompt),
                ("completion_tokens", completion),
                ("total_tokens", total),
            ];
            with(Map::new(), members)
        })
}

/// A chunk as upstreams send them, and now and then an odd one.
fn chunk() -> impl Strategy<Value = Value> {
    let choices = prop::collection::vec(choice(), 0..3).prop_map(Value::Array);
    (member(choices), member(usage()), extra()).prop_map(|(choices, usage, extra)| {
        with(extra, vec![("choices", choices), ("usage", usage)])
    })
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn a_chunk_the_walk_is_sure_of_reads_as_the_parse_reads_it(
        chunk in chunk(),
        seed in any::<u64>(),
    ) {
        let pretty = serde_json::to_string_pretty(&chunk).unwrap_or_default();
        for text in [chunk.to_string(), pretty, shuffled(&chunk, seed)] {
            if let Some(walked) = ChunkFacts::walked(&text) {
                prop_assert_eq!(Some(walked), ChunkFacts::parsed(&text), "{}", text);
            }
        }
    }

    #[test]
    fn the_walk_is_sure_of_a_compact_chunk_of_the_usual_types(
        content in json_string(),
        reason in prop_oneof![Just(Value::Null), Just(json!("stop")), Just(json!("length"))],
        arguments in json_string(),
        prompt in any::<u64>(),
        extra in extra(),
    ) {
        let calls = json!([{ "index": 0, "function": { "name": "f", "arguments": arguments } }]);
        let choice = json!({ "index": 0, "delta": { "content": content, "tool_calls": calls },
            "finish_reason": reason, "logprobs": extra });
        let usage = json!({ "prompt_tokens": prompt, "completion_tokens": 1 });
        let text = with(extra, vec![("choices", Some(json!([choice]))), ("usage", Some(usage))])
            .to_string();
        let walked = ChunkFacts::walked(&text);
        prop_assert!(walked.is_some(), "{}", text);
        prop_assert_eq!(walked, ChunkFacts::parsed(&text));
    }
}

proptest! {
    // Cheap, and a bug in how a cut text ends is rare among generated cases: more of them.
    #![proptest_config(config(CASES * 8))]

    #[test]
    fn reading_a_mangled_chunk_never_panics(
        chunk in chunk(),
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<Index>(), any::<char>(), any::<bool>()), 1..4),
    ) {
        let mut text = shuffled(&chunk, seed);
        for (at, character, insert) in edits {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if insert || at == text.len() {
                text.insert(at, character);
            } else {
                text.truncate(at);
            }
        }
        let _ = ChunkFacts::read(&text);
        let _ = ChunkFacts::walked(&text);
    }
}
