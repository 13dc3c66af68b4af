//! The keys a raw struct accepts, read from its derived `Deserialize`: no list kept by hand.
//!
//! serde's derive hands a struct's field names to `Deserializer::deserialize_struct` before it
//! reads anything. [`of`] runs the derive against a deserializer that only records those names
//! and then stops, so the answer is the struct's own declaration: a field added to a raw struct is
//! a key the file may hold, and no other key is.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The keys of `T`, in declaration order; empty for a type that is not a struct with named fields.
pub fn of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always ends in an error, once the derive has named its fields; the error carries
    // nothing, the names are in `fields`.
    let _stopped = T::deserialize(FieldProbe { fields: &mut fields });
    fields
}

/// A deserializer with no data: it records the field names it is asked for, and fails.
struct FieldProbe<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct with named fields"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        Err(de::Error::custom("the field names are all the probe reads"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the field names are read")]
    struct Sample {
        first: u32,
        #[serde(default)]
        second: Option<String>,
        #[serde(rename = "third_key")]
        third: bool,
    }

    #[test]
    fn reads_the_keys_of_a_struct_as_the_file_spells_them() {
        assert_eq!(of::<Sample>(), ["first", "second", "third_key"]);
    }

    #[test]
    fn a_type_that_is_not_a_struct_has_no_keys() {
        assert!(of::<String>().is_empty());
        assert!(of::<Vec<u32>>().is_empty());
    }
}
