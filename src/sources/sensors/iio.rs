//! Sensors the kernel exposes through IIO (Industrial I/O) in sysfs, below an
//! injectable root: `<root>/sys/bus/iio/devices/iio:deviceN/`. On a Pi that
//! is a DHT11 or DHT22 (`dtoverlay=dht11`; the kernel's `dht11` driver serves
//! both), a BME280/BMP280 (`dtoverlay=i2c-sensor,bme280`), an Si7021, and
//! anything else with temperature, humidity or pressure channels.
//!
//! This file owns finding the device (by directory or driver name), choosing
//! which files make each channel, and the unit arithmetic of the kernel ABI
//! (`Documentation/ABI/testing/sysfs-bus-iio`): `_input` values are already
//! scaled; `_raw` values become `(raw + offset) × scale`; after either,
//! temperature is in m°C, relative humidity in m%, and pressure in kPa.
//!
//! What it does not handle: channels with modifiers (`in_temp_ambient_raw`,
//! `in_temp_object_raw` of IR thermometers), any indexed channel but the
//! first (`in_temp1_input`, a second sensor of the same device), averaged
//! `_mean_raw` values, and buffered capture through `/dev/iio:deviceN`.
//! `_calibbias`/`_calibscale` are applied by the hardware and need nothing.
//!
//! Each channel's files stay open and are read with `pread` into one buffer
//! the reader keeps (`KernelFile`); a device that is unbound and bound
//! again (the same `iio:deviceN` directory back) is picked up by the
//! reopen after a failed read. Reads run on the sensor's own thread: a DHT
//! read waits for the sensor (up to 1 s), a BME280's for I2C transfers and
//! a conversion (see "Where reads run" in `sensors`).

use std::path::{Path, PathBuf};

use super::{Placement, Quantity, Reading, SensorError, SensorReader};
use crate::sources::kernel_file::KernelFile;

/// Where IIO lists its devices, relative to the root.
const DEVICES_DIR: &str = "sys/bus/iio/devices";

/// IIO devices are `iio:deviceN`; triggers (`triggerN`) live next to them.
const DEVICE_PREFIX: &str = "iio:device";

/// The IIO channel type of a quantity, and the factor from the ABI's unit to
/// ours.
fn channel_type(quantity: Quantity) -> (&'static str, f64) {
    match quantity {
        // m°C → °C
        Quantity::Temperature => ("temp", 0.001),
        // m% → %
        Quantity::Humidity => ("humidityrelative", 0.001),
        // kPa → hPa
        Quantity::Pressure => ("pressure", 10.0),
    }
}

/// Where a channel's value comes from.
#[derive(Debug)]
enum Source {
    /// `in_<type>_input`: already scaled by the driver.
    Input(KernelFile),
    /// `in_<type>_raw`, with the scale and offset files that exist (a
    /// missing one means 1 and 0). Read every round: some drivers change
    /// the scale with the range or oversampling setting.
    Raw {
        raw: KernelFile,
        scale: Option<KernelFile>,
        offset: Option<KernelFile>,
    },
}

#[derive(Debug)]
struct Channel {
    quantity: Quantity,
    source: Source,
}

/// One IIO device; its quantities are the channels present when opened.
#[derive(Debug)]
pub struct IioReader {
    /// `iio:device0`.
    dir_name: String,
    /// The `name` file: the driver's name for the chip (`dht11`).
    driver: String,
    dir: PathBuf,
    channels: Vec<Channel>,
    /// Each file's text, one after the other; kept between rounds.
    buffer: Vec<u8>,
}

impl IioReader {
    /// Opens `device`, either a directory name (`iio:device0`) or a driver
    /// name matched against each device's `name` file (the first match in
    /// device order). Device numbers follow probe order and can change
    /// between boots; a driver name does not, unless two devices share it.
    pub fn open(root: &Path, device: &str) -> Result<IioReader, SensorError> {
        let devices = root.join(DEVICES_DIR);
        // A path-like `device` is never a directory name; it can still be
        // (oddly) a driver name.
        let by_dir = (!device.is_empty() && !device.contains('/') && device != "." && device != "..")
            .then(|| devices.join(device))
            .filter(|dir| dir.is_dir());
        let (dir_name, dir, driver) = match by_dir {
            Some(dir) => (device.to_owned(), dir.clone(), driver_name(&dir)),
            None => {
                let present = list_devices(&devices);
                match present.iter().find(|(_, driver)| driver.as_deref() == Some(device)) {
                    Some((dir_name, driver)) => (dir_name.clone(), devices.join(dir_name), driver.clone()),
                    None => {
                        return Err(SensorError::NoSuchIioDevice {
                            wanted: device.to_owned(),
                            dir: devices.display().to_string(),
                            present: describe_present(&present),
                        })
                    }
                }
            }
        };
        let driver = driver.unwrap_or_else(|| "unknown".to_owned());
        let channels: Vec<Channel> = Quantity::ALL
            .into_iter()
            .filter_map(|quantity| find_channel(&dir, quantity))
            .collect();
        if channels.is_empty() {
            return Err(SensorError::Device(format!(
                "IIO device {dir_name} ({driver}) has no temperature, humidity or pressure channel"
            )));
        }
        Ok(IioReader {
            dir_name,
            driver,
            dir,
            channels,
            buffer: Vec::new(),
        })
    }
}

/// One channel's value in our units.
fn read_channel(channel: &mut Channel, buffer: &mut Vec<u8>, dir: &Path) -> Result<f64, SensorError> {
    let (_, factor) = channel_type(channel.quantity);
    let value = match &mut channel.source {
        Source::Input(file) => read_number(file, buffer, dir)?,
        Source::Raw { raw, scale, offset } => {
            let raw = read_number(raw, buffer, dir)?;
            let offset = match offset {
                Some(file) => read_number(file, buffer, dir)?,
                None => 0.0,
            };
            let scale = match scale {
                Some(file) => read_number(file, buffer, dir)?,
                None => 1.0,
            };
            (raw + offset) * scale
        }
    };
    Ok(value * factor)
}

/// One sysfs number. A DHT that does not answer fails right here, with EIO
/// or ETIMEDOUT from the driver: this round's error for the channel.
fn read_number(file: &mut KernelFile, buffer: &mut Vec<u8>, dir: &Path) -> Result<f64, SensorError> {
    let text = file.read(buffer).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            // The driver was unbound or the module unloaded.
            SensorError::Missing(dir.display().to_string())
        } else {
            SensorError::Io {
                path: file.path().display().to_string(),
                source,
            }
        }
    })?;
    parse_number(text).ok_or_else(|| SensorError::Parse {
        path: file.path().display().to_string(),
        detail: format!("`{}` is not a number", text.trim()),
    })
}

impl SensorReader for IioReader {
    fn describe(&self) -> String {
        format!("IIO {} ({})", self.dir_name, self.driver)
    }

    fn quantities(&self) -> Vec<Quantity> {
        self.channels.iter().map(|channel| channel.quantity).collect()
    }

    fn read(&mut self) -> Vec<Reading> {
        let mut results = Vec::with_capacity(self.channels.len());
        self.read_into(&mut results);
        results
    }

    fn read_into(&mut self, results: &mut Vec<Reading>) {
        let IioReader {
            dir, channels, buffer, ..
        } = self;
        for channel in channels.iter_mut() {
            let result = read_channel(channel, buffer, dir);
            results.push((channel.quantity, result));
        }
    }

    /// Its own thread: a DHT or BME280 read sleeps in the driver.
    fn placement(&self) -> Placement {
        Placement::Thread
    }
}

/// A sysfs value: an integer or a decimal (`21300`, `10.000000000`,
/// `-0.5`). Rust also parses `inf` and `NaN`; those are refused.
fn parse_number(text: &str) -> Option<f64> {
    text.trim_ascii().parse::<f64>().ok().filter(|value| value.is_finite())
}

/// The files that make `quantity`'s channel in `dir`, if it has one. The
/// unindexed channel (`in_temp_*`) comes first, then index 0
/// (`in_temp0_*`). `_input` wins over `_raw` when a driver offers both (the
/// bmp280 driver does in recent kernels): the driver computes it at full
/// precision, while the `_scale` text is rounded to nine decimals (its
/// pressure scale, 1/256000, reads `0.000003906`, 0.006 % low).
fn find_channel(dir: &Path, quantity: Quantity) -> Option<Channel> {
    let (kind, _) = channel_type(quantity);
    let shared = format!("in_{kind}");
    let file = |name: String| Some(dir.join(name)).filter(|path| path.is_file());
    [shared.clone(), format!("in_{kind}0")].into_iter().find_map(|stem| {
        let source = if let Some(input) = file(format!("{stem}_input")) {
            Source::Input(KernelFile::new(input))
        } else {
            let raw = file(format!("{stem}_raw"))?;
            // A channel's own `_scale` wins over the one its type shares.
            let attribute = |suffix: &str| {
                file(format!("{stem}_{suffix}"))
                    .or_else(|| file(format!("{shared}_{suffix}")))
                    .map(KernelFile::new)
            };
            Source::Raw {
                raw: KernelFile::new(raw),
                scale: attribute("scale"),
                offset: attribute("offset"),
            }
        };
        Some(Channel { quantity, source })
    })
}

/// The driver name of the device in `dir`, from its `name` file.
fn driver_name(dir: &Path) -> Option<String> {
    let name = std::fs::read_to_string(dir.join("name")).ok()?;
    Some(name.trim().to_owned()).filter(|name| !name.is_empty())
}

/// Every `iio:deviceN` with its driver name, in device number order.
fn list_devices(devices: &Path) -> Vec<(String, Option<String>)> {
    let Ok(entries) = std::fs::read_dir(devices) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Option<String>)> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(DEVICE_PREFIX))
        .map(|name| {
            let driver = driver_name(&devices.join(&name));
            (name, driver)
        })
        .collect();
    // `iio:device10` after `iio:device2`; a suffix that is not a number
    // (never seen) sorts last, by name.
    found.sort_by_key(|(name, _)| {
        let number = name[DEVICE_PREFIX.len()..].parse::<u64>().ok();
        (number.is_none(), number, name.clone())
    });
    found
}

fn describe_present(present: &[(String, Option<String>)]) -> String {
    if present.is_empty() {
        return "none".to_owned();
    }
    present
        .iter()
        .map(|(dir, driver)| format!("{dir} ({})", driver.as_deref().unwrap_or("no name")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "iio";

    fn fixture() -> PathBuf {
        crate::fixtures::sysroot(FIXTURE)
    }

    fn device_dir(root: &Path, dir_name: &str) -> PathBuf {
        root.join(DEVICES_DIR).join(dir_name)
    }

    /// A writable copy of the fixture, for tests that change files.
    fn copy_of_fixture() -> tempfile::TempDir {
        crate::fixtures::copy_of(FIXTURE)
    }

    fn values(reader: &mut IioReader) -> Vec<(Quantity, f64)> {
        reader
            .read()
            .into_iter()
            .map(|(quantity, result)| match result {
                Ok(value) => (quantity, value),
                Err(error) => panic!("{quantity:?} failed: {error}"),
            })
            .collect()
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} is not {expected}");
    }

    fn open(root: &Path, device: &str) -> IioReader {
        IioReader::open(root, device).unwrap_or_else(|error| panic!("open {device}: {error}"))
    }

    #[test]
    fn a_dht22_should_open_by_directory_and_read_degrees_and_percent() {
        let mut dht = open(&fixture(), "iio:device0");
        assert_eq!(dht.describe(), "IIO iio:device0 (dht11)");
        assert_eq!(dht.quantities(), vec![Quantity::Temperature, Quantity::Humidity]);
        assert_eq!(
            values(&mut dht),
            vec![(Quantity::Temperature, 21.3), (Quantity::Humidity, 45.2)]
        );
    }

    #[test]
    fn a_dht22_should_open_by_driver_name() {
        let dht = open(&fixture(), "dht11");
        assert_eq!(dht.dir_name, "iio:device0");
        assert_eq!(dht.describe(), "IIO iio:device0 (dht11)");
    }

    #[test]
    fn a_bme280_should_compute_raw_times_scale_in_our_units() {
        let mut bme = open(&fixture(), "bme280");
        assert_eq!(bme.dir_name, "iio:device1");
        assert_eq!(
            bme.quantities(),
            vec![Quantity::Temperature, Quantity::Humidity, Quantity::Pressure]
        );
        let got = values(&mut bme);
        // The bmp280 driver's raw values are its compensated integers:
        // temperature in 0.01 °C (scale 10 → m°C): 2153 → 21.53 °C.
        assert_close(got[0].1, 21.53);
        // Humidity in 1/1024 %RH (scale 1000/1024 → m%): 46285 → 45.2 %.
        assert_close(got[1].1, 46285.0 * 0.9765625 / 1000.0);
        assert_eq!(format!("{:.1}", got[1].1), "45.2");
        // Pressure in 1/256 Pa (scale 1/256000, printed rounded, → kPa):
        // 25916211 → 101.229 kPa → 1012.29 hPa.
        assert_close(got[2].1, 25916211.0 * 0.000003906 * 10.0);
        assert_eq!(format!("{:.1}", got[2].1), "1012.3");
    }

    #[test]
    fn a_bmp280_pressure_input_in_kilopascal_should_read_in_hectopascal() {
        let mut bmp = open(&fixture(), "bmp280");
        assert_eq!(bmp.quantities(), vec![Quantity::Temperature, Quantity::Pressure]);
        let got = values(&mut bmp);
        assert_close(got[0].1, 19.87);
        assert_close(got[1].1, 1012.351953120);
    }

    #[test]
    fn offsets_should_be_added_to_raw_before_scaling() {
        // The si7020 driver's integer offsets (its own arithmetic).
        let mut si = open(&fixture(), "si7020");
        let got = values(&mut si);
        assert_eq!(got[0].0, Quantity::Temperature);
        assert_close(got[0].1, (6373.0 - 4368.0) * 10.725097656 / 1000.0);
        assert_eq!(format!("{:.1}", got[0].1), "21.5");
        assert_eq!(got[1].0, Quantity::Humidity);
        assert_close(got[1].1, (6029.0 - 786.0) * 7.629394531 / 1000.0);
        assert_eq!(format!("{:.1}", got[1].1), "40.0");
    }

    #[test]
    fn input_should_win_over_raw_and_a_channel_scale_over_the_shared_one() {
        let dir = copy_of_fixture();
        let bme = device_dir(dir.path(), "iio:device1");
        std::fs::write(bme.join("in_temp_input"), "21534\n").expect("write");
        let mut reader = open(dir.path(), "iio:device1");
        assert_close(values(&mut reader)[0].1, 21.534);

        // An indexed channel: its own scale wins, the shared offset applies.
        let adc = device_dir(dir.path(), "iio:device7");
        std::fs::create_dir_all(&adc).expect("mkdir");
        for (file, text) in [
            ("name", "adc\n"),
            ("in_temp0_raw", "100\n"),
            ("in_temp_scale", "1000\n"),
            ("in_temp0_scale", "250\n"),
            ("in_temp_offset", "-20\n"),
        ] {
            std::fs::write(adc.join(file), text).expect("write");
        }
        let mut reader = open(dir.path(), "adc");
        assert_eq!(values(&mut reader), vec![(Quantity::Temperature, 20.0)]);
    }

    #[test]
    fn an_unknown_device_should_name_every_device_present() {
        let error = IioReader::open(&fixture(), "sht31").expect_err("no sht31");
        let message = error.to_string();
        assert!(
            message.contains(
                "present: iio:device0 (dht11), iio:device1 (bme280), iio:device2 (bmp280), iio:device3 (si7020)"
            ),
            "{message}"
        );
        assert!(message.contains("`sht31`"), "{message}");

        let empty = tempfile::tempdir().expect("tempdir");
        let error = IioReader::open(empty.path(), "iio:device0").expect_err("nothing there");
        assert!(error.to_string().contains("present: none"), "{error}");
    }

    #[test]
    fn devices_should_be_matched_in_number_order_and_triggers_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let devices = dir.path().join(DEVICES_DIR);
        for (entry, driver) in [
            ("iio:device10", "dht11"),
            ("iio:device2", "dht11"),
            ("trigger0", "dht11"),
        ] {
            std::fs::create_dir_all(devices.join(entry)).expect("mkdir");
            std::fs::write(devices.join(entry).join("name"), format!("{driver}\n")).expect("write");
            std::fs::write(devices.join(entry).join("in_temp_input"), "20000\n").expect("write");
        }
        assert_eq!(open(dir.path(), "dht11").dir_name, "iio:device2");
        assert_eq!(
            describe_present(&list_devices(&devices)),
            "iio:device2 (dht11), iio:device10 (dht11)"
        );
    }

    #[test]
    fn a_device_without_our_channels_should_be_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let accel = dir.path().join(DEVICES_DIR).join("iio:device0");
        std::fs::create_dir_all(&accel).expect("mkdir");
        std::fs::write(accel.join("name"), "adxl345\n").expect("write");
        std::fs::write(accel.join("in_accel_x_raw"), "12\n").expect("write");
        let error = IioReader::open(dir.path(), "adxl345").expect_err("no channels");
        assert!(error.to_string().contains("iio:device0 (adxl345)"), "{error}");
    }

    #[test]
    fn a_failing_channel_should_fail_alone_and_only_this_round() {
        let dir = copy_of_fixture();
        let dht = device_dir(dir.path(), "iio:device0");
        let mut reader = open(dir.path(), "dht11");
        // A file that cannot be read stands in for the driver's EIO.
        let humidity = dht.join("in_humidityrelative_input");
        std::fs::remove_file(&humidity).expect("remove");
        std::fs::create_dir(&humidity).expect("a directory cannot be read as text");
        let results = reader.read();
        assert!(matches!(results[0], (Quantity::Temperature, Ok(t)) if t == 21.3));
        assert!(
            matches!(&results[1], (Quantity::Humidity, Err(SensorError::Io { path, .. })) if path.ends_with("in_humidityrelative_input"))
        );

        std::fs::remove_dir(&humidity).expect("rmdir");
        std::fs::write(&humidity, "44100\n").expect("write");
        assert_eq!(
            values(&mut reader),
            vec![(Quantity::Temperature, 21.3), (Quantity::Humidity, 44.1)]
        );
    }

    #[test]
    fn a_device_that_disappears_should_read_as_missing() {
        let dir = copy_of_fixture();
        let mut reader = open(dir.path(), "iio:device0");
        std::fs::remove_dir_all(device_dir(dir.path(), "iio:device0")).expect("unbind");
        for (_, result) in reader.read() {
            assert!(matches!(result, Err(SensorError::Missing(_))), "{result:?}");
        }
    }

    #[test]
    fn odd_content_should_be_an_error_and_never_panic() {
        let dir = copy_of_fixture();
        let bme = device_dir(dir.path(), "iio:device1");
        let mut reader = open(dir.path(), "bme280");
        for text in ["", "\n", "abc", "inf", "NaN", "1e400", "12 34", "\0", "0x10"] {
            for file in ["in_temp_raw", "in_humidityrelative_scale", "in_pressure_raw"] {
                std::fs::write(bme.join(file), text).expect("write");
            }
            for (quantity, result) in reader.read() {
                assert!(
                    matches!(result, Err(SensorError::Parse { .. })),
                    "{quantity:?} from {text:?}: {result:?}"
                );
            }
        }
        std::fs::write(bme.join("in_temp_raw"), [0xff, 0xfe]).expect("write");
        assert!(matches!(reader.read()[0].1, Err(SensorError::Io { .. })));
        // Odd names never panic either.
        for name in ["", ".", "..", "../iio", "iio:device0/..", "/", "\0"] {
            assert!(IioReader::open(dir.path(), name).is_err(), "{name:?} opened");
        }
    }

    #[test]
    fn numbers_should_parse_as_sysfs_writes_them() {
        assert_eq!(parse_number("21300\n"), Some(21300.0));
        assert_eq!(parse_number(" -0.500000\n"), Some(-0.5));
        assert_eq!(parse_number("10.000000000"), Some(10.0));
        assert_eq!(parse_number("infinity"), None);
    }
}
