//! Decides what to publish: follows the hub, (re)publishes availability,
//! discovery and states after every connect and every Home Assistant birth
//! message, clears discovery configs of entities that no longer exist, and
//! publishes `offline` on a clean stop.
//!
//! Messages wait in an [`Outbox`] that keeps only the latest payload per
//! topic, so a slow or absent broker never grows a queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use rumqttc::{AsyncClient, ClientError, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::automations::Publish;
use crate::command::{self, Action, Command, CommandSender, Origin};
use crate::config::MqttConfig;
use crate::hub::{Component, EntitySpec, Hub, HubEvent, Press};
use crate::mqtt::connection::{drive, ConnectionEvent};
use crate::mqtt::discovery;
use crate::mqtt::tls::{self, TlsError};
use crate::mqtt::topics::Topics;
use crate::status::AgentStatus;

/// Requests rumqttc buffers between the sink and the connection task; more
/// wait in the outbox.
const REQUEST_CHANNEL_CAPACITY: usize = 64;
/// How long a stop may spend getting `offline` and DISCONNECT out.
const STOP_GRACE: Duration = Duration::from_millis(1000);
/// How soon to retry a flush that found rumqttc's channel full.
const FLUSH_RETRY: Duration = Duration::from_millis(20);

const AVAILABLE: &str = "online";
const UNAVAILABLE: &str = "offline";

/// Everything the sink needs that can fail, built before the agent starts so
/// that bad TLS material is a start-up error.
pub struct Prepared {
    options: MqttOptions,
    topics: Topics,
    broker: String,
}

/// Builds the connection options (Last Will, credentials, TLS) and topics.
pub fn prepare(config: &MqttConfig, node_id: &str) -> Result<Prepared, TlsError> {
    let topics = Topics::new(&config.base_topic, &config.discovery_prefix, node_id);
    let mut options = options(config, &config.client_id)?;
    // A persistent session: the broker keeps our subscriptions and queues
    // QoS 1 commands sent while we are reconnecting (discovery asks Home
    // Assistant for QoS 1), and delivers them once we are back. Everything
    // we publish is republished on connect anyway.
    options.set_clean_session(false);
    options.set_last_will(LastWill::new(topics.status(), UNAVAILABLE, QoS::AtLeastOnce, true));
    Ok(Prepared {
        options,
        topics,
        broker: format!("{}:{}", config.host, config.port),
    })
}

/// Broker, credentials and TLS as the config says, under `client_id`, with
/// a clean session and no Last Will (`prepare` adds the agent's; `doctor`
/// connects with these as they are).
pub fn options(config: &MqttConfig, client_id: &str) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(client_id, &config.host, config.port);
    options.set_keep_alive(config.keepalive);
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some(credentials) = &config.credentials {
        options.set_credentials(&credentials.username, credentials.password.as_deref().unwrap_or(""));
    }
    if let Some(tls) = &config.tls {
        let client_config = tls::client_config(tls)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(client_config)));
    }
    Ok(options)
}

/// Runs the sink until `cancel` fires, then publishes `offline` and
/// disconnects.
pub async fn run(
    prepared: Prepared,
    hub: Arc<Hub>,
    status: Arc<AgentStatus>,
    commands: CommandSender,
    publishes: mpsc::Receiver<Publish>,
    cancel: CancellationToken,
) {
    let Prepared {
        options,
        topics,
        broker,
    } = prepared;
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
    let (events_tx, events) = mpsc::channel(16);
    let mut driver = tokio::spawn(drive(eventloop, events_tx, status.clone(), broker));

    let mut sink = Sink {
        client,
        topics,
        hub,
        status,
        commands,
        outbox: Outbox::default(),
        refresh: Refresh::default(),
        connected: false,
    };
    sink.run(events, publishes, cancel).await;

    if sink.connected {
        let client = sink.client.clone();
        let topic = sink.topics.status();
        let goodbye = async {
            // `publish().await` waits for room in the channel, which the
            // connection task keeps draining.
            let _ = client.publish(topic, QoS::AtLeastOnce, true, UNAVAILABLE).await;
            let _ = client.disconnect().await;
            let _ = (&mut driver).await;
        };
        if tokio::time::timeout(STOP_GRACE, goodbye).await.is_err() {
            warn!("could not publish `offline` to the MQTT broker in time; the Last Will will say it");
        } else {
            info!("published offline and disconnected from MQTT broker");
        }
    }
    driver.abort();
}

struct Sink {
    client: AsyncClient,
    topics: Topics,
    hub: Arc<Hub>,
    status: Arc<AgentStatus>,
    commands: CommandSender,
    outbox: Outbox,
    refresh: Refresh,
    connected: bool,
}

impl Sink {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<ConnectionEvent>,
        mut publishes: mpsc::Receiver<Publish>,
        cancel: CancellationToken,
    ) {
        let mut changes = self.hub.subscribe();
        loop {
            let retry_flush = !self.outbox.is_empty() && self.connected;
            tokio::select! {
                biased;
                                _ = cancel.cancelled() => {
                    // Producers stop before sinks: what they set last (the
                    // outputs' safe states) goes out before `offline`.
                    while let Ok(event) = changes.try_recv() {
                        self.on_hub_event(event);
                    }
                    if self.connected {
                        self.outbox.flush(&self.client);
                    }
                    return;
                }
                event = events.recv() => match event {
                    Some(event) => self.on_connection_event(event),
                    None => return,
                },
                change = changes.recv() => match change {
                    Ok(event) => self.on_hub_event(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "MQTT sink fell behind the hub; republishing all states");
                        if self.connected {
                            self.enqueue_everything();
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(publish) = publishes.recv() => self.publish_for_automation(publish),
                _ = tokio::time::sleep(FLUSH_RETRY), if retry_flush => {}
            }
            if self.connected {
                self.outbox.flush(&self.client);
            }
        }
    }

    fn on_connection_event(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Connected => {
                self.connected = true;
                self.outbox.clear();
                let filters = [
                    self.topics.home_assistant_status(),
                    self.topics.discovery_filter(),
                    self.topics.command_filter(),
                ];
                for filter in filters {
                    if let Err(error) = self.client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        warn!(%filter, %error, "could not subscribe");
                    }
                }
                self.outbox.put(self.topics.status(), AVAILABLE.into());
                self.enqueue_everything();
            }
            ConnectionEvent::Disconnected => {
                self.connected = false;
                // Everything is republished from the hub on reconnect.
                self.outbox.clear();
            }
            ConnectionEvent::Message { topic, payload, retain } => self.on_message(&topic, &payload, retain),
            // The driver has logged it.
            ConnectionEvent::Failed(_) => {}
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], retain: bool) {
        if let Some(entity) = self.topics.command_target(topic) {
            self.on_command(entity, topic, payload, retain);
        } else if topic == self.topics.home_assistant_status() {
            if payload == AVAILABLE.as_bytes() {
                info!("Home Assistant is online; republishing discovery and states");
                self.enqueue_everything();
            }
        } else if self.topics.is_own_discovery(topic) {
            if !payload.is_empty() && !self.current_discovery_topics().contains(topic) {
                info!(%topic, "clearing discovery config of an entity that no longer exists");
                self.outbox.put(topic.to_owned(), Vec::new());
            }
        } else {
            warn!(%topic, "ignoring message on unexpected topic");
        }
    }

    /// An automation's message: sent now, or dropped with a log line when
    /// the broker is away (an automation's message is about the moment).
    fn publish_for_automation(&mut self, publish: Publish) {
        if !self.connected {
            info!(topic = %publish.topic, "dropping an automation's MQTT message: not connected to the broker");
            return;
        }
        if let Err(error) = self
            .client
            .try_publish(&publish.topic, QoS::AtLeastOnce, publish.retain, publish.payload)
        {
            warn!(topic = %publish.topic, %error, "dropping an automation's MQTT message");
        }
    }

    /// A message on a `/set` topic: valid commands for outputs go to the
    /// outputs task; anything else is logged and changes nothing.
    fn on_command(&mut self, entity: &str, topic: &str, payload: &[u8], retain: bool) {
        match parse_command(&self.hub, entity, payload, retain) {
            Ok(command) => {
                if let Err(error) = self.commands.try_send(command) {
                    warn!(%topic, %error, "dropping command: the outputs are not keeping up");
                }
            }
            Err(rejection) => {
                let payload = String::from_utf8_lossy(payload);
                warn!(%topic, %payload, "ignoring command: {rejection}");
            }
        }
    }

    fn on_hub_event(&mut self, event: HubEvent) {
        if !self.connected {
            // Nothing queues while disconnected; the hub keeps the latest
            // values and they are all published on reconnect.
            return;
        }
        match event {
            HubEvent::Registered(spec) => {
                self.enqueue_discovery(&spec);
                if let Some(snapshot) = self.hub.get(&spec.id) {
                    if let Some(value) = snapshot.value {
                        self.outbox
                            .put(self.topics.state(&spec.id), value.render(spec.precision).into_bytes());
                    }
                }
            }
            HubEvent::Updated(spec, value) => {
                let payload = value.render(spec.precision);
                if self.refresh.due(&spec, &payload, Instant::now()) {
                    self.outbox.put(self.topics.state(&spec.id), payload.into_bytes());
                }
            }
            HubEvent::Availability(spec, available) => {
                self.outbox
                    .put(self.topics.availability(&spec.id), availability_payload(available));
            }
            // Attributes are for the dashboard; Home Assistant has the
            // state.
            HubEvent::Attributes(_) => {}
            HubEvent::Pressed(spec, press) => {
                // Events are moments, not state: not retained, and not kept
                // for later if they cannot go out now.
                let topic = self.topics.event(&spec.id);
                if let Err(error) = self.client.try_publish(&topic, QoS::AtLeastOnce, false, press.as_str()) {
                    warn!(%topic, %error, "dropping press event");
                }
            }
        }
    }

    /// Discovery for every entity, then availability and every known state.
    fn enqueue_everything(&mut self) {
        self.refresh.clear();
        let snapshot = self.hub.snapshot();
        for entity in &snapshot {
            self.enqueue_discovery(&entity.spec);
        }
        for entity in snapshot.iter().filter(|e| e.spec.own_availability) {
            self.outbox.put(
                self.topics.availability(&entity.spec.id),
                availability_payload(entity.available),
            );
        }
        for entity in &snapshot {
            if let Some(value) = &entity.value {
                self.outbox.put(
                    self.topics.state(&entity.spec.id),
                    value.render(entity.spec.precision).into_bytes(),
                );
            }
        }
    }

    fn enqueue_discovery(&mut self, spec: &EntitySpec) {
        let node = &self.status.node;
        let payload = discovery::entity_config(spec, &self.topics, node).to_string();
        self.outbox
            .put(self.topics.discovery(spec.component, &spec.id), payload.into_bytes());
        if spec.press_events {
            for press in Press::ALL {
                let payload = discovery::trigger_config(spec, press, &self.topics, node).to_string();
                self.outbox
                    .put(self.topics.trigger_discovery(&spec.id, press), payload.into_bytes());
            }
        }
    }

    /// Every discovery topic the current entities use.
    fn current_discovery_topics(&self) -> HashSet<String> {
        let mut topics = HashSet::new();
        for entity in self.hub.snapshot() {
            let spec = &entity.spec;
            topics.insert(self.topics.discovery(spec.component, &spec.id));
            if spec.press_events {
                topics.extend(Press::ALL.map(|press| self.topics.trigger_discovery(&spec.id, press)));
            }
        }
        topics
    }
}

/// Why a message on a `/set` topic was not turned into a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("it was retained; publish commands without the retain flag")]
    Retained,
    #[error("`{0}` is not an output")]
    NotAnOutput(String),
    #[error("expected ON, OFF or TOGGLE (or a level 0-100 for a PWM output)")]
    BadPayload,
    #[error("a button takes PRESS")]
    NotAPress,
}

/// A `/set` message for `entity` as a command, or why not. Pure: the
/// caller logs rejections and sends commands.
pub fn parse_command(hub: &Hub, entity: &str, payload: &[u8], retain: bool) -> Result<Command, Rejection> {
    if retain {
        // A retained command would be replayed at every reconnect and undo
        // whatever happened since; commands are one-shot.
        return Err(Rejection::Retained);
    }
    let Some(spec) = hub.get(entity).map(|e| e.spec).filter(|s| s.component.is_commandable()) else {
        return Err(Rejection::NotAnOutput(entity.to_owned()));
    };
    let action = match Action::parse(payload) {
        Some(action) if command::accepts(&spec, action) => action,
        _ if spec.component == Component::Button => return Err(Rejection::NotAPress),
        _ => return Err(Rejection::BadPayload),
    };
    Ok(Command {
        output: entity.to_owned(),
        action,
        origin: Origin::Mqtt,
    })
}

/// Skips republishing an unchanged value of a periodic entity (one with
/// `expire_after`) until a third of its expiry has passed: the retained
/// state is already right, and a Pi Zero's CPU and Wi-Fi are better spent
/// elsewhere. Entities without expiry (inputs, outputs) always publish:
/// there every update means something.
#[derive(Default)]
struct Refresh {
    sent: HashMap<String, (String, Instant)>,
}

impl Refresh {
    fn due(&mut self, spec: &EntitySpec, payload: &str, now: Instant) -> bool {
        let Some(expire_after) = spec.expire_after else {
            return true;
        };
        if let Some((last, at)) = self.sent.get(&spec.id) {
            if last == payload && now.duration_since(*at) < expire_after / 3 {
                return false;
            }
        }
        self.sent.insert(spec.id.clone(), (payload.to_owned(), now));
        true
    }

    fn clear(&mut self) {
        self.sent.clear();
    }
}

fn availability_payload(available: bool) -> Vec<u8> {
    if available { AVAILABLE } else { UNAVAILABLE }.as_bytes().to_vec()
}

/// Retained messages waiting to be handed to rumqttc, in first-queued order,
/// holding only the latest payload per topic. Everything we publish is
/// retained state, so an older payload for the same topic is worthless.
#[derive(Default)]
struct Outbox {
    order: VecDeque<String>,
    payloads: HashMap<String, Vec<u8>>,
}

impl Outbox {
    fn put(&mut self, topic: String, payload: Vec<u8>) {
        if self.payloads.insert(topic.clone(), payload).is_none() {
            self.order.push_back(topic);
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn clear(&mut self) {
        self.order.clear();
        self.payloads.clear();
    }

    /// Hands messages to rumqttc until its channel is full.
    fn flush(&mut self, client: &AsyncClient) {
        while let Some(topic) = self.order.front() {
            let Some(payload) = self.payloads.get(topic) else {
                self.order.pop_front();
                continue;
            };
            match client.try_publish(topic.as_str(), QoS::AtLeastOnce, true, payload.clone()) {
                Ok(()) => {
                    if let Some(topic) = self.order.pop_front() {
                        self.payloads.remove(&topic);
                    }
                }
                // Full (or the connection task is gone): try again later.
                Err(ClientError::TryRequest(_) | ClientError::Request(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_command_should_toggle_relay_and_everything_else_should_be_rejected() {
        use crate::hub::{Component, EntitySpec, Group};
        let hub = Hub::new(1);
        hub.register(EntitySpec::output("relay", "Relay", Component::Switch));
        hub.register(EntitySpec::binary_sensor("door", "Door", Group::Inputs));
        let command = parse_command(&hub, "relay", b"toggle", false).expect("valid");
        assert_eq!((command.output.as_str(), command.action), ("relay", Action::Toggle));
        assert_eq!(parse_command(&hub, "relay", b"ON", true), Err(Rejection::Retained));
        assert_eq!(
            parse_command(&hub, "door", b"ON", false),
            Err(Rejection::NotAnOutput("door".into()))
        );
        assert_eq!(
            parse_command(&hub, "ghost", b"ON", false),
            Err(Rejection::NotAnOutput("ghost".into()))
        );
        assert_eq!(parse_command(&hub, "relay", b"50%", false), Err(Rejection::BadPayload));
    }

    #[test]
    fn unchanged_periodic_values_should_be_republished_only_every_third_of_their_expiry() {
        use crate::hub::Group;
        let periodic = EntitySpec::sensor("load_1m", "Load", Group::System).expire_after(Duration::from_secs(30));
        let input = EntitySpec::binary_sensor("door", "Door", Group::Inputs);
        let mut refresh = Refresh::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(refresh.due(&periodic, "0.50", at(0)));
        assert!(!refresh.due(&periodic, "0.50", at(1)), "unchanged, 1 s later");
        assert!(refresh.due(&periodic, "0.51", at(2)), "changed");
        assert!(!refresh.due(&periodic, "0.51", at(11)));
        assert!(
            refresh.due(&periodic, "0.51", at(12)),
            "10 s (a third of 30) since the last send"
        );
        assert!(
            refresh.due(&input, "ON", at(12)) && refresh.due(&input, "ON", at(12)),
            "inputs always"
        );
        refresh.clear();
        assert!(
            refresh.due(&periodic, "0.51", at(13)),
            "after a reconnect everything goes out"
        );
    }

    #[test]
    fn outbox_should_keep_only_the_latest_payload_per_topic_in_first_queued_order() {
        let mut outbox = Outbox::default();
        outbox.put("a".into(), b"1".to_vec());
        outbox.put("b".into(), b"1".to_vec());
        outbox.put("a".into(), b"2".to_vec());
        assert_eq!(outbox.order, VecDeque::from(["a".to_owned(), "b".to_owned()]));
        assert_eq!(outbox.payloads["a"], b"2");
        assert_eq!(outbox.payloads.len(), 2);
    }

    #[tokio::test]
    async fn outbox_should_stop_flushing_when_the_client_channel_is_full_and_keep_the_rest() {
        let options = MqttOptions::new("t", "127.0.0.1", 1);
        // The event loop is never polled, so the channel fills up.
        let (client, _eventloop) = AsyncClient::new(options, 2);
        let mut outbox = Outbox::default();
        for n in 0..5 {
            outbox.put(format!("t/{n}"), b"x".to_vec());
        }
        outbox.flush(&client);
        assert_eq!(outbox.order.len(), 3, "two fit in the channel, three wait");
        assert_eq!(outbox.order.front().map(String::as_str), Some("t/2"));
    }
}
