//! Home Assistant MQTT discovery payloads, one retained config per entity
//! (per-entity discovery works on every Home Assistant since 2022; the newer
//! device-based form does not). Pure functions: no I/O.

use serde_json::{json, Map, Value as Json};

use crate::hub::{EntitySpec, StateClass};

use crate::mqtt::topics::Topics;
use crate::node::NodeInfo;
use crate::vocab::{Component, Press};

/// Home Assistant sends commands at this QoS (its default is 0): at 1 the
/// broker keeps a command sent while the agent reconnects in its
/// persistent session and delivers it once the agent is back.
const COMMAND_QOS: u8 = 1;

/// A dimmable output's state topic carries its level (0 = off); Home
/// Assistant reads ON/OFF from it through this template.
const LEVEL_TO_STATE: &str = "{{ 'ON' if value | int(0) > 0 else 'OFF' }}";

/// The `device` block shared by every entity of this node, so Home Assistant
/// groups them under one device.
pub fn device_block(node: &NodeInfo) -> Json {
    let mut device = json!({
        "identifiers": [device_identifier(node)],
        "name": node.name,
        "model": node.model,
        "manufacturer": node.manufacturer,
        "sw_version": node.sw_version,
    });
    if let (Some(url), Some(map)) = (&node.configuration_url, device.as_object_mut()) {
        map.insert("configuration_url".into(), Json::from(url.as_str()));
    }
    device
}

pub fn device_identifier(node: &NodeInfo) -> String {
    format!("majortom_{}", node.id)
}

pub fn unique_id(node: &NodeInfo, spec: &EntitySpec) -> String {
    format!("majortom_{}_{}", node.id, spec.id)
}

/// The discovery config of one entity, as published on
/// `Topics::discovery(component, id)`.
pub fn entity_config(spec: &EntitySpec, topics: &Topics, node: &NodeInfo) -> Json {
    let mut config = Map::new();
    let mut put = |key: &str, value: Json| {
        config.insert(key.to_owned(), value);
    };
    put("name", spec.name.as_str().into());
    put("unique_id", unique_id(node, spec).into());
    if spec.component != Component::Button {
        put("state_topic", topics.state(&spec.id).into());
    }
    let mut availability = vec![json!({ "topic": topics.status() })];
    if spec.own_availability {
        availability.push(json!({ "topic": topics.availability(&spec.id) }));
    }
    put("availability", Json::Array(availability));
    // Available only when the agent is online and the entity can be read.
    put("availability_mode", "all".into());
    if let Some(unit) = spec.unit {
        put("unit_of_measurement", unit.into());
    }
    if let Some(class) = spec.device_class {
        put("device_class", class.into());
    }
    if let Some(StateClass::Measurement) = spec.state_class {
        put("state_class", "measurement".into());
    }
    if spec.diagnostic {
        put("entity_category", "diagnostic".into());
    }
    if let Some(icon) = spec.icon {
        put("icon", icon.into());
    }
    if let Some(after) = spec.expire_after {
        put("expire_after", after.as_secs().max(1).into());
    }
    match spec.component {
        Component::Sensor => put("suggested_display_precision", spec.precision.into()),
        Component::BinarySensor => {
            put("payload_on", "ON".into());
            put("payload_off", "OFF".into());
        }
        Component::Button => {
            put("command_topic", topics.command(&spec.id).into());
            put("payload_press", "PRESS".into());
            put("qos", COMMAND_QOS.into());
        }
        Component::Switch | Component::Light | Component::Fan => {
            put("command_topic", topics.command(&spec.id).into());
            put("qos", COMMAND_QOS.into());
            put("payload_on", "ON".into());
            put("payload_off", "OFF".into());
            // The state topic echoes the real pin, so no optimistic guessing.
            put("optimistic", false.into());
            if spec.dimmable {
                // One topic each way: the state is the level in percent (0
                // = off), and a level sent to the command topic sets it.
                let (state, command) = (topics.state(&spec.id), topics.command(&spec.id));
                put("state_value_template", LEVEL_TO_STATE.into());
                if spec.component == Component::Fan {
                    put("percentage_state_topic", state.into());
                    put("percentage_command_topic", command.into());
                } else {
                    put("brightness_state_topic", state.into());
                    put("brightness_command_topic", command.into());
                    put("brightness_scale", 100.into());
                    // Turning on with a brightness sends just the level.
                    put("on_command_type", "brightness".into());
                }
            }
        }
    }
    put("device", device_block(node));
    put("origin", json!({ "name": "majortom", "sw_version": node.sw_version }));
    Json::Object(config)
}

/// The device trigger config for one kind of press of an input, so that
/// Home Assistant offers "long press" etc. in its automation editor.
pub fn trigger_config(spec: &EntitySpec, press: Press, topics: &Topics, node: &NodeInfo) -> Json {
    let kind = match press {
        Press::Single => "button_short_press",
        Press::Double => "button_double_press",
        Press::Long => "button_long_press",
    };
    json!({
        "automation_type": "trigger",
        "topic": topics.event(&spec.id),
        "payload": press.as_str(),
        "type": kind,
        "subtype": spec.name,
        "device": device_block(node),
        "origin": { "name": "majortom", "sw_version": node.sw_version },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::Group;

    fn node() -> NodeInfo {
        NodeInfo {
            id: "pi4".into(),
            name: "Garage Pi".into(),
            model: "Raspberry Pi 4 Model B Rev 1.4".into(),
            manufacturer: "Raspberry Pi Ltd".into(),
            sw_version: "0.1.0".into(),
            configuration_url: Some("http://192.168.1.20:8080/".into()),
        }
    }

    fn check(spec: EntitySpec, expected: Json) {
        let topics = Topics::new("majortom", "homeassistant", "pi4");
        let actual = entity_config(&spec, &topics, &node());
        assert_eq!(actual, expected, "\nactual:   {actual}\nexpected: {expected}");
    }

    fn expected_device() -> Json {
        json!({
            "identifiers": ["majortom_pi4"],
            "name": "Garage Pi",
            "model": "Raspberry Pi 4 Model B Rev 1.4",
            "manufacturer": "Raspberry Pi Ltd",
            "sw_version": "0.1.0",
            "configuration_url": "http://192.168.1.20:8080/",
        })
    }

    #[test]
    fn diagnostic_temperature_sensor_should_carry_class_unit_and_expiry() {
        check(
            EntitySpec::sensor("cpu_temperature", "CPU temperature", Group::System)
                .unit("°C")
                .device_class("temperature")
                .diagnostic()
                .expire_after(Duration::from_secs(30)),
            json!({
                "name": "CPU temperature",
                "unique_id": "majortom_pi4_cpu_temperature",
                "state_topic": "majortom/pi4/cpu_temperature/state",
                "availability": [{"topic": "majortom/pi4/status"}],
                "availability_mode": "all",
                "unit_of_measurement": "°C",
                "device_class": "temperature",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "expire_after": 30,
                "suggested_display_precision": 1,
                "device": expected_device(),
                "origin": {"name": "majortom", "sw_version": "0.1.0"},
            }),
        );
    }

    #[test]
    fn binary_problem_sensor_should_use_on_off_payloads_and_no_state_class() {
        check(
            EntitySpec::binary_sensor("under_voltage", "Under-voltage", Group::System)
                .device_class("problem")
                .icon("mdi:flash-alert"),
            json!({
                "name": "Under-voltage",
                "unique_id": "majortom_pi4_under_voltage",
                "state_topic": "majortom/pi4/under_voltage/state",
                "availability": [{"topic": "majortom/pi4/status"}],
                "availability_mode": "all",
                "device_class": "problem",
                "icon": "mdi:flash-alert",
                "payload_on": "ON",
                "payload_off": "OFF",
                "device": expected_device(),
                "origin": {"name": "majortom", "sw_version": "0.1.0"},
            }),
        );
    }

    #[test]
    fn switch_should_carry_a_command_topic_and_echoed_state() {
        check(
            EntitySpec::output("relay", "Relay", Component::Switch),
            json!({
                "name": "Relay",
                "unique_id": "majortom_pi4_relay",
                "state_topic": "majortom/pi4/relay/state",
                "command_topic": "majortom/pi4/relay/set",
                "availability": [{"topic": "majortom/pi4/status"}],
                "availability_mode": "all",
                "payload_on": "ON",
                "payload_off": "OFF",
                "optimistic": false,
                "qos": 1,
                "device": expected_device(),
                "origin": {"name": "majortom", "sw_version": "0.1.0"},
            }),
        );
    }

    #[test]
    fn pwm_fan_should_take_a_percentage_on_its_command_topic() {
        check(
            EntitySpec::output("fan", "Fan", Component::Fan).dimmable(),
            json!({
                "name": "Fan",
                "unique_id": "majortom_pi4_fan",
                "state_topic": "majortom/pi4/fan/state",
                "command_topic": "majortom/pi4/fan/set",
                "state_value_template": "{{ 'ON' if value | int(0) > 0 else 'OFF' }}",
                "percentage_state_topic": "majortom/pi4/fan/state",
                "percentage_command_topic": "majortom/pi4/fan/set",
                "availability": [{"topic": "majortom/pi4/status"}],
                "availability_mode": "all",
                "payload_on": "ON",
                "payload_off": "OFF",
                "optimistic": false,
                "qos": 1,
                "device": expected_device(),
                "origin": {"name": "majortom", "sw_version": "0.1.0"},
            }),
        );
    }

    #[test]
    fn pwm_light_should_take_a_brightness_in_percent() {
        check(
            EntitySpec::output("lamp", "Lamp", Component::Light).dimmable(),
            json!({
                "name": "Lamp",
                "unique_id": "majortom_pi4_lamp",
                "state_topic": "majortom/pi4/lamp/state",
                "command_topic": "majortom/pi4/lamp/set",
                "state_value_template": "{{ 'ON' if value | int(0) > 0 else 'OFF' }}",
                "brightness_state_topic": "majortom/pi4/lamp/state",
                "brightness_command_topic": "majortom/pi4/lamp/set",
                "brightness_scale": 100,
                "on_command_type": "brightness",
                "availability": [{"topic": "majortom/pi4/status"}],
                "availability_mode": "all",
                "payload_on": "ON",
                "payload_off": "OFF",
                "optimistic": false,
                "qos": 1,
                "device": expected_device(),
                "origin": {"name": "majortom", "sw_version": "0.1.0"},
            }),
        );
    }

    #[test]
    fn sensor_that_can_fail_should_also_depend_on_its_own_availability_topic() {
        let spec = EntitySpec::sensor("garden", "Garden", Group::Sensors)
            .unit("°C")
            .device_class("temperature")
            .own_availability();
        let topics = Topics::new("majortom", "homeassistant", "pi4");
        let config = entity_config(&spec, &topics, &node());
        assert_eq!(
            config["availability"],
            json!([{"topic": "majortom/pi4/status"}, {"topic": "majortom/pi4/garden/availability"}])
        );
        assert_eq!(config["availability_mode"], "all");
        assert!(
            config.get("entity_category").is_none(),
            "a real sensor is not diagnostic"
        );
    }

    #[test]
    fn long_press_trigger_should_match_the_event_payload() {
        let spec = EntitySpec::binary_sensor("doorbell", "Doorbell", Group::Inputs).press_events();
        let topics = Topics::new("majortom", "homeassistant", "pi4");
        assert_eq!(
            trigger_config(&spec, Press::Long, &topics, &node()),
            json!({
                "automation_type": "trigger",
                "topic": "majortom/pi4/doorbell/event",
                "payload": "long",
                "type": "button_long_press",
                "subtype": "Doorbell",
                "device": expected_device(),
                "origin": {"name": "majortom", "sw_version": "0.1.0"},
            })
        );
    }

    #[test]
    fn device_block_should_omit_configuration_url_without_a_dashboard() {
        let node = NodeInfo {
            configuration_url: None,
            ..node()
        };
        let device = device_block(&node);
        assert!(device.get("configuration_url").is_none());
        assert_eq!(device["identifiers"], json!(["majortom_pi4"]));
    }
}
