//! A small serde deserializer over toml's spanned document (`DeTable`).
//!
//! Why not `toml::de::Deserializer`: its generic methods are large and are
//! stamped out once per visitor, so every config struct and list cost
//! several KB of code (114 KB of the armv6 binary went to those copies
//! alone). Here the work that does not depend on the visitor (reading a
//! number, classifying a value, attaching a span to an error) happens in
//! plain functions, and the generic part left per visitor is a short
//! `match`. The serde derives on the `Raw*` structs, and so serde's own
//! error wording, stay as they are.
//!
//! What it does not do: datetimes (no config key takes one; they are
//! refused as "a date or time"), and borrowing strings from the input
//! (every config string is owned).

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, IntoDeserializer as _, Unexpected, Visitor};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A deserialization error, with the span it is about once one is known.
#[derive(Debug)]
pub(super) struct Error {
    pub message: String,
    pub span: Option<Range<usize>>,
}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error {
            message: message.to_string(),
            span: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Attaches `span` unless a deeper value already gave one.
    #[inline(never)]
    fn at(mut self, span: &Range<usize>) -> Error {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }
}

/// Deserializes a whole document.
pub(super) fn from_document<T: de::DeserializeOwned>(root: &Spanned<DeTable<'_>>) -> Result<T, Error> {
    let span = root.span();
    T::deserialize(Value {
        kind: Kind::Table(root.get_ref()),
        span,
    })
}

/// A value, already classified: what depends on the visitor is then only
/// which `visit_*` to call.
#[derive(Clone, Copy)]
enum Kind<'a, 'i> {
    Str(&'a str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Array(&'a [Spanned<DeValue<'i>>]),
    Table(&'a DeTable<'i>),
    Datetime,
}

#[inline(never)]
fn classify<'a, 'i>(value: &'a DeValue<'i>) -> Result<Kind<'a, 'i>, Error> {
    Ok(match value {
        DeValue::String(text) => Kind::Str(text),
        DeValue::Integer(integer) => {
            let (digits, radix) = (integer.as_str(), integer.radix());
            if let Ok(value) = i64::from_str_radix(digits, radix) {
                Kind::I64(value)
            } else if let Ok(value) = u64::from_str_radix(digits, radix) {
                Kind::U64(value)
            } else {
                return Err(de::Error::custom("integer number overflowed"));
            }
        }
        DeValue::Float(float) => {
            let text = float.as_str();
            match text.parse::<f64>() {
                // An out-of-range literal parses as infinity; only `inf`
                // itself may.
                Ok(value) if value.is_finite() || text.contains("inf") => Kind::F64(value),
                _ => return Err(de::Error::custom("floating-point number overflowed")),
            }
        }
        DeValue::Boolean(value) => Kind::Bool(*value),
        DeValue::Datetime(_) => Kind::Datetime,
        DeValue::Array(items) => Kind::Array(items),
        DeValue::Table(table) => Kind::Table(table),
    })
}

/// What serde's "invalid type" errors call a value.
#[inline(never)]
fn unexpected<'a>(kind: Kind<'a, '_>) -> Unexpected<'a> {
    match kind {
        Kind::Str(text) => Unexpected::Str(text),
        Kind::I64(value) => Unexpected::Signed(value),
        Kind::U64(value) => Unexpected::Unsigned(value),
        Kind::F64(value) => Unexpected::Float(value),
        Kind::Bool(value) => Unexpected::Bool(value),
        Kind::Array(_) => Unexpected::Seq,
        Kind::Table(_) => Unexpected::Map,
        Kind::Datetime => Unexpected::Other("a date or time"),
    }
}

struct Value<'a, 'i> {
    kind: Kind<'a, 'i>,
    span: Range<usize>,
}

impl<'a, 'i> Value<'a, 'i> {
    fn new(value: &'a Spanned<DeValue<'i>>) -> Result<Value<'a, 'i>, Error> {
        let span = value.span();
        match classify(value.get_ref()) {
            Ok(kind) => Ok(Value { kind, span }),
            Err(error) => Err(error.at(&span)),
        }
    }
}

impl<'de> de::Deserializer<'de> for Value<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.kind {
            Kind::Str(text) => visitor.visit_str(text),
            Kind::I64(value) => visitor.visit_i64(value),
            Kind::U64(value) => visitor.visit_u64(value),
            Kind::F64(value) => visitor.visit_f64(value),
            Kind::Bool(value) => visitor.visit_bool(value),
            Kind::Array(items) => visitor.visit_seq(Items(items.iter())),
            Kind::Table(table) => visitor.visit_map(Entries::new(table)),
            Kind::Datetime => Err(de::Error::invalid_type(Unexpected::Other("a date or time"), &visitor)),
        };
        result.map_err(|error| error.at(&self.span))
    }

    // A present key is `Some`: a missing one never reaches a deserializer.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let span = self.span.clone();
        visitor.visit_some(self).map_err(|error| error.at(&span))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        let span = self.span.clone();
        visitor.visit_newtype_struct(self).map_err(|error| error.at(&span))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if serde_spanned::de::is_spanned(name) {
            let span = self.span.clone();
            return visitor.visit_map(serde_spanned::de::SpannedDeserializer::new(self, span));
        }
        // Only a table makes a struct. Through `deserialize_any`, every
        // derived struct would also get its `visit_seq` (fields by position:
        // a second copy of all its field code) and `visit_str` & co.
        let result = match self.kind {
            Kind::Table(table) => visitor.visit_map(Entries::new(table)),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        };
        result.map_err(|error| error.at(&self.span))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = match self.kind {
            Kind::Str(text) => visitor.visit_enum(text.into_deserializer()),
            Kind::Table(table) if table.len() == 1 => match table.iter().next() {
                Some((key, value)) => visitor.visit_enum(Variant { key, value }),
                None => Err(de::Error::custom("wanted string or table")),
            },
            _ => Err(de::Error::custom("wanted string or table")),
        };
        result.map_err(|error| error.at(&self.span))
    }

    // Lists and maps, like structs, take only their own kind of value:
    // no `visit_str` & co. per element type.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.kind {
            Kind::Array(items) => visitor.visit_seq(Items(items.iter())),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        };
        result.map_err(|error| error.at(&self.span))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.kind {
            Kind::Table(table) => visitor.visit_map(Entries::new(table)),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        };
        result.map_err(|error| error.at(&self.span))
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string
        bytes byte_buf unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

impl<'de, 'a, 'i> de::IntoDeserializer<'de, Error> for Value<'a, 'i> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// The elements of an array.
struct Items<'a, 'i>(std::slice::Iter<'a, Spanned<DeValue<'i>>>);

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            Some(item) => seed
                .deserialize(Value::new(item)?)
                .map(Some)
                .map_err(|error| error.at(&item.span())),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The keys and values of a table. An error about a key (unknown, or a
/// repeated field) points at the key; one about a value, at the value.
struct Entries<'a, 'i> {
    entries: toml::map::Iter<'a, Spanned<std::borrow::Cow<'i, str>>, Spanned<DeValue<'i>>>,
    value: Option<&'a Spanned<DeValue<'i>>>,
}

impl<'a, 'i> Entries<'a, 'i> {
    fn new(table: &'a DeTable<'i>) -> Entries<'a, 'i> {
        Entries {
            entries: table.iter(),
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        let name: &str = key.get_ref();
        seed.deserialize(name.into_deserializer())
            .map(Some)
            .map_err(|error: Error| error.at(&key.span()))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            // Errors made after the value was read (an untagged enum that
            // fits no variant) point at the value too.
            Some(value) => seed
                .deserialize(Value::new(value)?)
                .map_err(|error| error.at(&value.span())),
            None => Err(de::Error::custom("a value without a key")),
        }
    }
}

/// `{ variant = value }`: an externally tagged enum written as a table.
struct Variant<'a, 'i> {
    key: &'a Spanned<std::borrow::Cow<'i, str>>,
    value: &'a Spanned<DeValue<'i>>,
}

impl<'de, 'a, 'i> de::EnumAccess<'de> for Variant<'a, 'i> {
    type Error = Error;
    type Variant = Value<'a, 'i>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Value<'a, 'i>), Error> {
        let name: &str = self.key.get_ref();
        let tag = seed
            .deserialize(name.into_deserializer())
            .map_err(|error: Error| error.at(&self.key.span()))?;
        Ok((tag, Value::new(self.value)?))
    }
}

impl<'de> de::VariantAccess<'de> for Value<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        count: Option<u16>,
        big: Option<u64>,
        ratio: Option<f64>,
        name: Option<Spanned<String>>,
        mode: Option<Mode>,
        list: Option<Vec<i64>>,
        pin: Option<PinLike>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(untagged, expecting = "a number or a name")]
    enum PinLike {
        Number(u8),
        Name(String),
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Plain,
        Scaled(f64),
    }

    fn parse(text: &str) -> Result<Sample, Error> {
        let document = DeTable::parse(text).expect("valid TOML");
        from_document(&document)
    }

    #[test]
    fn values_of_every_kind_should_arrive_with_their_spans() {
        let text = "count = 0x10\nbig = 18_446_744_073_709_551_615\nratio = -inf\nname = \"x\"\nmode = { scaled = 2 }\nlist = [1, -2]\n";
        let sample = parse(text).expect("parses");
        assert_eq!(sample.count, Some(16));
        assert_eq!(sample.big, Some(u64::MAX));
        assert_eq!(sample.ratio, Some(f64::NEG_INFINITY));
        let name = sample.name.expect("name");
        assert_eq!(&text[name.span()], "\"x\"");
        assert_eq!(sample.mode, Some(Mode::Scaled(2.0)));
        assert_eq!(sample.list, Some(vec![1, -2]));
        assert_eq!(parse("mode = \"plain\"").expect("parses").mode, Some(Mode::Plain));
    }

    #[test]
    fn errors_should_point_at_the_key_or_the_value_they_are_about() {
        let check = |text: &str, message: &str, at: &str| {
            let error = parse(text).expect_err(text);
            assert!(error.message.starts_with(message), "{text}: {}", error.message);
            let span = error.span.expect("a span");
            assert_eq!(&text[span], at, "{text}");
        };
        check("bogus = 1", "unknown field `bogus`, expected one of", "bogus");
        check("count = 70000", "invalid value: integer `70000`, expected u16", "70000");
        check("count = \"a\"", "invalid type: string \"a\", expected u16", "\"a\"");
        check(
            "big = 18446744073709551616",
            "integer number overflowed",
            "18446744073709551616",
        );
        check("ratio = 1e999", "floating-point number overflowed", "1e999");
        check(
            "count = 07:30:00",
            "invalid type: a date or time, expected u16",
            "07:30:00",
        );
        check("list = [1, \"x\"]", "invalid type: string \"x\", expected i64", "\"x\"");
        check(
            "mode = \"fast\"",
            "unknown variant `fast`, expected `plain` or `scaled`",
            "\"fast\"",
        );
        check("mode = { a = 1, b = 2 }", "wanted string or table", "{ a = 1, b = 2 }");
        // An untagged enum fails after its value was read, and still
        // points at it.
        check("pin = true", "a number or a name", "true");
    }
}
