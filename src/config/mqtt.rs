//! `[mqtt]` and `[mqtt.tls]`: the broker, the client, the topics' prefixes
//! and TLS. The credentials are read with the other secrets (`secrets.rs`).

use std::num::NonZeroU16;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secrets::Credentials;
use super::{unspanned, ConfigError, NodeConfig, Validator};

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
    /// The protocol tried first; with MQTT 5, a broker that refuses it
    /// gets 3.1.1.
    pub protocol: Protocol,
    /// Commands older than this are refused: the broker keeps our session
    /// (and what is queued in it) this long after we go (MQTT 5), and
    /// commands it kept while we were away longer are dropped.
    pub command_max_age: Duration,
}

/// The MQTT protocol version to speak (`mqtt.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V5,
    V311,
}

impl Protocol {
    /// As the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V5 => "5",
            Protocol::V311 => "3.1.1",
        }
    }
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

/// MQTT sends each string with a 16-bit length: a longer client id, user
/// name, password or topic makes packets the broker drops the connection
/// over, at every reconnect.
pub(super) const MQTT_MAX_STRING: usize = 65_535;
pub(super) const TOO_LONG_FOR_MQTT: &str = "must be at most 65535 bytes, MQTT's limit for a string";

/// The longest `mqtt.command_max_age_s`: a day. It is also the session
/// expiry the broker is asked for, so it bounds what a broker keeps for a
/// Pi that never comes back.
const MAX_COMMAND_AGE_S: u64 = 86_400;

/// Topics are a prefix, the node id and an entity id (64 bytes each at
/// most) and a few fixed levels; with prefixes of at most this, every topic
/// fits MQTT's limit with room to spare.
const MAX_TOPIC_PREFIX: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMqtt {
    pub(super) enabled: bool,
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
    protocol: toml::Spanned<String>,
    command_max_age_s: toml::Spanned<u64>,
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
            protocol: unspanned("5".to_owned()),
            command_max_age_s: unspanned(30),
        }
    }
}

impl Validator<'_> {
    pub(super) fn mqtt(&self, raw: RawMqtt, node: &NodeConfig) -> Result<MqttConfig, ConfigError> {
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
        let protocol = match raw.protocol.get_ref().as_str() {
            "5" => Protocol::V5,
            "3.1.1" => Protocol::V311,
            _ => return Err(self.error(&raw.protocol, "mqtt.protocol", "must be \"5\" or \"3.1.1\"")),
        };
        let max_age = *raw.command_max_age_s.get_ref();
        if !(1..=MAX_COMMAND_AGE_S).contains(&max_age) {
            return Err(self.error(
                &raw.command_max_age_s,
                "mqtt.command_max_age_s",
                "must be between 1 and 86400 seconds",
            ));
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
            protocol,
            command_max_age: Duration::from_secs(max_age),
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
