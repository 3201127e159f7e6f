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

/// A position in the config text, 1-based, with the offending line (its
/// secrets masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub text: String,
    /// Where the caret goes under `text`, in characters from its start
    /// (masking may have moved it from `column`).
    pub caret: usize,
}

fn render_invalid(origin: &Origin, location: Option<&Location>, key: &str, message: &str) -> String {
    match location {
        Some(loc) => format!(
            "{origin}: line {line}, column {column}: key `{key}`: {message}\n    {line:>4} | {text}\n         | {pad}^",
            line = loc.line,
            column = loc.column,
            text = loc.text,
            pad = " ".repeat(loc.caret),
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
        let secrets = secret_values(source);
        ConfigError::Invalid {
            origin: origin.clone(),
            location: span.map(|span| locate(source, span.start, &secrets)),
            key: key.to_owned(),
            message: mask_in_message(source, &secrets, message.into()),
        }
    }
}

/// What stands for a secret's value in an error.
const MASK: &str = "***";

/// Whether a key's values are secrets: passwords and tokens, whatever the
/// section (a misspelt `passwd` too), but not the paths of the files
/// holding them.
fn is_secret_key(key: &str) -> bool {
    let name = key
        .rsplit('.')
        .next()
        .unwrap_or(key)
        .trim_matches(['"', '\''])
        .to_ascii_lowercase();
    ["pass", "token", "secret"].iter().any(|s| name.contains(s)) && !name.ends_with("_file")
}

/// The byte ranges of the values of secret keys in `text`, found by a
/// small scan that also works on text TOML cannot parse (an error's line
/// is shown either way): strings (closed or not), bare words, and arrays or
/// inline tables after `<secret key> =`.
pub(super) fn secret_values(text: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    // The last two tokens: a key, then `=`.
    let (mut key, mut equals): (Option<std::ops::Range<usize>>, bool) = (None, false);
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let token_end = match bytes[at] {
            b'#' => {
                at = line_end(bytes, at);
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                at += 1;
                continue;
            }
            b'\n' | b',' | b'{' | b'}' | b'[' | b']' => {
                let secret_value = equals && key.as_ref().is_some_and(|k| is_secret_key(&text[k.clone()]));
                if secret_value && matches!(bytes[at], b'[' | b'{') {
                    let end = closing(bytes, at);
                    spans.push(start..end);
                    at = end;
                } else {
                    at += 1;
                }
                (key, equals) = (None, false);
                continue;
            }
            b'=' => {
                equals = key.is_some();
                at += 1;
                continue;
            }
            b'"' | b'\'' => string_end(bytes, at),
            _ => word_end(bytes, at),
        };
        if equals {
            if key.as_ref().is_some_and(|k| is_secret_key(&text[k.clone()])) {
                spans.push(start..token_end);
            }
            (key, equals) = (None, false);
        } else {
            key = Some(start..token_end);
        }
        at = token_end;
    }
    spans
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |n| from + n)
}

/// The end of a string starting at `from` (one past its closing quote; an
/// unclosed one ends with its line, or with the text when multi-line).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let quote = bytes[from];
    let triple = bytes.get(from..from + 3) == Some(&[quote; 3][..]);
    let mut at = from + if triple { 3 } else { 1 };
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if quote == b'"' => at += 2,
            b'\n' if !triple => return at,
            b if b == quote && (!triple || bytes.get(at..at + 3) == Some(&[quote; 3][..])) => {
                return at + if triple { 3 } else { 1 };
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

fn word_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| b" \t\r\n=,[]{}#\"'".contains(b))
        .map_or(bytes.len(), |n| from + n)
}

/// One past the bracket closing the one at `from`, skipping strings.
fn closing(bytes: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            b'"' | b'\'' => {
                at = string_end(bytes, at);
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    bytes.len()
}

/// A secret's text can come back in a serde message ("invalid type:
/// integer `1234`"): each one found is masked there too.
fn mask_in_message(source: &str, secrets: &[std::ops::Range<usize>], mut message: String) -> String {
    for span in secrets {
        let value = source.get(span.clone()).unwrap_or("").trim_matches(['"', '\'']);
        if value.len() >= 3 {
            message = mask_whole(&message, value);
        }
    }
    message
}

/// `message` with each occurrence of `value` that is not part of a longer
/// word masked: a value serde repeats stands alone (quoted, after a
/// colon), while a short token such as `tok` must not turn the wording's
/// `web.token_file` into `web.***en_file`.
fn mask_whole(message: &str, value: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut masked = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(value) {
        let (before, after) = (rest[..at].chars().next_back(), rest[at + value.len()..].chars().next());
        let inside_a_word =
            is_word(before) && is_word(value.chars().next()) || is_word(after) && is_word(value.chars().next_back());
        masked.push_str(&rest[..at]);
        masked.push_str(if inside_a_word { value } else { MASK });
        rest = &rest[at + value.len()..];
    }
    masked.push_str(rest);
    masked
}

/// Turns a byte offset into a 1-based line and column (in characters),
/// with the line's text, secrets masked.
fn locate(source: &str, offset: usize, secrets: &[std::ops::Range<usize>]) -> Location {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    let line_text = source
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    let mut text = String::new();
    let mut caret = None;
    let mut masking = false;
    for (index, c) in line_text.char_indices() {
        let at = line_start + index;
        if at == offset {
            caret = Some(text.chars().count());
        }
        if secrets.iter().any(|s| s.contains(&at)) {
            if !masking {
                text.push_str(MASK);
                masking = true;
            }
            continue;
        }
        masking = false;
        // Control characters would garble the terminal showing the error.
        text.push(if c.is_control() && c != '\t' { '\u{fffd}' } else { c });
    }
    let caret = caret.unwrap_or_else(|| text.chars().count().min(column.saturating_sub(1)));
    Location {
        line,
        column,
        text,
        caret,
    }
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
