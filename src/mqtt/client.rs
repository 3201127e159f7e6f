//! rumqttc's two clients, MQTT 5 (`rumqttc::v5`) and 3.1.1, behind one
//! face, so the sink and the connection task are written once: a
//! [`Client`] to publish and subscribe, an [`EventLoop`] whose `poll`
//! answers in our own words ([`Polled`], [`Failure`]), and [`Settings`],
//! which opens a pair for either protocol. Every difference between the
//! protocols lives here: how each is configured (MQTT 5 asks for a Maximum
//! Packet Size and a session expiry), what its packets and errors mean.
//! Enums rather than a generic trait: the code above is compiled once.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as Code5, DisconnectReasonCode, Packet as Packet5};
use rumqttc::{ConnectReturnCode as Code311, Packet as Packet311, TlsConfiguration, Transport};

use crate::config::{MqttConfig, Protocol};
use crate::mqtt::link::Cause;
use crate::mqtt::state::MAX_MESSAGE_BYTES;

/// Requests rumqttc buffers between the sink and the connection task; more
/// wait in the outbox.
const REQUEST_CHANNEL_CAPACITY: usize = 64;

/// QoS 1 publishes in flight at once. rumqttc keeps one slot per packet id
/// up to this limit, filled at once (MQTT 5 without a limit: 65,535 slots,
/// 14 MB of RSS on x86_64; 100, rumqttc's 3.1.1 default, 22 KB). Only
/// events, automations' messages, the fence and `offline` go at QoS 1, so
/// 20 is plenty.
const OUTGOING_INFLIGHT: u16 = 20;

/// The largest packet we send, and (MQTT 5's Maximum Packet Size) the
/// largest the broker may send us: it drops a larger message for us
/// instead of sending it, so an oversized message cannot break the
/// connection. Commands, Home Assistant's status and discovery configs are
/// far smaller.
pub const MAX_PACKET_SIZE: u32 = MAX_MESSAGE_BYTES as u32;

/// What we read under MQTT 3.1.1, where the broker cannot be told our
/// limit: a larger packet breaks the connection. Messages above
/// [`MAX_MESSAGE_BYTES`] that fit are read and dropped (`state.rs`), so a
/// careless 100 KB message on a topic we subscribe to costs one read, not a
/// reconnect loop.
pub const V311_READ_LIMIT: usize = 1024 * 1024;

/// What is needed to open a connection with either protocol.
#[derive(Clone)]
pub struct Settings {
    pub client_id: String,
    host: String,
    port: u16,
    keepalive: Duration,
    credentials: Option<(String, String)>,
    transport: Transport,
    /// The Last Will: retained `offline` on the status topic.
    will: Option<(String, &'static str)>,
    /// Resume the broker's session (the agent) or start a clean one that
    /// ends with the connection (a check).
    persistent: bool,
    /// MQTT 5's session expiry: how long the broker keeps our session
    /// (subscriptions, queued commands) after we go.
    session_expiry: Duration,
    /// `host:port`, for messages.
    pub broker: String,
}

impl Settings {
    /// The broker, credentials and TLS (`tls`, built from `[mqtt.tls]`) as
    /// the config says, under `client_id`, with a clean session that ends
    /// with the connection and no Last Will: a one-off check (`doctor`),
    /// which must not disturb a running agent. The agent adds
    /// [`Settings::persistent`].
    pub fn new(config: &MqttConfig, client_id: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Settings {
        Settings {
            client_id: client_id.to_owned(),
            host: config.host.clone(),
            port: config.port,
            keepalive: config.keepalive,
            credentials: config
                .credentials
                .as_ref()
                .map(|c| (c.username.clone(), c.password.clone().unwrap_or_default())),
            transport: match tls {
                Some(tls) => Transport::tls_with_config(TlsConfiguration::Rustls(tls)),
                None => Transport::tcp(),
            },
            will: None,
            persistent: false,
            session_expiry: config.command_max_age,
            broker: format!("{}:{}", config.host, config.port),
        }
    }

    /// The agent's settings: a persistent session and a Last Will
    /// (`will_payload`, retained on `will_topic`).
    pub fn persistent(self, will_topic: String, will_payload: &'static str) -> Settings {
        Settings {
            will: Some((will_topic, will_payload)),
            persistent: true,
            ..self
        }
    }

    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// Whether connections resume the broker's session.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// A client and its event loop speaking `protocol`, with a persistent
    /// session (unless a one-off check): the broker keeps our subscriptions and
    /// queues QoS 1 commands sent while we reconnect (discovery asks Home
    /// Assistant for QoS 1). Everything we publish is republished on
    /// connect anyway.
    pub fn open(&self, protocol: Protocol) -> (Client, EventLoop) {
        match protocol {
            Protocol::V5 => {
                let mut options = v5::MqttOptions::new(&self.client_id, &self.host, self.port);
                options.set_keep_alive(self.keepalive);
                options.set_clean_start(!self.persistent);
                if self.persistent {
                    let expiry = u32::try_from(self.session_expiry.as_secs()).unwrap_or(u32::MAX);
                    options.set_session_expiry_interval(Some(expiry));
                }
                options.set_max_packet_size(Some(MAX_PACKET_SIZE));
                options.set_outgoing_inflight_upper_limit(OUTGOING_INFLIGHT);
                if let Some((topic, payload)) = &self.will {
                    options.set_last_will(v5::mqttbytes::v5::LastWill::new(
                        topic,
                        *payload,
                        v5::mqttbytes::QoS::AtLeastOnce,
                        true,
                        None,
                    ));
                }
                if let Some((username, password)) = &self.credentials {
                    options.set_credentials(username, password);
                }
                options.set_transport(self.transport.clone());
                options.set_network_options(network_options());
                let (client, eventloop) = v5::AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
                (Client::V5(client), EventLoop::V5(eventloop))
            }
            Protocol::V311 => {
                let mut options = rumqttc::MqttOptions::new(&self.client_id, &self.host, self.port);
                options.set_keep_alive(self.keepalive);
                options.set_clean_session(!self.persistent);
                options.set_max_packet_size(V311_READ_LIMIT, MAX_PACKET_SIZE as usize);
                options.set_inflight(OUTGOING_INFLIGHT);
                if let Some((topic, payload)) = &self.will {
                    options.set_last_will(rumqttc::LastWill::new(topic, *payload, rumqttc::QoS::AtLeastOnce, true));
                }
                if let Some((username, password)) = &self.credentials {
                    options.set_credentials(username, password);
                }
                options.set_transport(self.transport.clone());
                let (client, mut eventloop) = rumqttc::AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
                eventloop.set_network_options(network_options());
                (Client::V311(client), EventLoop::V311(eventloop))
            }
        }
    }
}

/// TCP_NODELAY: each state is a small packet that must leave at once.
/// With Nagle's algorithm on, a message sent while the one before is not
/// yet acknowledged waits for that ACK: a round trip to the broker, or up
/// to its delayed ACK (40 ms on Linux) when nothing else answers at once.
/// (mosquitto's own side has Nagle on unless `set_tcp_nodelay true`:
/// README › Troubleshooting.)
fn network_options() -> rumqttc::NetworkOptions {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

/// The sending half.
#[derive(Clone, Debug)]
pub enum Client {
    V5(v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

/// The QoS a message is sent at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// QoS 0: retained state, which the sink republishes whole on every
    /// reconnect, so a message lost with a dying connection is replaced;
    /// no PUBACK to read and track.
    AtMostOnce,
    /// QoS 1: a message nothing would send again (an event, an
    /// automation's message, the fence, `offline` at a stop).
    AtLeastOnce,
}

impl Delivery {
    fn v5(self) -> v5::mqttbytes::QoS {
        match self {
            Delivery::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
            Delivery::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        }
    }

    fn v311(self) -> rumqttc::QoS {
        match self {
            Delivery::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Delivery::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }
}

/// rumqttc's channel to its event loop is full (or the loop is gone).
#[derive(Debug, thiserror::Error)]
#[error("the MQTT client is not keeping up")]
pub struct Busy;

impl Client {
    pub fn protocol(&self) -> Protocol {
        match self {
            Client::V5(_) => Protocol::V5,
            Client::V311(_) => Protocol::V311,
        }
    }

    /// Whether a `try_publish` now would find no room (see `flush`).
    pub fn is_full(&self) -> bool {
        match self {
            Client::V5(client) => client.is_full(),
            Client::V311(client) => client.is_full(),
        }
    }

    /// Queues a message without waiting; `Busy` when there is no room.
    /// Takes the topic and payload as they are: they become the packet's
    /// without a copy.
    pub fn try_publish(&self, topic: String, payload: Vec<u8>, retain: bool, delivery: Delivery) -> Result<(), Busy> {
        match self {
            Client::V5(client) => client
                .try_publish(topic, delivery.v5(), retain, payload)
                .map_err(|_| Busy),
            Client::V311(client) => client
                .try_publish(topic, delivery.v311(), retain, payload)
                .map_err(|_| Busy),
        }
    }

    pub fn try_subscribe(&self, filter: &str) -> Result<(), Busy> {
        match self {
            Client::V5(client) => client
                .try_subscribe(filter, v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|_| Busy),
            Client::V311(client) => client
                .try_subscribe(filter, rumqttc::QoS::AtLeastOnce)
                .map_err(|_| Busy),
        }
    }

    /// Queues a message at QoS 1, waiting for room (the connection task
    /// drains the channel).
    pub async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), Busy> {
        match self {
            Client::V5(client) => client
                .publish(topic, v5::mqttbytes::QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|_| Busy),
            Client::V311(client) => client
                .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|_| Busy),
        }
    }

    /// Queues a DISCONNECT; the event loop ends once it has gone out.
    pub async fn disconnect(&self) -> Result<(), Busy> {
        match self {
            Client::V5(client) => client.disconnect().await.map_err(|_| Busy),
            Client::V311(client) => client.disconnect().await.map_err(|_| Busy),
        }
    }
}

/// The receiving half: polled only by the connection task. There is one at
/// a time, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum EventLoop {
    V5(v5::EventLoop),
    V311(rumqttc::EventLoop),
}

/// What one poll brought, in our words.
#[derive(Debug)]
pub enum Polled {
    /// CONNACK: the broker took us. `session_present`: it kept our session
    /// (and may now deliver what it queued while we were away).
    Connected { session_present: bool },
    Message {
        topic: String,
        payload: Vec<u8>,
        /// Delivered from the broker's retained store.
        retain: bool,
    },
    /// A message of ours went out.
    Published,
    /// Our DISCONNECT went out: the connection is over.
    Disconnected,
    /// Another packet from the broker (an ack, a ping response).
    Heard,
    /// Another packet of ours went out.
    Sent,
}

/// A failed connection or attempt: what it means for the next attempt, and
/// in words a user can act on.
#[derive(Debug)]
pub struct Failure {
    pub cause: Cause,
    pub explanation: String,
}

impl EventLoop {
    pub async fn poll(&mut self, settings: &Settings) -> Result<Polled, Failure> {
        match self {
            EventLoop::V5(eventloop) => match eventloop.poll().await {
                Ok(v5::Event::Incoming(packet)) => Ok(match *packet {
                    Packet5::ConnAck(connack) => Polled::Connected {
                        session_present: connack.session_present,
                    },
                    Packet5::Publish(publish) => match String::from_utf8(publish.topic.to_vec()) {
                        Ok(topic) => Polled::Message {
                            topic,
                            payload: publish.payload.to_vec(),
                            retain: publish.retain,
                        },
                        // The broker checks topics are UTF-8; never mind one that is not.
                        Err(_) => Polled::Heard,
                    },
                    _ => Polled::Heard,
                }),
                Ok(v5::Event::Outgoing(outgoing)) => Ok(outgoing_event(outgoing)),
                Err(error) => Err(failure5(&error, settings)),
            },
            EventLoop::V311(eventloop) => match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(packet)) => Ok(match packet {
                    Packet311::ConnAck(connack) => Polled::Connected {
                        session_present: connack.session_present,
                    },
                    Packet311::Publish(publish) => Polled::Message {
                        topic: publish.topic,
                        payload: publish.payload.to_vec(),
                        retain: publish.retain,
                    },
                    _ => Polled::Heard,
                }),
                Ok(rumqttc::Event::Outgoing(outgoing)) => Ok(outgoing_event(outgoing)),
                Err(error) => Err(failure311(&error, settings)),
            },
        }
    }

    /// Drops the network connection (the next poll reconnects); what was
    /// in flight is kept to be sent again.
    pub fn drop_connection(&mut self) {
        match self {
            EventLoop::V5(eventloop) => eventloop.clean(),
            EventLoop::V311(eventloop) => eventloop.clean(),
        }
    }

    /// Whether the next connection starts a clean session (the broker
    /// forgets what it queued for us) or resumes ours.
    pub fn set_clean_start(&mut self, clean: bool) {
        match self {
            EventLoop::V5(eventloop) => {
                eventloop.options.set_clean_start(clean);
            }
            EventLoop::V311(eventloop) => {
                eventloop.mqtt_options.set_clean_session(clean);
            }
        }
    }
}

fn outgoing_event(outgoing: rumqttc::Outgoing) -> Polled {
    match outgoing {
        rumqttc::Outgoing::Publish(_) => Polled::Published,
        rumqttc::Outgoing::Disconnect => Polled::Disconnected,
        _ => Polled::Sent,
    }
}

/// Why an MQTT 5 connection failed or ended.
fn failure5(error: &v5::ConnectionError, settings: &Settings) -> Failure {
    use v5::{ConnectionError as E, StateError as S};
    let (cause, explanation) = match error {
        E::MqttState(S::ServerDisconnect {
            reason_code: DisconnectReasonCode::SessionTakenOver,
            ..
        }) => (Cause::TakenOver, taken_over(&settings.client_id)),
        E::MqttState(S::ServerDisconnect {
            reason_code,
            reason_string,
        }) => (
            Cause::Other,
            format!(
                "the broker closed the connection: {reason_code:?}{}",
                reason_string.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        ),
        E::MqttState(S::Deserialization(v5::mqttbytes::Error::PayloadSizeLimitExceeded { pkt_size, max })) => {
            (Cause::TooLarge, too_large(*pkt_size, *max as usize))
        }
        E::MqttState(S::ConnectionAborted | S::Io(_)) => (Cause::ClosedByBroker, error.to_string()),
        // Before a CONNACK, an answer MQTT 5 cannot read is a 3.1.1
        // broker's refusal (its CONNACK has no properties); some 3.1.1
        // brokers (amqtt) wait for a CONNECT they can read and never answer.
        E::MqttState(S::Deserialization(_)) | E::NotConnAck(_) => (Cause::Mqtt5Refused, error.to_string()),
        E::Timeout(_) => (
            Cause::Mqtt5Refused,
            "no answer to our MQTT 5 CONNECT within 5 s".to_owned(),
        ),
        E::ConnectionRefused(Code5::NotAuthorized | Code5::BadUserNamePassword) => (Cause::Other, not_authorised()),
        E::ConnectionRefused(Code5::UnsupportedProtocolVersion) => (
            Cause::Mqtt5Refused,
            "the broker refused MQTT 5 (unsupported protocol version)".to_owned(),
        ),
        E::ConnectionRefused(code) => (Cause::Other, format!("the broker refused the connection: {code:?}")),
        E::Tls(tls) => (Cause::Other, tls_failed(tls)),
        E::Io(io) => (Cause::Other, io_failed(io, &settings.broker)),
        other => (Cause::Other, other.to_string()),
    };
    Failure { cause, explanation }
}

/// Why an MQTT 3.1.1 connection failed or ended.
fn failure311(error: &rumqttc::ConnectionError, settings: &Settings) -> Failure {
    use rumqttc::{ConnectionError as E, StateError as S};
    let (cause, explanation) = match error {
        E::MqttState(S::Deserialization(rumqttc::Error::PayloadSizeLimitExceeded(size))) => {
            (Cause::TooLarge, too_large(*size, V311_READ_LIMIT))
        }
        // Under 3.1.1 a broker ends a session taken over by another
        // client without a word; `link.rs` recognises the pattern.
        E::MqttState(S::ConnectionAborted | S::Io(_)) => (Cause::ClosedByBroker, error.to_string()),
        E::ConnectionRefused(Code311::NotAuthorized | Code311::BadUserNamePassword) => (Cause::Other, not_authorised()),
        E::ConnectionRefused(Code311::BadClientId) => (
            Cause::Other,
            format!(
                "the broker refused the client id `{}` (set mqtt.client_id)",
                settings.client_id
            ),
        ),
        E::ConnectionRefused(code) => (Cause::Other, format!("the broker refused the connection: {code:?}")),
        E::Tls(tls) => (Cause::Other, tls_failed(tls)),
        E::Io(io) => (Cause::Other, io_failed(io, &settings.broker)),
        other => (Cause::Other, other.to_string()),
    };
    Failure { cause, explanation }
}

/// The clash the broker reports (MQTT 5) or we recognise (3.1.1).
pub fn taken_over(client_id: &str) -> String {
    format!("another client uses client id `{client_id}`: give each Pi its own node.id (or mqtt.client_id)")
}

fn too_large(size: usize, limit: usize) -> String {
    format!(
        "the broker sent a packet of {size} bytes, over the {limit} this client reads; if it is retained on a topic \
         majortom subscribes to (its /set topics, Home Assistant's status and discovery topics), clear it"
    )
}

fn not_authorised() -> String {
    "the broker refused the connection: not authorised (check mqtt.username and the password)".to_owned()
}

fn tls_failed(tls: &rumqttc::TlsError) -> String {
    // The build speaks TLS 1.3 only (TLS 1.2's code did not fit the size
    // budget); a broker limited to 1.2 answers with this alert.
    if tls.to_string().contains("ProtocolVersion") {
        return format!(
            "TLS handshake failed: {tls}: the broker offers only TLS 1.2 or older, and majortom speaks TLS 1.3 \
             (on mosquitto 1.6 or later, remove `tls_version` from the listener or set it to tlsv1.3)"
        );
    }
    format!(
        "TLS handshake failed: {tls} (check that mqtt.tls.ca_file holds the CA that signed the broker's certificate, \
         and that the certificate names mqtt.host, or set mqtt.tls.server_name)"
    )
}

fn io_failed(io: &std::io::Error, broker: &str) -> String {
    if broker.split(':').next().is_some_and(|h| h.ends_with(".local")) {
        format!(
            "{io}; note that `.local` (mDNS) names are not resolved by this static build: use the broker's IP address or a DNS name"
        )
    } else {
        io.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str) -> Settings {
        let config = MqttConfig {
            host: host.into(),
            port: 1883,
            client_id: "majortom-pi".into(),
            keepalive: Duration::from_secs(30),
            discovery_prefix: "homeassistant".into(),
            base_topic: "majortom".into(),
            credentials: None,
            tls: None,
            protocol: Protocol::V5,
            command_max_age: Duration::from_secs(30),
        };
        Settings::new(&config, "majortom-pi", None).persistent("majortom/pi/status".into(), "offline")
    }

    #[test]
    fn both_protocols_should_hold_twenty_publishes_in_flight_not_65535_or_100() {
        let (_, eventloop) = settings("b").open(Protocol::V5);
        let EventLoop::V5(eventloop) = eventloop else {
            panic!("an MQTT 5 event loop");
        };
        assert_eq!(eventloop.options.get_outgoing_inflight_upper_limit(), Some(20));
        let (_, eventloop) = settings("b").open(Protocol::V311);
        let EventLoop::V311(eventloop) = eventloop else {
            panic!("an MQTT 3.1.1 event loop");
        };
        assert_eq!(eventloop.mqtt_options.inflight(), 20);
    }

    #[test]
    fn refused_credentials_should_be_explained_as_not_authorised() {
        let failure = failure311(
            &rumqttc::ConnectionError::ConnectionRefused(Code311::NotAuthorized),
            &settings("b"),
        );
        assert!(failure.explanation.contains("not authorised"), "{failure:?}");
        let failure = failure5(
            &v5::ConnectionError::ConnectionRefused(Code5::BadUserNamePassword),
            &settings("b"),
        );
        assert!(failure.explanation.contains("not authorised"), "{failure:?}");
        assert_eq!(failure.cause, Cause::Other);
    }

    #[test]
    fn unresolvable_local_names_should_mention_mdns() {
        let io = std::io::Error::other("failed to lookup address information");
        let failure = failure311(&rumqttc::ConnectionError::Io(io), &settings("broker.local"));
        assert!(failure.explanation.contains("mDNS"), "{failure:?}");
    }

    #[test]
    fn a_session_taken_over_should_name_the_client_id_and_the_fix() {
        let error = v5::ConnectionError::MqttState(v5::StateError::ServerDisconnect {
            reason_code: DisconnectReasonCode::SessionTakenOver,
            reason_string: None,
        });
        let failure = failure5(&error, &settings("b"));
        assert_eq!(failure.cause, Cause::TakenOver);
        assert_eq!(
            failure.explanation,
            "another client uses client id `majortom-pi`: give each Pi its own node.id (or mqtt.client_id)"
        );
    }

    #[test]
    fn errors_should_map_to_the_causes_the_link_acts_on() {
        let s = settings("b");
        let table: Vec<(Failure, Cause)> = vec![
            (
                failure5(
                    &v5::ConnectionError::ConnectionRefused(Code5::UnsupportedProtocolVersion),
                    &s,
                ),
                Cause::Mqtt5Refused,
            ),
            (
                failure5(&v5::ConnectionError::MqttState(v5::StateError::ConnectionAborted), &s),
                Cause::ClosedByBroker,
            ),
            (
                failure311(
                    &rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                        rumqttc::Error::PayloadSizeLimitExceeded(2_000_000),
                    )),
                    &s,
                ),
                Cause::TooLarge,
            ),
            (
                failure311(
                    &rumqttc::ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted),
                    &s,
                ),
                Cause::ClosedByBroker,
            ),
            (
                failure311(
                    &rumqttc::ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
                    &s,
                ),
                Cause::Other,
            ),
        ];
        for (failure, cause) in table {
            assert_eq!(failure.cause, cause, "{failure:?}");
        }
    }
}
