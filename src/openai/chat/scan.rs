//! Checking JSON as strictly as a parse into values would, without building the values.
//!
//! [`Members`] lists an object's members, duplicate keys included, each value as its raw text;
//! [`Shape`] then checks a value as a parse into a [`Value`](serde_json::Value) would (syntax,
//! UTF-8, escapes, number range, nesting depth, through the same `deserialize_any`) and says
//! what it is.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's members in the order sent, duplicate keys included, each value as its text.
pub(super) struct Members<'a>(pub(super) Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// What a JSON value is, found while checking all of it as strictly as parsing it into a
/// [`Value`] would, without building anything.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Shape {
    Object,
    Array { empty: bool },
    Scalar,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Shape, A::Error> {
        let mut empty = true;
        while items.next_element::<Shape>()?.is_some() {
            empty = false;
        }
        Ok(Shape::Array { empty })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Shape, A::Error> {
        while members.next_key::<Key>()?.is_some() {
            members.next_value::<Shape>()?;
        }
        Ok(Shape::Object)
    }
}

/// An object's key: checked as a string, not kept.
struct Key;

impl<'de> Deserialize<'de> for Key {
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
        let Members(members) =
            serde_json::from_str(r#"{"b": [1, 2], "a":"x", "b" :null}"#).unwrap();
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
            assert_eq!(serde_json::from_str::<Shape>(text).unwrap(), shape, "{text}");
        }
        for text in ["1e400", r#""\ud800""#, "[1,]", r#"{1: 2}"#, "[1] 2"] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert!(serde_json::from_str::<Shape>(text).is_err(), "{text}");
        }
    }
}
