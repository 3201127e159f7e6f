//! Turns the `[[sensors]]` config (and DS18B20s found in sysfs) into
//! [`Sensor`]s ready to run. An IIO device or I2C sensor that is not there
//! at start is a start-up error naming the sensor; a configured DS18B20
//! that is absent starts unavailable and appears when plugged in.

use std::time::Duration;

use crate::config::{Config, SensorConfig, SensorSource};
use crate::hal::Gpio;
use crate::sources::sensors::bme280::Bme280Reader;
use crate::sources::sensors::command::CommandReader;
use crate::sources::sensors::ds18b20::{self, Ds18b20Reader};
use crate::sources::sensors::file::FileReader;
use crate::sources::sensors::iio::IioReader;
use crate::sources::sensors::{Calibration, Sensor, SensorError, SensorReader};

/// How often DS18B20s that no `[[sensors]]` entry names are read.
const AUTO_DS18B20_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("sensor `{name}`: {source}")]
pub struct SetupError {
    name: String,
    #[source]
    source: SensorError,
}

/// Every sensor of the config, plus (with `gpio.auto_ds18b20`) a sensor for
/// each DS18B20 in sysfs that the config does not name.
pub fn from_config(config: &Config, gpio: Option<&dyn Gpio>) -> Result<Vec<Sensor>, SetupError> {
    let mut sensors = Vec::new();
    for sensor in &config.sensors {
        let reader = reader(config, sensor, gpio).map_err(|source| SetupError {
            name: sensor.name.clone(),
            source,
        })?;
        sensors.push(Sensor {
            name: sensor.name.clone(),
            label: sensor.label.clone(),
            interval: sensor.interval,
            calibration: calibration(sensor),
            filters: sensor.filters.clone(),
            reader,
        });
    }
    if config.auto_ds18b20 {
        let named: Vec<&str> = config
            .sensors
            .iter()
            .filter_map(|s| match &s.source {
                SensorSource::Ds18b20 { id } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        for id in ds18b20::discover(&config.root) {
            if named.contains(&id.as_str()) {
                continue;
            }
            let serial = id.trim_start_matches("28-");
            sensors.push(Sensor {
                name: format!("ds18b20_{}", serial.to_ascii_lowercase()),
                label: format!("DS18B20 {serial}"),
                interval: AUTO_DS18B20_INTERVAL,
                calibration: Calibration::default(),
                filters: Vec::new(),
                reader: Box::new(Ds18b20Reader::new(&config.root, &id)),
            });
        }
    }
    Ok(sensors)
}

fn reader(
    config: &Config,
    sensor: &SensorConfig,
    gpio: Option<&dyn Gpio>,
) -> Result<Box<dyn SensorReader>, SensorError> {
    Ok(match &sensor.source {
        SensorSource::Ds18b20 { id } => Box::new(Ds18b20Reader::new(&config.root, id)),
        SensorSource::Iio { device } => Box::new(IioReader::open(&config.root, device)?),
        SensorSource::Bme280 { bus, address } => {
            let gpio = gpio.ok_or_else(|| SensorError::Device("no GPIO backend for I2C".to_owned()))?;
            Box::new(Bme280Reader::new(gpio.i2c(*bus)?, *bus, *address)?)
        }
        SensorSource::Command {
            command,
            timeout,
            value_path,
            quantity,
        } => Box::new(CommandReader::new(
            command,
            *timeout,
            value_path.clone(),
            *quantity,
            &|name| std::env::var_os(name),
        )),
        SensorSource::File { path, regex, quantity } => {
            Box::new(FileReader::new(path.clone(), regex.clone(), *quantity))
        }
    })
}

fn calibration(sensor: &SensorConfig) -> Calibration {
    let mut calibration = Calibration::default();
    for (quantity, offset) in &sensor.offset {
        calibration = match quantity {
            None => calibration.with_offset_all(*offset),
            Some(q) => calibration.with_offset(*q, *offset),
        };
    }
    for (quantity, scale) in &sensor.scale {
        calibration = match quantity {
            None => calibration.with_scale_all(*scale),
            Some(q) => calibration.with_scale(*q, *scale),
        };
    }
    calibration
}
