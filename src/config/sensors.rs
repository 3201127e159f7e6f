//! `[[sensors]]`: the raw keys of each kind, their checks, and the typed
//! `SensorConfig` the sensor sources are built from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::commands::{program_of, Problem, Program, RawProgram};
use super::hardware::label_from_name;
use super::{ConfigError, Validator};
use crate::json_path::JsonPath;
use crate::pattern::Pattern;
use crate::vocab::filter::FilterSpec;
use crate::vocab::Quantity;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SensorKind {
    Ds18b20,
    Iio,
    Bme280,
    Command,
    File,
}

/// One number for every quantity, or a table by quantity.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PerQuantity {
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

impl Validator<'_> {
    pub(super) fn sensor(
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

    use crate::config::tests::parse_on_pi as parse;

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
}
