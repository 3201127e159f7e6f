//! The hardware part of the configuration: `[gpio]`, `[[inputs]]`,
//! `[[outputs]]` and `[[sensors]]`, raw and validated. Cross-checks live
//! here too: a pin used twice, a name used twice, a device class Home
//! Assistant would reject.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};
use crate::vocab::filter::FilterSpec;
use crate::vocab::{Component, Pull, Quantity, BINARY_SENSOR_CLASSES, MAX_PIN};

// ---- typed ----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// rppal on a Raspberry Pi, the simulation elsewhere (with a warning).
    Auto,
    Rppal,
    Sim,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioConfig {
    pub backend: Backend,
    /// Where `initial = "restore"` outputs keep their last state.
    pub state_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    /// Entity id.
    pub name: String,
    pub label: String,
    pub pin: u8,
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
}

impl OutputKind {
    pub fn component(self) -> Component {
        match self {
            OutputKind::Switch => Component::Switch,
            OutputKind::Light => Component::Light,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    pub name: String,
    pub label: String,
    pub pin: u8,
    /// Drive the pin low for ON (active-low relay boards).
    pub inverted: bool,
    pub initial: Initial,
    /// What the output is set to when the agent stops.
    pub safe_state: OnOff,
    /// Turn off again this long after turning on (door openers, pumps).
    pub auto_off: Option<Duration>,
    pub kind: OutputKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SensorSource {
    /// A 1-wire DS18B20 by its sysfs id (`28-…`).
    Ds18b20 { id: String },
    /// An IIO device by directory (`iio:device0`) or driver name (`bme280`).
    Iio { device: String },
    /// A BME280/BMP280 read directly over I2C.
    Bme280 { bus: u8, address: u16 },
}

impl SensorSource {
    /// Whether the sensor is read through the GPIO backend (an I2C bus);
    /// sysfs sensors need none. Exhaustive on purpose: a new kind must say.
    pub fn uses_gpio(&self) -> bool {
        match self {
            SensorSource::Bme280 { .. } => true,
            SensorSource::Ds18b20 { .. } | SensorSource::Iio { .. } => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SensorConfig {
    pub name: String,
    pub label: String,
    pub source: SensorSource,
    pub interval: Duration,
    /// Per quantity; `None` as the quantity means every quantity.
    pub offset: Vec<(Option<Quantity>, f64)>,
    pub scale: Vec<(Option<Quantity>, f64)>,
    /// Applied after calibration, to each quantity.
    pub filters: Vec<FilterSpec>,
}

// ---- raw ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawGpio {
    backend: Backend,
    state_file: Option<Spanned<PathBuf>>,
    /// Whether 1-wire DS18B20 sensors found in sysfs get entities even when
    /// not listed in `[[sensors]]`.
    auto_ds18b20: bool,
}

impl Default for RawGpio {
    fn default() -> Self {
        RawGpio {
            backend: Backend::Auto,
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
    pin: Spanned<u8>,
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
    pin: Spanned<u8>,
    #[serde(default)]
    inverted: bool,
    #[serde(default = "default_initial")]
    initial: Initial,
    #[serde(default = "default_safe_state")]
    safe_state: OnOff,
    auto_off_s: Option<Spanned<f64>>,
    #[serde(default = "default_kind")]
    kind: OutputKind,
}

fn default_initial() -> Initial {
    Initial::Off
}
fn default_safe_state() -> OnOff {
    OnOff::Off
}
fn default_kind() -> OutputKind {
    OutputKind::Switch
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SensorKind {
    Ds18b20,
    Iio,
    Bme280,
}

/// One number for every quantity, or a table by quantity.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PerQuantity {
    All(f64),
    Each(HashMap<Quantity, f64>),
}

/// Flat rather than an internally tagged enum: serde buffers tagged enums,
/// which would lose the line numbers of errors inside them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSensor {
    kind: Spanned<SensorKind>,
    name: Spanned<String>,
    label: Option<String>,
    #[serde(default = "default_sensor_interval_s")]
    interval_s: Spanned<f64>,
    offset: Option<Spanned<PerQuantity>>,
    scale: Option<Spanned<PerQuantity>>,
    filters: Option<Spanned<Vec<FilterSpec>>>,
    /// ds18b20
    id: Option<Spanned<String>>,
    /// iio
    device: Option<Spanned<String>>,
    /// bme280
    bus: Option<Spanned<u8>>,
    address: Option<Spanned<u16>>,
}

fn default_sensor_interval_s() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
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
fn label_from_name(name: &str) -> String {
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
        let gpio_config = GpioConfig {
            backend: gpio.backend,
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
        let mut pins: HashMap<u8, String> = HashMap::new();

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
            let pin = self.pin(&raw.pin, &key, &mut pins)?;
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
            typed_outputs.push(OutputConfig {
                label: raw.label.unwrap_or_else(|| label_from_name(&name)),
                name,
                pin,
                inverted: raw.inverted,
                initial: raw.initial,
                safe_state: raw.safe_state,
                auto_off,
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

    fn sensor(
        &self,
        raw: RawSensor,
        key: &str,
        names: &mut HashMap<String, String>,
    ) -> Result<SensorConfig, ConfigError> {
        let name = self.entity_name(&raw.name, key, names)?;
        let kind = *raw.kind.get_ref();
        let fields = [
            ("id", raw.id.as_ref().map(Spanned::span), SensorKind::Ds18b20),
            ("device", raw.device.as_ref().map(Spanned::span), SensorKind::Iio),
            ("bus", raw.bus.as_ref().map(Spanned::span), SensorKind::Bme280),
            ("address", raw.address.as_ref().map(Spanned::span), SensorKind::Bme280),
        ];
        for (field, span, owner) in fields {
            if let (Some(span), true) = (span, owner != kind) {
                let spanned = Spanned::new(span, ());
                return Err(self.error(
                    &spanned,
                    &format!("{key}.{field}"),
                    format!("`{field}` does not apply to a sensor of kind {kind:?}").to_lowercase(),
                ));
            }
        }
        let source = match kind {
            SensorKind::Ds18b20 => {
                let Some(id) = raw.id else {
                    return Err(self.error(
                        &raw.kind,
                        &format!("{key}.id"),
                        "a ds18b20 sensor needs `id` (its 28-… name in /sys/bus/w1/devices)",
                    ));
                };
                if !id.get_ref().starts_with("28-") || id.get_ref().contains('/') {
                    return Err(self.error(&id, &format!("{key}.id"), "a DS18B20 id looks like `28-0316a2795cff`"));
                }
                SensorSource::Ds18b20 { id: id.into_inner() }
            }
            SensorKind::Iio => {
                let Some(device) = raw.device else {
                    return Err(self.error(
                        &raw.kind,
                        &format!("{key}.device"),
                        "an iio sensor needs `device` (`iio:device0`, or a driver name such as `bme280` or `dht11`)",
                    ));
                };
                if device.get_ref().is_empty() || device.get_ref().contains('/') {
                    return Err(self.error(
                        &device,
                        &format!("{key}.device"),
                        "must be a directory name like `iio:device0` or a driver name",
                    ));
                }
                SensorSource::Iio {
                    device: device.into_inner(),
                }
            }
            SensorKind::Bme280 => {
                let bus = raw.bus.map_or(1, Spanned::into_inner);
                let address = match raw.address {
                    None => 0x76,
                    Some(address) if matches!(*address.get_ref(), 0x76 | 0x77) => address.into_inner(),
                    Some(address) => {
                        return Err(self.error(
                            &address,
                            &format!("{key}.address"),
                            "a BME280 answers at 0x76 or 0x77",
                        ));
                    }
                };
                SensorSource::Bme280 { bus, address }
            }
        };
        let seconds = *raw.interval_s.get_ref();
        if !(1.0..=86_400.0).contains(&seconds) {
            return Err(self.error(
                &raw.interval_s,
                &format!("{key}.interval_s"),
                "must be between 1 and 86400 seconds",
            ));
        }
        let filters = match raw.filters {
            None => Vec::new(),
            Some(filters) => self.filters(filters, &format!("{key}.filters"))?,
        };
        Ok(SensorConfig {
            label: raw.label.unwrap_or_else(|| label_from_name(&name)),
            name,
            source,
            interval: Duration::from_secs_f64(seconds),
            offset: self.calibration(raw.offset, &format!("{key}.offset"))?,
            scale: self.calibration(raw.scale, &format!("{key}.scale"))?,
            filters,
        })
    }

    /// A filter list whose every filter passes its check.
    pub(super) fn filters(&self, filters: Spanned<Vec<FilterSpec>>, key: &str) -> Result<Vec<FilterSpec>, ConfigError> {
        match filters.get_ref().iter().try_for_each(|filter| filter.check().map(drop)) {
            Ok(()) => Ok(filters.into_inner()),
            Err(why) => Err(self.error(&filters, key, why.to_string())),
        }
    }

    /// `offset` or `scale`, one number or one per quantity; finite, or every
    /// reading would come out as NaN or infinite.
    fn calibration(
        &self,
        value: Option<Spanned<PerQuantity>>,
        key: &str,
    ) -> Result<Vec<(Option<Quantity>, f64)>, ConfigError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let mut each: Vec<(Option<Quantity>, f64)> = match value.get_ref() {
            PerQuantity::All(n) => vec![(None, *n)],
            PerQuantity::Each(map) => map.iter().map(|(q, n)| (Some(*q), *n)).collect(),
        };
        if each.iter().any(|(_, n)| !n.is_finite()) {
            return Err(self.error(&value, key, "must be a finite number (not nan or inf)"));
        }
        each.sort_by_key(|(quantity, _)| *quantity);
        Ok(each)
    }

    fn entity_name(
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

    fn pin(&self, pin: &Spanned<u8>, key: &str, seen: &mut HashMap<u8, String>) -> Result<u8, ConfigError> {
        let key = format!("{key}.pin");
        let value = *pin.get_ref();
        if value > MAX_PIN {
            return Err(self.error(
                pin,
                &key,
                format!("GPIO {value} is not on the Pi's header (BCM 0 to {MAX_PIN})"),
            ));
        }
        if let Some(first) = seen.get(&value) {
            return Err(self.error(pin, &key, format!("GPIO {value} is already used by `{first}`")));
        }
        seen.insert(value, key);
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
