//! DS18B20 temperature sensors on 1-wire, through the kernel's `w1_therm`
//! driver in sysfs, below an injectable root (`/` in production, a fixture
//! tree in tests).
//!
//! This file owns finding the sensors (`discover`), reading one sensor's
//! `w1_slave` file and judging its content: CRC failures, the empty read the
//! kernel gives when a conversion fails, and the two readings a DS18B20 gives
//! when it did not really measure (see [`parse_w1_slave`]). Scheduling,
//! calibration and availability belong to the runner in `mod.rs`; enabling
//! the bus (`dtoverlay=w1-gpio`) belongs to the user.
//!
//! `w1_slave` stays open and is read with `pread` from offset 0 into a
//! buffer the reader keeps: each such read is a fresh conversion, as a
//! fresh open is. A sensor unplugged makes the kernel remove its directory
//! (the kept file's reads fail, `ENODEV`), and plugged back brings the
//! directory back: the reopen after the failed read finds it. The read
//! blocks for the conversion (750 ms), so it runs on the sensor's own
//! thread (see "Where reads run" in `sensors`).

use std::path::{Path, PathBuf};

use super::{Placement, Quantity, Reading, SensorError, SensorReader};
use crate::sources::kernel_file::KernelFile;

/// Where the w1 bus lists its devices, relative to the root.
const DEVICES_DIR: &str = "sys/bus/w1/devices";

/// The DS18B20's 1-wire family code, the prefix of its directory name.
const FAMILY_PREFIX: &str = "28-";

/// The range the DS18B20 measures (datasheet: −55 °C to +125 °C), in m°C.
const RANGE_MILLI: std::ops::RangeInclusive<i64> = -55_000..=125_000;

/// The ids (`28-0316a2795cff`) of every DS18B20 below `root`, sorted. A
/// missing bus directory (1-wire not enabled) gives none.
pub fn discover(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(DEVICES_DIR)) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        // The bus master (`w1_bus_master1`) and other families (DS2413
        // switches are `3a-...`) sit next to the sensors.
        .filter(|name| name.starts_with(FAMILY_PREFIX))
        .collect();
    ids.sort();
    ids
}

/// One DS18B20, read through `<root>/sys/bus/w1/devices/<id>/w1_slave`.
///
/// Building it never fails: a configured sensor that is absent at start
/// still gets its entity, unavailable until the device appears.
#[derive(Debug)]
pub struct Ds18b20Reader {
    id: String,
    dir: PathBuf,
    file: KernelFile,
    /// `w1_slave`'s text (about 80 bytes); kept between rounds.
    buffer: Vec<u8>,
}

impl Ds18b20Reader {
    pub fn new(root: &Path, id: &str) -> Ds18b20Reader {
        let dir = root.join(DEVICES_DIR).join(id);
        Ds18b20Reader {
            id: id.to_owned(),
            file: KernelFile::new(dir.join("w1_slave")),
            dir,
            buffer: Vec::new(),
        }
    }

    fn read_temperature(&mut self) -> Result<f64, SensorError> {
        let text = match self.file.read(&mut self.buffer) {
            Ok(text) => text,
            // The kernel removes the directory a while after the sensor
            // stops answering the bus search.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SensorError::Missing(self.dir.display().to_string()))
            }
            Err(source) => {
                return Err(SensorError::Io {
                    path: self.file.path().display().to_string(),
                    source,
                })
            }
        };
        let milli = parse_w1_slave(text).map_err(|problem| problem.into_error(self.file.path()))?;
        Ok(milli as f64 / 1000.0)
    }
}

impl SensorReader for Ds18b20Reader {
    fn describe(&self) -> String {
        format!("DS18B20 {}", self.id)
    }

    fn quantities(&self) -> Vec<Quantity> {
        vec![Quantity::Temperature]
    }

    fn read(&mut self) -> Vec<Reading> {
        vec![(Quantity::Temperature, self.read_temperature())]
    }

    fn read_into(&mut self, results: &mut Vec<Reading>) {
        results.push((Quantity::Temperature, self.read_temperature()));
    }

    /// Its own thread: the read waits for the conversion (750 ms).
    fn placement(&self) -> Placement {
        Placement::Thread
    }
}

/// What can be wrong with a `w1_slave` file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// The kernel's `w1_slave_show` returns nothing when the conversion or
    /// the scratchpad read failed (no answer, bus busy, interrupted).
    Empty,
    Crc,
    /// All nine scratchpad bytes zero: the data line is held low (a short,
    /// a dead sensor). Their CRC is zero as well, so the kernel says YES.
    AllZero,
    /// The power-on reset value (85 °C, or 127.94 °C on some clones): the
    /// sensor did not convert, typically for lack of power on a
    /// parasite-powered bus.
    PowerOnReset,
    OutOfRange(i64),
    Malformed(String),
}

impl Problem {
    fn into_error(self, file: &Path) -> SensorError {
        let path = file.display().to_string();
        match self {
            Problem::Crc => SensorError::Crc,
            Problem::Empty => SensorError::Device(format!(
                "{path} was empty: the sensor did not answer or the conversion failed; \
                 check wiring and the 4.7 kΩ pull-up"
            )),
            Problem::AllZero => SensorError::Device(format!(
                "{path} read all zeros: the data line is held low; check wiring"
            )),
            Problem::PowerOnReset => SensorError::Device(format!(
                "{path} gave the power-on value (85 °C): the sensor did not convert; \
                 on parasite power, wire VDD to 3.3 V"
            )),
            Problem::OutOfRange(milli) => {
                SensorError::Device(format!("{path} gave {milli} m°C, outside the DS18B20's −55..125 °C"))
            }
            Problem::Malformed(detail) => SensorError::Parse { path, detail },
        }
    }
}

/// The temperature in m°C from a `w1_slave` file, as the kernel's
/// `w1_therm.c` (`w1_slave_show`) writes it:
///
/// ```text
/// 72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
/// 72 01 4b 46 7f ff 0e 10 57 t=23125
/// ```
///
/// The first line is the scratchpad just read and the kernel's CRC verdict;
/// the second repeats the last good scratchpad and `t=` computed from the
/// one just read, so after `NO` the temperature is garbage.
///
/// `t=85000` is refused when the scratchpad is the power-on pattern
/// (`50 05 .. .. .. .. 0c`), the same test the kernel applies when its
/// optional `features` check is on: a real conversion to 85.000 °C leaves
/// byte 6 at `10`, the power-on value has `0c`, so a hot sensor still reads.
/// Without a scratchpad to look at, `t=85000` is refused too: a false 85 °C
/// in a house is far likelier than a real one, and would trip automations.
fn parse_w1_slave(text: &str) -> Result<i64, Problem> {
    if text.trim_ascii().is_empty() {
        return Err(Problem::Empty);
    }
    let mut lines = text.lines();
    let status = lines.next().unwrap_or_default();
    let (bytes_text, verdict) = status
        .split_once(':')
        .ok_or_else(|| Problem::Malformed("no `: crc=` on the first line".to_owned()))?;
    let verdict = verdict.trim_ascii();
    if !verdict.starts_with("crc=") {
        return Err(Problem::Malformed(format!("expected `crc=..`, found `{verdict}`")));
    }
    match verdict.split_ascii_whitespace().next_back() {
        Some("YES") => {}
        Some("NO") => return Err(Problem::Crc),
        other => {
            return Err(Problem::Malformed(format!(
                "CRC verdict `{}` is neither YES nor NO",
                other.unwrap_or_default()
            )))
        }
    }
    let scratchpad = parse_scratchpad(bytes_text);
    if scratchpad.as_ref().is_some_and(|bytes| bytes.iter().all(|b| *b == 0)) {
        return Err(Problem::AllZero);
    }

    let reading = lines
        .find_map(|line| line.split_once("t=").map(|(_, value)| value.trim_ascii()))
        .ok_or_else(|| Problem::Malformed("no `t=` line".to_owned()))?;
    let milli: i64 = reading
        .parse()
        .map_err(|_| Problem::Malformed(format!("`t={reading}` is not a whole number")))?;

    let power_on = match &scratchpad {
        Some(bytes) => bytes[6] == 0x0c && matches!((bytes[0], bytes[1]), (0x50, 0x05) | (0xff, 0x07)),
        None => milli == 85_000,
    };
    if power_on {
        return Err(Problem::PowerOnReset);
    }
    if !RANGE_MILLI.contains(&milli) {
        return Err(Problem::OutOfRange(milli));
    }
    Ok(milli)
}

/// The nine hex bytes before `:`, or `None` when they are not that.
fn parse_scratchpad(text: &str) -> Option<[u8; 9]> {
    let mut bytes = [0u8; 9];
    let mut tokens = text.split_ascii_whitespace();
    for byte in &mut bytes {
        *byte = u8::from_str_radix(tokens.next()?, 16).ok()?;
    }
    tokens.next().is_none().then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use crate::hub::{Hub, HubEvent};
    use crate::sources::sensors::{Calibration, Sensor};

    const GOOD: &str = "28-0316a2795cff";
    const BAD_CRC: &str = "28-0416b3b8c1ff";

    const FIXTURE: &str = "w1";

    fn fixture() -> PathBuf {
        crate::fixtures::sysroot(FIXTURE)
    }

    /// A writable copy of the fixture, for tests that change files.
    fn copy_of_fixture() -> tempfile::TempDir {
        crate::fixtures::copy_of(FIXTURE)
    }

    fn read(root: &Path, id: &str) -> Result<f64, SensorError> {
        let mut reader = Ds18b20Reader::new(root, id);
        let mut results = reader.read();
        assert_eq!(results.len(), 1);
        let (quantity, result) = results.remove(0);
        assert_eq!(quantity, Quantity::Temperature);
        result
    }

    fn line(bytes: &str, tail: &str) -> String {
        format!("{bytes} {tail}")
    }

    fn w1(bytes: &str, verdict: &str, milli: &str) -> String {
        let crc = bytes.rsplit(' ').next().unwrap_or("00");
        format!(
            "{}\n{}\n",
            line(bytes, &format!(": crc={crc} {verdict}")),
            line(bytes, &format!("t={milli}"))
        )
    }

    #[test]
    fn discover_should_list_only_ds18b20_devices_sorted() {
        assert_eq!(discover(&fixture()), vec![GOOD.to_owned(), BAD_CRC.to_owned()]);
        assert!(fixture().join(DEVICES_DIR).join("w1_bus_master1").is_dir());
    }

    #[test]
    fn discover_without_a_w1_bus_should_find_nothing() {
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(discover(empty.path()).is_empty());
    }

    #[test]
    fn a_good_device_should_read_in_degrees() {
        assert_eq!(read(&fixture(), GOOD).expect("good reading"), 23.125);
        let reader = Ds18b20Reader::new(&fixture(), GOOD);
        assert_eq!(reader.describe(), "DS18B20 28-0316a2795cff");
        assert_eq!(reader.quantities(), vec![Quantity::Temperature]);
    }

    #[test]
    fn a_crc_failure_should_be_a_crc_error() {
        assert!(matches!(read(&fixture(), BAD_CRC), Err(SensorError::Crc)));
    }

    #[test]
    fn an_absent_device_should_be_missing() {
        match read(&fixture(), "28-000000000000") {
            Err(SensorError::Missing(dir)) => assert!(dir.ends_with("sys/bus/w1/devices/28-000000000000"), "{dir}"),
            other => panic!("expected Missing, got {other:?}"),
        }
    }

    #[test]
    fn negative_temperatures_should_read() {
        let text = w1("5e ff 4b 46 7f ff 02 10 b6", "YES", "-10125");
        assert_eq!(parse_w1_slave(&text), Ok(-10_125));
    }

    #[test]
    fn the_power_on_value_should_be_refused_but_a_real_85_degrees_kept() {
        let power_on = w1("50 05 4b 46 7f ff 0c 10 1c", "YES", "85000");
        assert_eq!(parse_w1_slave(&power_on), Err(Problem::PowerOnReset));
        // A conversion that really gives 85.000 °C leaves byte 6 at 0x10.
        let hot = w1("50 05 4b 46 7f ff 10 10 bd", "YES", "85000");
        assert_eq!(parse_w1_slave(&hot), Ok(85_000));
        // Without readable bytes there is no telling: refused.
        assert_eq!(parse_w1_slave(": crc=1c YES\nt=85000\n"), Err(Problem::PowerOnReset));
        // Some clones power up at 0x07ff (127.94 °C).
        let clone = w1("ff 07 4b 46 7f ff 0c 10 a6", "YES", "127937");
        assert_eq!(parse_w1_slave(&clone), Err(Problem::PowerOnReset));
    }

    #[test]
    fn an_all_zero_scratchpad_should_be_refused_despite_its_crc() {
        let zeros = w1("00 00 00 00 00 00 00 00 00", "YES", "0");
        assert_eq!(parse_w1_slave(&zeros), Err(Problem::AllZero));
    }

    #[test]
    fn an_empty_file_should_be_a_failed_conversion() {
        assert_eq!(parse_w1_slave(""), Err(Problem::Empty));
        assert!(matches!(
            Problem::Empty.into_error(Path::new("/x/w1_slave")),
            SensorError::Device(message) if message.contains("pull-up")
        ));
    }

    #[test]
    fn odd_content_should_be_an_error_and_never_panic() {
        for text in [
            "\n",
            "\0\0\0",
            "garbage",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 t=\n",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 t=23.5\n",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\nt=99999999999999999999999\n",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 MAYBE\nt=1000\n",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57\nt=1000\n",
            "72 01 4b 46 7f ff 0e 10 57 : crc\nt=1000\n",
            ": :: t=t=t=\n",
            "zz zz : crc=57 YES\nt=126000\n",
            "é : crc=57 YES\nt=-56000\n",
        ] {
            assert!(parse_w1_slave(text).is_err(), "{text:?} accepted");
        }
        // Unreadable bytes alone do not spoil a plausible reading.
        assert_eq!(parse_w1_slave("zz : crc=57 YES\nzz t=21000\n"), Ok(21_000));
    }

    #[test]
    fn odd_file_content_should_reach_the_runner_as_an_error() {
        let dir = copy_of_fixture();
        let file = dir.path().join(DEVICES_DIR).join(GOOD).join("w1_slave");
        std::fs::write(&file, [0xff, 0xfe, 0x00]).expect("write");
        assert!(matches!(read(dir.path(), GOOD), Err(SensorError::Io { .. })));
        std::fs::write(&file, "t=abc\n").expect("write");
        assert!(matches!(read(dir.path(), GOOD), Err(SensorError::Parse { .. })));
    }

    /// Waits for the hub to report `id`'s availability as `available`.
    async fn until_available(
        hub: &Hub,
        events: &mut tokio::sync::broadcast::Receiver<HubEvent>,
        id: &str,
        available: bool,
    ) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.get(id).map(|e| e.available) != Some(available) || hub.get(id).and_then(|e| e.value).is_none() {
                match events.recv().await {
                    Ok(_) => {}
                    Err(error) => panic!("hub closed: {error}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{id} available={available} within 5 s"));
    }

    #[tokio::test]
    async fn a_device_that_goes_away_should_be_unavailable_until_it_comes_back() {
        let dir = copy_of_fixture();
        let device = dir.path().join(DEVICES_DIR).join(GOOD);
        let saved = dir.path().join("saved");
        let sensor = Sensor {
            name: "boiler".to_owned(),
            label: "Boiler".to_owned(),
            interval: Duration::from_millis(100),
            calibration: Calibration::default(),
            filters: Vec::new(),
            reader: Box::new(Ds18b20Reader::new(dir.path(), GOOD)),
        };
        let hub = Hub::new(8);
        for spec in sensor.entities() {
            hub.register(spec);
        }
        let mut events = hub.subscribe();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sensor.run(Arc::clone(&hub), cancel.clone()));

        until_available(&hub, &mut events, "boiler", true).await;
        assert_eq!(
            hub.get("boiler").and_then(|e| e.value).and_then(|v| v.as_number()),
            Some(23.125)
        );

        std::fs::rename(&device, &saved).expect("unplug");
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(HubEvent::Availability(spec, false)) = events.recv().await {
                    assert_eq!(spec.id, "boiler");
                    break;
                }
            }
        })
        .await
        .expect("unavailable within 5 s");

        std::fs::rename(&saved, &device).expect("plug back");
        until_available(&hub, &mut events, "boiler", true).await;

        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops promptly")
            .expect("does not panic");
    }
}
