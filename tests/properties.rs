//! Property tests for the three parsers that read what clients and upstreams send: the SSE
//! parser, request parsing, and the cache key's normalisation. Each property runs a few hundred
//! generated cases; together they take a few seconds. The same code paths are fuzzed by the
//! cargo-fuzz targets under `fuzz/`.
//!
//! Requests are generated as `serde_json::Value`s and written by this file's own serialiser,
//! which shuffles object keys, sprinkles whitespace and escapes characters at random, so that the
//! key's normalisation is tested against text serde_json itself would never write.

use ballast::cache::key::cache_key;
use ballast::openai::chat::ChatRequest;
use ballast::providers::sse::{EventTooLarge, MAX_EVENT_BYTES, SseEvent, SseParser};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

/// Cases per property: enough to shake out ordering and splitting bugs, cheap in a debug build.
const CASES: u32 = 256;

fn config(cases: u32) -> Config {
    // No regression files: a failure prints its minimal input, and known ones become plain tests.
    Config { cases, failure_persistence: None, ..Config::default() }
}

// === A small seeded generator, for shuffles and formatting chosen inside a case ===

/// SplitMix64: deterministic for a seed that proptest generates (and shrinks towards 0).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

// === SSE: generated streams ===

/// One line of an SSE stream, before serialisation.
#[derive(Clone, Debug)]
enum Line {
    /// `data: value` (or `data:value`); the parser strips one space after the colon.
    Data {
        value: String,
        space: bool,
    },
    /// `data` alone: an empty data line.
    BareData,
    Event {
        value: String,
        space: bool,
    },
    /// `:text`.
    Comment(String),
    /// A field the parser ignores (`id`, `retry`, unknown or differently cased names).
    Other {
        field: String,
        value: String,
    },
    /// Dispatches the event being built, if it has data.
    Blank,
}

impl Line {
    fn text(&self) -> String {
        fn field(name: &str, value: &str, space: bool) -> String {
            // A value that starts with a space needs the separating space, or it would be lost.
            let sep = if space || value.starts_with(' ') { ": " } else { ":" };
            format!("{name}{sep}{value}")
        }
        match self {
            Self::Data { value, space } => field("data", value, *space),
            Self::BareData => "data".to_owned(),
            Self::Event { value, space } => field("event", value, *space),
            Self::Comment(text) => format!(":{text}"),
            Self::Other { field: name, value } => field(name, value, true),
            Self::Blank => String::new(),
        }
    }
}

/// Text that may appear on one line: any characters but CR and LF.
fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 {}\":,\\[\\]]{0,16}",
        1 => "[^\r\n]{0,12}",
        1 => Just(String::new()),
    ]
}

fn ignored_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_owned()),
        Just("retry".to_owned()),
        Just("Data".to_owned()),
        Just("EVENT".to_owned()),
        Just("data ".to_owned()),
        "[a-z]{1,6}".prop_filter("not a known field", |name| name != "data" && name != "event"),
    ]
}

/// A line inside an event (never blank).
fn event_line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (line_text(), any::<bool>()).prop_map(|(value, space)| Line::Data { value, space }),
        1 => Just(Line::BareData),
        2 => (line_text(), any::<bool>()).prop_map(|(value, space)| Line::Event { value, space }),
        2 => line_text().prop_map(Line::Comment),
        1 => (ignored_field(), line_text()).prop_map(|(field, value)| Line::Other { field, value }),
    ]
}

/// A stream: events (each followed by a blank line, sometimes more than one), then maybe an
/// unfinished event that must never be dispatched.
fn sse_lines(with_comments: bool) -> impl Strategy<Value = Vec<Line>> {
    let line = event_line()
        .prop_filter("comments allowed", move |line| {
            with_comments || !matches!(line, Line::Comment(_))
        })
        .boxed();
    let event = (prop::collection::vec(line.clone(), 0..6), 1..3usize);
    (prop::collection::vec(event, 0..8), prop::collection::vec(line, 0..3)).prop_map(
        |(events, unfinished)| {
            let mut lines = Vec::new();
            for (body, blanks) in events {
                lines.extend(body);
                lines.extend(std::iter::repeat_n(Line::Blank, blanks));
            }
            lines.extend(unfinished);
            lines
        },
    )
}

/// What a correct parser dispatches for `lines`.
fn expected_events(lines: &[Line]) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut name = String::new();
    let mut data: Option<String> = None;
    for line in lines {
        match line {
            Line::Data { value, .. } => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.clone()),
            },
            Line::BareData => match &mut data {
                Some(data) => data.push('\n'),
                None => data = Some(String::new()),
            },
            Line::Event { value, .. } => value.clone_into(&mut name),
            Line::Comment(_) | Line::Other { .. } => {}
            Line::Blank => {
                let event = std::mem::take(&mut name);
                if let Some(data) = data.take() {
                    events.push(SseEvent { event, data });
                }
            }
        }
    }
    events
}

#[derive(Clone, Copy, Debug)]
enum Endings {
    Lf,
    CrLf,
    Cr,
    /// Each line's ending chosen at random from the seed.
    Mixed(u64),
}

/// Writes `lines` with `endings`; the last line is left without an ending when `open_end`.
fn serialise(lines: &[Line], endings: Endings, open_end: bool) -> Vec<u8> {
    let mut rng = Rng(match endings {
        Endings::Mixed(seed) => seed,
        _ => 0,
    });
    let mut out = Vec::new();
    let mut previous = "";
    for (index, line) in lines.iter().enumerate() {
        let text = line.text();
        out.extend_from_slice(text.as_bytes());
        if open_end && index + 1 == lines.len() {
            break;
        }
        let mut ending = match endings {
            Endings::Lf => "\n",
            Endings::CrLf => "\r\n",
            Endings::Cr => "\r",
            Endings::Mixed(_) => ["\n", "\r\n", "\r"][rng.below(3)],
        };
        // `\r` then an empty line ended by `\n` reads as one `\r\n`: a stream can't say that.
        if previous == "\r" && text.is_empty() && ending == "\n" {
            ending = "\r\n";
        }
        out.extend_from_slice(ending.as_bytes());
        previous = ending;
    }
    out
}

/// Feeds `chunks` in order, draining events after each; stops at the first refused push.
fn parse_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<SseEvent>, Result<(), EventTooLarge>) {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(err) = parser.push(chunk) {
            return (events, Err(err));
        }
        while let Some(event) = parser.next_event() {
            events.push(event);
        }
    }
    (events, Ok(()))
}

/// `bytes` cut at the given points (taken modulo its length, in any order, repeats allowed).
fn split_at<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(&bytes[start..point]);
        start = point;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Bytes that look like SSE often enough to reach every branch of the parser.
fn sse_ish_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"data:event: \r\n\n\n\r:idx".to_vec()),
        1 => any::<u8>(),
        1 => prop::sample::select(vec![0x80u8, 0xC3, 0xE2, 0xF0, 0xFF]),
    ];
    prop::collection::vec(byte, 0..max_len)
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn splitting_a_valid_stream_into_any_chunks_yields_exactly_the_events_of_feeding_it_whole(
        lines in sse_lines(true),
        seed in any::<u64>(),
        open_end in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let stream = serialise(&lines, Endings::Mixed(seed), open_end);
        let (whole, status) = parse_chunks([stream.as_slice()]);
        prop_assert_eq!(status, Ok(()));
        // A last line without its ending is not a line yet.
        let complete = if open_end { &lines[..lines.len().saturating_sub(1)] } else { &lines[..] };
        prop_assert_eq!(&whole, &expected_events(complete));
        let (chunked, status) = parse_chunks(split_at(&stream, &cuts));
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn feeding_a_valid_stream_one_byte_at_a_time_yields_the_same_events(
        lines in sse_lines(true),
        seed in any::<u64>(),
    ) {
        let stream = serialise(&lines, Endings::Mixed(seed), false);
        let (bytewise, status) = parse_chunks(stream.chunks(1));
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(bytewise, expected_events(&lines));
    }

    #[test]
    fn lf_crlf_cr_and_mixed_line_endings_give_the_same_events(
        lines in sse_lines(true),
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let expected = expected_events(&lines);
        for endings in [Endings::Lf, Endings::CrLf, Endings::Cr, Endings::Mixed(seed)] {
            let stream = serialise(&lines, endings, false);
            let (events, status) = parse_chunks(split_at(&stream, &cuts));
            prop_assert_eq!(status, Ok(()));
            prop_assert_eq!(&events, &expected, "endings {:?}", endings);
        }
    }

    #[test]
    fn a_stream_of_comments_and_blank_lines_never_produces_an_event(
        lines in prop::collection::vec(
            prop_oneof![3 => line_text().prop_map(Line::Comment), 1 => Just(Line::Blank)],
            0..20,
        ),
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let stream = serialise(&lines, Endings::Mixed(seed), false);
        let (events, status) = parse_chunks(split_at(&stream, &cuts));
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(events, Vec::<SseEvent>::new());
    }

    #[test]
    fn inserting_comment_lines_anywhere_never_changes_the_events(
        lines in sse_lines(false),
        comments in prop::collection::vec((any::<Index>(), line_text()), 0..10),
        seed in any::<u64>(),
    ) {
        let mut commented = lines.clone();
        for (at, text) in comments {
            commented.insert(at.index(commented.len() + 1), Line::Comment(text));
        }
        let (plain, _) = parse_chunks([serialise(&lines, Endings::Mixed(seed), false).as_slice()]);
        let stream = serialise(&commented, Endings::Mixed(seed), false);
        let (events, status) = parse_chunks([stream.as_slice()]);
        prop_assert_eq!(status, Ok(()));
        prop_assert_eq!(&events, &plain);
        prop_assert_eq!(events, expected_events(&lines));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_anywhere_give_the_same_bounded_events(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            sse_ish_bytes(512),
        ],
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let (whole, status) = parse_chunks([bytes.as_slice()]);
        prop_assert_eq!(status, Ok(()));
        let (chunked, status) = parse_chunks(split_at(&bytes, &cuts));
        prop_assert_eq!(status, Ok(()));
        for event in &whole {
            prop_assert!(event.data.len() <= MAX_EVENT_BYTES);
        }
        prop_assert_eq!(chunked, whole);
    }
}

proptest! {
    // Each case pushes up to a mebibyte: a few cases are enough to cover the sizes that matter.
    #![proptest_config(config(12))]

    /// The size limit holds for what the parser accepted, including lines near the limit.
    #[test]
    fn an_accepted_stream_never_yields_an_event_larger_than_max_event_bytes_when_it_is_ascii(
        len in (MAX_EVENT_BYTES - 64)..=MAX_EVENT_BYTES,
        lines in 1..4usize,
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut stream = Vec::with_capacity(len + 16);
        for line in 0..lines {
            stream.extend_from_slice(b"data:");
            stream.resize(stream.len() + len / lines, b'x');
            stream.push(if line % 2 == 0 { b'\n' } else { b'\r' });
        }
        stream.extend_from_slice(b"\n");
        let (events, _) = parse_chunks(split_at(&stream, &cuts));
        for event in &events {
            prop_assert!(event.data.len() <= MAX_EVENT_BYTES, "{} bytes", event.data.len());
        }
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Found by this property: `push` bounds the raw bytes, but each line is decoded with
    /// `String::from_utf8_lossy`, which turns every invalid byte into U+FFFD (3 bytes), so an
    /// upstream could make one event's `data` almost 3 × MAX_EVENT_BYTES (minimal input: `data:`
    /// then 349_526 bytes 0xFF then a blank line). The parser now bounds the decoded size.
    #[test]
    fn invalid_utf8_never_inflates_an_event_past_max_event_bytes(
        len in (MAX_EVENT_BYTES / 3 - 16)..(MAX_EVENT_BYTES - 8),
        byte in prop::sample::select(vec![0x80u8, 0xBF, 0xC0, 0xF5, 0xFF]),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut stream = b"data:".to_vec();
        stream.resize(stream.len() + len, byte);
        stream.extend_from_slice(b"\n\n");
        let (events, _) = parse_chunks(split_at(&stream, &cuts));
        for event in &events {
            prop_assert!(
                event.data.len() <= MAX_EVENT_BYTES,
                "{} input bytes gave an event of {} bytes", stream.len(), event.data.len()
            );
        }
    }
}

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

fn shuffled(value: &Value, seed: u64) -> String {
    let mut out = String::new();
    write_shuffled(value, &mut Rng(seed), &mut out);
    out
}

fn compact(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn object_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-z_]{1,8}", 1 => "\\PC{0,6}", 1 => "[\"\\\\/\u{1}\n\u{e9}\u{1F600}]{0,3}"]
}

fn json_string() -> impl Strategy<Value = String> {
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
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(object_key(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

const DELIVERY_FIELDS: [&str; 3] = ["stream", "stream_options", "user"];
const CHECKED_FIELDS: [&str; 2] = ["model", "messages"];
/// Fields that, when present and not null, must be integers in these ranges.
const BOUNDED_INTEGERS: [(&str, u64, u64); 3] =
    [("n", 1, 128), ("max_tokens", 1, 10_000_000), ("max_completion_tokens", 1, 10_000_000)];

/// A top-level field name that is neither checked by parsing nor ignored by the cache key.
fn extra_field() -> impl Strategy<Value = String> {
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
fn request_body() -> impl Strategy<Value = Map<String, Value>> {
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
    Ok(cache_key(scope, &request))
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

// === Request parsing ===

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
    let key = cache_key("scope", &request);
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
