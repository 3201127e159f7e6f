//! Logging: a small `tracing` subscriber that writes one human-readable line
//! per event to stderr (`2026-11-23T12:34:56.789Z  INFO majortom::mqtt:
//! message key=value`), filtered by `MAJORTOM_LOG` (`debug`, or
//! `info,majortom::mqtt=debug`).
//!
//! Written here rather than taken from `tracing-subscriber`, whose registry
//! and formatter cost about 130 KB of a binary with a 2 MB budget; the agent
//! logs events only (no spans), which is all this supports.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::time::rfc3339;

/// Which levels are logged: a default, and overrides by target prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    default: Level,
    /// Longest prefix first.
    targets: Vec<(String, Level)>,
}

impl Filter {
    pub fn new(default: Level) -> Filter {
        Filter {
            default,
            targets: Vec::new(),
        }
    }

    /// `info`, `debug`, `warn,majortom::mqtt=trace`, …; `None` when any
    /// part is not understood.
    pub fn parse(spec: &str) -> Option<Filter> {
        let mut filter = Filter::new(Level::INFO);
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((target, level)) => filter
                    .targets
                    .push((target.trim().to_owned(), level.trim().parse().ok()?)),
                None => filter.default = part.parse().ok()?,
            }
        }
        filter
            .targets
            .sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        Some(filter)
    }

    pub fn enabled(&self, target: &str, level: &Level) -> bool {
        let limit = self
            .targets
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(&self.default, |(_, level)| level);
        level <= limit
    }
}

/// The subscriber. Install it with [`init`].
pub struct Logger {
    filter: Filter,
    next_span: AtomicU64,
    /// Where lines go: stderr, or memory for tests.
    memory: Option<std::sync::Arc<std::sync::Mutex<String>>>,
}

impl Logger {
    pub fn new(filter: Filter) -> Logger {
        Logger {
            filter,
            next_span: AtomicU64::new(1),
            memory: None,
        }
    }

    /// A logger that keeps its lines in `memory` instead.
    pub fn to_memory(filter: Filter, memory: std::sync::Arc<std::sync::Mutex<String>>) -> Logger {
        Logger {
            memory: Some(memory),
            ..Logger::new(filter)
        }
    }
}

/// Installs the logger as the global default; false when one was already
/// installed (a test that set up its own).
pub fn init(filter: Filter) -> bool {
    tracing::subscriber::set_global_default(Logger::new(filter)).is_ok()
}

impl Subscriber for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata.target(), metadata.level())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not used by the agent; each still needs a unique id.
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut line = format!(
            "{} {:>5} {}: ",
            rfc3339(SystemTime::now()),
            metadata.level(),
            metadata.target()
        );
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.push_str(&fields.message);
        line.push_str(&fields.rest);
        line.push('\n');
        match &self.memory {
            Some(memory) => memory.lock().unwrap_or_else(|p| p.into_inner()).push_str(&line),
            // One write per line, so lines from different threads never mix.
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's message and its `key=value` fields.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_should_take_a_default_and_per_target_levels() {
        let filter = Filter::parse("warn,majortom::mqtt=debug,majortom::mqtt::sink=error").expect("valid");
        assert!(filter.enabled("majortom::mqtt::connection", &Level::DEBUG));
        assert!(
            !filter.enabled("majortom::mqtt::sink", &Level::WARN),
            "the longer prefix wins"
        );
        assert!(filter.enabled("majortom::app", &Level::WARN));
        assert!(!filter.enabled("majortom::app", &Level::INFO));
        assert_eq!(Filter::parse("").expect("empty is fine"), Filter::new(Level::INFO));
        assert_eq!(Filter::parse("loud"), None);
        assert_eq!(Filter::parse("majortom=loud"), None);
    }

    #[test]
    fn events_should_read_as_one_line_with_level_target_message_and_fields() {
        let memory = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let logger = Logger::to_memory(Filter::new(Level::INFO), memory.clone());
        tracing::subscriber::with_default(logger, || {
            let addr = "127.0.0.1:8080";
            tracing::info!(%addr, "dashboard listening");
            tracing::warn!(topic = "a/b", payload = %"maybe", "ignoring command: {}", "bad payload");
            tracing::debug!("not shown at info");
        });
        let text = memory.lock().expect("lock").clone();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(" INFO majortom::logging::tests: dashboard listening addr=127.0.0.1:8080"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1]
                .ends_with(" WARN majortom::logging::tests: ignoring command: bad payload topic=\"a/b\" payload=maybe"),
            "{}",
            lines[1]
        );
        assert!(
            lines[0].starts_with("20") && lines[0].as_bytes()[10] == b'T',
            "an RFC 3339 time first: {}",
            lines[0]
        );
    }
}
