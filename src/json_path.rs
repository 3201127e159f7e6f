//! `value_path` of a command sensor: where the number sits in a JSON
//! document, as `a.b[0].c`. A leaf: it imports nothing of ours.
//!
//! The syntax: keys separated by `.`, array indices in `[…]`; a path may
//! start with an index (`[0].temp`) and a key is any text without `.`, `[`
//! or `]`. What the path points at must be a number, a string holding one
//! (`"21.5"`), or `true`/`false` (1/0).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Clone, PartialEq, Eq)]
pub struct JsonPath {
    source: String,
    steps: Vec<Step>,
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({:?})", self.source)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl JsonPath {
    /// Parses `a.b[0].c`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let mut steps = Vec::new();
        let mut rest = text;
        if rest.is_empty() {
            return Err("must not be empty".to_owned());
        }
        // After a key or index: `.key`, `[n]` or the end.
        let mut first = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let Some((digits, tail)) = after.split_once(']') else {
                    return Err(format!("`[` without `]` in `{text}`"));
                };
                let index = digits
                    .parse::<usize>()
                    .map_err(|_| format!("`[{digits}]` in `{text}` is not an array index such as [0]"))?;
                steps.push(Step::Index(index));
                rest = tail;
            } else {
                let key_text = if first {
                    rest
                } else {
                    rest.strip_prefix('.')
                        .ok_or_else(|| format!("expected `.` or `[` before `{rest}` in `{text}`"))?
                };
                let end = key_text.find(['.', '[', ']']).unwrap_or(key_text.len());
                let key = &key_text[..end];
                if key.is_empty() {
                    return Err(format!("an empty key in `{text}`"));
                }
                steps.push(Step::Key(key.to_owned()));
                rest = &key_text[end..];
                if rest.starts_with(']') {
                    return Err(format!("`]` without `[` in `{text}`"));
                }
            }
            first = false;
        }
        Ok(JsonPath {
            source: text.to_owned(),
            steps,
        })
    }

    /// The number at this path in `json`; the error names the step that
    /// failed.
    ///
    /// The document is walked, not built: only the path's keys are looked
    /// at and everything else is skipped, so a large document costs no
    /// memory (and a `serde_json::Value` would cost 2.4 KB of code).
    pub fn number(&self, json: &[u8]) -> Result<f64, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let found = Walk { steps: &self.steps }
            .deserialize(&mut deserializer)
            .and_then(|found| deserializer.end().map(|()| found))
            .map_err(|error| format!("the output is not JSON: {error}"))?;
        // How far the walk got, for the message: `a.b[3]`.
        let walked = |depth: usize| {
            let mut text = String::new();
            for step in &self.steps[..depth] {
                match step {
                    Step::Key(key) if text.is_empty() => text.push_str(key),
                    Step::Key(key) => {
                        text.push('.');
                        text.push_str(key);
                    }
                    Step::Index(index) => text.push_str(&format!("[{index}]")),
                }
            }
            text
        };
        match found {
            Found::Number(number) => Ok(number),
            Found::Text(text) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("`{self}` is the string {text:?}, not a number")),
            Found::Missing(depth) => Err(format!("`{}` is not in the output", walked(depth + 1))),
            Found::Other(kind, depth) if depth == self.steps.len() => Err(format!("`{self}` is {kind}, not a number")),
            Found::Other(kind, depth) => {
                let here = if depth == 0 {
                    "the document".to_owned()
                } else {
                    walked(depth)
                };
                let wanted = match &self.steps[depth] {
                    Step::Key(key) => format!("an object with `{key}`"),
                    Step::Index(index) => format!("an array with [{index}]"),
                };
                Err(format!("{here} is {kind}, not {wanted}"))
            }
        }
    }
}

/// What the walk found at the end of the path, or where it stopped.
enum Found {
    Number(f64),
    Text(String),
    /// A step (the n-th) is not in the document.
    Missing(usize),
    /// Something else than asked for after n steps: "an object", "null".
    Other(&'static str, usize),
}

impl Found {
    /// One level up: a stop `depth` steps below is one step deeper here.
    fn deeper(self) -> Found {
        match self {
            Found::Missing(depth) => Found::Missing(depth + 1),
            Found::Other(kind, depth) => Found::Other(kind, depth + 1),
            found => found,
        }
    }
}

/// Follows the remaining `steps` down a document; one type for every level.
struct Walk<'p> {
    steps: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Found;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Found, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Walk<'_> {
    /// A scalar: the value when the path ends here, else a dead end.
    fn scalar(&self, found: Found, kind: &'static str) -> Found {
        if self.steps.is_empty() {
            found
        } else {
            Found::Other(kind, 0)
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Found, E> {
        Ok(self.scalar(Found::Number(f64::from(u8::from(value))), "a boolean"))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Found, E> {
        Ok(self.scalar(Found::Number(value as f64), "a number"))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Found, E> {
        Ok(self.scalar(Found::Number(value as f64), "a number"))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Found, E> {
        Ok(self.scalar(Found::Number(value), "a number"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Found, E> {
        Ok(self.scalar(Found::Text(value.to_owned()), "a string"))
    }

    fn visit_unit<E>(self) -> Result<Found, E> {
        Ok(Found::Other("null", 0))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let (found, wanted) = match self.steps.split_first() {
            Some((Step::Key(key), rest)) => (Found::Missing(0), Some((key, rest))),
            _ => (Found::Other("an object", 0), None),
        };
        let mut found = found;
        while let Some(key) = map.next_key::<String>()? {
            match wanted {
                Some((wanted, rest)) if key == *wanted => {
                    found = map.next_value_seed(Walk { steps: rest })?.deeper();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Found, A::Error> {
        let (mut found, wanted) = match self.steps.split_first() {
            Some((Step::Index(index), rest)) => (Found::Missing(0), Some((*index, rest))),
            _ => (Found::Other("an array", 0), None),
        };
        let mut at = 0;
        loop {
            match wanted {
                Some((index, rest)) if index == at => match items.next_element_seed(Walk { steps: rest })? {
                    Some(inner) => found = inner.deeper(),
                    None => break,
                },
                _ => {
                    if items.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            at += 1;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(path: &str, json: &str) -> Result<f64, String> {
        JsonPath::parse(path).expect("a valid path").number(json.as_bytes())
    }

    #[test]
    fn paths_should_parse_keys_and_indices() {
        let steps = |text: &str| JsonPath::parse(text).map(|p| p.steps);
        assert_eq!(
            steps("a.b[0].c"),
            Ok(vec![
                Step::Key("a".into()),
                Step::Key("b".into()),
                Step::Index(0),
                Step::Key("c".into())
            ])
        );
        assert_eq!(steps("[2][10]"), Ok(vec![Step::Index(2), Step::Index(10)]));
        assert_eq!(steps("temp-c"), Ok(vec![Step::Key("temp-c".into())]));
        for bad in ["", ".a", "a.", "a..b", "a[", "a[x]", "a[-1]", "a]", "a[0]b", "[0]]"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_number_at_the_path_should_be_read() {
        let json = r#"{"a": {"b": [{"c": 21.5}, {"c": "22.5"}], "on": true}, "n": null}"#;
        assert_eq!(number("a.b[0].c", json), Ok(21.5));
        assert_eq!(number("a.b[1].c", json), Ok(22.5));
        assert_eq!(number("a.on", json), Ok(1.0));
        assert_eq!(number("[1]", "[1, -2e3]"), Ok(-2000.0));
    }

    #[test]
    fn a_miss_should_name_the_step() {
        let json = r#"{"a": {"b": [1], "s": "warm"}, "n": null}"#;
        assert_eq!(number("a.x", json), Err("`a.x` is not in the output".into()));
        assert_eq!(number("a.b[3]", json), Err("`a.b[3]` is not in the output".into()));
        assert_eq!(
            number("a.b.c", json),
            Err("a.b is an array, not an object with `c`".into())
        );
        assert_eq!(
            number("[0]", json),
            Err("the document is an object, not an array with [0]".into())
        );
        assert_eq!(
            number("a.s", json),
            Err("`a.s` is the string \"warm\", not a number".into())
        );
        assert_eq!(number("n", json), Err("`n` is null, not a number".into()));
        assert_eq!(number("a", json), Err("`a` is an object, not a number".into()));
        assert_eq!(
            number("a.s.x", json),
            Err("a.s is a string, not an object with `x`".into())
        );
        assert_eq!(number("n.x", json), Err("n is null, not an object with `x`".into()));
        assert!(number("a", "{not json").is_err_and(|e| e.starts_with("the output is not JSON")));
        assert!(number("a", r#"{"a": 1} trailing"#).is_err_and(|e| e.starts_with("the output is not JSON")));
    }

    #[test]
    fn everything_off_the_path_should_be_skipped() {
        // Large siblings, before and after, of every kind.
        let big: String = (0..2000)
            .map(|i| format!(r#""k{i}": [{{"x": null}}, "s", 1.5, true], "#))
            .collect();
        let json = format!(r#"{{{big}"t": {{"v": [0, {{"w": -7}}]}}, "z": {{"deep": [[[[]]]]}}}}"#);
        assert_eq!(number("t.v[1].w", &json), Ok(-7.0));
    }
}
