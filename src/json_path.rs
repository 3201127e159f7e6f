//! `value_path` of a command sensor: where the number sits in a JSON
//! document, as `a.b[0].c`. A leaf: it imports nothing of ours.
//!
//! The syntax: keys separated by `.`, array indices in `[…]`; a path may
//! start with an index (`[0].temp`) and a key is any text without `.`, `[`
//! or `]`. What the path points at must be a number, a string holding one
//! (`"21.5"`), or `true`/`false` (1/0).

use std::fmt;

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
    pub fn number(&self, json: &[u8]) -> Result<f64, String> {
        let document: serde_json::Value =
            serde_json::from_slice(json).map_err(|error| format!("the output is not JSON: {error}"))?;
        let mut value = &document;
        let mut walked = String::new();
        for step in &self.steps {
            let here = if walked.is_empty() {
                "the document"
            } else {
                walked.as_str()
            };
            let found = match (step, value) {
                (Step::Key(key), serde_json::Value::Object(map)) => map.get(key),
                (Step::Index(index), serde_json::Value::Array(items)) => items.get(*index),
                (Step::Key(key), other) => {
                    return Err(format!("{here} is {}, not an object with `{key}`", kind(other)));
                }
                (Step::Index(index), other) => {
                    return Err(format!("{here} is {}, not an array with [{index}]", kind(other)));
                }
            };
            match step {
                Step::Key(key) if walked.is_empty() => walked.push_str(key),
                Step::Key(key) => {
                    walked.push('.');
                    walked.push_str(key);
                }
                Step::Index(index) => walked.push_str(&format!("[{index}]")),
            }
            value = found.ok_or_else(|| format!("`{walked}` is not in the output"))?;
        }
        match value {
            serde_json::Value::Number(number) => number
                .as_f64()
                .ok_or_else(|| format!("`{self}` is not a usable number")),
            serde_json::Value::String(text) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("`{self}` is the string {text:?}, not a number")),
            serde_json::Value::Bool(flag) => Ok(f64::from(u8::from(*flag))),
            other => Err(format!("`{self}` is {}, not a number", kind(other))),
        }
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
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
}
