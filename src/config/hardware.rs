//! The hardware part of the configuration: `[gpio]`, `[[inputs]]`,
//! `[[outputs]]` and `[[sensors]]`, raw and validated. Cross-checks live
//! here too: a pin used twice, a name used twice, a device class Home
//! Assistant would reject.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::sensors::{RawSensor, SensorConfig};
use super::{ConfigError, Validator};
pub use crate::vocab::Backend;
use crate::vocab::{Component, Pin, Pull, PwmChannel, BINARY_SENSOR_CLASSES, MAX_PIN};

// ---- typed ----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioConfig {
    pub backend: Backend,
    /// The chip for the cdev backend: a path, a name or a label; `None`
    /// for the Pi's header chip (found by label), else `gpiochip0`.
    pub chip: Option<String>,
    /// Where `initial = "restore"` outputs keep their last state.
    pub state_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    /// Entity id.
    pub name: String,
    pub label: String,
    pub pin: Pin,
    pub pull: Pull,
    /// Report ON when the pin is low (a button to ground with a pull-up).
    pub inverted: bool,
    pub debounce: Duration,
    pub device_class: Option<&'static str>,
    /// Single/double/long press detection, when `events = true`.
    pub presses: Option<PressTiming>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressTiming {
    /// Held at least this long: a long press.
    pub long: Duration,
    /// A second press starting within this after a release: a double press.
    pub double: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initial {
    Off,
    On,
    /// The last commanded state, from the state file (off the first time).
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOff {
    Off,
    On,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Switch,
    Light,
    Fan,
}

impl OutputKind {
    pub fn component(self) -> Component {
        match self {
            OutputKind::Switch => Component::Switch,
            OutputKind::Light => Component::Light,
            OutputKind::Fan => Component::Fan,
        }
    }
}

/// What an output drives: a GPIO line (on/off) or a PWM channel (a level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drive {
    Gpio(Pin),
    Pwm(PwmChannel),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    pub name: String,
    pub label: String,
    pub drive: Drive,
    /// A PWM output's level when turned ON before any level was asked for
    /// (and for `initial`/`safe_state` = on), in percent.
    pub level: u8,
    /// Drive the pin low for ON (active-low relay boards).
    pub inverted: bool,
    pub initial: Initial,
    /// What the output is set to when the agent stops.
    pub safe_state: OnOff,
    /// Turn off again this long after turning on (door openers, pumps).
    pub auto_off: Option<Duration>,
    /// The pin changes at most once in this long (zero: no limit); a
    /// command that comes sooner is merged into the state applied next.
    pub min_switch_interval: Duration,
    pub kind: OutputKind,
}

// ---- raw ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawGpio {
    backend: Backend,
    chip: Option<Spanned<String>>,
    state_file: Option<Spanned<PathBuf>>,
    /// Whether 1-wire DS18B20 sensors found in sysfs get entities even when
    /// not listed in `[[sensors]]`.
    auto_ds18b20: bool,
}

impl Default for RawGpio {
    fn default() -> Self {
        RawGpio {
            backend: Backend::Auto,
            chip: None,
            state_file: None,
            auto_ds18b20: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    name: Spanned<String>,
    label: Option<String>,
    pin: Spanned<RawPin>,
    #[serde(default = "default_pull")]
    pull: Pull,
    #[serde(default)]
    inverted: bool,
    #[serde(default = "default_debounce_ms")]
    debounce_ms: Spanned<u64>,
    device_class: Option<Spanned<String>>,
    #[serde(default)]
    events: bool,
    #[serde(default = "default_long_press_ms")]
    long_press_ms: Spanned<u64>,
    #[serde(default = "default_double_press_ms")]
    double_press_ms: Spanned<u64>,
}

/// `pin = 17` or `pin = "GPIO17"`. Untagged, so it goes through the same
/// buffered deserializer as the other untagged values: a visitor of its own
/// would instantiate toml's `deserialize_any` again (about 15 KB).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a BCM GPIO number 0-27 (17) or a line name (\"GPIO17\")"
)]
pub(super) enum RawPin {
    Bcm(u8),
    Name(String),
    #[serde(skip_deserializing)]
    Absent,
}

fn absent_pin() -> Spanned<RawPin> {
    Spanned::new(0..0, RawPin::Absent)
}

fn default_pull() -> Pull {
    Pull::Up
}
fn default_debounce_ms() -> Spanned<u64> {
    Spanned::new(0..0, 50)
}
fn default_long_press_ms() -> Spanned<u64> {
    Spanned::new(0..0, 800)
}
fn default_double_press_ms() -> Spanned<u64> {
    Spanned::new(0..0, 350)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    name: Spanned<String>,
    label: Option<String>,
    // Types the other sections already use, so that serde and toml add no
    // code for them (a new `Option<Spanned<T>>` costs about 1 KB on armv6).
    #[serde(default = "absent_pin")]
    pin: Spanned<RawPin>,
    /// A PWM channel instead of a pin (`/sys/class/pwm/pwmchip<pwm_chip>`).
    pwm_channel: Option<Spanned<u8>>,
    pwm_chip: Option<Spanned<u8>>,
    frequency_hz: Option<Spanned<f64>>,
    level: Option<Spanned<u8>>,
    #[serde(default)]
    inverted: bool,
    #[serde(default = "default_initial")]
    initial: Initial,
    #[serde(default = "default_safe_state")]
    safe_state: OnOff,
    auto_off_s: Option<Spanned<f64>>,
    /// The same type as `debounce_ms`, so it adds no deserializer code.
    min_switch_interval_ms: Option<Spanned<u64>>,
    #[serde(default = "default_kind")]
    kind: OutputKind,
}

/// A longer `min_switch_interval_ms` would leave a relay deaf to commands.
const MAX_SWITCH_INTERVAL_MS: u64 = 600_000;

fn default_initial() -> Initial {
    Initial::Off
}
fn default_safe_state() -> OnOff {
    OnOff::Off
}
fn default_kind() -> OutputKind {
    OutputKind::Switch
}

/// The validated hardware configuration.
pub(super) struct Hardware {
    pub gpio: GpioConfig,
    pub auto_ds18b20: bool,
    pub inputs: Vec<InputConfig>,
    pub outputs: Vec<OutputConfig>,
    pub sensors: Vec<SensorConfig>,
}

/// The name of the automations' state file, beside `gpio.state_file`.
pub const AUTOMATIONS_STATE_FILE_NAME: &str = "automations.json";
/// The name of the MQTT sink's record of its last contact with the broker,
/// beside `gpio.state_file`.
pub const MQTT_STATE_FILE_NAME: &str = "mqtt.json";

/// The state file's default: systemd's `$STATE_DIRECTORY` when it runs us
/// with `StateDirectory=`, else the same place by hand.
fn default_state_file(state_directory: Option<String>) -> PathBuf {
    let dir = state_directory
        .and_then(|dirs| dirs.split(':').next().map(str::to_owned))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/var/lib/majortom".to_owned());
    PathBuf::from(dir).join("outputs.json")
}

/// `front_door` → `Front door`.
pub(super) fn label_from_name(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn check_entity_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("may contain only lowercase letters, digits and `_` (it is used in topics and entity ids)");
    }
    Ok(())
}

impl Validator<'_> {
    pub(super) fn hardware(
        &self,
        gpio: RawGpio,
        inputs: Vec<RawInput>,
        outputs: Vec<RawOutput>,
        sensors: Vec<RawSensor>,
        reserved: &[&str],
    ) -> Result<Hardware, ConfigError> {
        // The automations' switches (crate::automations::state_file_beside)
        // and the MQTT sink's last contact (crate::mqtt::contact) are saved
        // beside this file: one file for two would have each overwrite the
        // other.
        if let Some(file) = &gpio.state_file {
            for (name, what) in [
                (AUTOMATIONS_STATE_FILE_NAME, "the automations' on/off state"),
                (MQTT_STATE_FILE_NAME, "when MQTT was last connected"),
            ] {
                if file.get_ref().file_name() == Some(std::ffi::OsStr::new(name)) {
                    let message = format!("must not be named `{name}`: {what} is saved under that name beside it");
                    return Err(self.error(file, "gpio.state_file", message));
                }
            }
        }
        if let Some(chip) = &gpio.chip {
            if chip.get_ref().is_empty() {
                return Err(self.error(
                    chip,
                    "gpio.chip",
                    "must be a path (/dev/gpiochip0), a name (gpiochip0) or a label (pinctrl-bcm2711)",
                ));
            }
        }
        let gpio_config = GpioConfig {
            backend: gpio.backend,
            chip: gpio.chip.map(Spanned::into_inner),
            state_file: gpio
                .state_file
                .map(Spanned::into_inner)
                .unwrap_or_else(|| default_state_file((self.ctx.env)("STATE_DIRECTORY"))),
        };
        // Names and pins seen so far, with the key that claimed them.
        let mut names: HashMap<String, String> = reserved
            .iter()
            .map(|r| ((*r).to_owned(), "the system source".to_owned()))
            .collect();
        // Keyed by text (`GPIO 17`, `line X`): maps of the kind the names
        // already use cost the binary nothing new.
        let mut pins: HashMap<String, String> = HashMap::new();

        let mut typed_inputs = Vec::new();
        for (i, raw) in inputs.into_iter().enumerate() {
            let key = format!("inputs[{i}]");
            let name = self.entity_name(&raw.name, &key, &mut names)?;
            let pin = self.pin(&raw.pin, &key, &mut pins)?;
            let device_class = match raw.device_class {
                None => None,
                Some(class) => match BINARY_SENSOR_CLASSES.iter().find(|c| **c == class.get_ref().as_str()) {
                    Some(known) => Some(*known),
                    None => {
                        let message = format!(
                            "`{}` is not a Home Assistant binary sensor device class (e.g. door, window, motion, occupancy, moisture, smoke)",
                            class.get_ref()
                        );
                        return Err(self.error(&class, &format!("{key}.device_class"), message));
                    }
                },
            };
            let debounce = self.millis(&raw.debounce_ms, &format!("{key}.debounce_ms"), 0..=10_000)?;
            // Checked even without `events`: a wrong value is wrong before
            // it is used.
            let long = self.millis(&raw.long_press_ms, &format!("{key}.long_press_ms"), 100..=10_000)?;
            let double = self.millis(&raw.double_press_ms, &format!("{key}.double_press_ms"), 50..=5_000)?;
            let presses = raw.events.then_some(PressTiming { long, double });
            typed_inputs.push(InputConfig {
                label: raw.label.unwrap_or_else(|| label_from_name(&name)),
                name,
                pin,
                pull: raw.pull,
                inverted: raw.inverted,
                debounce,
                device_class,
                presses,
            });
        }

        let mut typed_outputs = Vec::new();
        for (i, raw) in outputs.into_iter().enumerate() {
            let key = format!("outputs[{i}]");
            let name = self.entity_name(&raw.name, &key, &mut names)?;
            let pin = (!matches!(raw.pin.get_ref(), RawPin::Absent)).then_some(&raw.pin);
            let drive = match (pin, &raw.pwm_channel) {
                (Some(pin), None) => {
                    for (field, span) in [
                        ("pwm_chip", raw.pwm_chip.as_ref().map(Spanned::span)),
                        ("frequency_hz", raw.frequency_hz.as_ref().map(Spanned::span)),
                        ("level", raw.level.as_ref().map(Spanned::span)),
                    ] {
                        if let Some(span) = span {
                            let message = format!("`{field}` is for PWM outputs (with `pwm_channel`), not for a pin");
                            return Err(self.error(&Spanned::new(span, ()), &format!("{key}.{field}"), message));
                        }
                    }
                    Drive::Gpio(self.pin(pin, &key, &mut pins)?)
                }
                (None, Some(channel)) => {
                    let chip = raw.pwm_chip.as_ref().map_or(0, |c| u32::from(*c.get_ref()));
                    let default_hz = if raw.kind == OutputKind::Fan { 25_000 } else { 1_000 };
                    let frequency_hz = match &raw.frequency_hz {
                        None => default_hz,
                        Some(hz) if (1.0..=1_000_000.0).contains(hz.get_ref()) => hz.get_ref().round() as u32,
                        Some(hz) => {
                            return Err(self.error(
                                hz,
                                &format!("{key}.frequency_hz"),
                                "must be between 1 and 1000000 Hz",
                            ))
                        }
                    };
                    let pwm = (chip, u32::from(*channel.get_ref()));
                    let used = format!("pwmchip{} channel {}", pwm.0, pwm.1);
                    if let Some(first) = pins.get(&used) {
                        let message = format!("{used} is already used by `{first}`");
                        return Err(self.error(channel, &format!("{key}.pwm_channel"), message));
                    }
                    pins.insert(used, format!("{key}.pwm_channel"));
                    Drive::Pwm(PwmChannel {
                        chip,
                        channel: pwm.1,
                        frequency_hz,
                    })
                }
                (Some(_), Some(channel)) => {
                    return Err(self.error(
                        channel,
                        &format!("{key}.pwm_channel"),
                        "give either `pin` or `pwm_channel`, not both",
                    ))
                }
                (None, None) => {
                    return Err(self.error(
                        &raw.name,
                        &format!("{key}.pin"),
                        "an output needs `pin` (a GPIO) or `pwm_channel` (a PWM output)",
                    ))
                }
            };
            let level = match &raw.level {
                None => 100,
                Some(level) if (1..=100).contains(level.get_ref()) => *level.get_ref(),
                Some(level) => {
                    return Err(self.error(level, &format!("{key}.level"), "must be between 1 and 100 (percent)"))
                }
            };
            let auto_off = match raw.auto_off_s {
                None => None,
                Some(seconds) => {
                    let s = *seconds.get_ref();
                    if !(s > 0.0 && s <= 86_400.0) {
                        return Err(self.error(
                            &seconds,
                            &format!("{key}.auto_off_s"),
                            "must be more than 0 and at most 86400 seconds",
                        ));
                    }
                    Some(Duration::from_secs_f64(s))
                }
            };
            let min_switch_interval = match &raw.min_switch_interval_ms {
                None => Duration::ZERO,
                Some(ms) if *ms.get_ref() <= MAX_SWITCH_INTERVAL_MS => Duration::from_millis(*ms.get_ref()),
                Some(ms) => {
                    return Err(self.error(
                        ms,
                        &format!("{key}.min_switch_interval_ms"),
                        format!("must be at most {MAX_SWITCH_INTERVAL_MS} (ten minutes)"),
                    ))
                }
            };
            typed_outputs.push(OutputConfig {
                label: raw.label.unwrap_or_else(|| label_from_name(&name)),
                name,
                drive,
                level,
                inverted: raw.inverted,
                initial: raw.initial,
                safe_state: raw.safe_state,
                auto_off,
                min_switch_interval,
                kind: raw.kind,
            });
        }

        let mut typed_sensors = Vec::new();
        for (i, raw) in sensors.into_iter().enumerate() {
            typed_sensors.push(self.sensor(raw, &format!("sensors[{i}]"), &mut names)?);
        }

        Ok(Hardware {
            gpio: gpio_config,
            auto_ds18b20: gpio.auto_ds18b20,
            inputs: typed_inputs,
            outputs: typed_outputs,
            sensors: typed_sensors,
        })
    }

    pub(super) fn entity_name(
        &self,
        name: &Spanned<String>,
        key: &str,
        seen: &mut HashMap<String, String>,
    ) -> Result<String, ConfigError> {
        let key = format!("{key}.name");
        if let Err(why) = check_entity_name(name.get_ref()) {
            return Err(self.error(name, &key, why));
        }
        if let Some(first) = seen.get(name.get_ref()) {
            let message = format!("`{}` is already used by {first}; names must be unique", name.get_ref());
            return Err(self.error(name, &key, message));
        }
        seen.insert(name.get_ref().clone(), format!("`{key}`"));
        Ok(name.get_ref().clone())
    }

    /// A BCM number on the header, or a line name; each used once (`17`
    /// and `"GPIO17"` are the same pin).
    fn pin(&self, pin: &Spanned<RawPin>, key: &str, seen: &mut HashMap<String, String>) -> Result<Pin, ConfigError> {
        let key = format!("{key}.pin");
        let value = match pin.get_ref() {
            RawPin::Bcm(n) if *n > MAX_PIN => {
                let message = format!("GPIO {n} is not on the Pi's header (BCM 0 to {MAX_PIN}; other lines by name)");
                return Err(self.error(pin, &key, message));
            }
            RawPin::Bcm(n) => Pin::Bcm(*n),
            RawPin::Name(name) if (1..=31).contains(&name.len()) => Pin::Name(name.clone()),
            RawPin::Name(_) => return Err(self.error(pin, &key, "a line name is 1 to 31 characters long")),
            RawPin::Absent => return Err(self.error(pin, &key, "missing: give the pin's BCM number or line name")),
        };
        let same = value
            .bcm()
            .map_or_else(|| value.to_string(), |n| Pin::Bcm(n).to_string());
        if let Some(first) = seen.get(&same) {
            return Err(self.error(pin, &key, format!("{value} is already used by `{first}`")));
        }
        seen.insert(same, key);
        Ok(value)
    }

    fn millis(
        &self,
        value: &Spanned<u64>,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let ms = *value.get_ref();
        if !range.contains(&ms) {
            let message = format!("must be between {} and {} milliseconds", range.start(), range.end());
            return Err(self.error(value, key, message));
        }
        Ok(Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_should_be_derived_from_names() {
        assert_eq!(label_from_name("front_door"), "Front door");
        assert_eq!(label_from_name("x"), "X");
    }

    #[test]
    fn state_file_should_follow_systemd_state_directory() {
        assert_eq!(
            default_state_file(None),
            PathBuf::from("/var/lib/majortom/outputs.json")
        );
        assert_eq!(
            default_state_file(Some("/var/lib/majortom:/other".into())),
            PathBuf::from("/var/lib/majortom/outputs.json")
        );
        assert_eq!(
            default_state_file(Some("/tmp/x".into())),
            PathBuf::from("/tmp/x/outputs.json")
        );
    }
}
