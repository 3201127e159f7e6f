//! What an entity is (its [`EntitySpec`]: id, name, component, unit, …)
//! and what value it can have ([`Value`]). Built by the sources at start;
//! the sinks derive discovery payloads and API output from it.

use std::time::Duration;

use crate::vocab::Component;

/// Which card of the dashboard an entity belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    System,
    Inputs,
    Outputs,
    Sensors,
    Automations,
}

/// Home Assistant's `state_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateClass {
    Measurement,
}

/// Everything that describes an entity apart from its value. Built once by a
/// source at start-up; sinks derive discovery payloads and API output from it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySpec {
    /// Stable id within the node: `[a-z0-9_]+`, used in topics and URLs.
    pub id: String,
    /// Human-readable name ("CPU usage").
    pub name: String,
    pub component: Component,
    pub group: Group,
    pub unit: Option<&'static str>,
    /// Home Assistant device class ("temperature", "problem", ...).
    pub device_class: Option<&'static str>,
    pub state_class: Option<StateClass>,
    /// True for values about the agent's host rather than the world
    /// (Home Assistant's `entity_category: diagnostic`).
    pub diagnostic: bool,
    pub icon: Option<&'static str>,
    /// Decimals shown and published for numbers.
    pub precision: u8,
    /// The source republishes at least this often; consumers may treat the
    /// entity as unavailable when it falls silent for longer.
    pub expire_after: Option<Duration>,
    /// The entity can be unavailable on its own (a sensor that fails to
    /// read) while the agent runs, so it gets its own availability topic.
    pub own_availability: bool,
    /// The entity emits press events (single, double, long), discovered as
    /// Home Assistant device triggers.
    pub press_events: bool,
    /// An output with a level (PWM): its value is the level in percent, 0
    /// when off, and it takes levels as commands.
    pub dimmable: bool,
}

impl EntitySpec {
    /// A numeric sensor with no unit, measurement state class and one decimal.
    pub fn sensor(id: &str, name: &str, group: Group) -> EntitySpec {
        EntitySpec {
            id: id.to_owned(),
            name: name.to_owned(),
            component: Component::Sensor,
            group,
            unit: None,
            device_class: None,
            state_class: Some(StateClass::Measurement),
            diagnostic: false,
            icon: None,
            precision: 1,
            expire_after: None,
            own_availability: false,
            press_events: false,
            dimmable: false,
        }
    }

    /// An output: a switch or a light, with ON/OFF state.
    pub fn output(id: &str, name: &str, component: Component) -> EntitySpec {
        EntitySpec {
            component,
            ..EntitySpec::binary_sensor(id, name, Group::Outputs)
        }
    }

    /// An on/off sensor.
    pub fn binary_sensor(id: &str, name: &str, group: Group) -> EntitySpec {
        EntitySpec {
            component: Component::BinarySensor,
            state_class: None,
            precision: 0,
            ..EntitySpec::sensor(id, name, group)
        }
    }

    pub fn unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    pub fn device_class(mut self, class: &'static str) -> Self {
        self.device_class = Some(class);
        self
    }

    pub fn icon(mut self, icon: &'static str) -> Self {
        self.icon = Some(icon);
        self
    }

    pub fn precision(mut self, decimals: u8) -> Self {
        self.precision = decimals;
        self
    }

    pub fn diagnostic(mut self) -> Self {
        self.diagnostic = true;
        self
    }

    pub fn expire_after(mut self, after: Duration) -> Self {
        self.expire_after = Some(after);
        self
    }

    pub fn own_availability(mut self) -> Self {
        self.own_availability = true;
        self
    }

    pub fn press_events(mut self) -> Self {
        self.press_events = true;
        self
    }

    /// An output whose value is its level in percent (0 = off).
    pub fn dimmable(mut self) -> Self {
        self.dimmable = true;
        self.precision = 0;
        self
    }
}

/// A value of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
}

impl Value {
    /// The text published on MQTT and shown in the API: numbers rounded to
    /// `precision` decimals, booleans as Home Assistant's `ON`/`OFF`.
    pub fn render(&self, precision: u8) -> String {
        match self {
            Value::Number(n) => format!("{:.*}", usize::from(precision), n),
            Value::Bool(true) => "ON".to_owned(),
            Value::Bool(false) => "OFF".to_owned(),
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_should_round_numbers_and_spell_booleans_for_home_assistant() {
        assert_eq!(Value::Number(12.345).render(1), "12.3");
        assert_eq!(Value::Number(3.0).render(0), "3");
        assert_eq!(Value::Bool(true).render(0), "ON");
        assert_eq!(Value::Bool(false).render(0), "OFF");
    }
}
