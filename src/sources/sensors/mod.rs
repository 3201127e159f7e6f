//! Sensors: DS18B20 on 1-wire (sysfs), IIO devices (sysfs: DHT11/DHT22,
//! BME280/BMP280 through kernel overlays, and anything else the kernel
//! exposes the same way), a BME280 read directly over I2C, and a number
//! from a program's output (`command.rs`) or from any file (`file.rs`).
//!
//! Each configured sensor is a [`SensorReader`] (one file per kind) wrapped in
//! a [`Sensor`], which owns what every kind shares: the entity per quantity,
//! the per-sensor interval, calibration (`scale`, then `offset`), and
//! availability: a failed read marks just that entity unavailable, logs once,
//! and a later good read brings it back.
//!
//! This file owns what every kind implements (`SensorReader`) and how a
//! read fails (`SensorError`); `runner.rs` the shared part that runs them,
//! `calibration.rs` the offsets and scales. None of it knows how any kind
//! talks to its hardware, and it does not decide which sensors exist:
//! `setup.rs` builds the `Sensor`s from the config and the app registers
//! `entities()` on the hub before it spawns `run`.
//!
//! # Blocking reads
//!
//! [`SensorReader::read`] is synchronous. Reading a DS18B20's `w1_slave`
//! makes the kernel start a conversion and sleep for it (750 ms at the
//! default 12-bit resolution), and a DHT read waits for the sensor's reply;
//! on our single runtime thread that would stall MQTT and HTTP. So every
//! round runs on tokio's blocking pool (`spawn_blocking`, which the `rt`
//! feature provides on a current-thread runtime too): the reader is moved
//! into the closure and handed back with the results. The pool starts a
//! thread on demand and lets it exit after 10 s idle, so a sensor read every
//! few seconds keeps one extra thread (its stack is reserved, mostly not
//! resident), and a slow interval pays a thread spawn per round, which is
//! cheap next to a 750 ms conversion.

pub mod bme280;
mod calibration;
pub mod command;
pub mod ds18b20;
pub mod file;
pub mod iio;
mod runner;
pub mod setup;

pub use calibration::Calibration;
pub use runner::Sensor;

use crate::hal::HalError;
pub use crate::vocab::Quantity;

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
    /// An IIO device asked for by a name that no device has.
    #[error("no IIO device `{wanted}` (neither a directory under {dir} nor a driver name); present: {present}; check the dtoverlay line in config.txt and that the driver loaded (dmesg)")]
    NoSuchIioDevice {
        wanted: String,
        dir: String,
        /// `iio:device0 (dht11), ...` or `none`.
        present: String,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_should_describe_themselves_for_home_assistant() {
        let described: Vec<_> = Quantity::ALL
            .iter()
            .map(|q| (q.device_class(), q.unit(), q.suffix(), q.precision()))
            .collect();
        assert_eq!(
            described,
            vec![
                ("temperature", "°C", "temperature", 1),
                ("humidity", "%", "humidity", 1),
                ("pressure", "hPa", "pressure", 1),
            ]
        );
    }
}
