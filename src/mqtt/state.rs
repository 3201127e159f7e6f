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
//!
//! Stale commands: after an outage longer than `mqtt.command_max_age_s`
//! (or of unknown length: the agent did not stop cleanly, or the machine
//! restarted), commands the broker kept for us in our session are dropped,
//! with one log line. They arrive right after CONNACK; to know where they
//! end, the sink sends itself a fence (a message on its own `fence` topic)
//! after subscribing: what comes before the fence was queued while we were
//! away. MQTT 5 brokers also forget our session after that long (its expiry
//! is the same age) and drop a command whose sender set a Message Expiry
//! Interval that ran out; this rule holds for 3.1.1 too.
//!
//! Messages over [`MAX_MESSAGE_BYTES`] are dropped: an MQTT 5 broker is told
//! never to send them; under 3.1.1 they are read and ignored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::command::{Command, Publish, Targets};
use crate::fleet::Kind;
use crate::hub::{EntitySpec, Hub, HubEvent};
use crate::mqtt::command::parse_command;
use crate::mqtt::discovery;
use crate::mqtt::outbox::{Outbox, Refresh};
use crate::mqtt::topics::Topics;
use crate::node::NodeInfo;
use crate::vocab::Press;

pub const AVAILABLE: &str = "online";
pub const UNAVAILABLE: &str = "offline";

/// The largest message the sink takes (and sends), 64 KiB: commands, Home
/// Assistant's status and discovery configs are far smaller. MQTT 5 brokers
/// are told so (Maximum Packet Size) and drop larger messages for us.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How long after CONNACK our fence may take to come back; a broker that
/// refuses it (an ACL) must not keep the window open for live commands.
const FENCE_TIMEOUT: Duration = Duration::from_secs(3);

/// What happened, as the sink sees it.
#[derive(Debug, Clone)]
pub enum SinkEvent {
    /// The broker accepted the connection (CONNACK); `session_present`: it
    /// kept our session, and may deliver what it queued meanwhile.
    Connected { session_present: bool },
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
    /// Our fleet `info` payload changed (`crate::fleet::publisher`).
    Info(Vec<u8>),
}

/// What the driver is to do now. `Publish` goes at QoS 1; the outbox's
/// retained state at QoS 0 (every reconnect republishes it).
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
    /// A node's `status` or `info`, for the fleet table.
    Fleet {
        kind: Kind,
        node: String,
        payload: Vec<u8>,
        retain: bool,
    },
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
    /// Commands older than this are refused.
    max_age: Duration,
    /// When we last had the broker: the last disconnect, or (at start) the
    /// last clean stop's record; `None` when unknown.
    last_contact: Option<Instant>,
    /// While commands from our stored session may still arrive, after an
    /// outage longer than `max_age`.
    replay: Option<Replay>,
    /// Fences sent so far, for a new payload each time.
    fences: u32,
    /// The fleet is on: subscribe to every node's status and info.
    fleet: bool,
    /// Our latest fleet `info`, republished on every connect.
    info: Option<Vec<u8>>,
}

/// The window in which the broker delivers what it queued while we were
/// away: from CONNACK until our fence comes back.
struct Replay {
    fence: String,
    /// The window closes now at the latest.
    until: Instant,
    /// How long we were away; `None` when unknown.
    away: Option<Duration>,
    dropped: u32,
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
            max_age: Duration::from_secs(30),
            last_contact: None,
            replay: None,
            fences: 0,
            fleet: false,
            info: None,
        }
    }

    /// Takes part in the fleet (`crate::fleet`).
    pub fn with_fleet(mut self) -> SinkState {
        self.fleet = true;
        self
    }

    /// Commands are refused when older than `max_age`; `last_contact` is
    /// when the previous run last had the broker (its record), if known.
    pub fn with_command_max_age(mut self, max_age: Duration, last_contact: Option<Instant>) -> SinkState {
        self.max_age = max_age;
        self.last_contact = last_contact;
        self
    }

    /// When we last had the broker, as of `now`: for the record a clean
    /// stop leaves.
    pub fn last_contact(&self, now: Instant) -> Option<Instant> {
        if self.connected {
            Some(now)
        } else {
            self.last_contact
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
            SinkEvent::Connected { session_present } => {
                self.connected = true;
                self.outbox.clear();
                let filters = [
                    self.topics.home_assistant_status(),
                    self.topics.discovery_filter(),
                    self.topics.command_filter(),
                ];
                actions.extend(filters.into_iter().map(SinkAction::Subscribe));
                self.replay = None;
                let away = self.last_contact.map(|at| now.saturating_duration_since(at));
                if session_present && away.is_none_or(|away| away > self.max_age) {
                    self.open_replay(now, away, actions);
                }
                self.outbox.put(self.topics.status(), AVAILABLE.into());
                if self.fleet {
                    actions.extend(self.topics.fleet_filters().map(SinkAction::Subscribe));
                    if let Some(info) = &self.info {
                        self.outbox.put(self.topics.info(), info.clone());
                    }
                }
                self.enqueue_everything();
            }
            SinkEvent::Disconnected => {
                self.connected = false;
                self.last_contact = Some(now);
                self.replay = None;
                // Everything is republished from the hub on reconnect.
                self.outbox.clear();
            }
            SinkEvent::Message { topic, payload, retain } => self.on_message(&topic, &payload, retain, now, actions),
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
            SinkEvent::Info(payload) => {
                if self.connected {
                    self.outbox.put(self.topics.info(), payload.clone());
                }
                self.info = Some(payload);
            }
        }
    }

    /// Subscribes to the fence and sends it: the broker delivers it after
    /// everything it queued for us.
    fn open_replay(&mut self, now: Instant, away: Option<Duration>, actions: &mut Vec<SinkAction>) {
        self.fences = self.fences.wrapping_add(1);
        let fence = format!("{}-{}", std::process::id(), self.fences);
        let topic = self.topics.fence();
        actions.push(SinkAction::Subscribe(topic.clone()));
        actions.push(SinkAction::Publish {
            topic,
            payload: fence.clone().into_bytes(),
            retain: false,
        });
        self.replay = Some(Replay {
            fence,
            until: now + FENCE_TIMEOUT,
            away,
            dropped: 0,
        });
    }

    /// True (and logged, once per window) when a command is one the broker
    /// kept for us while we were away too long.
    fn stale(&mut self, now: Instant) -> bool {
        let max_age = self.max_age.as_secs();
        let Some(replay) = self.replay.as_mut().filter(|replay| now < replay.until) else {
            return false;
        };
        if replay.dropped == 0 {
            match replay.away {
                Some(away) => warn!(
                    away_s = away.as_secs(),
                    "ignoring commands the broker kept for us while majortom was away longer than \
                     mqtt.command_max_age_s ({max_age} s)"
                ),
                None => warn!(
                    "ignoring commands the broker kept for us while majortom was stopped: how long is unknown \
                     (it did not stop cleanly, or the machine restarted), so they may be older than \
                     mqtt.command_max_age_s ({max_age} s)"
                ),
            }
        }
        replay.dropped += 1;
        true
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], retain: bool, now: Instant, actions: &mut Vec<SinkAction>) {
        if payload.len() > MAX_MESSAGE_BYTES {
            warn!(%topic, bytes = payload.len(), "ignoring a message over {MAX_MESSAGE_BYTES} bytes");
            return;
        }
        if topic == self.topics.fence() {
            if self
                .replay
                .as_ref()
                .is_some_and(|replay| replay.fence.as_bytes() == payload)
            {
                if let Some(replay) = self.replay.take().filter(|replay| replay.dropped > 0) {
                    info!(
                        dropped = replay.dropped,
                        "the commands kept while majortom was away are behind us"
                    );
                }
            }
            return;
        }
        if let Some(entity) = self.topics.command_target(topic) {
            if !retain && self.stale(now) {
                debug!(%topic, "ignoring a stale command");
                return;
            }
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
        } else if let Some((node, kind)) = self.topics.fleet_message(topic).filter(|_| self.fleet) {
            actions.push(SinkAction::Fleet {
                kind,
                node: node.to_owned(),
                payload: payload.to_vec(),
                retain,
            });
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
                if let Some(payload) = self.refresh.payload(&spec, &value, now) {
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
    const CONNECTED: SinkEvent = SinkEvent::Connected { session_present: false };

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

    #[test]
    fn with_the_fleet_on_it_should_subscribe_publish_our_info_and_hand_on_fleet_messages() {
        let mut state = state().with_fleet();
        // An info before the connection waits for it.
        let (actions, outbox) = feed(&mut state, vec![SinkEvent::Info(b"{}".to_vec())]);
        assert!(actions.is_empty() && outbox.is_empty());
        let (actions, outbox) = feed(&mut state, vec![CONNECTED]);
        assert!(
            actions.contains(&SinkAction::Subscribe("mt/+/status".into())),
            "{actions:?}"
        );
        assert!(
            actions.contains(&SinkAction::Subscribe("mt/+/info".into())),
            "{actions:?}"
        );
        assert_eq!(&outbox[..2], [STATUS, "mt/pi/info"]);
        let (actions, _) = feed(&mut state, vec![message("mt/garage/status", "offline", false)]);
        assert_eq!(
            actions,
            [SinkAction::Fleet {
                kind: Kind::Status,
                node: "garage".into(),
                payload: b"offline".to_vec(),
                retain: false
            }]
        );
        let (actions, outbox) = feed(&mut state, vec![SinkEvent::Info(b"{\"a\":1}".to_vec())]);
        assert!(actions.is_empty() && outbox.contains(&"mt/pi/info".to_owned()));
        // Without the fleet, none of it.
        let mut state = self::state();
        let (actions, outbox) = feed(&mut state, vec![SinkEvent::Info(b"{}".to_vec()), CONNECTED]);
        assert!(!actions.contains(&SinkAction::Subscribe("mt/+/info".into())));
        assert!(!outbox.contains(&"mt/pi/info".to_owned()));
        let (actions, _) = feed(&mut state, vec![message("mt/garage/info", "{}", true)]);
        assert!(actions.is_empty());
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
        let (actions, queued) = feed(&mut state, vec![CONNECTED]);
        let subscribed = ["ha/status", "ha/+/pi/+/config", "mt/pi/+/set"].map(|f| SinkAction::Subscribe(f.into()));
        assert_eq!(actions, subscribed);
        assert_eq!(queued, everything());
        assert_eq!(state.outbox.get(STATUS), Some(&b"online"[..]));
        assert_eq!(state.goodbye(), Some((STATUS.to_owned(), "offline")));
    }

    #[test]
    fn the_decisions_should_follow_the_table() {
        let connected = || vec![CONNECTED];
        let then = |mut events: Vec<SinkEvent>, more: SinkEvent| {
            events.push(more);
            events
        };
        let empty_outbox = |events: Vec<SinkEvent>| {
            let mut events = events;
            events.insert(1, SinkEvent::Disconnected);
            events.insert(2, CONNECTED);
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
            let (actions, queued) = feed(&mut state, vec![CONNECTED, SinkEvent::Disconnected, event]);
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
        feed(&mut state, vec![CONNECTED]);
        state.outbox.clear();
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

    /// What a `/set` ON for the relay turns into when it is handed on.
    fn relay_on() -> SinkAction {
        SinkAction::Command(Command {
            target: Target::Output(OutputId(0)),
            action: Action::On,
            origin: crate::command::Origin::Mqtt,
        })
    }

    /// Feeds `(seconds after start, event)`s to a state whose last contact
    /// was `away` seconds before start (`None`: unknown); returns every
    /// action, in order.
    fn timeline(away: Option<u64>, events: Vec<(u64, SinkEvent)>) -> Vec<SinkAction> {
        let start = Instant::now() + Duration::from_secs(1000);
        let last_contact = away.map(|away| start - Duration::from_secs(away));
        let mut state = state().with_command_max_age(Duration::from_secs(30), last_contact);
        let mut all = Vec::new();
        for (at, event) in events {
            let mut actions = Vec::new();
            state.handle(event, start + Duration::from_secs(at), &mut actions);
            all.extend(
                actions
                    .into_iter()
                    .filter(|a| !matches!(a, SinkAction::Subscribe(f) if f != FENCE)),
            );
        }
        all
    }

    const FENCE: &str = "mt/pi/fence";

    fn fence_payload(n: u32) -> String {
        format!("{}-{n}", std::process::id())
    }

    fn fence_sent(n: u32) -> Vec<SinkAction> {
        vec![
            SinkAction::Subscribe(FENCE.into()),
            SinkAction::Publish {
                topic: FENCE.into(),
                payload: fence_payload(n).into_bytes(),
                retain: false,
            },
        ]
    }

    #[test]
    fn commands_the_broker_kept_while_we_were_away_too_long_should_be_dropped_until_the_fence() {
        let resumed = || SinkEvent::Connected { session_present: true };
        let on = || message("mt/pi/relay/set", "ON", false);
        let fence = |n| message(FENCE, &fence_payload(n), false);
        type Row = (&'static str, Option<u64>, Vec<(u64, SinkEvent)>, Vec<SinkAction>);
        let table: Vec<Row> = vec![
            (
                "away 100 s (over 30): the kept command is dropped, a live one after the fence is not",
                Some(100),
                vec![(0, resumed()), (0, on()), (0, fence(1)), (1, on())],
                [fence_sent(1), vec![relay_on()]].concat(),
            ),
            (
                "away 10 s: everything kept is fresh enough",
                Some(10),
                vec![(0, resumed()), (0, on())],
                vec![relay_on()],
            ),
            (
                "away for an unknown time (no clean stop recorded): dropped",
                None,
                vec![(0, resumed()), (0, on()), (0, on()), (0, fence(1)), (0, on())],
                [fence_sent(1), vec![relay_on()]].concat(),
            ),
            (
                "a new session holds nothing old",
                None,
                vec![(0, CONNECTED), (0, on())],
                vec![relay_on()],
            ),
            (
                "a fence that never comes back closes the window after 3 s",
                Some(100),
                vec![(0, resumed()), (2, on()), (3, on())],
                [fence_sent(1), vec![relay_on()]].concat(),
            ),
            (
                "someone else's fence payload closes nothing",
                Some(100),
                vec![(0, resumed()), (0, message(FENCE, "1-1", false)), (0, on())],
                fence_sent(1),
            ),
            (
                "an outage while running counts from the disconnect",
                Some(0),
                vec![
                    (0, CONNECTED),
                    (10, SinkEvent::Disconnected),
                    (50, resumed()),
                    (50, on()),
                    (50, fence(1)),
                    (51, SinkEvent::Disconnected),
                    (60, resumed()),
                    (60, on()),
                ],
                [fence_sent(1), vec![relay_on()]].concat(),
            ),
        ];
        for (what, away, events, expected) in table {
            assert_eq!(timeline(away, events), expected, "{what}");
        }
    }

    #[test]
    fn the_last_contact_should_be_now_while_connected_and_the_disconnect_after() {
        let start = Instant::now();
        let mut state = state().with_command_max_age(Duration::from_secs(30), None);
        assert_eq!(state.last_contact(start), None);
        let mut actions = Vec::new();
        state.handle(CONNECTED, start, &mut actions);
        let later = start + Duration::from_secs(5);
        assert_eq!(state.last_contact(later), Some(later));
        state.handle(SinkEvent::Disconnected, later, &mut actions);
        assert_eq!(state.last_contact(later + Duration::from_secs(60)), Some(later));
    }

    #[test]
    fn a_message_over_64_kib_should_be_ignored_whatever_its_topic() {
        let mut payload = vec![b' '; MAX_MESSAGE_BYTES];
        payload[..2].copy_from_slice(b"ON");
        let fits = SinkEvent::Message {
            topic: "mt/pi/relay/set".into(),
            payload: b"ON".to_vec(),
            retain: false,
        };
        payload.push(b' ');
        let oversized = |topic: &str| SinkEvent::Message {
            topic: topic.into(),
            payload: payload.clone(),
            retain: true,
        };
        let (actions, queued) = feed(
            &mut state(),
            vec![CONNECTED, oversized("ha/sensor/pi/gone/config"), oversized("ha/status")],
        );
        assert!(actions.is_empty());
        assert_eq!(queued, everything(), "no clearing, no republishing");
        let (actions, _) = feed(&mut state(), vec![CONNECTED, oversized("mt/pi/relay/set"), fits]);
        assert_eq!(actions, vec![relay_on()], "only the one that fits");
    }
}
