//! Logging: a small `tracing` subscriber that writes one human-readable line
//! per event to stderr (`2026-11-23T12:34:56.789Z  INFO majortom::mqtt:
//! message key=value`), filtered by `MAJORTOM_LOG` (`debug`, or
//! `info,majortom::mqtt=debug`).
//!
//! Whatever a neighbour sends may end up in a field (an MQTT topic or
//! payload, a host name), so every line is made safe here, once, for every
//! call site: control characters are escaped (a newline in a payload never
//! starts a forged line), a `payload` or `body` field keeps at most 64 bytes
//! and any other field or message at most 512, and each call site logs at
//! most [`BURST`] lines at `info` and above per [`WINDOW`]; what it
//! suppressed is then said in one line with the count. `debug` and `trace`
//! are not limited: they are asked for.
//!
//! Written here rather than taken from `tracing-subscriber`, whose registry
//! and formatter cost about 130 KB of a binary with a 2 MB budget; the agent
//! logs events only (no spans), which is all this supports.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::time::rfc3339;

/// Lines a call site may write per [`WINDOW`] (at `info` and above).
pub const BURST: u32 = 20;
/// The window of [`BURST`].
pub const WINDOW: Duration = Duration::from_secs(10);
/// The longest message or field, in bytes, before it is cut.
pub const MAX_FIELD_BYTES: usize = 512;
/// The longest payload shown: fields named `payload` or `body` hold what
/// someone else sent, and 64 bytes tell what it was.
pub const MAX_PAYLOAD_BYTES: usize = 64;
const PAYLOAD_FIELDS: [&str; 2] = ["payload", "body"];

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
    /// Lines per call site: a std mutex, held only to count.
    limiter: Mutex<Limiter>,
    /// Where lines go: stderr, or memory for tests.
    memory: Option<Arc<Mutex<String>>>,
    /// `Instant::now`; tests move it.
    clock: fn() -> Instant,
}

impl Logger {
    pub fn new(filter: Filter) -> Logger {
        Logger {
            filter,
            next_span: AtomicU64::new(1),
            limiter: Mutex::new(Limiter::default()),
            memory: None,
            clock: Instant::now,
        }
    }

    /// A logger that keeps its lines in `memory` instead.
    pub fn to_memory(filter: Filter, memory: Arc<Mutex<String>>) -> Logger {
        Logger {
            memory: Some(memory),
            ..Logger::new(filter)
        }
    }

    fn write(&self, line: &str) {
        match &self.memory {
            Some(memory) => memory.lock().unwrap_or_else(|p| p.into_inner()).push_str(line),
            // One write per line, so lines from different threads never mix.
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    /// Says what every call site suppressed so far (at a stop, so no count
    /// is lost).
    pub fn flush(&self) {
        let now = (self.clock)();
        let summaries = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).drain_all(now);
        for summary in summaries {
            self.write(&summary.line());
        }
    }
}

/// Installs the logger as the global default; false when one was already
/// installed (a test that set up its own).
pub fn init(filter: Filter) -> bool {
    tracing::subscriber::set_global_default(Logger::new(filter)).is_ok()
}

/// Writes the suppressed counts of the installed logger (see
/// [`Logger::flush`]); a no-op under another subscriber.
pub fn flush() {
    tracing::dispatcher::get_default(|dispatch| {
        if let Some(logger) = dispatch.downcast_ref::<Logger>() {
            logger.flush();
        }
    });
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
        let (admitted, summaries) = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(metadata, (self.clock)());
        for summary in summaries {
            self.write(&summary.line());
        }
        if !admitted {
            return;
        }
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
        self.write(&line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's message and its `key=value` fields, escaped and cut.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Fields {
    fn limit(field: &Field) -> usize {
        if PAYLOAD_FIELDS.contains(&field.name()) {
            MAX_PAYLOAD_BYTES
        } else {
            MAX_FIELD_BYTES
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            Safe::new(&mut self.message, MAX_FIELD_BYTES, false).put(format_args!("{value}"));
        } else {
            let _ = write!(self.rest, " {}=\"", field.name());
            Safe::new(&mut self.rest, Fields::limit(field), true).put(format_args!("{value}"));
            self.rest.push('"');
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            Safe::new(&mut self.message, MAX_FIELD_BYTES, false).put(format_args!("{value:?}"));
        } else {
            let _ = write!(self.rest, " {}=", field.name());
            Safe::new(&mut self.rest, Fields::limit(field), false).put(format_args!("{value:?}"));
        }
    }
}

/// Writes formatted text into a line with control characters escaped, cut
/// at `limit` bytes with a note of what was left out. `quoted` also escapes
/// `"` and `\`, for a value shown between quotes.
struct Safe<'a> {
    out: &'a mut String,
    limit: usize,
    quoted: bool,
    written: usize,
    left_out: usize,
}

impl<'a> Safe<'a> {
    fn new(out: &'a mut String, limit: usize, quoted: bool) -> Safe<'a> {
        Safe {
            out,
            limit,
            quoted,
            written: 0,
            left_out: 0,
        }
    }

    fn put(mut self, args: std::fmt::Arguments<'_>) {
        let _ = self.write_fmt(args);
        if self.left_out > 0 {
            let _ = write!(self.out, "…(+{} bytes)", self.left_out);
        }
    }
}

impl std::fmt::Write for Safe<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        for c in text.chars() {
            if self.left_out > 0 {
                self.left_out += c.len_utf8();
                continue;
            }
            let mut utf8 = [0u8; 4];
            let unicode;
            let shown: &str = match c {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '"' if self.quoted => "\\\"",
                '\\' if self.quoted => "\\\\",
                c if is_unsafe(c) => {
                    unicode = format!("\\u{{{:x}}}", u32::from(c));
                    &unicode
                }
                c => c.encode_utf8(&mut utf8),
            };
            if self.written + shown.len() > self.limit {
                self.left_out += c.len_utf8();
                continue;
            }
            self.out.push_str(shown);
            self.written += shown.len();
        }
        Ok(())
    }
}

/// Characters that could make one line look like two or reorder what a
/// terminal shows: control characters, Unicode line and paragraph
/// separators, and bidirectional overrides.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Lines per call site per window.
#[derive(Default)]
struct Limiter {
    sites: HashMap<Identifier, Site>,
    /// Some site has a count to report once its window ends.
    pending: bool,
}

struct Site {
    metadata: &'static Metadata<'static>,
    since: Instant,
    lines: u32,
    suppressed: u64,
}

/// "N similar lines suppressed", for one call site.
struct Summary {
    metadata: &'static Metadata<'static>,
    suppressed: u64,
    over: Duration,
}

impl Summary {
    fn line(&self) -> String {
        format!(
            "{} {:>5} {}: {} similar lines suppressed in {:.0} s ({}:{})\n",
            rfc3339(SystemTime::now()),
            self.metadata.level(),
            self.metadata.target(),
            self.suppressed,
            self.over.as_secs_f64(),
            self.metadata.file().unwrap_or("?"),
            self.metadata.line().unwrap_or(0)
        )
    }
}

impl Limiter {
    /// Whether an event of `metadata` at `now` is written, and the counts
    /// of windows that ended, to write first.
    fn admit(&mut self, metadata: &'static Metadata<'static>, now: Instant) -> (bool, Vec<Summary>) {
        let mut summaries = Vec::new();
        if self.pending {
            self.pending = false;
            for site in self.sites.values_mut() {
                if site.suppressed > 0 {
                    if now.saturating_duration_since(site.since) >= WINDOW {
                        summaries.extend(site.close(now));
                    } else {
                        self.pending = true;
                    }
                }
            }
        }
        if *metadata.level() > Level::INFO {
            return (true, summaries);
        }
        let site = self.sites.entry(metadata.callsite()).or_insert(Site {
            metadata,
            since: now,
            lines: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(site.since) >= WINDOW {
            summaries.extend(site.close(now));
        }
        if site.lines < BURST {
            site.lines += 1;
            return (true, summaries);
        }
        site.suppressed += 1;
        self.pending = true;
        (false, summaries)
    }

    /// Every count not yet said.
    fn drain_all(&mut self, now: Instant) -> Vec<Summary> {
        self.pending = false;
        self.sites.values_mut().filter_map(|site| site.close(now)).collect()
    }
}

impl Site {
    /// Ends the window: its count, if anything was suppressed, and a new
    /// window from `now`.
    fn close(&mut self, now: Instant) -> Option<Summary> {
        let summary = (self.suppressed > 0).then(|| Summary {
            metadata: self.metadata,
            suppressed: self.suppressed,
            over: now.saturating_duration_since(self.since),
        });
        self.since = now;
        self.lines = 0;
        self.suppressed = 0;
        summary
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

    fn memory_logger(filter: Filter) -> (Logger, Arc<Mutex<String>>) {
        let memory = Arc::new(Mutex::new(String::new()));
        (Logger::to_memory(filter, memory.clone()), memory)
    }

    #[test]
    fn a_newline_in_any_field_should_never_start_a_line_of_its_own() {
        let (logger, memory) = memory_logger(Filter::new(Level::INFO));
        let forged = "ON\n2026-01-01T00:00:00.000Z  WARN majortom::app: forged\r\u{202e}";
        tracing::subscriber::with_default(logger, || {
            let topic = "a/b\nc";
            tracing::warn!(%topic, payload = %forged, "ignoring command: {}", "x\ny");
            tracing::warn!(name = forged, other = ?forged, "debug and str fields too");
        });
        let text = memory.lock().expect("lock").clone();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.lines().any(|l| l.starts_with("2026-01-01")), "{text}");
        assert!(text.contains("topic=a/b\\nc"), "{text}");
        assert!(text.contains("ignoring command: x\\ny"), "{text}");
        assert!(text.contains("\\r\\u{202e}"), "{text}");
        assert!(text.contains("name=\"ON\\n2026"), "{text}");
    }

    #[test]
    fn payloads_should_be_cut_to_64_bytes_and_other_fields_to_512() {
        let (logger, memory) = memory_logger(Filter::new(Level::INFO));
        let payload = "p".repeat(60_000);
        let topic = "t".repeat(2_000);
        tracing::subscriber::with_default(logger, || {
            tracing::warn!(%topic, %payload, "{}", "m".repeat(5_000));
        });
        let text = memory.lock().expect("lock").clone();
        assert!(
            text.contains(&format!(" payload={}…(+{} bytes)", "p".repeat(64), 60_000 - 64)),
            "{text}"
        );
        assert!(text.contains(&format!(" topic={}…(+{} bytes)", "t".repeat(512), 2_000 - 512)));
        assert!(text.contains(&format!(": {}…(+{} bytes)", "m".repeat(512), 5_000 - 512)));
        assert!(text.len() < 1_400, "{} bytes", text.len());
        // A cut never splits a character.
        let (logger, memory) = memory_logger(Filter::new(Level::INFO));
        tracing::subscriber::with_default(logger, || tracing::warn!(payload = %"é".repeat(100), "x"));
        let text = memory.lock().expect("lock").clone();
        assert!(
            text.contains(&format!("payload={}…(+136 bytes)", "é".repeat(32))),
            "{text}"
        );
    }

    /// A clock the rate-limit tests move by hand.
    static NOW_OFFSET_MS: AtomicU64 = AtomicU64::new(0);
    fn test_clock() -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_millis(NOW_OFFSET_MS.load(Ordering::SeqCst))
    }

    #[test]
    fn a_flood_from_one_call_site_should_be_limited_and_counted_but_not_hide_other_lines() {
        let (mut logger, memory) = memory_logger(Filter::new(Level::DEBUG));
        logger.clock = test_clock;
        let logger = Arc::new(logger);
        let dispatch = tracing::Dispatch::from(logger.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            for n in 0..1_000 {
                tracing::warn!(n, "flood");
                if n % 100 == 0 {
                    tracing::info!(n, "another call site");
                }
                tracing::debug!(n, "debug is not limited");
            }
            // The window ends: the next line of any call site says the count.
            NOW_OFFSET_MS.fetch_add(WINDOW.as_millis() as u64, Ordering::SeqCst);
            tracing::info!("later");
            tracing::warn!(n = 1_000, "flood");
            for _ in 0..30 {
                tracing::warn!("second flood");
            }
        });
        logger.flush();
        let text = memory.lock().expect("lock").clone();
        let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
        assert_eq!(
            count(" WARN majortom::logging::tests: flood"),
            BURST as usize + 1,
            "{text}"
        );
        assert_eq!(count("another call site"), 10);
        assert_eq!(count("debug is not limited"), 1_000);
        assert_eq!(
            count("980 similar lines suppressed in 10 s (src/logging.rs:"),
            1,
            "{text}"
        );
        assert_eq!(count("second flood"), BURST as usize);
        assert_eq!(count("10 similar lines suppressed in 0 s"), 1, "{text}");
        let summary = text.lines().position(|l| l.contains("980 similar")).expect("summary");
        let later = text.lines().position(|l| l.contains("later")).expect("later");
        assert!(summary < later, "the count comes first: {text}");
    }
}
