//! Sensors: DS18B20 on 1-wire (sysfs), IIO devices (sysfs: DHT11/DHT22,
//! BME280/BMP280 through kernel overlays, and anything else the kernel
//! exposes the same way) and a BME280 read directly over I2C.
//!
//! Each configured sensor is a [`SensorReader`] (one file per kind) wrapped in
//! a [`Sensor`], which owns what every kind shares: the entity per quantity,
//! the per-sensor interval, calibration (`scale`, then `offset`), and
//! availability: a failed read marks just that entity unavailable, logs once,
//! and a later good read brings it back.

pub mod bme280;
pub mod ds18b20;
pub mod iio;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hal::HalError;
use crate::hub::{EntitySpec, Hub};

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

/// Why a reading failed. The sensor's entities become unavailable until a
/// read succeeds again.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("device not found at {0}")]
    Missing(String),
    #[error("CRC check failed")]
    Crc,
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content in {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error(transparent)]
    Hal(#[from] HalError),
    #[error("{0}")]
    Device(String),
}

/// One physical sensor of some kind.
pub trait SensorReader: Send {
    /// For logs: "DS18B20 28-0316a2795cff", "IIO iio:device0 (bme280)".
    fn describe(&self) -> String;
    /// What it measures; fixed for the life of the reader.
    fn quantities(&self) -> Vec<Quantity>;
    /// Reads every quantity once, each with its own result (an IIO humidity
    /// channel can fail while temperature reads fine). Values in the units
    /// of [`Quantity`].
    fn read(&mut self) -> Vec<(Quantity, Result<f64, SensorError>)>;
}

/// `value × scale + offset`, per quantity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Calibration {
    pub offset: Vec<(Quantity, f64)>,
    pub scale: Vec<(Quantity, f64)>,
}

/// A configured sensor: a reader, how often to read it, and how its values
/// become entities.
pub struct Sensor {
    /// Entity id for a one-quantity sensor; prefix (`<name>_temperature`)
    /// for several.
    pub name: String,
    /// Display name.
    pub label: String,
    pub interval: Duration,
    pub calibration: Calibration,
    pub reader: Box<dyn SensorReader>,
}

impl Sensor {
    /// One entity per quantity (being written).
    pub fn entities(&self) -> Vec<EntitySpec> {
        Vec::new()
    }

    /// Reads every `interval` until cancelled (being written).
    pub async fn run(self, _hub: Arc<Hub>, cancel: CancellationToken) {
        cancel.cancelled().await;
    }
}
