//! The embeddings API (`POST /v1/embeddings`) as the gateway reads it: the request, checked as
//! OpenAI documents it and kept as the client's text (a checked [`RawObject`], so that fields the
//! gateway does not know reach an OpenAI-shaped upstream unchanged), and what the gateway needs
//! of an answer: whether it is one, its `usage.prompt_tokens`, and the answer converted to the
//! encoding the client asked for when the upstream ignored `encoding_format`.
//!
//! The conversion matters because the official SDKs ask for `"base64"` whenever their caller
//! did not choose (Python and Node alike) and decode whatever string comes back: an
//! OpenAI-compatible server that answers floats to them anyway (or base64 to a client that asked
//! for floats) would break the client. base64 is the raw little-endian IEEE-754 `f32` array,
//! 4 bytes per dimension, in the standard alphabet with padding (`[0.1,-0.2,0.5]` is
//! `zczMPc3MTL4AAAA/`).
//!
//! No I/O, nothing else of the crate but [`crate::json`].

use std::ops::Range;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::json::object::{invalid, missing};
use crate::json::{InvalidRequest, RawObject};

/// The most inputs one request may embed (OpenAI's limit, for an array of strings or of token
/// arrays).
pub const MAX_INPUTS: usize = 2048;

/// How the embeddings of an answer are written: `encoding_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// JSON arrays of numbers: the API's default.
    #[default]
    Float,
    /// Each embedding a base64 string of its little-endian `f32`s: what the SDKs ask for.
    Base64,
}

/// One text to embed, as the client gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Text(String),
    /// Token ids of the model's tokenizer.
    Tokens(Vec<u64>),
}

/// A checked `POST /v1/embeddings` body.
#[derive(Clone, Debug)]
pub struct EmbeddingsRequest {
    /// The model name the client sent: a configured alias.
    pub model: String,
    /// The client's `encoding_format`; [`Encoding::Float`] when absent or null (the API's
    /// default).
    pub encoding: Encoding,
    /// The client's `dimensions`, when it asked for shortened embeddings.
    pub dimensions: Option<u32>,
    /// The body as the client sent it: an OpenAI-shaped upstream gets its values as they came.
    object: RawObject,
}

impl EmbeddingsRequest {
    /// Parses and checks the body as OpenAI documents it; the upstream judges the rest (the
    /// model's token limits, whether it supports `dimensions`).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidRequest> {
        Self::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// [`from_slice`](Self::from_slice), keeping `bytes` without a copy.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, InvalidRequest> {
        let object = RawObject::from_bytes(bytes)?;
        let model = object.required_string("model")?;
        read_inputs(object.member("input")?)?;
        let dimensions = read_dimensions(object.member("dimensions")?)?;
        let encoding = read_encoding(object.member("encoding_format")?)?;
        if !matches!(object.member("user")?, None | Some(Value::Null | Value::String(_))) {
            return Err(invalid(Some("user"), "invalid_type", "`user` must be a string."));
        }
        Ok(Self { model, encoding, dimensions, object })
    }

    /// The texts to embed, in order (one for a single string or a single token array). Read
    /// again from the client's text on each call.
    pub fn inputs(&self) -> Vec<Input> {
        // Does not fail: `from_bytes` read the same member by the same rules.
        self.object
            .member("input")
            .ok()
            .and_then(|input| read_inputs(input).ok())
            .unwrap_or_default()
    }

    /// The top-level members as the client wrote them, sorted by key, each with its value's JSON
    /// text (a later duplicate key having won): what a cache key is computed from.
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

    /// The body for an OpenAI-shaped upstream: the client's own bytes, with `model`'s value
    /// replaced (`encoding_format` included, so the upstream is asked for what the client
    /// wants; [`conform`] mends an answer that ignored it).
    pub fn for_upstream(&self, upstream_model: &str) -> Result<Vec<u8>, serde_json::Error> {
        self.object.with_model_in_place(upstream_model)
    }
}

/// `dimensions` (the member's value): a positive integer, when present and not null.
fn read_dimensions(dimensions: Option<Value>) -> Result<Option<u32>, InvalidRequest> {
    match dimensions {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(dimensions @ 1..) => Ok(Some(dimensions)),
            _ => {
                let message =
                    format!("`dimensions` must be an integer from 1 to {}; got {n}.", u32::MAX);
                Err(invalid(Some("dimensions"), "invalid_value", &message))
            }
        },
        Some(_) => {
            Err(invalid(Some("dimensions"), "invalid_type", "`dimensions` must be an integer."))
        }
    }
}

/// `encoding_format` (the member's value): `"float"` (also when absent or null) or `"base64"`.
fn read_encoding(format: Option<Value>) -> Result<Encoding, InvalidRequest> {
    let (code, got) = match format {
        None | Some(Value::Null) => return Ok(Encoding::Float),
        Some(Value::String(format)) if format == "float" => return Ok(Encoding::Float),
        Some(Value::String(format)) if format == "base64" => return Ok(Encoding::Base64),
        // A short value is shown back; a long one is the client's to look up.
        Some(Value::String(format)) if format.len() <= 64 => {
            ("invalid_value", format!("; got '{format}'"))
        }
        Some(Value::String(_)) => ("invalid_value", String::new()),
        Some(_) => ("invalid_type", String::new()),
    };
    let message = format!("`encoding_format` must be 'float' or 'base64'{got}.");
    Err(invalid(Some("encoding_format"), code, &message))
}

/// Checks `input` (the member's value, `None` when absent) as OpenAI documents it and returns
/// its texts: a non-empty string, or a non-empty array of non-empty strings (at most
/// [`MAX_INPUTS`]), of token ids (one input), or of non-empty arrays of token ids (at most
/// [`MAX_INPUTS`]).
fn read_inputs(input: Option<Value>) -> Result<Vec<Input>, InvalidRequest> {
    let items = match input {
        None => return Err(missing("input")),
        Some(Value::String(text)) if text.is_empty() => {
            return Err(refused("invalid_value", "`input` must not be an empty string."));
        }
        Some(Value::String(text)) => return Ok(vec![Input::Text(text)]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(refused("invalid_type", SHAPES)),
    };
    match items.first() {
        None => Err(refused("invalid_value", "`input` must not be an empty array.")),
        Some(Value::Number(_)) => Ok(vec![Input::Tokens(tokens(&items, "input")?)]),
        Some(Value::String(_) | Value::Array(_)) if items.len() > MAX_INPUTS => Err(refused(
            "invalid_value",
            &format!("`input` must have at most {MAX_INPUTS} items; it has {}.", items.len()),
        )),
        Some(Value::String(_)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) if !text.is_empty() => Ok(Input::Text(text)),
                Value::String(_) => Err(refused(
                    "invalid_value",
                    &format!("`input[{index}]` must not be an empty string."),
                )),
                _ => Err(mixed(index, "a string")),
            })
            .collect(),
        Some(Value::Array(_)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Array(ids) if ids.is_empty() => Err(refused(
                    "invalid_value",
                    &format!("`input[{index}]` must not be an empty array of tokens."),
                )),
                Value::Array(ids) => Ok(Input::Tokens(tokens(&ids, &format!("input[{index}]"))?)),
                _ => Err(mixed(index, "an array of tokens")),
            })
            .collect(),
        Some(_) => Err(refused("invalid_type", SHAPES)),
    }
}

const SHAPES: &str = "`input` must be a string, an array of strings, an array of tokens (integers) \
                      or an array of arrays of tokens.";

/// `ids` (the array at `place`) as token ids: non-negative integers.
fn tokens(ids: &[Value], place: &str) -> Result<Vec<u64>, InvalidRequest> {
    ids.iter()
        .enumerate()
        .map(|(index, id)| {
            id.as_u64().ok_or_else(|| {
                refused(
                    "invalid_type",
                    &format!("`{place}[{index}]` must be a token: a non-negative integer."),
                )
            })
        })
        .collect()
}

/// An `input` array whose item `index` is not of the first item's kind.
fn mixed(index: usize, kind: &str) -> InvalidRequest {
    refused(
        "invalid_type",
        &format!(
            "`input[{index}]` must be {kind}, as the first item is: all items of `input` must be \
             of one kind."
        ),
    )
}

fn refused(code: &'static str, message: &str) -> InvalidRequest {
    invalid(Some("input"), code, message)
}

/// base64 as the embeddings API writes it: the standard alphabet, padded; padding is not
/// required when reading (some servers leave it off).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An embedding as the API's base64: its `f32`s, little-endian, 4 bytes each.
pub fn to_base64(embedding: &[f32]) -> String {
    let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
    BASE64.encode(bytes)
}

/// The `f32`s of an API base64 embedding; `None` when it is not base64 of whole `f32`s.
pub fn from_base64(text: &str) -> Option<Vec<f32>> {
    let bytes = BASE64.decode(text).ok()?;
    let floats = bytes.chunks_exact(4);
    if !floats.remainder().is_empty() {
        return None;
    }
    Some(floats.map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]])).collect())
}

/// An embeddings answer as far as the gateway reads it; everything else is ignored.
#[derive(Deserialize)]
struct List<'a> {
    object: String,
    #[serde(borrow)]
    data: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow)]
    embedding: &'a RawValue,
}

/// Each `data[].embedding` of `body`: where its JSON text lies in `body`, and the text. `None`
/// unless `body` is an object with `object: "list"` and a `data` array of objects that have an
/// `embedding`.
fn embeddings_of(body: &[u8]) -> Option<Vec<(Range<usize>, &str)>> {
    let list: List<'_> = serde_json::from_slice(body).ok()?;
    if list.object != "list" {
        return None;
    }
    let base = body.as_ptr() as usize;
    list.data
        .iter()
        .map(|item| {
            let text = item.embedding.get();
            // The raw value borrows from `body`, so its text lies inside it.
            let start = (text.as_ptr() as usize)
                .checked_sub(base)
                .filter(|start| start + text.len() <= body.len())?;
            Some((start..start + text.len(), text))
        })
        .collect()
}

/// An embedding's JSON text, read: its encoding and its `f32`s. `None` when it is neither an
/// array of numbers nor a base64 string of `f32`s, or holds a number no `f32` can be (JSON
/// cannot carry NaN or infinities, so neither may be converted).
fn read_embedding(text: &str) -> Option<(Encoding, Vec<f32>)> {
    let (encoding, floats) = if text.starts_with('"') {
        let text: String = serde_json::from_str(text).ok()?;
        (Encoding::Base64, from_base64(&text)?)
    } else {
        (Encoding::Float, serde_json::from_str::<Vec<f32>>(text).ok()?)
    };
    floats.iter().all(|x| x.is_finite()).then_some((encoding, floats))
}

/// The encoding an embedding's JSON text is in, told by its first character only.
fn encoding_of(text: &str) -> Encoding {
    if text.starts_with('"') { Encoding::Base64 } else { Encoding::Float }
}

/// Whether `body` is an embeddings answer: `object: "list"` and a `data` array whose items each
/// have an `embedding` that is an array of numbers or a base64 string of `f32`s. An empty `data`
/// counts: how many there should be is the request's to say.
pub fn is_embeddings(body: &[u8]) -> bool {
    embeddings_of(body)
        .is_some_and(|embeddings| embeddings.iter().all(|(_, text)| read_embedding(text).is_some()))
}

/// `body` with every `data[].embedding` written in the `wanted` encoding, when some is not (an
/// OpenAI-compatible server that ignored `encoding_format`); all else is the upstream's bytes.
/// `None` when every embedding is in the `wanted` encoding already (the upstream's bytes are
/// then the answer as they are, not written again), or when `body` is not an embeddings answer
/// that can be converted.
pub fn conform(body: &[u8], wanted: Encoding) -> Option<Vec<u8>> {
    let embeddings = embeddings_of(body)?;
    if embeddings.iter().all(|(_, text)| encoding_of(text) == wanted) {
        return None;
    }
    let mut out = Vec::with_capacity(match wanted {
        // base64 takes about a third of the floats' text; floats about three times base64.
        Encoding::Base64 => body.len() / 2,
        Encoding::Float => body.len().saturating_mul(3),
    });
    let mut copied = 0;
    for (at, text) in embeddings {
        // Every embedding is read, those kept as they are too: a body only partly an
        // embeddings answer is not mended into one.
        let (encoding, floats) = read_embedding(text)?;
        if encoding == wanted {
            continue;
        }
        out.extend_from_slice(body.get(copied..at.start)?);
        match wanted {
            Encoding::Base64 => serde_json::to_writer(&mut out, &to_base64(&floats)).ok()?,
            // `f32`s are written as the shortest decimal that reads back as the same `f32`.
            Encoding::Float => serde_json::to_writer(&mut out, &floats).ok()?,
        }
        copied = at.end;
    }
    out.extend_from_slice(body.get(copied..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Result<EmbeddingsRequest, InvalidRequest> {
        EmbeddingsRequest::from_slice(body.as_bytes())
    }

    fn refusal(body: &str) -> (Option<&'static str>, &'static str, String) {
        let err = request(body).unwrap_err();
        (err.param, err.code, err.message)
    }

    #[test]
    fn what_the_python_sdk_sends_is_accepted_and_forwarded_as_written() {
        let body = r#"{"input":["caf\u00e9","b"],"model":"alias","encoding_format":"base64","dimensions":256,"user":"u","extra":1.0}"#;
        let request = request(body).unwrap();
        assert_eq!(request.model, "alias");
        assert_eq!(request.encoding, Encoding::Base64);
        assert_eq!(request.dimensions, Some(256));
        assert_eq!(request.inputs(), [Input::Text("café".into()), Input::Text("b".into())]);
        let upstream = String::from_utf8(request.for_upstream("text-embedding-3-small").unwrap());
        assert_eq!(upstream.unwrap(), body.replace(r#""alias""#, r#""text-embedding-3-small""#));
        assert_eq!(request.member("user").unwrap(), Some(Value::from("u")));
        assert_eq!(request.members().count(), 6);
        assert_eq!(request.body()["extra"], 1.0);
    }

    #[test]
    fn every_documented_shape_of_input_is_accepted() {
        let cases: [(&str, Vec<Input>); 4] = [
            (r#""hello""#, vec![Input::Text("hello".into())]),
            (r#"["a","b"]"#, vec![Input::Text("a".into()), Input::Text("b".into())]),
            ("[1,2,3]", vec![Input::Tokens(vec![1, 2, 3])]),
            ("[[1],[2,3]]", vec![Input::Tokens(vec![1]), Input::Tokens(vec![2, 3])]),
        ];
        for (input, inputs) in cases {
            let request = request(&format!(r#"{{"model":"m","input":{input}}}"#)).unwrap();
            assert_eq!(request.inputs(), inputs, "{input}");
        }
        let most = format!(r#"{{"model":"m","input":[{}"x"]}}"#, r#""x","#.repeat(MAX_INPUTS - 1));
        assert_eq!(request(&most).unwrap().inputs().len(), MAX_INPUTS);
        let long_tokens = format!(r#"{{"model":"m","input":[{}1]}}"#, "1,".repeat(MAX_INPUTS));
        assert_eq!(request(&long_tokens).unwrap().inputs().len(), 1, "one input, not an array");
    }

    #[test]
    fn defaults_are_the_apis_when_the_options_are_absent_or_null() {
        for body in [
            r#"{"model":"m","input":"x"}"#,
            r#"{"model":"m","input":"x","encoding_format":null,"dimensions":null,"user":null}"#,
            r#"{"model":"m","input":"x","encoding_format":"float"}"#,
        ] {
            let request = request(body).unwrap();
            assert_eq!((request.encoding, request.dimensions), (Encoding::Float, None), "{body}");
        }
    }

    #[test]
    fn input_of_any_other_shape_is_refused_naming_input() {
        let too_many = format!(r#"[{}"x"]"#, r#""x","#.repeat(MAX_INPUTS));
        let too_many_lists = format!("[{}[1]]", "[1],".repeat(MAX_INPUTS));
        let cases: [(&str, &str, &str); 16] = [
            (r#""""#, "invalid_value", "empty string"),
            ("[]", "invalid_value", "empty array"),
            (r#"["a",""]"#, "invalid_value", "`input[1]` must not be an empty string"),
            (r#"["a",1]"#, "invalid_type", "`input[1]` must be a string"),
            (r#"["a",null]"#, "invalid_type", "`input[1]` must be a string"),
            (r#"[1,"a"]"#, "invalid_type", "`input[1]` must be a token"),
            ("[1,-2]", "invalid_type", "`input[1]` must be a token"),
            ("[1,2.5]", "invalid_type", "`input[1]` must be a token"),
            ("[-1]", "invalid_type", "`input[0]` must be a token"),
            ("[[1],[]]", "invalid_value", "`input[1]` must not be an empty array of tokens"),
            ("[[1],[2,-3]]", "invalid_type", "`input[1][1]` must be a token"),
            ("[[1],2]", "invalid_type", "`input[1]` must be an array of tokens"),
            (r#"[{"text":"a"}]"#, "invalid_type", "must be a string, an array of strings"),
            ("5", "invalid_type", "must be a string, an array of strings"),
            (&too_many, "invalid_value", "at most 2048 items; it has 2049"),
            (&too_many_lists, "invalid_value", "at most 2048 items; it has 2049"),
        ];
        for (input, code, says) in cases {
            let (param, got, message) = refusal(&format!(r#"{{"model":"m","input":{input}}}"#));
            assert_eq!((param, got), (Some("input"), code), "{input}: {message}");
            assert!(message.contains(says), "{input}: {message}");
        }
        let (param, code, message) = refusal(r#"{"model":"m"}"#);
        assert_eq!((param, code), (Some("input"), "missing_required_parameter"), "{message}");
    }

    #[test]
    fn model_and_the_options_are_checked_naming_each() {
        let cases: [(&str, &str, &str); 12] = [
            (r#"{"input":"x"}"#, "model", "missing_required_parameter"),
            (r#"{"model":5,"input":"x"}"#, "model", "invalid_type"),
            (r#"{"model":"","input":"x"}"#, "model", "invalid_type"),
            (r#"{"model":"m","input":"x","dimensions":0}"#, "dimensions", "invalid_value"),
            (r#"{"model":"m","input":"x","dimensions":-1}"#, "dimensions", "invalid_value"),
            (r#"{"model":"m","input":"x","dimensions":1.5}"#, "dimensions", "invalid_value"),
            (r#"{"model":"m","input":"x","dimensions":4294967296}"#, "dimensions", "invalid_value"),
            (r#"{"model":"m","input":"x","dimensions":"8"}"#, "dimensions", "invalid_type"),
            (
                r#"{"model":"m","input":"x","encoding_format":"int8"}"#,
                "encoding_format",
                "invalid_value",
            ),
            (
                r#"{"model":"m","input":"x","encoding_format":"Base64"}"#,
                "encoding_format",
                "invalid_value",
            ),
            (r#"{"model":"m","input":"x","encoding_format":1}"#, "encoding_format", "invalid_type"),
            (r#"{"model":"m","input":"x","user":7}"#, "user", "invalid_type"),
        ];
        for (body, param, code) in cases {
            let (got_param, got_code, message) = refusal(body);
            assert_eq!((got_param, got_code), (Some(param), code), "{body}: {message}");
        }
        let (_, _, message) = refusal(r#"{"model":"m","input":"x","encoding_format":"int8"}"#);
        assert_eq!(message, "`encoding_format` must be 'float' or 'base64'; got 'int8'.");
        let largest = request(r#"{"model":"m","input":"x","dimensions":4294967295}"#).unwrap();
        assert_eq!(largest.dimensions, Some(u32::MAX));
    }

    #[test]
    fn bodies_refused_by_a_json_parse_are_refused_here_too() {
        for body in [
            &br#"{"model":"m","input":"x","x":1e400}"#[..],
            b"{\"model\":\"m\",\"input\":\"\xff\"}",
            b"[1]",
        ] {
            let err = EmbeddingsRequest::from_slice(body).unwrap_err();
            assert!(matches!(err.code, "invalid_json" | "invalid_type"), "{err:?}");
            assert_eq!(err.param, None);
        }
    }

    const FLOATS: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.5]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#;
    const BASE64_ANSWER: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"zczMPc3MTL4AAAA/"}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#;

    #[test]
    fn base64_is_the_little_endian_f32s_in_the_standard_alphabet() {
        assert_eq!(to_base64(&[0.1, -0.2, 0.5]), "zczMPc3MTL4AAAA/");
        assert_eq!(from_base64("zczMPc3MTL4AAAA/"), Some(vec![0.1, -0.2, 0.5]));
        assert_eq!(from_base64("zczMPc3MTL4AAAA"), None, "15 characters are not whole floats");
        assert_eq!(from_base64("AACAPw"), Some(vec![1.0]), "padding is not required");
        assert_eq!(from_base64("AACAPw=="), Some(vec![1.0]));
        assert_eq!(from_base64("AAA="), None, "two bytes are not a float");
        assert_eq!(from_base64("not base64!"), None);
        assert_eq!(from_base64(""), Some(vec![]));
    }

    #[test]
    fn floats_sent_to_a_base64_client_are_converted_and_the_rest_kept_as_sent() {
        let converted = conform(FLOATS.as_bytes(), Encoding::Base64).unwrap();
        assert_eq!(String::from_utf8(converted).unwrap(), BASE64_ANSWER);
    }

    #[test]
    fn base64_sent_to_a_float_client_is_converted_to_the_shortest_floats() {
        let converted = conform(BASE64_ANSWER.as_bytes(), Encoding::Float).unwrap();
        assert_eq!(String::from_utf8(converted).unwrap(), FLOATS);
    }

    #[test]
    fn only_the_embeddings_in_the_wrong_encoding_are_rewritten() {
        let mixed = r#"{ "object" : "list", "data":[{"embedding":[1.0, 0.5]},{"embedding":"AACAPw=="},{"index":2,"embedding":[ 1e0 ]}],"usage":{"prompt_tokens":2}}"#;
        let floats = String::from_utf8(conform(mixed.as_bytes(), Encoding::Float).unwrap());
        assert_eq!(
            floats.unwrap(),
            r#"{ "object" : "list", "data":[{"embedding":[1.0, 0.5]},{"embedding":[1.0]},{"index":2,"embedding":[ 1e0 ]}],"usage":{"prompt_tokens":2}}"#
        );
        let base64 = String::from_utf8(conform(mixed.as_bytes(), Encoding::Base64).unwrap());
        assert_eq!(
            base64.unwrap(),
            r#"{ "object" : "list", "data":[{"embedding":"AACAPwAAAD8="},{"embedding":"AACAPw=="},{"index":2,"embedding":"AACAPw=="}],"usage":{"prompt_tokens":2}}"#
        );
    }

    #[test]
    fn nothing_is_converted_when_every_embedding_is_already_as_wanted() {
        assert_eq!(conform(FLOATS.as_bytes(), Encoding::Float), None);
        assert_eq!(conform(BASE64_ANSWER.as_bytes(), Encoding::Base64), None);
        let empty = br#"{"object":"list","data":[],"model":"m"}"#;
        assert_eq!(conform(empty, Encoding::Base64), None);
        assert!(is_embeddings(empty), "how many there should be is the request's to say");
    }

    #[test]
    fn what_is_not_an_embeddings_answer_is_neither_recognised_nor_converted() {
        let answers: [&[u8]; 10] = [
            b"",
            b"not json",
            br#"{"error":{"message":"no"}}"#,
            br#"{"object":"chat.completion","data":[{"embedding":[1.0]}]}"#,
            br#"{"data":[{"embedding":[1.0]}]}"#,
            br#"{"object":"list","data":[{"index":0}]}"#,
            br#"{"object":"list","data":[{"embedding":{"x":1}}]}"#,
            br#"{"object":"list","data":[{"embedding":["1"]}]}"#,
            br#"{"object":"list","data":[{"embedding":"AAA="}]}"#,
            br#"{"object":"list","data":[{"embedding":[1e39]}]}"#,
        ];
        for answer in answers {
            let shown = String::from_utf8_lossy(answer);
            assert!(!is_embeddings(answer), "{shown}");
            assert_eq!(conform(answer, Encoding::Base64), None, "{shown}");
            assert_eq!(conform(answer, Encoding::Float), None, "{shown}");
        }
        let partly = br#"{"object":"list","data":[{"embedding":[1.0]},{"embedding":"AAA="}]}"#;
        assert_eq!(conform(partly, Encoding::Base64), None, "the base64 one is not whole floats");
        assert!(is_embeddings(FLOATS.as_bytes()) && is_embeddings(BASE64_ANSWER.as_bytes()));
        let nan = to_base64(&[f32::NAN]);
        let nan = format!(r#"{{"object":"list","data":[{{"embedding":"{nan}"}}]}}"#);
        assert_eq!(conform(nan.as_bytes(), Encoding::Float), None, "JSON cannot carry NaN");
    }
}
