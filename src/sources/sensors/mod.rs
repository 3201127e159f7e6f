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
//! # Where reads run
//!
//! [`SensorReader::read`] is synchronous, and some reads sleep in the
//! kernel: reading a DS18B20's `w1_slave` starts a conversion and waits for
//! it (750 ms at the default 12-bit resolution); an IIO read of a DHT11/22
//! waits for the sensor's reply (the `dht11` driver sends an 18 ms start
//! pulse, then waits up to 1 s for the answer), and of a BME280/BMP280 for
//! its I2C transfers and, on recent kernels, a forced conversion; a command
//! sensor waits for its program. On our single runtime thread that would
//! stall MQTT and HTTP. So each reader says where it runs
//! ([`SensorReader::placement`]):
//!
//! - [`Placement::Thread`] (the default; DS18B20, IIO, BME280 over I2C,
//!   command, a file sensor on sysfs): the reader lives on a thread of its
//!   own for the sensor's life, which puts its results in a vector the
//!   runner keeps. Unlike `spawn_blocking` per round (a task allocation and
//!   a hand-off to the pool each time), a round then allocates nothing. The
//!   thread reads each round just ahead of its tick (by the last read's
//!   duration and a margin), so that the runner finds the answer at the
//!   tick and the runtime thread wakes once for everything due then, not
//!   once more per sensor. It sleeps on a condition variable between
//!   rounds; a 256 KiB stack is reserved for it, of which a few pages are
//!   resident.
//! - [`Placement::Inline`] (a file sensor whose file is on procfs, tmpfs or
//!   a local disk): read on the runtime thread, as the system source reads
//!   its `/proc` files: the kernel or the page cache answers at once, and
//!   the thread hand-off would cost more than the read. A file sensor on
//!   sysfs (an attribute is a driver callback: an hwmon chip on I2C, a
//!   disk's temperature through SCSI) or on a network filesystem reads on
//!   its own thread.
//!
//! Readers keep their files open and read them with `pread` into a buffer
//! they keep (`sources::kernel_file::KernelFile`), and write their
//! results into a vector the runner reuses ([`SensorReader::read_into`]), so
//! that a round in steady state allocates nothing
//! (`tests/alloc_per_sensor_round.rs`).

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

/// One quantity's result of a round.
pub type Reading = (Quantity, Result<f64, SensorError>);

/// Where a reader's rounds run (see "Where reads run" above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the runtime thread: the read is answered at once.
    Inline,
    /// On the sensor's own reading thread: the read may sleep.
    Thread,
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
    fn read(&mut self) -> Vec<Reading>;
    /// `read` into `results`, which the caller empties before and whose
    /// capacity it keeps between rounds. Readers that must not allocate in
    /// steady state implement this and `read` through it.
    fn read_into(&mut self, results: &mut Vec<Reading>) {
        results.extend(self.read());
    }
    /// Where this reader's rounds run; asked once, when the sensor starts.
    fn placement(&self) -> Placement {
        Placement::Thread
    }
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
