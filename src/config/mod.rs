//! Configuration: finding the file, parsing TOML, and validating it into a
//! typed [`Config`].
//!
//! Two stages: `Raw*` structs mirror the TOML (unknown keys are errors), and
//! [`Config::from_toml`] turns them into the typed configuration that the rest
//! of the program uses. Every error names the file, line, column and key.
//! This module reads the config file, secret files and, for the default
//! node id of a factory-default host name, the board serial or machine id
//! under `system.root` (`identity.rs`); nothing else. It imports nothing
//! of ours but the vocabulary.
//!
//! Here: the whole `Config`, `[node]`, `[web]`, `[system]` and the
//! `Validator` that walks them. Beside it: `error.rs` (errors and their
//! locations), `identity.rs` (the default node id), `mqtt.rs` (`[mqtt]`,
//! `[mqtt.tls]`), `secrets.rs` (passwords, the token, secret files),
//! `hardware.rs` (`[gpio]`, inputs, outputs, sensors), `automations.rs`
//! (`[[automations]]`, `[buttons]`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod automations;
mod commands;
mod de;
mod error;
mod hardware;
mod identity;
mod mqtt;
mod secrets;
mod sensors;
#[cfg(test)]
mod tests;
mod triggers;

pub use automations::{AutomationConfig, ButtonsConfig, Change, Condition, Mode, Step, Trigger};
pub use error::{ConfigError, Location};
pub use identity::{NodeIdOrigin, SuffixSource, FACTORY_HOSTNAMES};
pub use mqtt::{ClientAuth, MqttConfig, Protocol, TlsConfig, SYSTEM_CA_FILE};
pub use secrets::{random_token, Credentials, Secret};

pub use commands::{unit_name, CommandConfig, CommandKind, Concurrency, Program, RunSettings, StatusCheck};
use error::key_path_at;
use mqtt::RawMqtt;

pub use hardware::{
    Backend, Drive, GpioConfig, Initial, InputConfig, OnOff, OutputConfig, OutputKind, PressTiming,
    AUTOMATIONS_STATE_FILE_NAME, MQTT_STATE_FILE_NAME,
};
pub use sensors::{SensorConfig, SensorSource, DEFAULT_SENSOR_TIMEOUT};

use crate::vocab::filter::FilterSpec;
use crate::vocab::system::NUMERIC_ENTITY_IDS;

/// The annotated default configuration printed by `majortom init`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// The line of `default.toml` a fresh config replaces with its token.
const TOKEN_PLACEHOLDER: &str = "# token = \"<a long random string>\"\n";

/// The annotated default config with `token` as its `web.token`: what
/// `init` and `install` write, so the controls work at once and are never
/// open. `token` is put in a TOML basic string as it is: give it in
/// characters that need no escaping (hex).
pub fn fresh_config(token: &str) -> String {
    DEFAULT_CONFIG_TOML.replacen(TOKEN_PLACEHOLDER, &format!("token = \"{token}\"\n"), 1)
}

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
    /// `None` when `fleet.enabled = false` or MQTT is off.
    pub fleet: Option<FleetConfig>,
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
    /// What is valid but unwise (a secret file other users can read): the
    /// agent logs each at start and `check` prints them.
    pub warnings: Vec<String>,
    pub commands: Vec<CommandConfig>,
}

impl Config {
    /// True when anything needs the GPIO backend (pins or an I2C bus).
    pub fn uses_gpio(&self) -> bool {
        !self.inputs.is_empty() || !self.outputs.is_empty() || self.sensors.iter().any(|s| s.source.uses_gpio())
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
    /// Where the id came from (a factory-default host name gets a suffix).
    pub id_origin: NodeIdOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Required (as `Authorization: Bearer …`) for every state change over
    /// HTTP; without one the HTTP side is read-only.
    pub token: Option<Secret>,
    /// The host names a request's `Host` may name, lowercase: the host
    /// name, `<host name>.local`, `localhost` and `web.allowed_hosts`. (The
    /// address a client connected to is allowed besides; the web side
    /// checks that.) Anything else is refused, so a page on another name
    /// cannot read the API through DNS rebinding.
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemConfig {
    pub interval: Duration,
    /// Filters for some of the system values, by entity id.
    pub filters: Vec<(String, Vec<FilterSpec>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// How often our `info` is republished with fresh figures (alert flags
    /// go out sooner).
    pub info_interval: Duration,
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
            warnings: std::cell::RefCell::new(Vec::new()),
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

// ---- Raw TOML structs -----------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    node: RawNode,
    mqtt: RawMqtt,
    web: RawWeb,
    system: RawSystem,
    fleet: RawFleet,
    gpio: hardware::RawGpio,
    inputs: Vec<hardware::RawInput>,
    outputs: Vec<hardware::RawOutput>,
    sensors: Vec<sensors::RawSensor>,
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
struct RawWeb {
    enabled: bool,
    bind: IpAddr,
    port: u16,
    token: Option<toml::Spanned<String>>,
    token_file: Option<toml::Spanned<PathBuf>>,
    allowed_hosts: Option<toml::Spanned<Vec<String>>>,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            enabled: true,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            token: None,
            token_file: None,
            allowed_hosts: None,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFleet {
    enabled: bool,
    info_interval_s: toml::Spanned<u64>,
}

impl Default for RawFleet {
    fn default() -> Self {
        RawFleet {
            enabled: true,
            info_interval_s: unspanned(60),
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
    /// What is allowed but unwise (a secret others can read), for
    /// `Config::warnings`.
    warnings: std::cell::RefCell<Vec<String>>,
}

impl Validator<'_> {
    fn error<T>(&self, spanned: &toml::Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        let span = spanned.span();
        let span = (span != (0..0)).then_some(span);
        ConfigError::invalid(self.origin, self.text, span, key, message)
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let node = self.node(raw.node, &raw.system.root)?;
        let mqtt = if raw.mqtt.enabled {
            Some(self.mqtt(raw.mqtt, &node)?)
        } else {
            None
        };
        let web = if raw.web.enabled {
            Some(WebConfig {
                listen: SocketAddr::new(raw.web.bind, raw.web.port),
                token: self.web_token(raw.web.token, raw.web.token_file)?,
                allowed_hosts: self.allowed_hosts(raw.web.allowed_hosts)?,
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
        let fleet = if raw.fleet.enabled && mqtt.is_some() {
            let seconds = *raw.fleet.info_interval_s.get_ref();
            if !(1..=86_400).contains(&seconds) {
                return Err(self.error(
                    &raw.fleet.info_interval_s,
                    "fleet.info_interval_s",
                    "must be between 1 and 86400 seconds",
                ));
            }
            Some(FleetConfig {
                info_interval: Duration::from_secs(seconds),
            })
        } else {
            None
        };
        let reserved: Vec<&str> = crate::vocab::reserved_ids().collect();
        let hardware = self.hardware(raw.gpio, raw.inputs, raw.outputs, raw.sensors, &reserved)?;
        let mut names: std::collections::HashMap<String, String> = hardware
            .inputs
            .iter()
            .map(|i| &i.name)
            .chain(hardware.outputs.iter().map(|o| &o.name))
            .chain(hardware.sensors.iter().map(|s| &s.name))
            .map(|name| (name.clone(), "another entity".to_owned()))
            .collect();
        // Before the automations, which may run commands and watch them.
        let commands = self.commands(raw.commands, &reserved, &mut names)?;
        let known = automations::Known {
            inputs: &hardware.inputs,
            outputs: &hardware.outputs,
            sensors: &hardware.sensors,
            commands: &commands,
            fleet: fleet.is_some(),
        };
        let automations = self.automations(raw.automations, &known, &mut names)?;
        let buttons = self.buttons(raw.buttons)?;
        Ok(Config {
            origin: self.origin.clone(),
            node,
            mqtt,
            web,
            system,
            fleet,
            root: raw.system.root,
            gpio: hardware.gpio,
            auto_ds18b20: hardware.auto_ds18b20,
            inputs: hardware.inputs,
            outputs: hardware.outputs,
            sensors: hardware.sensors,
            automations,
            buttons,
            warnings: self.warnings.take(),
            commands,
        })
    }

    /// `root` is where the board serial and machine id are read, for the
    /// suffix a factory-default host name gets.
    fn node(&self, raw: RawNode, root: &Path) -> Result<NodeConfig, ConfigError> {
        let hostname = self.ctx.hostname;
        let (id, id_origin) = match raw.id {
            Some(id) => {
                let value = id.get_ref();
                if let Err(why) = check_node_id(value) {
                    return Err(self.error(&id, "node.id", why));
                }
                (value.clone(), NodeIdOrigin::Configured)
            }
            None if identity::is_factory_hostname(hostname) => match identity::machine_suffix(root) {
                Some((suffix, source)) => {
                    let mut id = sanitise_node_id(hostname);
                    // Room for `-` and the suffix within the 64 characters.
                    id.truncate(64 - 1 - suffix.len());
                    (
                        format!("{id}-{suffix}"),
                        NodeIdOrigin::Suffixed {
                            hostname: hostname.to_owned(),
                            source,
                        },
                    )
                }
                None => (
                    sanitise_node_id(hostname),
                    NodeIdOrigin::FactoryDefault {
                        hostname: hostname.to_owned(),
                    },
                ),
            },
            None => (sanitise_node_id(hostname), NodeIdOrigin::HostName),
        };
        let name = match raw.name.filter(|n| !n.trim().is_empty()) {
            Some(name) => name,
            // Two `raspberrypi` devices in Home Assistant would be hard to
            // tell apart: the suffixed id names them.
            None if matches!(id_origin, NodeIdOrigin::Suffixed { .. }) => id.clone(),
            None => hostname.to_owned(),
        };
        Ok(NodeConfig { id, name, id_origin })
    }
}

impl Validator<'_> {
    /// `web.allowed_hosts` (names or addresses, without a port), with the
    /// names every install answers to.
    fn allowed_hosts(&self, raw: Option<toml::Spanned<Vec<String>>>) -> Result<Vec<String>, ConfigError> {
        let host = self.ctx.hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut hosts = vec!["localhost".to_owned(), format!("{host}.local"), host];
        let Some(list) = raw else {
            return Ok(hosts);
        };
        for name in list.get_ref() {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
            let is_name = !name.is_empty()
                && name.len() <= 253
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !is_name && unbracketed.parse::<IpAddr>().is_err() {
                let message = format!("`{name}` is not a host name or an IP address (give no port and no scheme)");
                return Err(self.error(&list, "web.allowed_hosts", message));
            }
            if !hosts.iter().any(|h| h == unbracketed) {
                hosts.push(unbracketed.to_owned());
            }
        }
        Ok(hosts)
    }
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
