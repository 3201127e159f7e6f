//! The hardware part of the configuration: `[gpio]`, `[[inputs]]`,
//! `[[outputs]]` and `[[sensors]]`, raw and validated. Cross-checks live
//! here too: a pin used twice, a name used twice, a device class Home
//! Assistant would reject.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::commands::{program_of, Problem, Program, RawProgram};
use super::{ConfigError, Validator};
use crate::json_path::JsonPath;
use crate::pattern::Pattern;
use crate::vocab::filter::FilterSpec;
pub use crate::vocab::Backend;
use crate::vocab::{Component, Pin, Pull, PwmChannel, Quantity, BINARY_SENSOR_CLASSES, MAX_PIN};

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
    /// A number that a program prints, or one in the JSON it prints.
    Command {
        command: Program,
        timeout: Duration,
        value_path: Option<JsonPath>,
        quantity: Quantity,
    },
    /// A number in a file (any path), or the part of it `regex` finds.
    File {
        path: PathBuf,
        regex: Option<Pattern>,
        quantity: Quantity,
    },
}

/// `timeout_s` of a command sensor when not given.
pub const DEFAULT_SENSOR_TIMEOUT: Duration = Duration::from_secs(10);

impl SensorSource {
    /// Whether the sensor is read through the GPIO backend (an I2C bus);
    /// sysfs sensors need none. Exhaustive on purpose: a new kind must say.
    pub fn uses_gpio(&self) -> bool {
        match self {
            SensorSource::Bme280 { .. } => true,
            SensorSource::Ds18b20 { .. }
            | SensorSource::Iio { .. }
            | SensorSource::Command { .. }
            | SensorSource::File { .. } => false,
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
    Command,
    File,
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
    /// command and file: what the number measures. A string matched by
    /// hand: a `Spanned<Quantity>` field would cost its own deserializer.
    #[serde(default)]
    quantity: Option<Spanned<String>>,
    /// command
    #[serde(default)]
    command: Option<Spanned<RawProgram>>,
    #[serde(default)]
    shell: Option<bool>,
    #[serde(default)]
    timeout_s: Option<Spanned<f64>>,
    #[serde(default)]
    value_path: Option<Spanned<String>>,
    /// file
    #[serde(default)]
    path: Option<Spanned<PathBuf>>,
    #[serde(default)]
    regex: Option<Spanned<String>>,
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
            typed_outputs.push(OutputConfig {
                label: raw.label.unwrap_or_else(|| label_from_name(&name)),
                name,
                drive,
                level,
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
        use SensorKind::{Command, File};
        // Each key, where it is if given, and the kinds it belongs to.
        type Owned<'a> = (&'a str, Option<std::ops::Range<usize>>, &'a [SensorKind]);
        let fields: [Owned<'_>; 11] = [
            ("id", raw.id.as_ref().map(Spanned::span), &[SensorKind::Ds18b20]),
            ("device", raw.device.as_ref().map(Spanned::span), &[SensorKind::Iio]),
            ("bus", raw.bus.as_ref().map(Spanned::span), &[SensorKind::Bme280]),
            (
                "address",
                raw.address.as_ref().map(Spanned::span),
                &[SensorKind::Bme280],
            ),
            ("quantity", raw.quantity.as_ref().map(Spanned::span), &[Command, File]),
            ("command", raw.command.as_ref().map(Spanned::span), &[Command]),
            // Unspanned (see RawSensor): reported at `kind`.
            ("shell", raw.shell.map(|_| raw.kind.span()), &[Command]),
            ("timeout_s", raw.timeout_s.as_ref().map(Spanned::span), &[Command]),
            ("value_path", raw.value_path.as_ref().map(Spanned::span), &[Command]),
            ("path", raw.path.as_ref().map(Spanned::span), &[File]),
            ("regex", raw.regex.as_ref().map(Spanned::span), &[File]),
        ];
        for (field, span, owners) in fields {
            if let (Some(span), false) = (span, owners.contains(&kind)) {
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
            SensorKind::Command | SensorKind::File => self.program_sensor(&raw, key)?,
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

    /// The source of a `command` or `file` sensor.
    fn program_sensor(&self, raw: &RawSensor, key: &str) -> Result<SensorSource, ConfigError> {
        program_sensor(raw).map_err(|(span, field, message)| self.field_error(span, key, field, &message))
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

/// A `command` or `file` sensor's source, or what is wrong.
fn program_sensor(raw: &RawSensor) -> Result<SensorSource, Problem> {
    let at_kind = raw.kind.span();
    let quantity = match raw.quantity.as_ref().map(|q| (q, q.get_ref().as_str())) {
        Some((_, "temperature")) => Quantity::Temperature,
        Some((_, "humidity")) => Quantity::Humidity,
        Some((_, "pressure")) => Quantity::Pressure,
        Some((given, _)) => return Err((given.span(), "quantity", "must be temperature, humidity or pressure".into())),
        None => {
            return Err((
                at_kind,
                "quantity",
                "this kind needs `quantity` (temperature, humidity or pressure): it sets the unit and Home Assistant's device class".into(),
            ))
        }
    };
    if *raw.kind.get_ref() == SensorKind::File {
        let path = raw.path.as_ref().ok_or((
            at_kind.clone(),
            "path",
            "a file sensor needs `path`, the file to read".into(),
        ))?;
        if !path.get_ref().is_absolute() {
            return Err((path.span(), "path", "must be an absolute path".into()));
        }
        let regex = match &raw.regex {
            None => None,
            Some(regex) => Some(
                Pattern::new(regex.get_ref()).map_err(|why| (regex.span(), "regex", Cow::Owned(why.to_string())))?,
            ),
        };
        return Ok(SensorSource::File {
            path: path.get_ref().clone(),
            regex,
            quantity,
        });
    }
    let command = raw.command.as_ref().ok_or((
        at_kind,
        "command",
        "a command sensor needs `command`, an argv array such as [\"vcgencmd\", \"measure_temp\"]".into(),
    ))?;
    let command = program_of(command, raw.shell.unwrap_or(false))
        .map_err(|message| (command.span(), "command", message.into()))?;
    let timeout = match &raw.timeout_s {
        None => DEFAULT_SENSOR_TIMEOUT,
        Some(seconds) if (0.1..=86_400.0).contains(seconds.get_ref()) => Duration::from_secs_f64(*seconds.get_ref()),
        Some(seconds) => {
            return Err((
                seconds.span(),
                "timeout_s",
                "must be between 0.1 and 86400 seconds".into(),
            ))
        }
    };
    let value_path = match &raw.value_path {
        None => None,
        Some(path) => {
            Some(JsonPath::parse(path.get_ref()).map_err(|why| (path.span(), "value_path", Cow::Owned(why)))?)
        }
    };
    Ok(SensorSource::Command {
        command,
        timeout,
        value_path,
        quantity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::{Config, Context, Origin};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let ctx = Context {
            hostname: "pi",
            env: &|_| None,
        };
        Config::from_toml(text, Origin::File("majortom.toml".into()), &ctx)
    }

    #[test]
    fn command_and_file_sensors_should_take_their_keys() {
        let config = parse(
            r#"
[[sensors]]
kind = "command"
name = "gpu"
quantity = "temperature"
command = ["vcgencmd", "measure_temp"]
interval_s = 60
filters = [{ round = 1 }]

[[sensors]]
kind = "command"
name = "weather"
quantity = "pressure"
command = "curl -s http://192.168.1.9/api | head -c 4000"
shell = true
timeout_s = 5
value_path = "main.pressure"

[[sensors]]
kind = "file"
name = "nas"
quantity = "temperature"
path = "/sys/class/hwmon/hwmon0/temp1_input"
scale = 0.001
offset = -1

[[sensors]]
kind = "file"
name = "cellar"
quantity = "humidity"
path = "/run/cellar.txt"
regex = 'humidity=(\d+)%'
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sources: Vec<&SensorSource> = config.sensors.iter().map(|s| &s.source).collect();
        assert_eq!(
            sources[0],
            &SensorSource::Command {
                command: Program::Argv(vec!["vcgencmd".into(), "measure_temp".into()]),
                timeout: DEFAULT_SENSOR_TIMEOUT,
                value_path: None,
                quantity: Quantity::Temperature,
            }
        );
        assert_eq!(
            sources[1],
            &SensorSource::Command {
                command: Program::Shell("curl -s http://192.168.1.9/api | head -c 4000".into()),
                timeout: Duration::from_secs(5),
                value_path: Some(JsonPath::parse("main.pressure").expect("a path")),
                quantity: Quantity::Pressure,
            }
        );
        assert_eq!(
            sources[2],
            &SensorSource::File {
                path: "/sys/class/hwmon/hwmon0/temp1_input".into(),
                regex: None,
                quantity: Quantity::Temperature,
            }
        );
        assert_eq!(config.sensors[2].scale, vec![(None, 0.001)]);
        assert_eq!(config.sensors[2].offset, vec![(None, -1.0)]);
        match sources[3] {
            SensorSource::File { regex: Some(regex), .. } => {
                assert_eq!(regex.extract(b"t=12 humidity=63%"), Some(&b"63"[..]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_and_file_sensor_mistakes_should_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "kind = \"file\"\npath = \"/x\"",
                "sensors[0].quantity",
                "needs `quantity`",
            ),
            (
                "kind = \"file\"\nquantity = \"temperature\"",
                "sensors[0].path",
                "needs `path`",
            ),
            (
                "kind = \"file\"\nquantity = \"temperature\"\npath = \"x\"",
                "sensors[0].path",
                "absolute path",
            ),
            (
                "kind = \"file\"\nquantity = \"temperature\"\npath = \"/x\"\nregex = \"(a|b)\"",
                "sensors[0].regex",
                "at character 2 of the regex: alternation",
            ),
            (
                "kind = \"file\"\nquantity = \"temperature\"\npath = \"/x\"\ncommand = [\"a\"]",
                "sensors[0].command",
                "does not apply to a sensor of kind file",
            ),
            (
                "kind = \"command\"\nquantity = \"temperature\"",
                "sensors[0].command",
                "needs `command`",
            ),
            (
                "kind = \"command\"\nquantity = \"temperature\"\ncommand = \"echo 1\"",
                "sensors[0].command",
                "only with `shell = true`",
            ),
            (
                "kind = \"command\"\nquantity = \"temperature\"\ncommand = [\"a\"]\nvalue_path = \"a..b\"",
                "sensors[0].value_path",
                "empty key",
            ),
            (
                "kind = \"command\"\nquantity = \"temperature\"\ncommand = [\"a\"]\ntimeout_s = 0",
                "sensors[0].timeout_s",
                "between 0.1",
            ),
            (
                "kind = \"command\"\nquantity = \"speed\"\ncommand = [\"a\"]",
                "sensors[0].quantity",
                "temperature, humidity or pressure",
            ),
            (
                "kind = \"ds18b20\"\nid = \"28-1\"\nquantity = \"temperature\"",
                "sensors[0].quantity",
                "does not apply",
            ),
        ];
        for (body, key, says) in cases {
            let text = format!("[[sensors]]\nname = \"s\"\n{body}\n");
            let message = match parse(&text) {
                Ok(config) => panic!("accepted: {:?}", config.sensors),
                Err(error) => error.to_string(),
            };
            assert!(message.contains(&format!("key `{key}`")), "{text}\n{message}");
            assert!(message.contains(says), "{text}\n{message}");
        }
    }

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
