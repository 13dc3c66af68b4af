//! Checking JSON as strictly as a parse into values would, without building the values.
//!
//! [`Budget::members`] lists an object's members, duplicate keys included, each value as its raw
//! text; [`Budget::shape`] then checks a value as a parse into a [`Value`](serde_json::Value)
//! would (syntax, UTF-8, escapes, number range, nesting depth, through the same
//! `deserialize_any`) and says what it is. Both draw on one [`Budget`] per body, which bounds
//! what a parse of the body could cost: members per object and values in all.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The most members one object may have, duplicate keys counted. Far above any real request
/// (a few dozen top-level members, schemas of hundreds of properties); a body of nothing but
/// members would otherwise cost tens of bytes of memory per byte sent.
pub const MAX_MEMBERS: usize = 10_000;
/// The most JSON values (scalars, arrays and objects, at any depth) one body may hold. A value
/// parsed costs 32 bytes or more, and `[0,0,...]` spends two bytes of body on each: without this
/// a 10 MiB body could become 160 MiB of values. Well above the largest real bodies (an
/// embeddings request of 300,000 token ids).
pub const MAX_VALUES: usize = 500_000;

/// Which bound a body went beyond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TooComplex {
    Members,
    Values,
}

/// Why a scan refused its text: not JSON (or not the JSON expected), or beyond a bound.
#[derive(Debug)]
pub(super) enum ScanError {
    Json(serde_json::Error),
    TooComplex(TooComplex),
}

/// What one body may still spend; every scan of its parts draws from the same budget.
pub(super) struct Budget {
    values_left: usize,
    /// Set when a scan went beyond a bound: its error is then that, not the JSON error.
    exceeded: Option<TooComplex>,
}

impl Budget {
    pub(super) fn new() -> Self {
        Self { values_left: MAX_VALUES, exceeded: None }
    }

    /// A JSON object's members in the order sent, duplicate keys included, each value as its
    /// text. The values themselves are not scanned (see [`shape`](Self::shape)).
    pub(super) fn members<'a>(
        &mut self,
        text: &'a [u8],
    ) -> Result<Vec<(String, &'a RawValue)>, ScanError> {
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let members = MembersSeed(self).deserialize(&mut deserializer);
        let members = members.and_then(|members| deserializer.end().map(|()| members));
        members.map_err(|err| self.error(err))
    }

    /// Checks `text` as strictly as a parse into a [`Value`](serde_json::Value) would, without
    /// building anything, and says what it is.
    pub(super) fn shape(&mut self, text: &str) -> Result<Shape, ScanError> {
        self.scan(serde_json::Deserializer::from_str(text))
    }

    /// [`shape`](Self::shape) of bytes not yet known to be UTF-8.
    pub(super) fn shape_of(&mut self, bytes: &[u8]) -> Result<Shape, ScanError> {
        self.scan(serde_json::Deserializer::from_slice(bytes))
    }

    fn scan<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        mut deserializer: serde_json::Deserializer<R>,
    ) -> Result<Shape, ScanError> {
        let shape = ShapeSeed(self).deserialize(&mut deserializer);
        let shape = shape.and_then(|shape| deserializer.end().map(|()| shape));
        shape.map_err(|err| self.error(err))
    }

    fn error(&self, err: serde_json::Error) -> ScanError {
        match self.exceeded {
            Some(bound) => ScanError::TooComplex(bound),
            None => ScanError::Json(err),
        }
    }

    fn exceed<E: de::Error>(&mut self, bound: TooComplex) -> E {
        self.exceeded = Some(bound);
        E::custom(match bound {
            TooComplex::Members => "an object with too many members",
            TooComplex::Values => "too many values",
        })
    }

    /// Counts one more value.
    fn value<E: de::Error>(&mut self) -> Result<(), E> {
        match self.values_left.checked_sub(1) {
            Some(left) => {
                self.values_left = left;
                Ok(())
            }
            None => Err(self.exceed(TooComplex::Values)),
        }
    }
}

struct MembersSeed<'b>(&'b mut Budget);

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Vec<(String, &'de RawValue)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(member) = map.next_entry()? {
            if members.len() == MAX_MEMBERS {
                return Err(self.0.exceed(TooComplex::Members));
            }
            members.push(member);
        }
        Ok(members)
    }
}

/// What a JSON value is, found while checking all of it as strictly as parsing it into a
/// [`Value`](serde_json::Value) would, without building anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Object,
    Array { empty: bool },
    Scalar,
}

struct ShapeSeed<'b>(&'b mut Budget);

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        self.0.value().map(|()| Shape::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        self.0.value().map(|()| Shape::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        self.0.value().map(|()| Shape::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        self.0.value().map(|()| Shape::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        self.0.value().map(|()| Shape::Scalar)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        self.0.value().map(|()| Shape::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Shape, A::Error> {
        self.0.value()?;
        let mut empty = true;
        while items.next_element_seed(ShapeSeed(&mut *self.0))?.is_some() {
            empty = false;
        }
        Ok(Shape::Array { empty })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Shape, A::Error> {
        self.0.value()?;
        let mut count = 0;
        while members.next_key::<Key>()?.is_some() {
            count += 1;
            if count > MAX_MEMBERS {
                return Err(self.0.exceed(TooComplex::Members));
            }
            members.next_value_seed(ShapeSeed(&mut *self.0))?;
        }
        Ok(Shape::Object)
    }
}

/// An object's key: checked as a string, not kept.
struct Key;

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, _: &str) -> Result<Key, E> {
                Ok(Key)
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn members_come_in_the_order_sent_with_duplicates_and_their_text() {
        let members = Budget::new().members(br#"{"b": [1, 2], "a":"x", "b" :null}"#).unwrap();
        let members: Vec<(&str, &str)> =
            members.iter().map(|(key, value)| (key.as_str(), value.get())).collect();
        assert_eq!(members, [("b", "[1, 2]"), ("a", r#""x""#), ("b", "null")]);
    }

    #[test]
    fn a_shape_is_read_only_from_what_a_value_parse_accepts() {
        let cases = [
            ("{}", Shape::Object),
            (r#"{"a": {"b": [1]}}"#, Shape::Object),
            ("[]", Shape::Array { empty: true }),
            ("[[]]", Shape::Array { empty: false }),
            ("-1.5e3", Shape::Scalar),
            (r#""caf\u00e9""#, Shape::Scalar),
            ("null", Shape::Scalar),
        ];
        for (text, shape) in cases {
            assert_eq!(Budget::new().shape(text).unwrap(), shape, "{text}");
        }
        for text in ["1e400", r#""\ud800""#, "[1,]", r#"{1: 2}"#, "[1] 2"] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert!(matches!(Budget::new().shape(text), Err(ScanError::Json(_))), "{text}");
        }
    }

    fn array_of(n: usize) -> String {
        format!("[{}]", vec!["0"; n].join(","))
    }

    #[test]
    fn a_body_may_hold_at_most_max_values_in_all_its_members() {
        let mut budget = Budget::new();
        // An array is a value too, as is each of its items.
        assert!(budget.shape(&array_of(MAX_VALUES / 2 - 1)).is_ok());
        assert!(budget.shape(&array_of(MAX_VALUES / 2 - 1)).is_ok());
        assert!(matches!(budget.shape("[1]"), Err(ScanError::TooComplex(TooComplex::Values))));
        let mut budget = Budget::new();
        let nested = format!(r#"{{"a":[{}]}}"#, array_of(MAX_VALUES));
        assert!(matches!(budget.shape(&nested), Err(ScanError::TooComplex(TooComplex::Values))));
    }

    #[test]
    fn an_object_may_have_at_most_max_members_duplicates_counted() {
        let object = |n: usize| format!("{{{}}}", vec![r#""a":0"#; n].join(","));
        assert!(Budget::new().shape(&object(MAX_MEMBERS)).is_ok());
        let refused = Budget::new().shape(&format!("[{}]", object(MAX_MEMBERS + 1)));
        assert!(matches!(refused, Err(ScanError::TooComplex(TooComplex::Members))));
        assert_eq!(
            Budget::new().members(object(MAX_MEMBERS).as_bytes()).unwrap().len(),
            MAX_MEMBERS
        );
        let over = object(MAX_MEMBERS + 1);
        let refused = Budget::new().members(over.as_bytes());
        assert!(matches!(refused, Err(ScanError::TooComplex(TooComplex::Members))));
    }
}
