//! `RawObject`: a client's JSON object body kept as its bytes, every member checked, none
//! parsed until asked for. What every API's request type is built on.
//!
//! The body is kept as the client's text so that fields the gateway does not know (vendor
//! parameters, fields newer than this gateway) reach a same-API upstream unchanged and numbers
//! keep their spelling. The top-level members are located once; each is checked as strictly as
//! parsing it into values would (syntax, UTF-8, escapes, number range, nesting depth), within
//! one [`Budget`](super::scan::Budget) for the whole body, without building them; the whole
//! body is parsed into values only on first use of [`body`](RawObject::body).

use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::scan::{Budget, MAX_MEMBERS, MAX_VALUES, ScanError, Shape, TooComplex};

/// The most output tokens a request of any API may ask for: far above any model's output limit,
/// so a larger value is a mistake or abuse.
pub const MAX_OUTPUT_TOKENS: u64 = 10_000_000;

/// Why a request body was refused; `param` names the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
    pub code: &'static str,
}

/// A checked JSON object, as the client sent it.
#[derive(Clone, Debug)]
pub struct RawObject {
    raw: Bytes,
    /// The top-level members, sorted by key, each with where its value lies in `raw` and what
    /// it is. A later duplicate key wins, as it does in `body`.
    fields: Vec<Field>,
    /// The whole body parsed, made on first use. Private so that it cannot drift from `raw`.
    body: OnceLock<Map<String, Value>>,
    /// A key was sent more than once.
    duplicates: bool,
}

#[derive(Clone, Debug)]
struct Field {
    key: String,
    at: Range<usize>,
    shape: Shape,
}

impl RawObject {
    /// Checks `bytes` as a JSON object of JSON values, keeping them without a copy.
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
        // Every member is checked, a duplicate key's earlier values too: a parse into values
        // reads those as well before the last one wins.
        for (key, value) in members {
            let text = value.get();
            let shape = budget.shape(text).map_err(|err| match err {
                ScanError::Json(err) => not_json(Some(&key), &err),
                ScanError::TooComplex(bound) => too_complex(bound),
            })?;
            // `value` borrows from `bytes`, so its text lies inside them.
            let start = (text.as_ptr() as usize)
                .checked_sub(base)
                .filter(|start| start + text.len() <= bytes.len())
                .ok_or_else(|| invalid(None, "invalid_json", "The request body is unreadable."))?;
            fields.push(Field { key, at: start..start + text.len(), shape });
        }
        // Sorted by key (stably, so a duplicate's values stay in the order sent), then each
        // duplicate key keeps its last value, as in `body`.
        fields.sort_by(|a, b| a.key.cmp(&b.key));
        let sent = fields.len();
        fields.dedup_by(|later, kept| {
            let same = later.key == kept.key;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        let duplicates = fields.len() < sent;
        Ok(Self { raw: bytes, fields, body: OnceLock::new(), duplicates })
    }

    fn field(&self, key: &str) -> Option<&Field> {
        let index = self.fields.binary_search_by(|field| field.key.as_str().cmp(key)).ok()?;
        self.fields.get(index)
    }

    /// What the top-level member `key` is, when present.
    pub fn shape(&self, key: &str) -> Option<&Shape> {
        self.field(key).map(|field| &field.shape)
    }

    /// The JSON text of the top-level member `key`.
    pub fn slice(&self, key: &str) -> Option<&[u8]> {
        self.raw.get(self.field(key)?.at.clone())
    }

    /// The top-level member `key`, parsed (it was checked, so it parses).
    pub fn member(&self, key: &str) -> Result<Option<Value>, InvalidRequest> {
        self.slice(key)
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|err| not_json(Some(key), &err))
    }

    /// The top-level member `key`, which must be there and be a non-empty string.
    pub fn required_string(&self, key: &'static str) -> Result<String, InvalidRequest> {
        match self.member(key)? {
            Some(Value::String(text)) if !text.is_empty() => Ok(text),
            Some(_) => {
                Err(invalid(Some(key), "invalid_type", &format!("`{key}` must be a string.")))
            }
            None => Err(missing(key)),
        }
    }

    /// Checks that the top-level member `key` is there and is a non-empty array.
    pub fn required_array(&self, key: &'static str) -> Result<(), InvalidRequest> {
        match self.shape(key) {
            Some(Shape::Array { empty: false }) => Ok(()),
            Some(Shape::Array { empty: true }) => {
                Err(invalid(Some(key), "invalid_value", &format!("`{key}` must not be empty.")))
            }
            Some(_) => {
                Err(invalid(Some(key), "invalid_type", &format!("`{key}` must be an array.")))
            }
            None => Err(missing(key)),
        }
    }

    /// The top-level member `key` as a boolean: false when absent or null.
    pub fn flag(&self, key: &'static str) -> Result<bool, InvalidRequest> {
        match self.member(key)? {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(flag)) => Ok(flag),
            Some(_) => {
                Err(invalid(Some(key), "invalid_type", &format!("`{key}` must be a boolean.")))
            }
        }
    }

    /// The top-level members as the client wrote them, sorted by key, each with its value's JSON
    /// text (a later duplicate key having won).
    pub fn members(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|field| (field.key.as_str(), self.raw.get(field.at.clone()).unwrap_or(b"null")))
    }

    /// The whole body as the client sent it, parsed on first use.
    pub fn body(&self) -> &Map<String, Value> {
        // Does not fail: `from_bytes` accepted the body by the same rules as this parse (both
        // go through serde_json's `deserialize_any`); tests/it/properties/ and the fuzz target
        // check that.
        self.body.get_or_init(|| serde_json::from_slice(&self.raw).unwrap_or_default())
    }

    /// Whether `body` was parsed yet.
    #[cfg(test)]
    pub(crate) fn is_parsed(&self) -> bool {
        self.body.get().is_some()
    }

    /// Tests only: changes the parsed body (not the bytes), to build requests that parsing
    /// would refuse.
    #[cfg(test)]
    pub(crate) fn body_mut(&mut self) -> &mut Map<String, Value> {
        self.body();
        self.body.get_mut().expect("parsed just above")
    }

    /// The client's bytes exactly, but for `model`'s value, which is `upstream_model`: what a
    /// passthrough sends. A body that names a key twice is written as
    /// [`with_model`](Self::with_model) does instead (sorted, each key once), so that no
    /// upstream can read a `model` other than `upstream_model`.
    pub fn with_model_in_place(&self, upstream_model: &str) -> Result<Vec<u8>, serde_json::Error> {
        let Some(at) =
            self.field("model").map(|field| field.at.clone()).filter(|_| !self.duplicates)
        else {
            return self.with_model(upstream_model, &[], b"");
        };
        let mut out = Vec::with_capacity(self.raw.len() + upstream_model.len());
        out.extend_from_slice(&self.raw[..at.start]);
        serde_json::to_writer(&mut out, upstream_model)?;
        out.extend_from_slice(&self.raw[at.end..]);
        Ok(out)
    }

    /// The object with `model` replaced by `upstream_model`, every other member not in `skip`
    /// written as the client's own text, then `extra` (written JSON members, each led by a
    /// comma), into a buffer sized up front. Not encoded again: a long conversation costs a copy
    /// instead of a character-by-character escape, and numbers keep the client's spelling.
    pub fn with_model(
        &self,
        upstream_model: &str,
        skip: &[&str],
        extra: &[u8],
    ) -> Result<Vec<u8>, serde_json::Error> {
        // Sized up front: growing a long conversation by doubling would copy it several times.
        let mut out = Vec::with_capacity(self.raw.len() + upstream_model.len() + extra.len() + 16);
        out.extend_from_slice(b"{\"model\":");
        serde_json::to_writer(&mut out, upstream_model)?;
        for field in &self.fields {
            if field.key == "model" || skip.contains(&field.key.as_str()) {
                continue;
            }
            out.push(b',');
            serde_json::to_writer(&mut out, &field.key)?;
            out.push(b':');
            out.extend_from_slice(self.raw.get(field.at.clone()).unwrap_or(b"null"));
        }
        out.extend_from_slice(extra);
        out.push(b'}');
        Ok(out)
    }
}

/// The body, or its top-level `member`, is not JSON.
pub fn not_json(member: Option<&str>, err: &serde_json::Error) -> InvalidRequest {
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

pub fn invalid(param: Option<&'static str>, code: &'static str, message: &str) -> InvalidRequest {
    InvalidRequest { message: message.to_owned(), param, code }
}

pub fn missing(param: &'static str) -> InvalidRequest {
    InvalidRequest {
        message: format!("Missing required parameter: '{param}'."),
        param: Some(param),
        code: "missing_required_parameter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_sorted_and_a_later_duplicate_wins_as_in_the_parsed_body() {
        let object =
            RawObject::from_bytes(Bytes::from_static(br#"{"b":[1, 2],"a":"x","b" : null}"#))
                .unwrap();
        let members: Vec<(&str, &[u8])> = object.members().collect();
        assert_eq!(members, [("a", &br#""x""#[..]), ("b", &b"null"[..])]);
        assert_eq!(object.body().get("b"), Some(&Value::Null));
        assert_eq!(object.shape("b"), Some(&Shape::Scalar));
    }

    #[test]
    fn with_model_swaps_the_model_skips_what_it_is_told_and_appends_extra() {
        let object = RawObject::from_bytes(Bytes::from_static(
            br#"{"model":"alias","seed":12345678901234567890,"drop":1,"x":{"y":1.0}}"#,
        ))
        .unwrap();
        let written = object.with_model("up", &["drop"], br#","extra":true"#).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            r#"{"model":"up","seed":12345678901234567890,"x":{"y":1.0},"extra":true}"#
        );
        assert!(!object.is_parsed(), "nothing was parsed into values");
    }

    #[test]
    fn with_model_in_place_keeps_every_byte_but_the_models_value_unless_a_key_repeats() {
        let sent = br#"{ "max_tokens" : 5, "model":"alias" ,"z":[1e2, 0.10]}"#;
        let object = RawObject::from_bytes(Bytes::from_static(sent)).unwrap();
        let written = object.with_model_in_place("up").unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            r#"{ "max_tokens" : 5, "model":"up" ,"z":[1e2, 0.10]}"#
        );
        let twice =
            RawObject::from_bytes(Bytes::from_static(br#"{"model":"a","x":1,"model":"b"}"#))
                .unwrap();
        let written = String::from_utf8(twice.with_model_in_place("up").unwrap()).unwrap();
        assert_eq!(written, r#"{"model":"up","x":1}"#, "no other model reaches the upstream");
    }
}
