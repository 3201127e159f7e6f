//! The topic layout, in one place. Users and Home Assistant rely on it:
//!
//! - `<base>/<node>/status`: availability, `online`/`offline`, retained;
//! - `<base>/<node>/info`: the node's version, dashboard and key figures
//!   for the fleet (`crate::fleet::info`), retained;
//! - `<base>/<node>/<entity>/state`: the entity's state, retained;
//! - `<base>/<node>/<entity>/set`: commands to an entity;
//! - `<base>/<node>/fence`: a marker the agent sends itself after it
//!   reconnects to a stored session (what comes before it was queued while
//!   it was away);
//! - `<prefix>/<component>/<node>/<entity>/config`: Home Assistant discovery.
//!
//! Pure string building; no I/O.

use crate::fleet::Kind;
use crate::vocab::{Component, Press};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
    /// `<base>/<node>`
    node_base: String,
    discovery_prefix: String,
    node_id: String,
}

impl Topics {
    pub fn new(base_topic: &str, discovery_prefix: &str, node_id: &str) -> Topics {
        Topics {
            base: base_topic.to_owned(),
            node_base: format!("{base_topic}/{node_id}"),
            discovery_prefix: discovery_prefix.to_owned(),
            node_id: node_id.to_owned(),
        }
    }

    /// The fence the sink sends itself after reconnecting to a stored
    /// session (`state.rs`): `<base>/<node>/fence`, not retained.
    pub fn fence(&self) -> String {
        format!("{}/fence", self.node_base)
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.node_base)
    }

    pub fn info(&self) -> String {
        format!("{}/info", self.node_base)
    }

    /// Every node's `status` and `info`, ours included.
    pub fn fleet_filters(&self) -> [String; 2] {
        [format!("{}/+/status", self.base), format!("{}/+/info", self.base)]
    }

    /// The node and kind of a fleet topic (`<base>/<node>/status|info`).
    pub fn fleet_message<'a>(&self, topic: &'a str) -> Option<(&'a str, Kind)> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        let (node, kind) = rest.split_once('/')?;
        let kind = match kind {
            "status" => Kind::Status,
            "info" => Kind::Info,
            _ => return None,
        };
        (!node.is_empty()).then_some((node, kind))
    }

    pub fn state(&self, entity: &str) -> String {
        self.of_entity(entity, "/state")
    }

    pub fn command(&self, entity: &str) -> String {
        format!("{}/{entity}/set", self.node_base)
    }

    /// Matches the command topic of every entity of this node.
    pub fn command_filter(&self) -> String {
        format!("{}/+/set", self.node_base)
    }

    /// The entity a command topic is for, if it is one of ours.
    pub fn command_target<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let entity = topic
            .strip_prefix(&self.node_base)?
            .strip_prefix('/')?
            .strip_suffix("/set")?;
        (!entity.is_empty() && !entity.contains('/')).then_some(entity)
    }

    /// Press events of an input (`single`, `double`, `long`), not retained.
    pub fn event(&self, entity: &str) -> String {
        self.of_entity(entity, "/event")
    }

    /// The availability of one entity that can fail on its own.
    pub fn availability(&self, entity: &str) -> String {
        self.of_entity(entity, "/availability")
    }

    /// `<base>/<node>/<entity><leaf>`, built without `format!`: it runs for
    /// every state published, and `format!`'s machinery costs several
    /// times the copying.
    fn of_entity(&self, entity: &str, leaf: &str) -> String {
        let mut topic = String::with_capacity(self.node_base.len() + 1 + entity.len() + leaf.len());
        topic.push_str(&self.node_base);
        topic.push('/');
        topic.push_str(entity);
        topic.push_str(leaf);
        topic
    }

    /// The device trigger config of one kind of press of an input.
    pub fn trigger_discovery(&self, entity: &str, press: Press) -> String {
        format!(
            "{}/device_automation/{}/{entity}_{}/config",
            self.discovery_prefix,
            self.node_id,
            press.as_str()
        )
    }

    pub fn discovery(&self, component: Component, entity: &str) -> String {
        format!(
            "{}/{}/{}/{entity}/config",
            self.discovery_prefix,
            component.as_str(),
            self.node_id
        )
    }

    /// Matches every discovery config this node may have published, under
    /// any component; used to find and clear stale ones.
    pub fn discovery_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.discovery_prefix, self.node_id)
    }

    /// Home Assistant's birth and last-will topic.
    pub fn home_assistant_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// True for a topic that `discovery_filter` matches.
    pub fn is_own_discovery(&self, topic: &str) -> bool {
        let Some(rest) = topic
            .strip_prefix(&self.discovery_prefix)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        let levels: Vec<&str> = rest.split('/').collect();
        matches!(levels.as_slice(), [_, node, _, "config"] if *node == self.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_should_follow_the_documented_layout() {
        let t = Topics::new("majortom", "homeassistant", "pi4");
        assert_eq!(t.status(), "majortom/pi4/status");
        assert_eq!(t.state("cpu_usage"), "majortom/pi4/cpu_usage/state");
        assert_eq!(t.command("relay"), "majortom/pi4/relay/set");
        assert_eq!(
            t.discovery(Component::Sensor, "cpu_usage"),
            "homeassistant/sensor/pi4/cpu_usage/config"
        );
        assert_eq!(
            t.discovery(Component::BinarySensor, "throttled"),
            "homeassistant/binary_sensor/pi4/throttled/config"
        );
        assert_eq!(t.discovery_filter(), "homeassistant/+/pi4/+/config");
        assert_eq!(t.home_assistant_status(), "homeassistant/status");
        assert_eq!(t.event("button"), "majortom/pi4/button/event");
        assert_eq!(t.availability("garden"), "majortom/pi4/garden/availability");
        assert_eq!(
            t.trigger_discovery("button", Press::Long),
            "homeassistant/device_automation/pi4/button_long/config"
        );
        assert_eq!(t.command_filter(), "majortom/pi4/+/set");
        assert!(t.is_own_discovery(&t.trigger_discovery("button", Press::Double)));
    }

    #[test]
    fn fleet_topics_should_name_the_node_and_kind() {
        let t = Topics::new("mt", "ha", "pi4");
        assert_eq!(t.info(), "mt/pi4/info");
        assert_eq!(t.fleet_filters(), ["mt/+/status", "mt/+/info"]);
        assert_eq!(t.fleet_message("mt/garage/status"), Some(("garage", Kind::Status)));
        assert_eq!(t.fleet_message("mt/pi4/info"), Some(("pi4", Kind::Info)));
        assert_eq!(t.fleet_message("mt//info"), None);
        assert_eq!(t.fleet_message("mt/a/b/info"), None);
        assert_eq!(t.fleet_message("mt/a/state"), None);
        assert_eq!(t.fleet_message("mtx/a/status"), None);
    }

    #[test]
    fn command_targets_should_be_our_entities_only() {
        let t = Topics::new("majortom", "homeassistant", "pi4");
        assert_eq!(t.command_target("majortom/pi4/relay/set"), Some("relay"));
        assert_eq!(t.command_target("majortom/pi4//set"), None);
        assert_eq!(t.command_target("majortom/pi4/a/b/set"), None);
        assert_eq!(t.command_target("majortom/other/relay/set"), None);
        assert_eq!(t.command_target("majortom/pi4/relay/state"), None);
    }

    #[test]
    fn own_discovery_topics_should_be_recognised_and_others_not() {
        let t = Topics::new("mt", "ha", "pi4");
        assert!(t.is_own_discovery("ha/sensor/pi4/old_entity/config"));
        assert!(!t.is_own_discovery("ha/sensor/other/old_entity/config"));
        assert!(!t.is_own_discovery("ha/sensor/pi4/x/y/config"));
        assert!(!t.is_own_discovery("hax/sensor/pi4/x/config"));
        assert!(!t.is_own_discovery("ha/status"));
    }
}
