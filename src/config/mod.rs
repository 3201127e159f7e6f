//! Configuration: finding the file, parsing TOML, and validating it into a
//! typed [`Config`].
//!
//! Two stages: `Raw*` structs mirror the TOML (unknown keys are errors), and
//! [`Config::from_toml`] turns them into the typed configuration that the rest
//! of the program uses. Every error names the file, line, column and key.
//! This module reads the config file and secret files, nothing else.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod automations;
mod commands;
mod de;
mod hardware;

pub use automations::{AutomationConfig, ButtonsConfig, Change, Condition, Step, Trigger};
pub use commands::{unit_name, CommandConfig, CommandKind, Concurrency, Program, RunSettings, StatusCheck};

pub use hardware::{
    Backend, GpioConfig, Initial, InputConfig, OnOff, OutputConfig, OutputKind, PressTiming, SensorConfig,
    SensorSource, AUTOMATIONS_STATE_FILE_NAME,
};

use crate::filters::FilterSpec;
use crate::sources::system::{entity_ids, NUMERIC_ENTITY_IDS};

/// The annotated default configuration printed by `majortom init`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// Where a config is looked for when `--config` and `$MAJORTOM_CONFIG` are absent.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/majortom/majortom.toml";

/// Environment variables read for secrets, so they need not sit in the file.
pub const ENV_MQTT_USERNAME: &str = "MAJORTOM_MQTT_USERNAME";
pub const ENV_MQTT_PASSWORD: &str = "MAJORTOM_MQTT_PASSWORD";
pub const ENV_WEB_TOKEN: &str = "MAJORTOM_WEB_TOKEN";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from, for messages.
    pub origin: Origin,
    pub node: NodeConfig,
    /// `None` when `mqtt.enabled = false`.
    pub mqtt: Option<MqttConfig>,
    /// `None` when `web.enabled = false`.
    pub web: Option<WebConfig>,
    /// `None` when `system.enabled = false`.
    pub system: Option<SystemConfig>,
    /// Where `/proc` and `/sys` are found: `/` normally, a host mount in a
    /// container, a fixture tree in tests. Used by every sysfs reader.
    pub root: PathBuf,
    pub gpio: GpioConfig,
    /// Give DS18B20 sensors found in sysfs an entity even when unlisted.
    pub auto_ds18b20: bool,
    pub inputs: Vec<InputConfig>,
    pub outputs: Vec<OutputConfig>,
    pub sensors: Vec<SensorConfig>,
    pub automations: Vec<AutomationConfig>,
    pub buttons: ButtonsConfig,
    pub commands: Vec<CommandConfig>,
}

impl Config {
    /// True when anything needs the GPIO backend (pins or an I2C bus).
    pub fn uses_gpio(&self) -> bool {
        !self.inputs.is_empty()
            || !self.outputs.is_empty()
            || self
                .sensors
                .iter()
                .any(|s| matches!(s.source, SensorSource::Bme280 { .. }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in defaults"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Used in topics and unique ids: `[a-z0-9_-]`, 1–64 characters.
    pub id: String,
    /// Shown in Home Assistant and on the dashboard.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keepalive: Duration,
    pub discovery_prefix: String,
    pub base_topic: String,
    pub credentials: Option<Credentials>,
    /// `None` for plain TCP.
    pub tls: Option<TlsConfig>,
}

/// TLS to the broker. The files are checked for readability here and parsed
/// when the connection is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM bundle of the certificate authorities to trust.
    pub ca_file: PathBuf,
    /// PEM certificate chain and private key, for brokers that want client
    /// certificates.
    pub client_auth: Option<ClientAuth>,
    /// The name the broker's certificate must carry, when it differs from
    /// `mqtt.host` (connecting by IP address to a broker with a DNS name).
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where Debian and Raspberry Pi OS keep the system's trusted CAs.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    // Keeps the password out of logs and `check` output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Required (as `Authorization: Bearer …`) for every state change over
    /// HTTP; without one the HTTP side is read-only.
    pub token: Option<Secret>,
}

/// A secret that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemConfig {
    pub interval: Duration,
    /// Filters for some of the system values, by entity id.
    pub filters: Vec<(String, Vec<FilterSpec>)>,
}

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
    fn invalid(
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

/// What the config may look at besides its own text: the host name and the
/// environment. Injected so tests need neither.
pub struct Context<'a> {
    pub hostname: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Context<'static> {
    /// The real host name and process environment.
    pub fn system() -> Context<'static> {
        static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        Context {
            hostname: HOSTNAME.get_or_init(read_hostname),
            env: &|name| std::env::var(name).ok(),
        }
    }
}

fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "majortom".to_owned())
}

/// Which config file to use: `--config`, then `$MAJORTOM_CONFIG`, then the
/// system path if it exists; `None` means the built-in defaults.
pub fn locate_file(cli: Option<&Path>, env_value: Option<String>, system_path: &Path) -> Option<PathBuf> {
    if let Some(path) = cli {
        return Some(path.to_owned());
    }
    if let Some(path) = env_value.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    system_path.exists().then(|| system_path.to_owned())
}

impl Config {
    /// Loads the file (or the defaults when `path` is `None`) and validates it.
    pub fn load(path: Option<&Path>, ctx: &Context<'_>) -> Result<Config, ConfigError> {
        match path {
            None => Config::from_toml("", Origin::BuiltIn, ctx),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::from_toml(&text, Origin::File(path.to_owned()), ctx)
            }
        }
    }

    /// Parses and validates config text.
    pub fn from_toml(text: &str, origin: Origin, ctx: &Context<'_>) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, &origin)?;
        let v = Validator {
            text,
            origin: &origin,
            ctx,
        };
        v.config(raw)
    }
}

fn parse_raw(text: &str, origin: &Origin) -> Result<RawConfig, ConfigError> {
    let document = toml::de::DeTable::parse(text)
        .map_err(|e| ConfigError::invalid(origin, text, e.span(), "(syntax)", e.message().trim_end()))?;
    // serde_path_to_error would name the key too, but its wrappers grow
    // the binary by 150-200 KB; the span already points at the key.
    de::from_document::<RawConfig>(&document).map_err(|e| {
        let key = e
            .span
            .as_ref()
            .and_then(|span| key_path_at(text, span))
            .unwrap_or_else(|| "(document)".to_owned());
        ConfigError::invalid(origin, text, e.span, &key, e.message.trim_end())
    })
}

/// The dotted path (`inputs[1].pin`) of the key or value at `span`.
fn key_path_at(text: &str, span: &std::ops::Range<usize>) -> Option<String> {
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

// ---- Raw TOML structs -----------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    node: RawNode,
    mqtt: RawMqtt,
    web: RawWeb,
    system: RawSystem,
    gpio: hardware::RawGpio,
    inputs: Vec<hardware::RawInput>,
    outputs: Vec<hardware::RawOutput>,
    sensors: Vec<hardware::RawSensor>,
    automations: Vec<automations::RawAutomation>,
    buttons: automations::RawButtons,
    commands: Vec<commands::RawCommand>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNode {
    id: Option<toml::Spanned<String>>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMqtt {
    enabled: bool,
    host: toml::Spanned<String>,
    /// Default 1883, or 8883 with TLS.
    port: Option<NonZeroU16>,
    client_id: Option<toml::Spanned<String>>,
    keepalive_s: toml::Spanned<u64>,
    discovery_prefix: toml::Spanned<String>,
    base_topic: toml::Spanned<String>,
    username: Option<toml::Spanned<String>>,
    password: Option<toml::Spanned<String>>,
    password_file: Option<toml::Spanned<PathBuf>>,
    tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    ca_file: Option<toml::Spanned<PathBuf>>,
    cert_file: Option<toml::Spanned<PathBuf>>,
    key_file: Option<toml::Spanned<PathBuf>>,
    server_name: Option<toml::Spanned<String>>,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            enabled: true,
            host: unspanned("localhost".to_owned()),
            port: None,
            client_id: None,
            keepalive_s: unspanned(30),
            discovery_prefix: unspanned("homeassistant".to_owned()),
            base_topic: unspanned("majortom".to_owned()),
            username: None,
            password: None,
            password_file: None,
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeb {
    enabled: bool,
    bind: IpAddr,
    port: u16,
    token: Option<toml::Spanned<String>>,
    token_file: Option<toml::Spanned<PathBuf>>,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            enabled: true,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            token: None,
            token_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSystem {
    enabled: bool,
    interval_s: toml::Spanned<f64>,
    root: PathBuf,
    /// Filters by system entity id.
    filters: std::collections::BTreeMap<String, toml::Spanned<Vec<FilterSpec>>>,
}

impl Default for RawSystem {
    fn default() -> Self {
        RawSystem {
            enabled: true,
            interval_s: unspanned(10.0),
            root: PathBuf::from("/"),
            filters: std::collections::BTreeMap::new(),
        }
    }
}

/// A default value has no place in the text; an empty span at 0 stands for
/// "not in the file" and is never reported (defaults are valid).
fn unspanned<T>(value: T) -> toml::Spanned<T> {
    toml::Spanned::new(0..0, value)
}

// ---- Validation -----------------------------------------------------------

struct Validator<'a> {
    text: &'a str,
    origin: &'a Origin,
    ctx: &'a Context<'a>,
}

impl Validator<'_> {
    fn error<T>(&self, spanned: &toml::Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        let span = spanned.span();
        let span = (span != (0..0)).then_some(span);
        ConfigError::invalid(self.origin, self.text, span, key, message)
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let node = self.node(raw.node)?;
        let mqtt = if raw.mqtt.enabled {
            Some(self.mqtt(raw.mqtt, &node)?)
        } else {
            None
        };
        let web = if raw.web.enabled {
            Some(WebConfig {
                listen: SocketAddr::new(raw.web.bind, raw.web.port),
                token: self.web_token(raw.web.token, raw.web.token_file)?,
            })
        } else {
            None
        };
        let system = if raw.system.enabled {
            let seconds = *raw.system.interval_s.get_ref();
            // Below a second only makes sense for soak tests and benchmarks.
            if !(0.01..=86_400.0).contains(&seconds) {
                return Err(self.error(
                    &raw.system.interval_s,
                    "system.interval_s",
                    "must be between 0.01 and 86400 seconds",
                ));
            }
            let mut filters = Vec::new();
            for (id, list) in raw.system.filters {
                let key = format!("system.filters.{id}");
                if !NUMERIC_ENTITY_IDS.contains(&id.as_str()) {
                    let message = format!(
                        "`{id}` is not a numeric system value ({})",
                        NUMERIC_ENTITY_IDS.join(", ")
                    );
                    return Err(self.error(&list, &key, message));
                }
                filters.push((id, self.filters(list, &key)?));
            }
            Some(SystemConfig {
                interval: Duration::from_secs_f64(seconds),
                filters,
            })
        } else {
            None
        };
        let mut reserved: Vec<&str> = entity_ids().collect();
        reserved.extend(["restart", "reboot"]);
        let hardware = self.hardware(raw.gpio, raw.inputs, raw.outputs, raw.sensors, &reserved)?;
        let known = automations::Known {
            inputs: &hardware.inputs,
            outputs: &hardware.outputs,
            sensors: &hardware.sensors,
        };
        let mut names: std::collections::HashMap<String, String> = hardware
            .inputs
            .iter()
            .map(|i| &i.name)
            .chain(hardware.outputs.iter().map(|o| &o.name))
            .chain(hardware.sensors.iter().map(|s| &s.name))
            .map(|name| (name.clone(), "another entity".to_owned()))
            .collect();
        let automations = self.automations(raw.automations, &known, &mut names)?;
        let buttons = self.buttons(raw.buttons)?;
        let commands = self.commands(raw.commands, &reserved, &mut names)?;
        Ok(Config {
            origin: self.origin.clone(),
            node,
            mqtt,
            web,
            system,
            root: raw.system.root,
            gpio: hardware.gpio,
            auto_ds18b20: hardware.auto_ds18b20,
            inputs: hardware.inputs,
            outputs: hardware.outputs,
            sensors: hardware.sensors,
            automations,
            buttons,
            commands,
        })
    }

    fn node(&self, raw: RawNode) -> Result<NodeConfig, ConfigError> {
        let id = match raw.id {
            Some(id) => {
                let value = id.get_ref();
                if let Err(why) = check_node_id(value) {
                    return Err(self.error(&id, "node.id", why));
                }
                value.clone()
            }
            None => sanitise_node_id(self.ctx.hostname),
        };
        let name = raw
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| self.ctx.hostname.to_owned());
        Ok(NodeConfig { id, name })
    }

    fn mqtt(&self, raw: RawMqtt, node: &NodeConfig) -> Result<MqttConfig, ConfigError> {
        let host = raw.host.get_ref().trim().to_owned();
        if host.is_empty() {
            return Err(self.error(&raw.host, "mqtt.host", "must not be empty"));
        }
        let client_id = match raw.client_id {
            Some(id) if id.get_ref().is_empty() => {
                return Err(self.error(&id, "mqtt.client_id", "must not be empty"));
            }
            Some(id) if id.get_ref().len() > MQTT_MAX_STRING => {
                return Err(self.error(&id, "mqtt.client_id", TOO_LONG_FOR_MQTT));
            }
            Some(id) => id.into_inner(),
            None => format!("majortom-{}", node.id),
        };
        let keepalive = *raw.keepalive_s.get_ref();
        if !(5..=3600).contains(&keepalive) {
            return Err(self.error(
                &raw.keepalive_s,
                "mqtt.keepalive_s",
                "must be between 5 and 3600 seconds",
            ));
        }
        for (value, key) in [
            (&raw.discovery_prefix, "mqtt.discovery_prefix"),
            (&raw.base_topic, "mqtt.base_topic"),
        ] {
            if let Err(why) = check_topic_prefix(value.get_ref()) {
                return Err(self.error(value, key, why));
            }
        }
        let credentials = self.credentials(raw.username, raw.password, raw.password_file)?;
        let tls = raw.tls.map(|tls| self.tls(tls)).transpose()?;
        let default_port = if tls.is_some() { 8883 } else { 1883 };
        Ok(MqttConfig {
            host,
            port: raw.port.map_or(default_port, NonZeroU16::get),
            tls,
            client_id,
            keepalive: Duration::from_secs(keepalive),
            discovery_prefix: raw.discovery_prefix.into_inner(),
            base_topic: raw.base_topic.into_inner(),
            credentials,
        })
    }

    fn tls(&self, raw: RawTls) -> Result<TlsConfig, ConfigError> {
        let ca_file = match raw.ca_file {
            Some(file) => self.readable(file, "mqtt.tls.ca_file")?,
            None => PathBuf::from(SYSTEM_CA_FILE),
        };
        let client_auth = match (raw.cert_file, raw.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientAuth {
                cert_file: self.readable(cert, "mqtt.tls.cert_file")?,
                key_file: self.readable(key, "mqtt.tls.key_file")?,
            }),
            (Some(cert), None) => {
                return Err(self.error(&cert, "mqtt.tls.key_file", "`cert_file` needs `key_file` too"))
            }
            (None, Some(key)) => {
                return Err(self.error(&key, "mqtt.tls.cert_file", "`key_file` needs `cert_file` too"))
            }
        };
        let server_name = match raw.server_name {
            None => None,
            Some(name) => {
                if rustls::pki_types::ServerName::try_from(name.get_ref().as_str()).is_err() {
                    return Err(self.error(&name, "mqtt.tls.server_name", "must be a DNS name or an IP address"));
                }
                Some(name.into_inner())
            }
        };
        Ok(TlsConfig {
            ca_file,
            client_auth,
            server_name,
        })
    }

    /// A path that must be a readable regular file.
    fn readable(&self, path: toml::Spanned<PathBuf>, key: &str) -> Result<PathBuf, ConfigError> {
        // Checked before opening: opening a FIFO would wait for a writer.
        let opened = regular_file(path.get_ref()).and_then(|()| {
            std::fs::File::open(path.get_ref()).map_err(|e| format!("cannot read {}: {e}", path.get_ref().display()))
        });
        match opened {
            Ok(_) => Ok(path.into_inner()),
            Err(message) => Err(self.error(&path, key, message)),
        }
    }

    /// A secret from `$env`, else the file at `<key>_file`, else `<key>`
    /// inline; both `<key>` and `<key>_file` set is an error.
    fn secret(
        &self,
        env: &str,
        file: Option<toml::Spanned<PathBuf>>,
        inline: Option<toml::Spanned<String>>,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        let file_key = format!("{key}_file");
        let inline_name = key.rsplit('.').next().unwrap_or(key);
        if let (Some(_), Some(file)) = (&inline, &file) {
            let message = format!("set either `{inline_name}` or `{inline_name}_file`, not both");
            return Err(self.error(file, &file_key, message));
        }
        if let Some(from_env) = (self.ctx.env)(env) {
            return Ok(Some(from_env));
        }
        match (file, inline) {
            (Some(file), _) => match read_secret(file.get_ref()) {
                // A trailing newline from `echo secret > file` is not part of it.
                Ok(secret) => Ok(Some(secret.trim_end_matches(['\r', '\n']).to_owned())),
                Err(message) => Err(self.error(&file, &file_key, message)),
            },
            (None, Some(inline)) => Ok(Some(inline.into_inner())),
            (None, None) => Ok(None),
        }
    }

    /// The dashboard's write token: long enough to be worth checking.
    fn web_token(
        &self,
        token: Option<toml::Spanned<String>>,
        token_file: Option<toml::Spanned<PathBuf>>,
    ) -> Result<Option<Secret>, ConfigError> {
        let span = token
            .as_ref()
            .map(toml::Spanned::span)
            .or_else(|| token_file.as_ref().map(toml::Spanned::span))
            .unwrap_or(0..0);
        let Some(token) = self.secret(ENV_WEB_TOKEN, token_file, token, "web.token")? else {
            return Ok(None);
        };
        if token.chars().count() < 8 {
            let spanned = toml::Spanned::new(span, ());
            return Err(self.error(
                &spanned,
                "web.token",
                format!("must be at least 8 characters (from ${ENV_WEB_TOKEN}, web.token_file or web.token)"),
            ));
        }
        Ok(Some(Secret(token)))
    }

    /// Username from the file or `$MAJORTOM_MQTT_USERNAME`; the password from
    /// `$MAJORTOM_MQTT_PASSWORD`, `password_file` or `password`, in that order.
    fn credentials(
        &self,
        username: Option<toml::Spanned<String>>,
        password: Option<toml::Spanned<String>>,
        password_file: Option<toml::Spanned<PathBuf>>,
    ) -> Result<Option<Credentials>, ConfigError> {
        let password_span = password
            .as_ref()
            .map(toml::Spanned::span)
            .or_else(|| password_file.as_ref().map(toml::Spanned::span))
            .unwrap_or(0..0);
        let password = self.secret(ENV_MQTT_PASSWORD, password_file, password, "mqtt.password")?;
        if password.as_ref().is_some_and(|p| p.len() > MQTT_MAX_STRING) {
            let spanned = toml::Spanned::new(password_span, ());
            return Err(self.error(&spanned, "mqtt.password", TOO_LONG_FOR_MQTT));
        }
        let username = match (self.ctx.env)(ENV_MQTT_USERNAME) {
            Some(from_env) => toml::Spanned::new(0..0, from_env),
            None => match username {
                Some(username) => username,
                None => return Ok(None),
            },
        };
        if username.get_ref().len() > MQTT_MAX_STRING {
            return Err(self.error(&username, "mqtt.username", TOO_LONG_FOR_MQTT));
        }
        let username = username.into_inner();
        Ok((!username.is_empty()).then_some(Credentials { username, password }))
    }
}

/// MQTT sends each string with a 16-bit length: a longer client id, user
/// name, password or topic makes packets the broker drops the connection
/// over, at every reconnect.
const MQTT_MAX_STRING: usize = 65_535;
const TOO_LONG_FOR_MQTT: &str = "must be at most 65535 bytes, MQTT's limit for a string";

/// Topics are a prefix, the node id and an entity id (64 bytes each at
/// most) and a few fixed levels; with prefixes of at most this, every topic
/// fits MQTT's limit with room to spare.
const MAX_TOPIC_PREFIX: usize = 1024;

/// Secret files hold one short secret; anything bigger is the wrong file.
const MAX_SECRET_BYTES: u64 = 4096;

/// `Ok` for a regular file (or a link to one). Devices, FIFOs and
/// directories are refused: reading `/dev/zero` would never end, and
/// opening a FIFO waits for a writer.
fn regular_file(path: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.is_file() {
        Ok(())
    } else {
        Err(format!("{} is not a regular file", path.display()))
    }
}

/// Reads a secret file of at most `MAX_SECRET_BYTES`.
fn read_secret(path: &Path) -> Result<String, String> {
    use std::io::Read;
    regular_file(path)?;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut secret = String::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut secret)
        .map_err(cannot)?;
    if secret.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SECRET_BYTES} bytes; it should hold only the secret",
            path.display()
        ));
    }
    Ok(secret)
}

/// The node id appears in topics and unique ids, so it is kept to characters
/// that are safe in both.
fn check_node_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 64 {
        return Err("must be 1 to 64 characters long");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("may contain only lowercase letters, digits, `_` and `-`");
    }
    Ok(())
}

/// Lowercases a host name and replaces anything outside `[a-z0-9_-]`.
pub fn sanitise_node_id(hostname: &str) -> String {
    let id: String = hostname
        .trim()
        .chars()
        .take(64)
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    if id.is_empty() {
        "majortom".to_owned()
    } else {
        id
    }
}

fn check_topic_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Err("must not be empty");
    }
    if prefix.len() > MAX_TOPIC_PREFIX {
        return Err("must be at most 1024 bytes");
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err("must not contain the MQTT wildcards `+` or `#`");
    }
    if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        return Err("must not start or end with `/` or contain an empty level");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_with(vars: &'static [(&'static str, &'static str)]) -> Context<'static> {
        Context {
            hostname: "Kitchen.Pi",
            env: Box::leak(Box::new(move |name: &str| {
                vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
            })),
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Origin::File("test.toml".into()), &ctx_with(&[]))
    }

    fn error_of(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_config_should_give_the_documented_defaults() {
        let config = parse("").expect("valid");
        assert_eq!(config.node.id, "kitchen_pi");
        assert_eq!(config.node.name, "Kitchen.Pi");
        assert!(!config.uses_gpio());
        let mqtt = config.mqtt.expect("mqtt on by default");
        assert_eq!((mqtt.host.as_str(), mqtt.port), ("localhost", 1883));
        assert_eq!(mqtt.client_id, "majortom-kitchen_pi");
        assert_eq!(mqtt.keepalive, Duration::from_secs(30));
        assert_eq!(mqtt.discovery_prefix, "homeassistant");
        assert_eq!(mqtt.base_topic, "majortom");
        assert_eq!(mqtt.credentials, None);
        assert_eq!(
            config.web.expect("web on").listen,
            "0.0.0.0:8080".parse().expect("addr")
        );
        let system = config.system.expect("system on");
        assert_eq!(system.interval, Duration::from_secs(10));
        assert_eq!(config.root, PathBuf::from("/"));
        assert_eq!(config.gpio.backend, Backend::Auto);
        assert!(config.inputs.is_empty() && config.outputs.is_empty() && config.sensors.is_empty());
    }

    #[test]
    fn annotated_default_config_should_match_the_built_in_defaults() {
        let from_file = parse(DEFAULT_CONFIG_TOML).expect("default.toml is valid");
        let built_in = parse("").expect("valid");
        assert_eq!(
            Config {
                origin: built_in.origin.clone(),
                ..from_file
            },
            built_in
        );
    }

    #[test]
    fn unknown_key_should_be_named_with_its_line_and_column() {
        let message = error_of("[mqtt]\nhost = \"broker\"\nbogus = 1\n");
        assert!(
            message.starts_with("test.toml: line 3, column 1: key `mqtt.bogus`: unknown field `bogus`"),
            "{message}"
        );
        assert!(message.contains("bogus = 1"), "{message}");
    }

    #[test]
    fn unknown_top_level_section_should_be_named() {
        let message = error_of("[mqt]\nhost = \"x\"\n");
        assert!(message.contains("key `mqt`"), "{message}");
        assert!(message.starts_with("test.toml: line 1,"), "{message}");
    }

    #[test]
    fn wrong_type_should_name_key_line_and_column() {
        let message = error_of("[mqtt]\nport = \"abc\"\n");
        assert!(
            message.starts_with("test.toml: line 2, column 8: key `mqtt.port`: invalid type: string \"abc\""),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_on_a_validated_key_should_name_the_key_alone() {
        let message = error_of("[system]\ninterval_s = \"fast\"\n");
        assert!(
            message.starts_with("test.toml: line 2, column 14: key `system.interval_s`: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn port_zero_should_be_rejected() {
        let message = error_of("[mqtt]\nport = 0\n");
        assert!(
            message.contains("key `mqtt.port`") && message.contains("test.toml: line 2,"),
            "{message}"
        );
    }

    #[test]
    fn syntax_error_should_point_at_the_line() {
        let message = error_of("[web]\nport = = 3\n");
        assert!(message.starts_with("test.toml: line 2,"), "{message}");
    }

    #[test]
    fn out_of_range_values_should_name_the_key_and_line() {
        let message = error_of("[system]\ninterval_s = 0\n");
        assert!(
            message.starts_with("test.toml: line 2, column 14: key `system.interval_s`: must be between"),
            "{message}"
        );
        let message = error_of("[mqtt]\nkeepalive_s = 1\n");
        assert!(
            message.starts_with("test.toml: line 2, column 15: key `mqtt.keepalive_s`"),
            "{message}"
        );
    }

    #[test]
    fn node_id_with_topic_characters_should_be_rejected() {
        for bad in ["a/b", "A", "x+y", "", "x#"] {
            let message = error_of(&format!("[node]\nid = \"{bad}\"\n"));
            assert!(message.contains("key `node.id`"), "{bad}: {message}");
        }
    }

    #[test]
    fn topic_prefixes_with_wildcards_or_empty_levels_should_be_rejected() {
        for bad in ["", "a/+", "#", "/lead", "trail/", "a//b"] {
            let message = error_of(&format!("[mqtt]\nbase_topic = \"{bad}\"\n"));
            assert!(message.contains("key `mqtt.base_topic`"), "{bad}: {message}");
        }
        assert!(parse("[mqtt]\nbase_topic = \"home/agents\"\n").is_ok());
    }

    const HARDWARE: &str = r#"
[gpio]
backend = "sim"
state_file = "/tmp/state.json"

[[inputs]]
name = "front_door"
pin = 17
inverted = true
device_class = "door"

[[inputs]]
name = "doorbell"
label = "Door bell"
pin = 22
pull = "down"
debounce_ms = 20
events = true
long_press_ms = 1000

[[outputs]]
name = "relay"
pin = 27
initial = "restore"
auto_off_s = 2.5
kind = "light"

[[sensors]]
kind = "ds18b20"
name = "garden"
id = "28-0316a2795cff"
offset = -0.5

[[sensors]]
kind = "iio"
name = "living"
device = "bme280"
interval_s = 60
scale = { pressure = 1.01 }

[[sensors]]
kind = "bme280"
name = "outside"
address = 0x77
"#;

    #[test]
    fn hardware_sections_should_become_typed_config_with_defaults_filled_in() {
        let config = parse(HARDWARE).expect("valid");
        assert_eq!(config.gpio.backend, Backend::Sim);
        assert_eq!(config.gpio.state_file, PathBuf::from("/tmp/state.json"));
        let door = &config.inputs[0];
        assert_eq!(
            (door.name.as_str(), door.label.as_str(), door.pin),
            ("front_door", "Front door", 17)
        );
        assert_eq!(door.pull, crate::hal::Pull::Up);
        assert!(door.inverted);
        assert_eq!(door.debounce, Duration::from_millis(50));
        assert_eq!(door.device_class, Some("door"));
        assert_eq!(door.presses, None);
        let bell = &config.inputs[1];
        assert_eq!(bell.label, "Door bell");
        assert_eq!(
            bell.presses,
            Some(PressTiming {
                long: Duration::from_millis(1000),
                double: Duration::from_millis(350)
            })
        );
        let relay = &config.outputs[0];
        assert_eq!(relay.initial, Initial::Restore);
        assert_eq!(relay.safe_state, OnOff::Off);
        assert_eq!(relay.auto_off, Some(Duration::from_millis(2500)));
        assert_eq!(relay.kind, OutputKind::Light);
        assert_eq!(
            config.sensors[0].source,
            SensorSource::Ds18b20 {
                id: "28-0316a2795cff".into()
            }
        );
        assert_eq!(config.sensors[0].offset, vec![(None, -0.5)]);
        assert_eq!(config.sensors[0].interval, Duration::from_secs(30));
        assert_eq!(
            config.sensors[1].source,
            SensorSource::Iio {
                device: "bme280".into()
            }
        );
        assert_eq!(
            config.sensors[1].scale,
            vec![(Some(crate::sources::sensors::Quantity::Pressure), 1.01)]
        );
        assert_eq!(config.sensors[2].source, SensorSource::Bme280 { bus: 1, address: 0x77 });
        assert!(config.uses_gpio());
    }

    #[test]
    fn filters_as_the_readme_shows_them_should_parse_and_bad_ones_should_name_the_key() {
        let text = "[system.filters]\ncpu_temperature = [{ sliding_window = { size = 5 } }, { delta = 0.5 }, { heartbeat = 60 }]\n\
                    [[sensors]]\nkind = \"ds18b20\"\nname = \"garden\"\nid = \"28-0316a2795cff\"\n\
                    filters = [{ offset = -0.5 }, { round = 1 }, { delta = \"5%\" }, { heartbeat = 300 }]\n";
        let config = parse(text).expect("valid");
        assert_eq!(config.sensors[0].filters.len(), 4);
        assert_eq!(config.system.expect("system").filters[0].0, "cpu_temperature");
        let message = error_of("[system.filters]\nthrottled = [{ delta = 1 }]\n");
        assert!(
            message.contains("key `system.filters.throttled`") && message.contains("not a numeric"),
            "{message}"
        );
        let message =
            error_of("[[sensors]]\nkind = \"ds18b20\"\nname = \"g\"\nid = \"28-1\"\nfilters = [{ round = 20 }]\n");
        assert!(
            message.contains("key `sensors[0].filters`") && message.contains("at most 10"),
            "{message}"
        );
        let message =
            error_of("[[sensors]]\nkind = \"ds18b20\"\nname = \"g\"\nid = \"28-1\"\nfilters = [{ smooth = 2 }]\n");
        assert!(
            message.contains("sensors[0].filters") && message.contains("smooth"),
            "{message}"
        );
    }

    #[test]
    fn automation_references_should_be_checked_naming_the_automation_and_key() {
        let base = "[[inputs]]\nname = \"door\"\npin = 4\n[[inputs]]\nname = \"bell\"\npin = 5\nevents = true\n\
                    [[outputs]]\nname = \"relay\"\npin = 6\n";
        let check = |automation: &str, key: &str, words: &str| {
            let text = format!("{base}[[automations]]\nname = \"a\"\n{automation}");
            let message = error_of(&text);
            assert!(
                message.contains(&format!("key `{key}`")) && message.contains(words),
                "{key}: {message}"
            );
        };
        check(
            "trigger = { input = \"window\" }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
            "automations[0].trigger",
            "not an input",
        );
        check(
            "trigger = { press = \"door\", kind = \"long\" }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
            "automations[0].trigger",
            "events = true",
        );
        check(
            "trigger = { entity = \"relay\", above = 1 }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
            "automations[0].trigger",
            "not a numeric",
        );
        check(
            "trigger = { at = \"7:30\" }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
            "automations[0].trigger",
            "HH:MM",
        );
        check(
            "trigger = { input = \"door\" }\nactions = [{ output = \"lamp\", set = \"on\" }]\n",
            "automations[0].actions[0]",
            "not an output",
        );
        check(
            "trigger = { input = \"door\" }\nactions = [{ output = \"relay\", set = \"dim\" }]\n",
            "automations[0].actions[0]",
            "on, off or toggle",
        );
        check("trigger = { input = \"door\" }\nconditions = [{ entity = \"nope\", state = \"on\" }]\nactions = [{ delay_s = 1 }]\n", "automations[0].conditions[0]", "not an on/off");
        check(
            "trigger = { input = \"door\" }\nactions = [{ delay_s = 1 }]\nactions_below = [{ delay_s = 1 }]\n",
            "automations[0].actions_below",
            "only a threshold",
        );
        check(
            "trigger = { entity = \"cpu_temperature\", above = 50, below = 60 }\nactions = [{ delay_s = 1 }]\n",
            "automations[0].trigger",
            "lower than",
        );
        let valid = format!("{base}[[automations]]\nname = \"a\"\ntrigger = {{ press = \"bell\", kind = \"double\" }}\nconditions = [{{ entity = \"relay\", state = \"off\" }}]\nactions = [{{ output = \"relay\", pulse_s = 2 }}, {{ publish = \"x/y\", payload = \"z\" }}]\n");
        let config = parse(&valid).expect("valid");
        assert_eq!(config.automations.len(), 1);
    }

    #[test]
    fn a_pin_used_twice_should_name_both_keys() {
        let message = error_of("[[inputs]]\nname = \"a\"\npin = 5\n[[outputs]]\nname = \"b\"\npin = 5\n");
        assert!(
            message.starts_with(
                "test.toml: line 6, column 7: key `outputs[0].pin`: GPIO 5 is already used by `inputs[0].pin`"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_name_used_twice_or_taken_by_the_system_should_be_rejected() {
        let message = error_of("[[inputs]]\nname = \"a\"\npin = 5\n[[inputs]]\nname = \"a\"\npin = 6\n");
        assert!(
            message.contains("key `inputs[1].name`: `a` is already used by `inputs[0].name`"),
            "{message}"
        );
        let message = error_of("[[outputs]]\nname = \"cpu_usage\"\npin = 5\n");
        assert!(
            message.contains("`cpu_usage` is already used by the system source"),
            "{message}"
        );
    }

    #[test]
    fn hardware_mistakes_should_name_the_key() {
        let check = |text: &str, key: &str| {
            let message = error_of(text);
            assert!(message.contains(&format!("key `{key}`")), "{key}: {message}");
        };
        check("[[inputs]]\nname = \"a\"\npin = 28\n", "inputs[0].pin");
        check("[[inputs]]\nname = \"Door\"\npin = 2\n", "inputs[0].name");
        check(
            "[[inputs]]\nname = \"a\"\npin = 2\ndevice_class = \"doorbell\"\n",
            "inputs[0].device_class",
        );
        check(
            "[[inputs]]\nname = \"a\"\npin = 2\npull = \"sideways\"\n",
            "inputs[0].pull",
        );
        check("[[inputs]]\nname = \"a\"\n", "inputs[0]");
        check(
            "[[outputs]]\nname = \"a\"\npin = 2\nauto_off_s = 0\n",
            "outputs[0].auto_off_s",
        );
        check(
            "[[outputs]]\nname = \"a\"\npin = 2\ninitial = \"maybe\"\n",
            "outputs[0].initial",
        );
        check("[[sensors]]\nkind = \"ds18b20\"\nname = \"a\"\n", "sensors[0].id");
        check(
            "[[sensors]]\nkind = \"ds18b20\"\nname = \"a\"\nid = \"28-1\"\ndevice = \"x\"\n",
            "sensors[0].device",
        );
        check(
            "[[sensors]]\nkind = \"bme280\"\nname = \"a\"\naddress = 0x40\n",
            "sensors[0].address",
        );
        check("[[sensors]]\nkind = \"sht31\"\nname = \"a\"\n", "sensors[0].kind");
        check("[gpio]\nbackend = \"pigpio\"\n", "gpio.backend");
        check(
            "[[sensors]]\nkind = \"iio\"\nname = \"a\"\ndevice = \"x\"\noffset = nan\n",
            "sensors[0].offset",
        );
        check(
            "[[sensors]]\nkind = \"iio\"\nname = \"a\"\ndevice = \"x\"\nscale = { humidity = inf }\n",
            "sensors[0].scale",
        );
    }

    #[test]
    fn hostnames_should_be_sanitised_into_node_ids() {
        assert_eq!(sanitise_node_id("raspberrypi"), "raspberrypi");
        assert_eq!(sanitise_node_id("Living Room.local"), "living_room_local");
        assert_eq!(sanitise_node_id(""), "majortom");
    }

    #[test]
    fn disabled_sections_should_be_absent() {
        let config =
            parse("[mqtt]\nenabled = false\n[web]\nenabled = false\n[system]\nenabled = false\n").expect("valid");
        assert!(config.mqtt.is_none() && config.web.is_none() && config.system.is_none());
    }

    #[test]
    fn password_should_come_from_the_environment_first() {
        let ctx = ctx_with(&[(ENV_MQTT_PASSWORD, "from-env"), (ENV_MQTT_USERNAME, "envuser")]);
        let config = Config::from_toml(
            "[mqtt]\nusername = \"fileuser\"\npassword = \"inline\"\n",
            Origin::BuiltIn,
            &ctx,
        )
        .expect("valid");
        let credentials = config.mqtt.and_then(|m| m.credentials).expect("credentials");
        assert_eq!(credentials.username, "envuser");
        assert_eq!(credentials.password.as_deref(), Some("from-env"));
    }

    #[test]
    fn password_file_should_be_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").expect("write");
        let text = format!("[mqtt]\nusername = \"u\"\npassword_file = \"{}\"\n", file.display());
        let config = parse(&text).expect("valid");
        let credentials = config.mqtt.and_then(|m| m.credentials).expect("credentials");
        assert_eq!(credentials.password.as_deref(), Some("s3cret"));
        assert!(
            !format!("{credentials:?}").contains("s3cret"),
            "debug output must not show the password"
        );
    }

    #[test]
    fn missing_password_file_should_name_the_key_and_file() {
        let message = error_of("[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent/secret\"\n");
        assert!(
            message
                .starts_with("test.toml: line 3, column 17: key `mqtt.password_file`: cannot read /nonexistent/secret"),
            "{message}"
        );
    }

    #[test]
    fn tls_section_should_switch_the_default_port_and_default_to_the_system_cas() {
        let mqtt = parse("[mqtt.tls]\n").expect("valid").mqtt.expect("mqtt");
        assert_eq!(mqtt.port, 8883);
        let tls = mqtt.tls.expect("tls");
        assert_eq!(tls.ca_file, PathBuf::from(SYSTEM_CA_FILE));
        assert_eq!(tls.client_auth, None);
        let mqtt = parse("[mqtt]\nport = 9999\n[mqtt.tls]\n")
            .expect("valid")
            .mqtt
            .expect("mqtt");
        assert_eq!(mqtt.port, 9999);
    }

    #[test]
    fn tls_files_should_be_checked_and_named_by_key() {
        let message = error_of("[mqtt.tls]\nca_file = \"/nonexistent/ca.pem\"\n");
        assert!(
            message.starts_with("test.toml: line 2, column 11: key `mqtt.tls.ca_file`: cannot read"),
            "{message}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "x").expect("write");
        let message = error_of(&format!("[mqtt.tls]\ncert_file = \"{}\"\n", cert.display()));
        assert!(message.contains("key `mqtt.tls.key_file`"), "{message}");
    }

    #[test]
    fn web_token_should_come_from_env_file_or_inline_and_be_long_enough() {
        let config = parse("[web]\ntoken = \"correct horse\"\n").expect("valid");
        let token = config.web.and_then(|w| w.token).expect("token");
        assert_eq!(token.expose(), "correct horse");
        assert_eq!(format!("{token:?}"), "<redacted>");
        let message = error_of("[web]\ntoken = \"short\"\n");
        assert!(
            message.starts_with("test.toml: line 2, column 9: key `web.token`: must be at least 8"),
            "{message}"
        );
        let ctx = ctx_with(&[(ENV_WEB_TOKEN, "from-the-environment")]);
        let config = Config::from_toml("[web]\ntoken = \"inline-token\"\n", Origin::BuiltIn, &ctx).expect("valid");
        assert_eq!(
            config.web.and_then(|w| w.token).expect("token").expose(),
            "from-the-environment"
        );
        assert!(
            parse("").expect("valid").web.expect("web").token.is_none(),
            "no token: read-only"
        );
    }

    #[test]
    fn secret_files_should_be_small_regular_files() {
        let message = error_of("[web]\ntoken_file = \"/dev/zero\"\n");
        assert!(
            message.contains("key `web.token_file`: /dev/zero is not a regular file"),
            "{message}"
        );
        let message = error_of("[mqtt.tls]\nca_file = \"/dev/null\"\n");
        assert!(message.contains("key `mqtt.tls.ca_file`"), "{message}");
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(5000)).expect("write");
        let message = error_of(&format!("[mqtt]\npassword_file = \"{}\"\n", big.display()));
        assert!(message.contains("larger than 4096 bytes"), "{message}");
    }

    #[test]
    fn strings_too_long_for_mqtt_should_be_rejected() {
        let long = "x".repeat(70_000);
        for (text, key) in [
            (format!("[mqtt]\nclient_id = \"{long}\"\n"), "mqtt.client_id"),
            (format!("[mqtt]\nusername = \"{long}\"\n"), "mqtt.username"),
            (format!("[mqtt]\npassword = \"{long}\"\n"), "mqtt.password"),
            (format!("[mqtt]\nbase_topic = \"{long}\"\n"), "mqtt.base_topic"),
        ] {
            let message = error_of(&text);
            assert!(
                message.contains("line 2, column") && message.contains(&format!("key `{key}`")),
                "{message}"
            );
        }
    }

    #[test]
    fn password_and_password_file_together_should_be_rejected() {
        let message = error_of("[mqtt]\npassword = \"a\"\npassword_file = \"/x\"\n");
        assert!(message.contains("not both"), "{message}");
    }

    #[test]
    fn config_file_lookup_should_prefer_flag_then_env_then_system_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let system = dir.path().join("majortom.toml");
        let flag = Path::new("/flag.toml");
        assert_eq!(
            locate_file(Some(flag), Some("/env.toml".into()), &system),
            Some(flag.to_owned())
        );
        assert_eq!(
            locate_file(None, Some("/env.toml".into()), &system),
            Some(PathBuf::from("/env.toml"))
        );
        assert_eq!(locate_file(None, None, &system), None);
        std::fs::write(&system, "").expect("write");
        assert_eq!(locate_file(None, None, &system), Some(system.clone()));
    }
}
