//! Config errors: what is wrong and where (file, line, column, key), and
//! finding the key a serde error's span points at.

use std::path::PathBuf;

use super::Origin;

/// A configuration error: what is wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(origin, location.as_ref(), key, message))]
    Invalid {
        origin: Origin,
        location: Option<Location>,
        /// Dotted path of the key, e.g. `mqtt.port`.
        key: String,
        message: String,
    },
}

/// A position in the config text, 1-based, with the offending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub text: String,
}

fn render_invalid(origin: &Origin, location: Option<&Location>, key: &str, message: &str) -> String {
    match location {
        Some(loc) => format!(
            "{origin}: line {line}, column {column}: key `{key}`: {message}\n    {line:>4} | {text}\n         | {pad}^",
            line = loc.line,
            column = loc.column,
            text = loc.text,
            pad = " ".repeat(loc.column.saturating_sub(1)),
        ),
        None => format!("{origin}: key `{key}`: {message}"),
    }
}

impl ConfigError {
    pub(super) fn invalid(
        origin: &Origin,
        source: &str,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            origin: origin.clone(),
            location: span.map(|span| locate(source, span.start)),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Turns a byte offset into a 1-based line and column (in characters).
fn locate(source: &str, offset: usize) -> Location {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    // Control characters would garble the terminal showing the error.
    let text = source
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
        .collect();
    Location { line, column, text }
}

/// The dotted path (`inputs[1].pin`) of the key or value at `span`.
pub(super) fn key_path_at(text: &str, span: &std::ops::Range<usize>) -> Option<String> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_in_table(root.get_ref(), span, &mut path).then(|| {
        let mut out = String::new();
        for segment in path {
            if !segment.starts_with('[') && !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
        out
    })
}

fn contains(outer: &std::ops::Range<usize>, inner: &std::ops::Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// Depth first: the deepest key whose own span, or whose value's, holds
/// `span`. Table spans are not relied on (a `[table]` header's span is only
/// the header).
fn find_in_table(table: &toml::de::DeTable<'_>, span: &std::ops::Range<usize>, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        if find_in_value(value, span, path) || contains(&key.span(), span) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    span: &std::ops::Range<usize>,
    path: &mut Vec<String>,
) -> bool {
    match value.get_ref() {
        toml::de::DeValue::Table(table) => find_in_table(table, span, path) || contains(&value.span(), span),
        toml::de::DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(format!("[{index}]"));
                if find_in_value(item, span, path) {
                    return true;
                }
                path.pop();
            }
            contains(&value.span(), span)
        }
        _ => contains(&value.span(), span),
    }
}
