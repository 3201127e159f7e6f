//! The config parser: arbitrary text, and valid configs built from the known
//! keys with one (or several) mistakes put in.
//!
//! Every outcome is either a valid `Config` (whose description `majortom
//! check` prints) or a `ConfigError` with a message that names a key and,
//! where it points into the text, a line and column that exist there. With
//! one mistake, the error names the key of that mistake; with none, the
//! config is valid.

use majortom::cli::describe;
use majortom::config::{Config, ConfigError, Context, MqttConfig, Origin, DEFAULT_CONFIG_TOML};
use majortom::mqtt::topics::Topics;
use majortom::vocab::system::entity_ids;
use majortom::vocab::{Component, Press};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseResult;

use crate::check;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    let ctx = Context {
        hostname: "fuzz-host",
        env: &no_env,
    };
    Config::from_toml(text, Origin::File("fuzz.toml".into()), &ctx)
}

/// What every outcome must satisfy, whatever the input.
fn check_outcome(text: &str, outcome: &Result<Config, ConfigError>) -> TestCaseResult {
    match outcome {
        Ok(config) => {
            let described = describe(config);
            prop_assert!(described.ends_with("config is valid\n"), "{described}");
            for sensor in &config.sensors {
                for (_, n) in sensor.offset.iter().chain(&sensor.scale) {
                    prop_assert!(n.is_finite(), "sensor `{}` calibrates with {n}", sensor.name);
                }
            }
            if let Some(mqtt) = &config.mqtt {
                check_mqtt_limits(config, mqtt)?;
            }
        }
        Err(
            error @ ConfigError::Invalid {
                location, key, message, ..
            },
        ) => {
            let rendered = error.to_string();
            prop_assert!(!message.trim().is_empty(), "empty message: {rendered}");
            prop_assert!(!key.is_empty(), "empty key: {rendered}");
            prop_assert!(rendered.contains(&format!("key `{key}`")), "{rendered}");
            prop_assert!(rendered.starts_with("fuzz.toml: "), "{rendered}");
            if let Some(location) = location {
                let at = format!("line {}, column {}", location.line, location.column);
                prop_assert!(rendered.contains(&at), "{rendered}");
                prop_assert!(location.line >= 1 && location.column >= 1, "{rendered}");
                let lines: Vec<&str> = text.split('\n').collect();
                let line = lines.get(location.line - 1).copied();
                prop_assert!(
                    line.is_some(),
                    "line {} is past the text's end: {rendered}",
                    location.line
                );
                let line = line.unwrap_or_default();
                // The quoted line is the line without its `\r\n` ending, if
                // it has one.
                let quoted = if location.line < lines.len() {
                    line.strip_suffix('\r').unwrap_or(line)
                } else {
                    line
                };
                // Control characters are shown as U+FFFD, not sent raw to
                // the terminal.
                let quoted: String = quoted
                    .chars()
                    .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
                    .collect();
                prop_assert!(
                    location.column <= line.chars().count() + 1,
                    "column {} is past the end of line {:?}: {rendered}",
                    location.column,
                    line
                );
                prop_assert!(
                    location.text == quoted,
                    "quoted line {:?} is not line {} {:?}",
                    location.text,
                    location.line,
                    line
                );
            }
        }
        Err(error @ ConfigError::Read { .. }) => {
            prop_assert!(false, "from_toml read a config file: {error}");
        }
    }
    Ok(())
}

/// MQTT prefixes each string in a packet with a 16-bit length: a longer
/// client id, user name, password or topic makes a packet the broker drops
/// the connection over, again at every reconnect.
const MQTT_MAX_STRING: usize = 65_535;

fn check_mqtt_limits(config: &Config, mqtt: &MqttConfig) -> TestCaseResult {
    let mut strings = vec![("mqtt.client_id", mqtt.client_id.clone())];
    if let Some(credentials) = &mqtt.credentials {
        strings.push(("mqtt.username", credentials.username.clone()));
        strings.push(("mqtt.password", credentials.password.clone().unwrap_or_default()));
    }
    let topics = Topics::new(&mqtt.base_topic, &mqtt.discovery_prefix, &config.node.id);
    let names = config
        .inputs
        .iter()
        .map(|i| &i.name)
        .chain(config.outputs.iter().map(|o| &o.name))
        .chain(config.sensors.iter().map(|s| &s.name))
        // The longest entity id a sensor gets: its name and a quantity.
        .map(|name| format!("{name}_temperature"))
        .chain(entity_ids().chain(["restart", "reboot"]).map(str::to_owned));
    for name in names {
        strings.push(("mqtt.base_topic", topics.availability(&name)));
        strings.push((
            "mqtt.discovery_prefix",
            topics.discovery(Component::BinarySensor, &name),
        ));
        strings.push(("mqtt.discovery_prefix", topics.trigger_discovery(&name, Press::Double)));
    }
    for (key, string) in strings {
        prop_assert!(
            string.len() <= MQTT_MAX_STRING,
            "`{key}` makes a {}-byte MQTT string; the limit is {MQTT_MAX_STRING}",
            string.len()
        );
    }
    Ok(())
}

/// A readable regular file holding a secret, made once per test run.
static SECRET_FILE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let path = std::env::temp_dir().join(format!("majortom-props-secret-{}", std::process::id()));
    std::fs::write(&path, "a-secret-of-enough-length\n").expect("write the secret file");
    path.display().to_string()
});

// ---- arbitrary text -------------------------------------------------------

/// Text made of TOML's own punctuation, so the parser gets past the first
/// character more often than with uniform junk.
fn tomlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("[[".to_owned()),
        Just("]]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(" = ".to_owned()),
        Just("\"".to_owned()),
        Just("'''".to_owned()),
        Just("\"\"\"".to_owned()),
        Just("\\u00".to_owned()),
        Just(",".to_owned()),
        Just(".".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("# ".to_owned()),
        Just("inputs".to_owned()),
        Just("outputs".to_owned()),
        Just("mqtt".to_owned()),
        Just("pin".to_owned()),
        Just("name".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("0x".to_owned()),
        Just("1e".to_owned()),
        Just("nan".to_owned()),
        Just("é".to_owned()),
        "[a-z0-9_+-]{1,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

/// A valid config with every section, filter, trigger, condition and
/// action (whose validity `majortom check`'s unit tests hold).
const FULL_CONFIG_TOML: &str = include_str!("full.toml");

/// `text` with a few characters deleted, replaced or inserted.
fn edited(text: &'static str) -> impl Strategy<Value = String> {
    let edit = (any::<Index>(), 0usize..8, "(.|\n){0,4}");
    prop::collection::vec(edit, 1..4).prop_map(move |edits| {
        let mut text = text.to_owned();
        for (at, delete, insert) in edits {
            edit_text(&mut text, at, delete, &insert);
        }
        text
    })
}

/// Replaces `delete` characters at a random character boundary by `insert`.
fn edit_text(text: &mut String, at: Index, delete: usize, insert: &str) {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let start = at.index(boundaries.len());
    let end = boundaries[(start + delete).min(boundaries.len() - 1)];
    let start = boundaries[start];
    text.replace_range(start..end, insert);
}

#[test]
fn arbitrary_text_should_give_a_config_or_an_error_naming_a_key_and_a_real_place() {
    let text = prop_oneof![
        2 => any::<String>(),
        3 => tomlish(),
        3 => edited(DEFAULT_CONFIG_TOML),
        3 => edited(FULL_CONFIG_TOML),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    check("config::arbitrary_text", text, |text| {
        check_outcome(&text, &parse(&text))
    });
}

// ---- a model of a config file -----------------------------------------------

/// A TOML value as written.
#[derive(Debug, Clone)]
enum V {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<V>),
    Table(Vec<(String, V)>),
    /// Written as is: huge numbers, dates, deliberately broken syntax.
    Raw(String),
}

fn render_value(value: &V, out: &mut String) {
    match value {
        V::Str(s) => render_string(s, out),
        V::Int(n) => out.push_str(&n.to_string()),
        V::Float(f) if f.is_nan() => out.push_str("nan"),
        V::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "inf" } else { "-inf" }),
        V::Float(f) => {
            let text = format!("{f:?}");
            out.push_str(&text);
            if !text.contains(['.', 'e', 'E']) {
                out.push_str(".0");
            }
        }
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_value(item, out);
            }
            out.push(']');
        }
        V::Table(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_key(key, out);
                out.push_str(" = ");
                render_value(item, out);
            }
            out.push('}');
        }
        V::Raw(raw) => out.push_str(raw),
    }
}

/// A TOML basic string with every character that needs it escaped.
fn render_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn render_key(key: &str, out: &mut String) {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        out.push_str(key);
    } else {
        render_string(key, out);
    }
}

/// What a key accepts, so that mistakes can be made on purpose.
#[derive(Debug, Clone)]
enum Spec {
    Bool,
    /// Any string; `checked`: the validator looks at its content.
    Text {
        checked: bool,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// An integer: serde takes `types`; the validator wants `valid` when
    /// `checked`.
    Int {
        types: (i64, i64),
        valid: (i64, i64),
        checked: bool,
    },
    /// A float in `valid` (`low_open`: the low end excluded); integers are
    /// taken too.
    Float {
        valid: (f64, f64),
        low_open: bool,
        checked: bool,
    },
    /// A number, or a table of numbers by quantity.
    PerQuantity,
    /// A GPIO: a BCM number on the header (0-27) or a line name (1 to 31
    /// bytes).
    Pin,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: V,
    spec: Spec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Table(&'static str),
    Item(&'static str, usize),
}

impl Header {
    /// The dotted key path the config's errors use.
    fn path(self) -> String {
        match self {
            Header::Table(name) => name.to_owned(),
            Header::Item(name, i) => format!("{name}[{i}]"),
        }
    }

    fn render(self, out: &mut String) {
        match self {
            Header::Table(name) => out.push_str(&format!("[{name}]\n")),
            Header::Item(name, _) => out.push_str(&format!("[[{name}]]\n")),
        }
    }
}

#[derive(Debug, Clone)]
struct Section {
    header: Header,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Doc {
    sections: Vec<Section>,
}

impl Doc {
    fn render(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            section.header.render(&mut out);
            for entry in &section.entries {
                render_key(&entry.key, &mut out);
                out.push_str(" = ");
                render_value(&entry.value, &mut out);
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    fn items(&self, kind: &str) -> usize {
        self.sections
            .iter()
            .filter(|s| matches!(s.header, Header::Item(k, _) if k == kind))
            .count()
    }

    /// Every (section, entry) position, in file order.
    fn entries(&self) -> Vec<(usize, usize)> {
        let mut all = Vec::new();
        for (s, section) in self.sections.iter().enumerate() {
            for e in 0..section.entries.len() {
                all.push((s, e));
            }
        }
        all
    }

    fn key_of(&self, (s, e): (usize, usize)) -> String {
        format!("{}.{}", self.sections[s].header.path(), self.sections[s].entries[e].key)
    }

    /// The sections of entities, in the order the validator checks them.
    fn entity_sections(&self, with_pins: bool) -> Vec<usize> {
        let kinds: &[&str] = if with_pins {
            &["inputs", "outputs"]
        } else {
            &["inputs", "outputs", "sensors"]
        };
        let mut order = Vec::new();
        for kind in kinds {
            for (s, section) in self.sections.iter().enumerate() {
                if matches!(section.header, Header::Item(k, _) if k == *kind) {
                    order.push(s);
                }
            }
        }
        order
    }

    fn find(&self, s: usize, key: &str) -> Option<usize> {
        self.sections[s].entries.iter().position(|e| e.key == key)
    }
}

fn entry(key: &str, value: V, spec: Spec) -> Entry {
    Entry {
        key: key.to_owned(),
        value,
        spec,
    }
}

/// Keeps each optional entry with probability one half.
fn some_of(entries: Vec<(Entry, bool)>, keep: &[bool]) -> Vec<Entry> {
    entries
        .into_iter()
        .zip(keep.iter().chain(std::iter::repeat(&true)))
        .filter(|((_, required), keep)| *required || **keep)
        .map(|((entry, _), _)| entry)
        .collect()
}

/// Sets `checked` on the keys the validator looks at only while their
/// section is enabled (which it is when `enabled` is left out).
fn checked_while_enabled(mut entries: Vec<Entry>, keys: &[&str]) -> Vec<Entry> {
    let on = !entries
        .iter()
        .any(|e| e.key == "enabled" && matches!(e.value, V::Bool(false)));
    for entry in &mut entries {
        if keys.contains(&entry.key.as_str()) {
            if let Spec::Text { checked } | Spec::Int { checked, .. } | Spec::Float { checked, .. } = &mut entry.spec {
                *checked = on;
            }
        }
    }
    entries
}

const U64: (i64, i64) = (0, i64::MAX);
const BINARY_SENSOR_CLASSES: &[&str] = &[
    "battery",
    "door",
    "garage_door",
    "motion",
    "occupancy",
    "window",
    "moisture",
    "smoke",
];
const QUANTITIES: &[&str] = &["temperature", "humidity", "pressure"];

fn keep() -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(any::<bool>(), 12)
}

fn topic_prefix() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9_]{1,6}", 1..3).prop_map(|levels| levels.join("/"))
}

fn node() -> impl Strategy<Value = Section> {
    ("[a-z0-9_-]{1,64}", any::<String>(), keep()).prop_map(|(id, name, keep)| Section {
        header: Header::Table("node"),
        entries: some_of(
            vec![
                (entry("id", V::Str(id), Spec::Text { checked: true }), false),
                (entry("name", V::Str(name), Spec::Text { checked: false }), false),
            ],
            &keep,
        ),
    })
}

fn mqtt() -> impl Strategy<Value = Section> {
    (
        any::<bool>(),
        "[a-z0-9.-]{1,20}",
        1i64..=65_535,
        "[a-zA-Z0-9_-]{1,23}",
        5i64..=3600,
        (topic_prefix(), topic_prefix()),
        ("[a-z]{0,8}", any::<String>()),
        keep(),
    )
        .prop_map(
            |(enabled, host, port, client_id, keepalive, (prefix, base), (user, password), keep)| {
                let on = true;
                let section = Section {
                    header: Header::Table("mqtt"),
                    entries: some_of(
                        vec![
                            (entry("enabled", V::Bool(enabled), Spec::Bool), false),
                            (entry("host", V::Str(host), Spec::Text { checked: on }), false),
                            (
                                entry(
                                    "port",
                                    V::Int(port),
                                    Spec::Int {
                                        types: (1, 65_535),
                                        valid: (1, 65_535),
                                        checked: true,
                                    },
                                ),
                                false,
                            ),
                            (entry("client_id", V::Str(client_id), Spec::Text { checked: on }), false),
                            (
                                entry(
                                    "keepalive_s",
                                    V::Int(keepalive),
                                    Spec::Int {
                                        types: U64,
                                        valid: (5, 3600),
                                        checked: on,
                                    },
                                ),
                                false,
                            ),
                            (
                                entry("discovery_prefix", V::Str(prefix), Spec::Text { checked: on }),
                                false,
                            ),
                            (entry("base_topic", V::Str(base), Spec::Text { checked: on }), false),
                            (entry("username", V::Str(user), Spec::Text { checked: true }), false),
                            (entry("password", V::Str(password), Spec::Text { checked: true }), false),
                        ],
                        &keep,
                    ),
                };
                Section {
                    entries: checked_while_enabled(
                        section.entries,
                        &[
                            "host",
                            "client_id",
                            "keepalive_s",
                            "discovery_prefix",
                            "base_topic",
                            "username",
                            "password",
                        ],
                    ),
                    ..section
                }
            },
        )
}

fn web() -> impl Strategy<Value = Section> {
    (
        any::<bool>(),
        prop::sample::select(vec!["127.0.0.1", "0.0.0.0", "::", "::1", "192.168.1.10"]),
        0i64..=65_535,
        "[ -~]{8,40}",
        keep(),
    )
        .prop_map(|(enabled, bind, port, token, keep)| {
            let entries = some_of(
                vec![
                    (entry("enabled", V::Bool(enabled), Spec::Bool), false),
                    (
                        entry("bind", V::Str(bind.to_owned()), Spec::Text { checked: true }),
                        false,
                    ),
                    (
                        entry(
                            "port",
                            V::Int(port),
                            Spec::Int {
                                types: (0, 65_535),
                                valid: (0, 65_535),
                                checked: true,
                            },
                        ),
                        false,
                    ),
                    (entry("token", V::Str(token), Spec::Text { checked: true }), false),
                ],
                &keep,
            );
            Section {
                header: Header::Table("web"),
                entries: checked_while_enabled(entries, &["token"]),
            }
        })
}

fn system() -> impl Strategy<Value = Section> {
    (any::<bool>(), 0.01f64..=86_400.0, keep()).prop_map(|(enabled, interval, keep)| {
        let entries = some_of(
            vec![
                (entry("enabled", V::Bool(enabled), Spec::Bool), false),
                (
                    entry(
                        "interval_s",
                        V::Float(interval),
                        Spec::Float {
                            valid: (0.01, 86_400.0),
                            low_open: false,
                            checked: true,
                        },
                    ),
                    false,
                ),
                // Not the real `/`: `check` would read this machine's /proc
                // for every case.
                (
                    entry(
                        "root",
                        V::Str("/nonexistent/fuzz-root".into()),
                        Spec::Text { checked: false },
                    ),
                    true,
                ),
            ],
            &keep,
        );
        Section {
            header: Header::Table("system"),
            entries: checked_while_enabled(entries, &["interval_s"]),
        }
    })
}

fn gpio() -> impl Strategy<Value = Section> {
    (
        prop::sample::select(vec!["auto", "rppal", "sim"]),
        "/[a-z/]{1,20}",
        any::<bool>(),
        keep(),
    )
        .prop_map(|(backend, state_file, auto, keep)| Section {
            header: Header::Table("gpio"),
            entries: some_of(
                vec![
                    (
                        entry(
                            "backend",
                            V::Str(backend.into()),
                            Spec::Choice(&["auto", "cdev", "rppal", "sim"]),
                        ),
                        false,
                    ),
                    (
                        entry("state_file", V::Str(state_file), Spec::Text { checked: false }),
                        false,
                    ),
                    (entry("auto_ds18b20", V::Bool(auto), Spec::Bool), false),
                ],
                &keep,
            ),
        })
}

fn ms(value: i64, valid: (i64, i64), checked: bool) -> (V, Spec) {
    (
        V::Int(value),
        Spec::Int {
            types: U64,
            valid,
            checked,
        },
    )
}

fn pin_spec() -> Spec {
    Spec::Pin
}

/// An input; `name` and `pin` are filled in by `hardware`.
fn input() -> impl Strategy<Value = Vec<Entry>> {
    (
        any::<String>(),
        prop::sample::select(vec!["up", "down", "off"]),
        any::<bool>(),
        0i64..=10_000,
        prop::sample::select(BINARY_SENSOR_CLASSES),
        any::<bool>(),
        (100i64..=10_000, 50i64..=5_000),
        keep(),
    )
        .prop_map(
            |(label, pull, inverted, debounce, class, events, (long, double), keep)| {
                let (debounce, debounce_spec) = ms(debounce, (0, 10_000), true);
                let (long, long_spec) = ms(long, (100, 10_000), true);
                let (double, double_spec) = ms(double, (50, 5_000), true);
                some_of(
                    vec![
                        (entry("name", V::Str(String::new()), Spec::Text { checked: true }), true),
                        (entry("pin", V::Int(0), pin_spec()), true),
                        (entry("label", V::Str(label), Spec::Text { checked: false }), false),
                        (
                            entry("pull", V::Str(pull.into()), Spec::Choice(&["up", "down", "off"])),
                            false,
                        ),
                        (entry("inverted", V::Bool(inverted), Spec::Bool), false),
                        (entry("debounce_ms", debounce, debounce_spec), false),
                        (
                            entry(
                                "device_class",
                                V::Str(class.into()),
                                Spec::Choice(BINARY_SENSOR_CLASSES),
                            ),
                            false,
                        ),
                        (entry("events", V::Bool(events), Spec::Bool), false),
                        (entry("long_press_ms", long, long_spec), false),
                        (entry("double_press_ms", double, double_spec), false),
                    ],
                    &keep,
                )
            },
        )
}

fn output() -> impl Strategy<Value = Vec<Entry>> {
    (
        any::<String>(),
        any::<bool>(),
        prop::sample::select(vec!["off", "on", "restore"]),
        prop::sample::select(vec!["off", "on"]),
        0.001f64..=86_400.0,
        prop::sample::select(vec!["switch", "light"]),
        keep(),
    )
        .prop_map(|(label, inverted, initial, safe, auto_off, kind, keep)| {
            some_of(
                vec![
                    (entry("name", V::Str(String::new()), Spec::Text { checked: true }), true),
                    (entry("pin", V::Int(0), pin_spec()), true),
                    (entry("label", V::Str(label), Spec::Text { checked: false }), false),
                    (entry("inverted", V::Bool(inverted), Spec::Bool), false),
                    (
                        entry(
                            "initial",
                            V::Str(initial.into()),
                            Spec::Choice(&["off", "on", "restore"]),
                        ),
                        false,
                    ),
                    (
                        entry("safe_state", V::Str(safe.into()), Spec::Choice(&["off", "on"])),
                        false,
                    ),
                    (
                        entry(
                            "auto_off_s",
                            V::Float(auto_off),
                            Spec::Float {
                                valid: (0.0, 86_400.0),
                                low_open: true,
                                checked: true,
                            },
                        ),
                        false,
                    ),
                    (
                        entry("kind", V::Str(kind.into()), Spec::Choice(&["switch", "light", "fan"])),
                        false,
                    ),
                ],
                &keep,
            )
        })
}

fn calibration() -> impl Strategy<Value = V> {
    prop_oneof![
        (-100.0f64..100.0).prop_map(V::Float),
        (-100i64..100).prop_map(V::Int),
        prop::collection::btree_map(prop::sample::select(QUANTITIES), -10.0f64..10.0, 1..3).prop_map(|map| {
            V::Table(
                map.into_iter()
                    .map(|(quantity, n)| (quantity.to_owned(), V::Float(n)))
                    .collect(),
            )
        }),
    ]
}

fn sensor() -> impl Strategy<Value = Vec<Entry>> {
    let kind = prop_oneof![
        "[0-9a-f]{12}".prop_map(|id| ("ds18b20", "id", V::Str(format!("28-{id}")))),
        "[a-z0-9:]{1,12}".prop_map(|device| ("iio", "device", V::Str(device))),
        prop::sample::select(vec![0x76i64, 0x77]).prop_map(|address| ("bme280", "address", V::Int(address))),
    ];
    (
        kind,
        any::<String>(),
        1.0f64..=86_400.0,
        (calibration(), calibration()),
        0i64..=255,
        keep(),
    )
        .prop_map(
            |((kind, source_key, source), label, interval, (offset, scale), bus, keep)| {
                let source_spec = match source_key {
                    "address" => Spec::Int {
                        types: (0, 65_535),
                        valid: (0x76, 0x77),
                        checked: true,
                    },
                    _ => Spec::Text { checked: true },
                };
                let mut entries = vec![
                    (
                        entry("kind", V::Str(kind.into()), Spec::Choice(&["ds18b20", "iio", "bme280"])),
                        true,
                    ),
                    (entry("name", V::Str(String::new()), Spec::Text { checked: true }), true),
                    (entry(source_key, source, source_spec), kind != "bme280"),
                    (entry("label", V::Str(label), Spec::Text { checked: false }), false),
                    (
                        entry(
                            "interval_s",
                            V::Float(interval),
                            Spec::Float {
                                valid: (1.0, 86_400.0),
                                low_open: false,
                                checked: true,
                            },
                        ),
                        false,
                    ),
                    (entry("offset", offset, Spec::PerQuantity), false),
                    (entry("scale", scale, Spec::PerQuantity), false),
                ];
                if kind == "bme280" {
                    let bus_spec = Spec::Int {
                        types: (0, 255),
                        valid: (0, 255),
                        checked: true,
                    };
                    entries.push((entry("bus", V::Int(bus), bus_spec), false));
                }
                some_of(entries, &keep)
            },
        )
}

/// A valid config: some of the tables, 0–3 entities of each kind with
/// unique names and pins.
fn valid_doc() -> impl Strategy<Value = Doc> {
    let tables = (
        prop::option::of(node()),
        prop::option::of(mqtt()),
        prop::option::of(web()),
        // Always with a `root`: without one, `check` reads this machine's
        // /proc for every case, which is slow and tests nothing here.
        system().prop_map(Some),
        prop::option::of(gpio()),
    );
    let entities = (
        prop::collection::vec(input(), 0..4),
        prop::collection::vec(output(), 0..4),
        prop::collection::vec(sensor(), 0..4),
        Just((0i64..=27).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec("[a-z][a-z0-9_]{0,10}", 12),
    );
    (tables, entities).prop_map(
        |((node, mqtt, web, system, gpio), (inputs, outputs, sensors, pins, names))| {
            let mut sections: Vec<Section> = [node, mqtt, web, system, gpio].into_iter().flatten().collect();
            let mut n = 0;
            for (kind, items) in [("inputs", inputs), ("outputs", outputs), ("sensors", sensors)] {
                for (i, mut entries) in items.into_iter().enumerate() {
                    for entry in &mut entries {
                        match entry.key.as_str() {
                            // A numeric suffix keeps names unique and clear of
                            // the system source's.
                            "name" => entry.value = V::Str(format!("{}_{n}", names[n % names.len()])),
                            "pin" => entry.value = V::Int(pins[n]),
                            _ => {}
                        }
                    }
                    n += 1;
                    sections.push(Section {
                        header: Header::Item(kind, i),
                        entries,
                    });
                }
            }
            Doc { sections }
        },
    )
}

// ---- mistakes -------------------------------------------------------------

/// One mistake, placed by `Index`es so that it fits any document.
#[derive(Debug, Clone)]
enum Mistake {
    WrongType(Index, V),
    OutOfRange(Index, Index, i64, f64),
    Garbage(Index, String),
    UnknownKey(Index, String, V),
    UnknownTable(String),
    DuplicateName(Index, Index),
    SystemName(Index, Index),
    DuplicatePin(Index, Index),
    BadDeviceClass(Index, String),
    BadChoice(Index, String),
    DuplicateKey(Index),
    DuplicateTable(Index),
    HugeNumber(Index, String),
    DeepNesting(Index, usize, bool),
    /// `token_file`, `password_file` or `tls.ca_file` naming this path.
    SecretFile(Index, String),
}

/// What a document with a mistake must give.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Valid,
    /// An error naming this key (or a key below it).
    Error(String),
    /// An error naming this key, or a syntax error.
    ErrorOrSyntax(String),
    /// Valid, or an error naming this key.
    ValidOr(String),
    /// An error, about any key.
    AnyError,
    /// An error naming one of these keys.
    ErrorIn(Vec<String>),
}

/// A value of a kind the spec does not take (integers pass for floats).
fn wrong_type() -> impl Strategy<Value = V> {
    let scalar = prop_oneof![
        any::<String>().prop_map(V::Str),
        any::<i64>().prop_map(V::Int),
        any::<f64>().prop_map(V::Float),
        any::<bool>().prop_map(V::Bool),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..3).prop_map(V::Array),
        1 => prop::collection::btree_map("[a-z]{1,5}", scalar, 0..3).prop_map(|m| V::Table(m.into_iter().collect())),
    ]
}

fn takes(spec: &Spec, value: &V) -> bool {
    match (spec, value) {
        (Spec::Bool, V::Bool(_))
        | (Spec::Text { .. } | Spec::Choice(_), V::Str(_))
        | (Spec::Int { .. } | Spec::Pin, V::Int(_))
        | (Spec::Float { .. } | Spec::PerQuantity, V::Int(_) | V::Float(_)) => true,
        (Spec::Pin, V::Str(name)) => (1..=31).contains(&name.len()),
        // A table of numbers by quantity may be right; not worth guessing.
        (Spec::PerQuantity, V::Table(_)) => true,
        _ => false,
    }
}

fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just(" ".to_owned()),
        Just("a/b".to_owned()),
        Just("+".to_owned()),
        Just("#".to_owned()),
        Just("\0".to_owned()),
        Just("UPPER".to_owned()),
        Just("28-".to_owned()),
        Just("x".repeat(70_000)),
        "[a-z_]{60,70}",
        "\\PC{1,20}",
    ]
}

fn mistake() -> impl Strategy<Value = Mistake> {
    let unknown_key = "x_[a-z]{1,8}";
    prop_oneof![
        (any::<Index>(), wrong_type()).prop_map(|(at, v)| Mistake::WrongType(at, v)),
        (any::<Index>(), any::<Index>(), any::<i64>(), any::<f64>())
            .prop_map(|(at, pick, i, f)| Mistake::OutOfRange(at, pick, i, f)),
        (any::<Index>(), garbage()).prop_map(|(at, s)| Mistake::Garbage(at, s)),
        (any::<Index>(), unknown_key, wrong_type()).prop_map(|(at, k, v)| Mistake::UnknownKey(at, k, v)),
        unknown_key.prop_map(Mistake::UnknownTable),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mistake::DuplicateName(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mistake::SystemName(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mistake::DuplicatePin(a, b)),
        (
            any::<Index>(),
            prop_oneof![garbage(), Just("doorbell".to_owned()), Just("Door".to_owned())]
        )
            .prop_map(|(at, class)| Mistake::BadDeviceClass(at, class)),
        (any::<Index>(), garbage()).prop_map(|(at, s)| Mistake::BadChoice(at, s)),
        any::<Index>().prop_map(Mistake::DuplicateKey),
        any::<Index>().prop_map(Mistake::DuplicateTable),
        (
            any::<Index>(),
            prop_oneof![
                "[1-9][0-9]{19,40}",
                "-[1-9][0-9]{19,40}",
                Just("1e999".to_owned()),
                Just("-1e999".to_owned()),
                Just("0x1_0000_0000_0000_0000".to_owned()),
                Just("1.7976931348623157e309".to_owned()),
            ]
        )
            .prop_map(|(at, n)| Mistake::HugeNumber(at, n)),
        (any::<Index>(), 1usize..3_000, any::<bool>())
            .prop_map(|(at, depth, arrays)| Mistake::DeepNesting(at, depth, arrays)),
        (
            any::<Index>(),
            prop::sample::select(vec![
                "SECRET_FILE",
                "/dev/zero",
                "/dev/null",
                "/dev/urandom",
                "/",
                "/nonexistent/secret",
                "",
            ]),
        )
            .prop_map(|(at, path)| Mistake::SecretFile(at, path.to_owned())),
    ]
}

/// Puts the mistake into `doc`; returns what the result must be.
fn apply(doc: &mut Doc, mistake: &Mistake) -> Expect {
    let entries = doc.entries();
    let pick_entry = |at: &Index, want: &dyn Fn(&Entry) -> bool| -> Option<(usize, usize)> {
        let fitting: Vec<(usize, usize)> = entries
            .iter()
            .copied()
            .filter(|&(s, e)| want(&doc.sections[s].entries[e]))
            .collect();
        (!fitting.is_empty()).then(|| fitting[at.index(fitting.len())])
    };
    match mistake {
        Mistake::WrongType(at, value) => {
            let Some(pos) = pick_entry(at, &|e| !takes(&e.spec, value)) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            doc.sections[pos.0].entries[pos.1].value = value.clone();
            Expect::Error(key)
        }
        Mistake::OutOfRange(at, pick, int, float) => {
            let Some(pos) = pick_entry(at, &|e| {
                matches!(
                    e.spec,
                    Spec::Int { .. } | Spec::Float { .. } | Spec::PerQuantity | Spec::Pin
                )
            }) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            let entry = &mut doc.sections[pos.0].entries[pos.1];
            match entry.spec.clone() {
                Spec::Pin => {
                    let candidates = [-1, 28, 255, 256, i64::MIN, i64::MAX, *int];
                    let n = candidates[pick.index(candidates.len())];
                    entry.value = V::Int(n);
                    if (0..=27).contains(&n) {
                        Expect::Valid
                    } else {
                        Expect::Error(key)
                    }
                }
                Spec::Int { types, valid, checked } => {
                    let candidates = [
                        valid.0.saturating_sub(1),
                        valid.1.saturating_add(1),
                        types.0.saturating_sub(1),
                        types.1.saturating_add(1),
                        -1,
                        i64::MIN,
                        i64::MAX,
                        *int,
                    ];
                    let n = candidates[pick.index(candidates.len())];
                    entry.value = V::Int(n);
                    let in_type = (types.0..=types.1).contains(&n);
                    let in_valid = (valid.0..=valid.1).contains(&n);
                    match (in_type, in_valid, checked) {
                        (false, _, _) => Expect::Error(key),
                        (true, true, _) => Expect::Valid,
                        (true, false, true) => Expect::Error(key),
                        (true, false, false) => Expect::ValidOr(key),
                    }
                }
                Spec::Float {
                    valid,
                    low_open,
                    checked,
                } => {
                    let candidates = [
                        valid.0,
                        valid.0 - 1e-9,
                        valid.1 + 1e-6,
                        -0.0,
                        f64::NAN,
                        f64::INFINITY,
                        f64::NEG_INFINITY,
                        f64::MAX,
                        f64::MIN_POSITIVE,
                        *float,
                    ];
                    let f = candidates[pick.index(candidates.len())];
                    entry.value = V::Float(f);
                    let above_low = if low_open { f > valid.0 } else { f >= valid.0 };
                    let in_valid = above_low && f <= valid.1;
                    match (in_valid, checked) {
                        (true, _) => Expect::Valid,
                        (false, true) => Expect::Error(key),
                        (false, false) => Expect::ValidOr(key),
                    }
                }
                Spec::PerQuantity => {
                    // Calibration takes any finite number, alone or by
                    // quantity; an infinity or NaN would turn every reading
                    // into one.
                    let candidates = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, *float];
                    let f = candidates[pick.index(candidates.len())];
                    entry.value = if *int % 2 == 0 {
                        V::Float(f)
                    } else {
                        V::Table(vec![("humidity".to_owned(), V::Float(f))])
                    };
                    if f.is_finite() {
                        Expect::Valid
                    } else {
                        Expect::Error(key)
                    }
                }
                _ => Expect::Valid,
            }
        }
        Mistake::SecretFile(at, path) => {
            let (table, file_key, inline_key) = match at.index(3) {
                0 => ("web", "token_file", "token"),
                1 => ("mqtt", "password_file", "password"),
                _ => ("mqtt.tls", "ca_file", "ca_file"),
            };
            let enabled_in = if table == "web" { "web" } else { "mqtt" };
            let enabled = !doc.sections.iter().any(|s| {
                s.header == Header::Table(enabled_in)
                    && s.entries
                        .iter()
                        .any(|e| e.key == "enabled" && matches!(e.value, V::Bool(false)))
            });
            let s = match doc.sections.iter().position(|s| s.header == Header::Table(table)) {
                Some(s) => s,
                None => {
                    let section = Section {
                        header: Header::Table(table),
                        entries: Vec::new(),
                    };
                    // `[mqtt.tls]` after `[mqtt]`, if there is one.
                    let at = doc
                        .sections
                        .iter()
                        .position(|s| s.header == Header::Table("mqtt"))
                        .map_or(0, |m| m + 1);
                    doc.sections.insert(at, section);
                    at
                }
            };
            let path = if path == "SECRET_FILE" {
                SECRET_FILE.clone()
            } else {
                path.clone()
            };
            let value = V::Str(path.clone());
            doc.sections[s]
                .entries
                .push(entry(file_key, value, Spec::Text { checked: true }));
            let both = inline_key != file_key && doc.find(s, inline_key).is_some();
            let keys = vec![format!("{table}.{file_key}"), format!("{table}.{inline_key}")];
            // A readable regular file of a sane size is a secret; anything
            // else (a device, a directory, a missing file) is named as the
            // mistake; so is giving both the file and the inline secret. A
            // disabled section is not looked at.
            if !enabled {
                Expect::Valid
            } else if both {
                Expect::ErrorIn(keys)
            } else if path == *SECRET_FILE {
                Expect::Valid
            } else {
                Expect::ErrorIn(keys)
            }
        }
        Mistake::Garbage(at, text) => {
            let Some(pos) = pick_entry(at, &|e| matches!(e.spec, Spec::Text { .. })) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            let entry = &mut doc.sections[pos.0].entries[pos.1];
            entry.value = V::Str(text.clone());
            match entry.spec {
                Spec::Text { checked: false } => Expect::Valid,
                _ => Expect::ValidOr(key),
            }
        }
        Mistake::UnknownKey(at, key, value) => {
            if doc.sections.is_empty() {
                return Expect::Valid;
            }
            let s = at.index(doc.sections.len());
            let path = format!("{}.{key}", doc.sections[s].header.path());
            doc.sections[s].entries.push(entry(key, value.clone(), Spec::Bool));
            Expect::Error(path)
        }
        Mistake::UnknownTable(name) => {
            doc.sections.insert(
                0,
                Section {
                    header: Header::Table(Box::leak(name.clone().into_boxed_str())),
                    entries: vec![entry("a", V::Int(1), Spec::Bool)],
                },
            );
            Expect::Error(name.clone())
        }
        Mistake::DuplicateName(a, b) | Mistake::DuplicatePin(a, b) => {
            let pins = matches!(mistake, Mistake::DuplicatePin(..));
            let order = doc.entity_sections(pins);
            if order.len() < 2 {
                return Expect::Valid;
            }
            let (x, y) = (a.index(order.len()), b.index(order.len()));
            if x == y {
                return Expect::Valid;
            }
            // The later one (in the validator's order) is the one named.
            let (first, second) = (order[x.min(y)], order[x.max(y)]);
            let field = if pins { "pin" } else { "name" };
            let (Some(from), Some(to)) = (doc.find(first, field), doc.find(second, field)) else {
                return Expect::Valid;
            };
            let value = doc.sections[first].entries[from].value.clone();
            doc.sections[second].entries[to].value = value;
            Expect::Error(doc.key_of((second, to)))
        }
        Mistake::SystemName(at, which) => {
            let order = doc.entity_sections(false);
            if order.is_empty() {
                return Expect::Valid;
            }
            let s = order[at.index(order.len())];
            let Some(e) = doc.find(s, "name") else {
                return Expect::Valid;
            };
            let reserved: Vec<&str> = entity_ids().collect();
            doc.sections[s].entries[e].value = V::Str(reserved[which.index(reserved.len())].to_owned());
            Expect::Error(doc.key_of((s, e)))
        }
        Mistake::BadDeviceClass(at, class) => {
            let inputs: Vec<usize> = (0..doc.sections.len())
                .filter(|&s| matches!(doc.sections[s].header, Header::Item("inputs", _)))
                .collect();
            if inputs.is_empty() {
                return Expect::Valid;
            }
            let s = inputs[at.index(inputs.len())];
            let key = format!("{}.device_class", doc.sections[s].header.path());
            match doc.find(s, "device_class") {
                Some(e) => doc.sections[s].entries[e].value = V::Str(class.clone()),
                None => doc.sections[s]
                    .entries
                    .push(entry("device_class", V::Str(class.clone()), Spec::Bool)),
            }
            // The list in this test is a subset of the real one.
            Expect::ValidOr(key)
        }
        Mistake::BadChoice(at, text) => {
            let Some(pos) = pick_entry(at, &|e| matches!(e.spec, Spec::Choice(_))) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            let entry = &mut doc.sections[pos.0].entries[pos.1];
            let Spec::Choice(choices) = entry.spec else {
                return Expect::Valid;
            };
            entry.value = V::Str(text.clone());
            if choices.contains(&text.as_str()) {
                Expect::Valid
            } else {
                Expect::ValidOr(key)
            }
        }
        Mistake::DuplicateKey(at) => {
            let Some(pos) = pick_entry(at, &|_| true) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            let again = doc.sections[pos.0].entries[pos.1].clone();
            doc.sections[pos.0].entries.push(again);
            Expect::ErrorOrSyntax(key)
        }
        Mistake::DuplicateTable(at) => {
            let tables: Vec<usize> = (0..doc.sections.len())
                .filter(|&s| matches!(doc.sections[s].header, Header::Table(_)))
                .collect();
            if tables.is_empty() {
                return Expect::Valid;
            }
            let s = tables[at.index(tables.len())];
            let again = Section {
                header: doc.sections[s].header,
                entries: Vec::new(),
            };
            doc.sections.push(again);
            Expect::AnyError
        }
        Mistake::HugeNumber(at, digits) => {
            let Some(pos) = pick_entry(at, &|e| matches!(e.spec, Spec::Int { .. } | Spec::Float { .. })) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            doc.sections[pos.0].entries[pos.1].value = V::Raw(digits.clone());
            // Too big for an integer, or infinite: never a valid value here.
            Expect::ErrorOrSyntax(key)
        }
        Mistake::DeepNesting(at, depth, arrays) => {
            let Some(pos) = pick_entry(at, &|_| true) else {
                return Expect::Valid;
            };
            let key = doc.key_of(pos);
            let (open, close) = if *arrays { ("[", "]") } else { ("{a = ", "}") };
            let nested = format!("{}1{}", open.repeat(*depth), close.repeat(*depth));
            doc.sections[pos.0].entries[pos.1].value = V::Raw(nested);
            Expect::ErrorOrSyntax(key)
        }
    }
}

fn check_expectation(text: &str, outcome: &Result<Config, ConfigError>, expect: &Expect) -> TestCaseResult {
    let key = match outcome {
        Ok(_) => None,
        Err(ConfigError::Invalid { key, .. }) => Some(key.as_str()),
        Err(ConfigError::Read { .. }) => Some(""),
    };
    let names = |wanted: &str, key: &str| {
        key == wanted || key.starts_with(&format!("{wanted}.")) || key.starts_with(&format!("{wanted}["))
    };
    let shown = || match outcome {
        Ok(_) => "a valid config".to_owned(),
        Err(e) => e.to_string(),
    };
    let ok = match (expect, key) {
        (Expect::Valid, None) | (Expect::ValidOr(_), None) | (Expect::AnyError, Some(_)) => true,
        (Expect::Error(wanted) | Expect::ValidOr(wanted), Some(key)) => names(wanted, key),
        (Expect::ErrorOrSyntax(wanted), Some(key)) => names(wanted, key) || key == "(syntax)",
        (Expect::ErrorIn(wanted), Some(key)) => wanted.iter().any(|w| names(w, key)),
        _ => false,
    };
    prop_assert!(ok, "expected {expect:?}, got {}\n--- text ---\n{text}", shown());
    Ok(())
}

#[test]
fn valid_configs_should_be_accepted_with_every_entity() {
    check("config::valid", valid_doc(), |doc| {
        let text = doc.render();
        let outcome = parse(&text);
        check_outcome(&text, &outcome)?;
        match &outcome {
            Ok(config) => {
                prop_assert_eq!(config.inputs.len(), doc.items("inputs"));
                prop_assert_eq!(config.outputs.len(), doc.items("outputs"));
                prop_assert_eq!(config.sensors.len(), doc.items("sensors"));
            }
            Err(error) => prop_assert!(false, "a valid config was refused: {error}\n--- text ---\n{text}"),
        }
        Ok(())
    });
}

#[test]
fn one_mistake_should_be_refused_naming_its_key() {
    check("config::one_mistake", (valid_doc(), mistake()), |(mut doc, mistake)| {
        let expect = apply(&mut doc, &mistake);
        let text = doc.render();
        let outcome = parse(&text);
        check_outcome(&text, &outcome)?;
        check_expectation(&text, &outcome, &expect)
    });
}

#[test]
fn several_mistakes_and_edits_should_still_give_a_clear_outcome() {
    let edits = prop::collection::vec((any::<Index>(), 0usize..6, "(.|\n){0,3}"), 0..3);
    check(
        "config::many_mistakes",
        (valid_doc(), prop::collection::vec(mistake(), 2..5), edits),
        |(mut doc, mistakes, edits)| {
            for mistake in &mistakes {
                apply(&mut doc, mistake);
            }
            let mut text = doc.render();
            for (at, delete, insert) in edits {
                edit_text(&mut text, at, delete, &insert);
            }
            check_outcome(&text, &parse(&text))
        },
    );
}
