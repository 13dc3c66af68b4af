//! The built-in offline provider's embeddings answer: per input, a deterministic unit vector
//! drawn from the input alone, so that equal texts embed equally whatever else the request says
//! (a cache or a similarity search can be tested offline) and different texts differ.
//!
//! Each vector is the start of one endless sequence seeded by FNV-1a of the input (splitmix64,
//! uniform in [-1, 1)), scaled to length 1: asking for fewer `dimensions` gives the same
//! direction's first entries, normalised again, as text-embedding-3 models' shortened
//! embeddings are. Usage is counted as the mock's chat answers count it: about four characters
//! of text per token, and a token input's own length.

use serde::Serialize;

use super::mock::fnv1a;
use crate::openai::embeddings::{EmbeddingsRequest, Encoding, Input, to_base64};

/// The dimensions of an answer when the request does not say: text-embedding-3-small's.
const DEFAULT_DIMENSIONS: u32 = 1536;

/// The most `dimensions` the mock answers (text-embedding-3-large has 3072); the caller refuses
/// more with a clear error, and [`answer`] never writes more.
pub(super) const MAX_DIMENSIONS: u32 = 8192;

#[derive(Serialize)]
struct Answer<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

/// Written as JSON numbers (each `f32` as the shortest decimal that reads back as itself) or as
/// the API's base64 string.
#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The JSON body answering `request` as `model`, in the request's encoding.
pub(super) fn answer(request: &EmbeddingsRequest, model: &str) -> Vec<u8> {
    let dimensions =
        request.dimensions.unwrap_or(DEFAULT_DIMENSIONS).clamp(1, MAX_DIMENSIONS) as usize;
    let mut prompt_tokens: u64 = 0;
    let data = request
        .inputs()
        .iter()
        .enumerate()
        .map(|(index, input)| {
            prompt_tokens = prompt_tokens.saturating_add(tokens(input));
            let vector = unit_vector(seed(input), dimensions);
            let embedding = match request.encoding {
                Encoding::Float => Embedding::Float(vector),
                Encoding::Base64 => Embedding::Base64(to_base64(&vector)),
            };
            Item { object: "embedding", index, embedding }
        })
        .collect();
    let usage = Usage { prompt_tokens, total_tokens: prompt_tokens };
    let answer = Answer { object: "list", data, model, usage };
    // Does not fail: strings, integers and finite floats only.
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// The seed of an input's vector: FNV-1a of its text, or of its token ids (little-endian
/// `u64`s), each kind led by its own tag so that a text and a token array do not collide by
/// their bytes.
fn seed(input: &Input) -> u64 {
    let mut bytes = Vec::new();
    match input {
        Input::Text(text) => {
            bytes.push(b't');
            bytes.extend_from_slice(text.as_bytes());
        }
        Input::Tokens(ids) => {
            bytes.push(b'#');
            bytes.extend(ids.iter().flat_map(|id| id.to_le_bytes()));
        }
    }
    fnv1a(&bytes)
}

/// About four characters of text per token, at least one; a token input's own count.
fn tokens(input: &Input) -> u64 {
    match input {
        Input::Text(text) => (text.chars().count() as u64).div_ceil(4).max(1),
        Input::Tokens(ids) => ids.len() as u64,
    }
}

/// `dimensions` entries drawn uniformly from [-1, 1) by splitmix64 from `seed`, scaled (in
/// `f64`) to length 1.
fn unit_vector(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed;
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            // The top 53 bits, as a fraction in [0, 1), moved to [-1, 1).
            (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        // Only a one-dimension draw of exactly 0 gets here: its unit vector is (1).
        let mut unit = vec![0.0; dimensions];
        if let Some(first) = unit.first_mut() {
            *first = 1.0;
        }
        return unit;
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// splitmix64: a tiny deterministic generator whose every seed, 0 included, starts a good
/// sequence.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::openai::embeddings::{from_base64, is_embeddings};

    fn answer_to(body: &str) -> Value {
        let request = EmbeddingsRequest::from_slice(body.as_bytes()).unwrap();
        serde_json::from_slice(&answer(&request, "text-embedding-3-small")).unwrap()
    }

    fn floats(embedding: &Value) -> Vec<f32> {
        match embedding {
            Value::Array(items) => items.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            Value::String(text) => from_base64(text).unwrap(),
            other => panic!("not an embedding: {other}"),
        }
    }

    fn norm(vector: &[f32]) -> f64 {
        vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt()
    }

    #[test]
    fn the_answer_has_the_apis_shape_and_one_unit_vector_per_input() {
        let body = r#"{"model":"alias","input":["hello world","a"]}"#;
        let request = EmbeddingsRequest::from_slice(body.as_bytes()).unwrap();
        let bytes = answer(&request, "text-embedding-3-small");
        assert!(is_embeddings(&bytes));
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["object"], "list");
        assert_eq!(answer["model"], "text-embedding-3-small");
        let data = answer["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        for (index, item) in data.iter().enumerate() {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], index);
            let vector = floats(&item["embedding"]);
            assert_eq!(vector.len(), DEFAULT_DIMENSIONS as usize);
            assert!((norm(&vector) - 1.0).abs() < 1e-5, "norm {}", norm(&vector));
        }
    }

    #[test]
    fn equal_inputs_embed_equally_whatever_else_the_request_says_and_different_ones_differ() {
        let alone = answer_to(r#"{"model":"m","input":"the same text"}"#);
        let among = answer_to(
            r#"{"model":"other","input":["first","the same text"],"user":"u","extra":true}"#,
        );
        assert_eq!(alone["data"][0]["embedding"], among["data"][1]["embedding"]);
        assert_ne!(among["data"][0]["embedding"], among["data"][1]["embedding"]);
        let tokens = answer_to(r#"{"model":"m","input":[[1,2,3],[1,2,3],[3,2,1]]}"#);
        assert_eq!(tokens["data"][0]["embedding"], tokens["data"][1]["embedding"]);
        assert_ne!(tokens["data"][0]["embedding"], tokens["data"][2]["embedding"]);
        let flat = answer_to(r#"{"model":"m","input":[1,2,3]}"#);
        assert_eq!(flat["data"][0]["embedding"], tokens["data"][0]["embedding"]);
    }

    #[test]
    fn dimensions_are_honoured_and_shorten_the_same_direction() {
        let full = floats(&answer_to(r#"{"model":"m","input":"x"}"#)["data"][0]["embedding"]);
        for dimensions in [1, 3, 256, 3072, MAX_DIMENSIONS] {
            let body = format!(r#"{{"model":"m","input":"x","dimensions":{dimensions}}}"#);
            let short = floats(&answer_to(&body)["data"][0]["embedding"]);
            assert_eq!(short.len(), dimensions as usize);
            assert!((norm(&short) - 1.0).abs() < 1e-5, "{dimensions}: norm {}", norm(&short));
            if dimensions > 1 {
                // The same direction: proportional to the full vector's first entries.
                let ratio = f64::from(short[0]) / f64::from(full[0]);
                assert!((f64::from(short[1]) / f64::from(full[1]) - ratio).abs() < 1e-4);
            }
        }
        let over = format!(r#"{{"model":"m","input":"x","dimensions":{}}}"#, MAX_DIMENSIONS + 1);
        let capped = floats(&answer_to(&over)["data"][0]["embedding"]);
        assert_eq!(capped.len(), MAX_DIMENSIONS as usize, "never more than the cap");
    }

    #[test]
    fn base64_answers_decode_to_the_float_answer() {
        let input = r#""input":["alpha","beta"],"dimensions":64"#;
        let float = answer_to(&format!(r#"{{"model":"m",{input}}}"#));
        let base64 = answer_to(&format!(r#"{{"model":"m",{input},"encoding_format":"base64"}}"#));
        for index in 0..2 {
            let encoded = &base64["data"][index]["embedding"];
            assert!(encoded.is_string(), "{encoded}");
            assert_eq!(floats(encoded), floats(&float["data"][index]["embedding"]));
        }
        assert_eq!(base64["usage"], float["usage"]);
    }

    #[test]
    fn usage_counts_about_four_characters_a_token_or_the_tokens_given() {
        // 11 characters, 3 tokens; 1 character, 1 token; "café" is 4 characters in 5 bytes.
        let text = answer_to(r#"{"model":"m","input":["hello world","a","café"]}"#);
        assert_eq!(text["usage"], serde_json::json!({"prompt_tokens": 5, "total_tokens": 5}));
        let request =
            EmbeddingsRequest::from_slice(br#"{"model":"m","input":[[1,2,3],[4]]}"#).unwrap();
        let tokens: serde_json::Value = serde_json::from_slice(&answer(&request, "m")).unwrap();
        assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    }

    #[test]
    fn the_generator_is_fixed_across_platforms_and_versions() {
        // splitmix64's published first output for seed 0.
        assert_eq!(splitmix64(&mut 0), 0xE220_A839_7B1D_CDAF);
        // Pinned: a change here changes every mock embedding a test or a cache may hold.
        let vector = unit_vector(seed(&Input::Text("x".into())), 4);
        assert_eq!(vector, [0.45889118, -0.4637284, -0.54017997, 0.53158295]);
        assert_ne!(seed(&Input::Text("x".into())), seed(&Input::Tokens(vec![120])));
    }
}
