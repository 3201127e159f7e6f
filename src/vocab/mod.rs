//! The shared words of majortom: what the config, the sources, the hub, the
//! hal, the commands and the sinks all talk about. A leaf: it imports
//! nothing of ours, so every other module may import it and none of them
//! needs to import another just for a word.
//!
//! Owns names and their spelling (entity ids, Home Assistant components,
//! quantities and their units, the agent's own buttons, the pin range);
//! owns no behaviour beyond spelling and checking them.

pub mod filter;
pub mod gpio;

pub use gpio::{Backend, Pin, PwmChannel};

use std::fmt;

/// The Home Assistant platform an entity is discovered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Sensor,
    BinarySensor,
    /// An output Home Assistant can turn on and off.
    Switch,
    /// An output shown as a light (same ON/OFF commands as a switch; a
    /// dimmable one also takes a brightness).
    Light,
    /// An output shown as a fan (ON/OFF; on PWM also a speed percentage).
    Fan,
    /// A push button in Home Assistant (restart, reboot): PRESS, no state.
    Button,
}

impl Component {
    /// The component name used in discovery topics.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Sensor => "sensor",
            Component::BinarySensor => "binary_sensor",
            Component::Switch => "switch",
            Component::Light => "light",
            Component::Fan => "fan",
            Component::Button => "button",
        }
    }

    /// True for entities that take commands (ON/OFF/TOGGLE, or PRESS).
    pub fn is_commandable(self) -> bool {
        matches!(
            self,
            Component::Switch | Component::Light | Component::Fan | Component::Button
        )
    }
}

/// A button press, as told apart by an input with `events = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Press {
    Single,
    Double,
    Long,
}

impl Press {
    pub const ALL: [Press; 3] = [Press::Single, Press::Double, Press::Long];

    /// The payload on the event topic, and the word in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Press::Single => "single",
            Press::Double => "double",
            Press::Long => "long",
        }
    }
}

/// What a command asks of its target: `ON`, `OFF`, `TOGGLE`, `PRESS` or a
/// level. A closed set: a new kind of command is a new variant, and
/// `accepted_by` says which targets take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    On,
    Off,
    Toggle,
    /// For buttons.
    Press,
    /// A level in percent for a dimmable (PWM) output: 0 turns it off.
    Level(u8),
}

impl Action {
    /// `ON`, `OFF`, `TOGGLE` or `PRESS`, in any case, or a level `0` to
    /// `100`; surrounding whitespace ignored.
    pub fn parse(payload: &[u8]) -> Option<Action> {
        const WORDS: [(&str, Action); 4] = [
            ("ON", Action::On),
            ("OFF", Action::Off),
            ("TOGGLE", Action::Toggle),
            ("PRESS", Action::Press),
        ];
        let text = std::str::from_utf8(payload).ok()?.trim();
        if !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().filter(|n| *n <= 100).map(Action::Level);
        }
        WORDS
            .iter()
            .find(|(word, _)| text.eq_ignore_ascii_case(word))
            .map(|(_, action)| *action)
    }

    /// Whether an entity of `component` takes this: buttons take PRESS,
    /// switches, lights and fans ON, OFF and TOGGLE, dimmable ones also a
    /// level; nothing else takes any.
    pub fn accepted_by(self, component: Component, dimmable: bool) -> bool {
        match (component, self) {
            (Component::Button, action) => action == Action::Press,
            (Component::Switch | Component::Light | Component::Fan, Action::Level(_)) => dimmable,
            (Component::Switch | Component::Light | Component::Fan, action) => action != Action::Press,
            (Component::Sensor | Component::BinarySensor, _) => false,
        }
    }
}

/// A physical quantity, with the unit majortom reports it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// °C
    Temperature,
    /// % relative humidity
    Humidity,
    /// hPa
    Pressure,
}

impl Quantity {
    /// Every quantity, in the order entities are declared.
    pub const ALL: [Quantity; 3] = [Quantity::Temperature, Quantity::Humidity, Quantity::Pressure];

    /// Home Assistant's device class.
    pub fn device_class(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
            Quantity::Pressure => "pressure",
        }
    }

    /// The unit values are reported in (readers convert to it).
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Temperature => "°C",
            Quantity::Humidity => "%",
            Quantity::Pressure => "hPa",
        }
    }

    /// The entity id suffix of a sensor with several quantities, and the
    /// word appended to its display name.
    pub fn suffix(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
            Quantity::Pressure => "pressure",
        }
    }

    /// Decimals published. One for each: finer than any of our sensors'
    /// accuracy (±0.5 °C, ±2 %RH, ±1 hPa) already.
    pub fn precision(self) -> u8 {
        match self {
            Quantity::Temperature | Quantity::Humidity | Quantity::Pressure => 1,
        }
    }
}

/// The internal resistor of an input pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pull {
    Up,
    Down,
    Off,
}

/// The highest BCM GPIO number on the Pi's 40-pin header (the pins are 0
/// to this).
pub const MAX_PIN: u8 = 27;

/// Home Assistant's binary sensor device classes; any other value makes it
/// reject the discovery message.
pub const BINARY_SENSOR_CLASSES: &[&str] = &[
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
];

/// The agent's own Home Assistant buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    /// Ends the run; the binary starts again from scratch.
    Restart,
    /// Runs `buttons.reboot_command`.
    Reboot,
}

impl Button {
    pub const ALL: [Button; 2] = [Button::Restart, Button::Reboot];

    /// The entity id: the one place these words are spelled.
    pub fn id(self) -> &'static str {
        match self {
            Button::Restart => "restart",
            Button::Reboot => "reboot",
        }
    }

    /// The name shown in Home Assistant and on the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            Button::Restart => "Restart majortom",
            Button::Reboot => "Reboot host",
        }
    }
}

impl fmt::Display for Button {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What can be wrong with a node of the fleet, besides being offline: its
/// `info` says so (`crate::fleet`), and automations trigger on them.
pub const FLEET_ALERTS: [&str; 3] = ["under_voltage", "throttled", "disk_full"];

/// The switch entity of the automation named `name`.
pub fn automation_id(name: &str) -> String {
    format!("automation_{name}")
}

/// The entity ids of the system source (host statistics).
pub mod system {
    /// Every numeric entity id the system source can create, on any machine.
    pub const NUMERIC_ENTITY_IDS: [&str; 12] = [
        "cpu_usage",
        "load_1m",
        "load_5m",
        "load_15m",
        "memory_used",
        "swap_used",
        "disk_used",
        "uptime",
        "network_rx",
        "network_tx",
        "cpu_temperature",
        "cpu_frequency",
    ];

    /// Every on/off entity id it can create: the throttling flags.
    pub const FLAG_ENTITY_IDS: [&str; 8] = [
        "under_voltage",
        "frequency_capped",
        "throttled",
        "soft_temp_limit",
        "under_voltage_occurred",
        "frequency_capped_occurred",
        "throttled_occurred",
        "soft_temp_limit_occurred",
    ];

    /// Every entity id the system source can create; user-named entities
    /// may not take these.
    pub fn entity_ids() -> impl Iterator<Item = &'static str> {
        NUMERIC_ENTITY_IDS.into_iter().chain(FLAG_ENTITY_IDS)
    }
}

/// Every entity id the agent itself may create whatever the config says:
/// the system source's and the buttons'. The config refuses them as names.
pub fn reserved_ids() -> impl Iterator<Item = &'static str> {
    system::entity_ids().chain(Button::ALL.map(Button::id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_should_parse_case_insensitively_and_reject_anything_else() {
        let check =
            |payload: &[u8], expected: Option<Action>| assert_eq!(Action::parse(payload), expected, "{payload:?}");
        check(b"ON", Some(Action::On));
        check(b"on", Some(Action::On));
        check(b" Off\n", Some(Action::Off));
        check(b"ToGgLe", Some(Action::Toggle));
        check(b"PRESS", Some(Action::Press));
        check(b"40", Some(Action::Level(40)));
        check(b" 100\n", Some(Action::Level(100)));
        check(b"0", Some(Action::Level(0)));
        for bad in [
            &b""[..],
            b"101",
            b"-1",
            b"4.5",
            b"1000",
            b"true",
            b"onn",
            b"{\"state\":\"ON\"}",
            b"\xff\xfe",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn buttons_take_press_and_switches_everything_else() {
        assert!(Action::Press.accepted_by(Component::Button, false));
        assert!(!Action::On.accepted_by(Component::Button, false));
        assert!(Action::Toggle.accepted_by(Component::Light, false));
        assert!(!Action::Press.accepted_by(Component::Switch, false));
        assert!(!Action::On.accepted_by(Component::Sensor, false));
        assert!(Action::On.accepted_by(Component::Fan, true));
        assert!(Action::Level(40).accepted_by(Component::Fan, true));
        assert!(!Action::Level(40).accepted_by(Component::Light, false));
    }

    #[test]
    fn reserved_ids_should_be_the_system_values_and_the_buttons() {
        let reserved: Vec<&str> = reserved_ids().collect();
        assert!(reserved.contains(&"cpu_usage") && reserved.contains(&"throttled_occurred"));
        assert!(reserved.contains(&"restart") && reserved.contains(&"reboot"));
        assert_eq!(reserved.len(), 22);
    }
}
