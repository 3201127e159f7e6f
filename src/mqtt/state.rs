//! The MQTT sink's decisions, as a state machine without I/O: a
//! [`SinkEvent`] in (the connection came up or went down, a message
//! arrived, the hub changed, an automation wants to publish), a list of
//! [`SinkAction`]s out (subscribe, publish now, hand on a command), and
//! retained state queued in the [`Outbox`] for the driver to flush as the
//! client has room. The driver (`sink.rs`) owns the client and does the
//! I/O; the events and actions are our own types, so a driver for another
//! client (MQTT 5) maps to them the same way.
//!
//! What it decides: on connect, subscribe and (re)publish availability,
//! discovery and every state; on Home Assistant's birth message,
//! republish; clear retained discovery configs of entities that no longer
//! exist; after falling behind the hub, resync from a snapshot; turn `/set`
//! messages into commands. While disconnected nothing is queued: the hub
//! keeps the latest values, and they all go out on reconnect.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::command::{Command, Publish, Targets};
use crate::hub::{EntitySpec, Hub, HubEvent};
use crate::mqtt::command::parse_command;
use crate::mqtt::discovery;
use crate::mqtt::outbox::{Outbox, Refresh};
use crate::mqtt::topics::Topics;
use crate::node::NodeInfo;
use crate::vocab::Press;

pub const AVAILABLE: &str = "online";
pub const UNAVAILABLE: &str = "offline";

/// What happened, as the sink sees it.
#[derive(Debug, Clone)]
pub enum SinkEvent {
    /// The broker accepted the connection (CONNACK).
    Connected,
    /// The connection broke; the driver is reconnecting.
    Disconnected,
    /// A message on a subscribed topic.
    Message {
        topic: String,
        payload: Vec<u8>,
        /// Delivered from the broker's retained store.
        retain: bool,
    },
    /// A change on the hub.
    Hub(HubEvent),
    /// The sink fell behind the hub's broadcast by this many changes.
    HubLagged(u64),
    /// An automation's message.
    Publish(Publish),
}

/// What the driver is to do now. Every message is sent at QoS 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkAction {
    Subscribe(String),
    /// Send at once, or drop when the client has no room: events and
    /// automations' messages are about the moment.
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    /// Hand on to the command router.
    Command(Command),
}

/// The sink's state between events.
pub struct SinkState {
    topics: Topics,
    node: NodeInfo,
    hub: Arc<Hub>,
    targets: Arc<Targets>,
    /// Retained state waiting for the client; the driver flushes it.
    pub outbox: Outbox,
    refresh: Refresh,
    connected: bool,
}

impl SinkState {
    pub fn new(topics: Topics, node: NodeInfo, hub: Arc<Hub>, targets: Arc<Targets>) -> SinkState {
        SinkState {
            topics,
            node,
            hub,
            targets,
            outbox: Outbox::default(),
            refresh: Refresh::default(),
            connected: false,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The retained `offline` for a clean stop, when connected.
    pub fn goodbye(&self) -> Option<(String, &'static str)> {
        self.connected.then(|| (self.topics.status(), UNAVAILABLE))
    }

    /// Takes one event; appends what to do now to `actions` (retained
    /// state goes to the outbox). The caller's buffer is reused, so an
    /// event allocates nothing for its actions.
    pub fn handle(&mut self, event: SinkEvent, now: Instant, actions: &mut Vec<SinkAction>) {
        match event {
            SinkEvent::Connected => {
                self.connected = true;
                self.outbox.clear();
                let filters = [
                    self.topics.home_assistant_status(),
                    self.topics.discovery_filter(),
                    self.topics.command_filter(),
                ];
                actions.extend(filters.into_iter().map(SinkAction::Subscribe));
                self.outbox.put(self.topics.status(), AVAILABLE.into());
                self.enqueue_everything();
            }
            SinkEvent::Disconnected => {
                self.connected = false;
                // Everything is republished from the hub on reconnect.
                self.outbox.clear();
            }
            SinkEvent::Message { topic, payload, retain } => self.on_message(&topic, &payload, retain, actions),
            SinkEvent::Hub(event) => self.on_hub_event(event, now, actions),
            SinkEvent::HubLagged(missed) => {
                warn!(missed, "MQTT sink fell behind the hub; republishing all states");
                if self.connected {
                    self.enqueue_everything();
                }
            }
            SinkEvent::Publish(publish) => {
                if self.connected {
                    actions.push(SinkAction::Publish {
                        topic: publish.topic,
                        payload: publish.payload.into_bytes(),
                        retain: publish.retain,
                    });
                } else {
                    info!(topic = %publish.topic, "dropping an automation's MQTT message: not connected to the broker");
                }
            }
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], retain: bool, actions: &mut Vec<SinkAction>) {
        if let Some(entity) = self.topics.command_target(topic) {
            match parse_command(&self.targets, entity, payload, retain) {
                Ok(command) => actions.push(SinkAction::Command(command)),
                Err(rejection) => {
                    let payload = String::from_utf8_lossy(payload);
                    warn!(%topic, %payload, "ignoring command: {rejection}");
                }
            }
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

    fn on_hub_event(&mut self, event: HubEvent, now: Instant, actions: &mut Vec<SinkAction>) {
        if !self.connected {
            // Nothing queues while disconnected; the hub keeps the latest
            // values and they are all published on reconnect.
            return;
        }
        match event {
            HubEvent::Registered(spec) => {
                self.enqueue_discovery(&spec);
                if let Some(value) = self.hub.get(&spec.id).and_then(|snapshot| snapshot.value) {
                    self.outbox
                        .put(self.topics.state(&spec.id), value.render(spec.precision).into_bytes());
                }
            }
            HubEvent::Updated(spec, value) => {
                let payload = value.render(spec.precision);
                if self.refresh.due(&spec, &payload, now) {
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
            // Events are moments, not state: not retained, and not kept
            // for later if they cannot go out now.
            HubEvent::Pressed(spec, press) => actions.push(SinkAction::Publish {
                topic: self.topics.event(&spec.id),
                payload: press.as_str().into(),
                retain: false,
            }),
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
        let payload = discovery::entity_config(spec, &self.topics, &self.node).to_string();
        self.outbox
            .put(self.topics.discovery(spec.component, &spec.id), payload.into_bytes());
        if spec.press_events {
            for press in Press::ALL {
                let payload = discovery::trigger_config(spec, press, &self.topics, &self.node).to_string();
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

fn availability_payload(available: bool) -> Vec<u8> {
    if available { AVAILABLE } else { UNAVAILABLE }.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    //! The decisions, table-driven: a hub with a sensor, a relay and a
    //! button input; events in; the actions and the outbox's topics out.

    use super::*;
    use crate::command::{Action, OutputId, Target};
    use crate::hub::{Group, Value};
    use crate::vocab::Component;

    const STATUS: &str = "mt/pi/status";

    fn state() -> SinkState {
        let hub = Hub::new(4);
        hub.register(EntitySpec::sensor("temp", "Temp", Group::Sensors).own_availability());
        hub.register(EntitySpec::output("relay", "Relay", Component::Switch));
        hub.register(EntitySpec::binary_sensor("bell", "Bell", Group::Inputs).press_events());
        hub.set("temp", Value::Number(20.5));
        hub.set("relay", Value::Bool(false));
        let mut targets = Targets::new();
        targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
        let topics = Topics::new("mt", "ha", "pi");
        SinkState::new(topics, crate::fixtures::node(), hub, Arc::new(targets))
    }

    fn message(topic: &str, payload: &str, retain: bool) -> SinkEvent {
        SinkEvent::Message {
            topic: topic.into(),
            payload: payload.into(),
            retain,
        }
    }

    /// Feeds `events` to `state`; returns the actions of the last one and
    /// the outbox's topics afterwards.
    fn feed(state: &mut SinkState, events: Vec<SinkEvent>) -> (Vec<SinkAction>, Vec<String>) {
        let mut actions = Vec::new();
        for event in events {
            actions.clear();
            state.handle(event, Instant::now(), &mut actions);
        }
        (actions, state.outbox.topics().map(str::to_owned).collect())
    }

    /// The retained topics a connect (or a birth message) queues, in order.
    fn everything() -> Vec<String> {
        let mut topics: Vec<String> = [
            "ha/sensor/pi/temp/config",
            "ha/switch/pi/relay/config",
            "ha/binary_sensor/pi/bell/config",
            "ha/device_automation/pi/bell_single/config",
            "ha/device_automation/pi/bell_double/config",
            "ha/device_automation/pi/bell_long/config",
            "mt/pi/temp/availability",
            "mt/pi/temp/state",
            "mt/pi/relay/state",
        ]
        .map(String::from)
        .into();
        topics.insert(0, STATUS.into());
        topics
    }

    #[test]
    fn connecting_should_subscribe_and_queue_availability_discovery_and_states() {
        let mut state = state();
        let (actions, queued) = feed(&mut state, vec![SinkEvent::Connected]);
        let subscribed = ["ha/status", "ha/+/pi/+/config", "mt/pi/+/set"].map(|f| SinkAction::Subscribe(f.into()));
        assert_eq!(actions, subscribed);
        assert_eq!(queued, everything());
        assert_eq!(state.outbox.get(STATUS), Some(&b"online"[..]));
        assert_eq!(state.goodbye(), Some((STATUS.to_owned(), "offline")));
    }

    #[test]
    fn the_decisions_should_follow_the_table() {
        let connected = || vec![SinkEvent::Connected];
        let then = |mut events: Vec<SinkEvent>, more: SinkEvent| {
            events.push(more);
            events
        };
        let empty_outbox = |events: Vec<SinkEvent>| {
            let mut events = events;
            events.insert(1, SinkEvent::Disconnected);
            events.insert(2, SinkEvent::Connected);
            events
        };
        let relay_on = SinkAction::Command(Command {
            target: Target::Output(OutputId(0)),
            action: Action::On,
            origin: crate::command::Origin::Mqtt,
        });
        type Row = (&'static str, Vec<SinkEvent>, Vec<SinkAction>, Option<Vec<String>>);
        let table: Vec<Row> = vec![
            (
                "Home Assistant's birth message republishes everything",
                then(connected(), message("ha/status", "online", false)),
                vec![],
                Some(everything()),
            ),
            (
                "its last will changes nothing",
                then(connected(), message("ha/status", "offline", false)),
                vec![],
                Some(everything()),
            ),
            (
                "a stale discovery config of this node is cleared",
                then(connected(), message("ha/sensor/pi/gone/config", "{}", true)),
                vec![],
                Some([everything(), vec!["ha/sensor/pi/gone/config".into()]].concat()),
            ),
            (
                "a current one is left alone",
                then(connected(), message("ha/switch/pi/relay/config", "{}", true)),
                vec![],
                Some(everything()),
            ),
            (
                "a cleared one needs no clearing",
                then(connected(), message("ha/sensor/pi/gone/config", "", true)),
                vec![],
                Some(everything()),
            ),
            (
                "a command for an output is handed on",
                then(connected(), message("mt/pi/relay/set", "on", false)),
                vec![relay_on],
                None,
            ),
            (
                "a retained command is ignored",
                then(connected(), message("mt/pi/relay/set", "ON", true)),
                vec![],
                None,
            ),
            (
                "a command for an input is ignored",
                then(connected(), message("mt/pi/bell/set", "ON", false)),
                vec![],
                None,
            ),
            (
                "a press is published at once, not retained",
                then(
                    connected(),
                    SinkEvent::Hub(HubEvent::Pressed(
                        Arc::new(EntitySpec::binary_sensor("bell", "Bell", Group::Inputs)),
                        Press::Long,
                    )),
                ),
                vec![SinkAction::Publish {
                    topic: "mt/pi/bell/event".into(),
                    payload: b"long".to_vec(),
                    retain: false,
                }],
                None,
            ),
            (
                "falling behind the hub resyncs everything",
                then(empty_outbox(connected()), SinkEvent::HubLagged(300)),
                vec![],
                Some(everything()),
            ),
            (
                "an automation's message goes out at once",
                then(
                    connected(),
                    SinkEvent::Publish(Publish {
                        topic: "garden/pump".into(),
                        payload: "on".into(),
                        retain: true,
                    }),
                ),
                vec![SinkAction::Publish {
                    topic: "garden/pump".into(),
                    payload: b"on".to_vec(),
                    retain: true,
                }],
                None,
            ),
        ];
        for (what, events, expected, queued) in table {
            let (actions, outbox) = feed(&mut state(), events);
            assert_eq!(actions, expected, "{what}");
            if let Some(queued) = queued {
                assert_eq!(outbox, queued, "{what}");
            }
        }
    }

    #[test]
    fn while_disconnected_nothing_should_be_queued_or_sent() {
        let spec = Arc::new(EntitySpec::sensor("temp", "Temp", Group::Sensors));
        let table = [
            SinkEvent::Hub(HubEvent::Updated(spec.clone(), Value::Number(1.0))),
            SinkEvent::Hub(HubEvent::Availability(spec.clone(), false)),
            SinkEvent::Hub(HubEvent::Pressed(spec, Press::Single)),
            SinkEvent::HubLagged(1),
            SinkEvent::Publish(Publish {
                topic: "a/b".into(),
                payload: "c".into(),
                retain: false,
            }),
        ];
        for event in table {
            let mut state = state();
            let what = format!("{event:?}");
            let (actions, queued) = feed(&mut state, vec![SinkEvent::Connected, SinkEvent::Disconnected, event]);
            assert!(
                actions.is_empty() && queued.is_empty(),
                "{what}: {actions:?} {queued:?}"
            );
            assert_eq!(state.goodbye(), None);
        }
    }

    #[test]
    fn updates_should_queue_their_state_and_replace_an_older_one() {
        let mut state = state();
        feed(&mut state, vec![SinkEvent::Connected]);
        while state.outbox.front().is_some() {
            state.outbox.pop();
        }
        let relay = Arc::new(EntitySpec::output("relay", "Relay", Component::Switch));
        let temp = Arc::new(EntitySpec::sensor("temp", "Temp", Group::Sensors));
        let (_, queued) = feed(
            &mut state,
            vec![
                SinkEvent::Hub(HubEvent::Updated(relay.clone(), Value::Bool(true))),
                SinkEvent::Hub(HubEvent::Availability(temp, false)),
                SinkEvent::Hub(HubEvent::Updated(relay, Value::Bool(false))),
            ],
        );
        assert_eq!(queued, ["mt/pi/relay/state", "mt/pi/temp/availability"]);
        assert_eq!(state.outbox.get("mt/pi/relay/state"), Some(&b"OFF"[..]));
        assert_eq!(state.outbox.get("mt/pi/temp/availability"), Some(&b"offline"[..]));
    }
}
