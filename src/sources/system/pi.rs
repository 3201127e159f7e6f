//! Board-level readings: the Raspberry Pi firmware's throttling flags, CPU
//! temperature, CPU frequency and the board model.
//!
//! The parsers are pure; the only I/O here is probing which thermal file to
//! use and reading the model once at start-up. Periodic reads of the chosen
//! files belong to `mod.rs`.

use std::path::{Path, PathBuf};

use super::procfs::ParseError;

/// Where the Raspberry Pi firmware driver (`drivers/firmware/raspberrypi.c`)
/// exposes the firmware's `get_throttled` word, relative to the root.
pub(crate) const THROTTLED_PATH: &str = "sys/devices/platform/soc/soc:firmware/get_throttled";

/// The current frequency of the first core, in kHz, relative to the root.
pub(crate) const CPUFREQ_PATH: &str = "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq";

const MODEL_PATH: &str = "proc/device-tree/model";

/// Thermal zone types that measure the CPU itself: the Pi's SoC sensor and
/// the Intel package sensor (for running on a laptop during development).
const CPU_ZONE_TYPES: [&str; 2] = ["cpu-thermal", "x86_pkg_temp"];

/// The decoded firmware throttling word. "Now" flags describe the present;
/// "occurred" flags are sticky until reboot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Throttled {
    pub under_voltage: bool,
    pub frequency_capped: bool,
    pub throttled: bool,
    pub soft_temp_limit: bool,
    pub under_voltage_occurred: bool,
    pub frequency_capped_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temp_limit_occurred: bool,
}

impl Throttled {
    pub(crate) fn from_bits(bits: u32) -> Throttled {
        let bit = |n: u32| bits & (1 << n) != 0;
        Throttled {
            under_voltage: bit(0),
            frequency_capped: bit(1),
            throttled: bit(2),
            soft_temp_limit: bit(3),
            under_voltage_occurred: bit(16),
            frequency_capped_occurred: bit(17),
            throttled_occurred: bit(18),
            soft_temp_limit_occurred: bit(19),
        }
    }

    /// Each flag under its entity id, in the order the entities are declared.
    pub(crate) fn flags(&self) -> [(&'static str, bool); 8] {
        [
            ("under_voltage", self.under_voltage),
            ("frequency_capped", self.frequency_capped),
            ("throttled", self.throttled),
            ("soft_temp_limit", self.soft_temp_limit),
            ("under_voltage_occurred", self.under_voltage_occurred),
            ("frequency_capped_occurred", self.frequency_capped_occurred),
            ("throttled_occurred", self.throttled_occurred),
            ("soft_temp_limit_occurred", self.soft_temp_limit_occurred),
        ]
    }
}

/// The entity id and name of each throttling flag, in `Throttled::flags`
/// order.
pub(crate) const THROTTLE_ENTITIES: [(&str, &str); 8] = [
    ("under_voltage", "Under-voltage"),
    ("frequency_capped", "Frequency capped"),
    ("throttled", "Throttled"),
    ("soft_temp_limit", "Soft temperature limit"),
    ("under_voltage_occurred", "Under-voltage occurred"),
    ("frequency_capped_occurred", "Frequency capped occurred"),
    ("throttled_occurred", "Throttled occurred"),
    ("soft_temp_limit_occurred", "Soft temperature limit occurred"),
];

/// Decodes the `get_throttled` file. The driver prints the word with `%x`
/// (hex, no `0x`); a `0x` prefix, as `vcgencmd` prints it, is accepted too.
pub(crate) fn parse_throttled(text: &str) -> Result<Throttled, ParseError> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() {
        return Err(ParseError::Empty);
    }
    // from_str_radix accepts a leading `+`, which the driver never writes.
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::NotANumber {
            field: "get_throttled",
            value: text.to_owned(),
        });
    }
    u32::from_str_radix(digits, 16)
        .map(Throttled::from_bits)
        .map_err(|_| ParseError::NotANumber {
            field: "get_throttled",
            value: text.to_owned(),
        })
}

/// A thermal or hwmon temperature file (millidegrees Celsius) in °C.
pub(crate) fn parse_millidegrees(text: &str) -> Result<f64, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let milli: i64 = text.parse().map_err(|_| ParseError::NotANumber {
        field: "temp",
        value: text.to_owned(),
    })?;
    Ok(milli as f64 / 1000.0)
}

/// A cpufreq file (kHz) in MHz.
pub(crate) fn parse_khz(text: &str) -> Result<f64, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let khz: u64 = text.parse().map_err(|_| ParseError::NotANumber {
        field: "scaling_cur_freq",
        value: text.to_owned(),
    })?;
    Ok(khz as f64 / 1000.0)
}

/// Picks the file the CPU temperature is read from: a thermal zone of a CPU
/// type, else the first readable thermal zone, else the first readable
/// `hwmon*/temp1_input`. `None` when the machine exposes none.
pub(crate) fn find_temperature_file(root: &Path) -> Option<PathBuf> {
    let zones = numbered_dirs(&root.join("sys/class/thermal"), "thermal_zone");
    let readable = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .ok()
            .is_some_and(|text| parse_millidegrees(&text).is_ok())
    };
    let mut first_readable = None;
    for zone in &zones {
        let temp = zone.join("temp");
        if !readable(&temp) {
            continue;
        }
        let kind = std::fs::read_to_string(zone.join("type")).unwrap_or_default();
        if CPU_ZONE_TYPES.contains(&kind.trim()) {
            return Some(temp);
        }
        first_readable.get_or_insert(temp);
    }
    first_readable.or_else(|| {
        numbered_dirs(&root.join("sys/class/hwmon"), "hwmon")
            .into_iter()
            .map(|dir| dir.join("temp1_input"))
            .find(readable)
    })
}

/// The entries `<prefix><n>` of `dir`, ordered by `n` (so `thermal_zone10`
/// comes after `thermal_zone2`, which directory order does not promise).
fn numbered_dirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut numbered: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let n = name.to_str()?.strip_prefix(prefix)?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    numbered.into_iter().map(|(_, path)| path).collect()
}

/// The board model from `<root>/proc/device-tree/model` (NUL-terminated on a
/// Pi: strip it and whitespace), None when absent/empty.
pub fn board_model(root: &Path) -> Option<String> {
    let bytes = std::fs::read(root.join(MODEL_PATH)).ok()?;
    let model = String::from_utf8_lossy(&bytes);
    let model = model.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!model.is_empty()).then(|| model.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(f: impl Fn(&mut Throttled)) -> Throttled {
        let mut flags = Throttled::default();
        f(&mut flags);
        flags
    }

    #[test]
    fn throttled_flags_should_decode_bit_by_bit() {
        let table: [(&str, Throttled); 10] = [
            ("0", Throttled::default()),
            ("1", set(|t| t.under_voltage = true)),
            ("2", set(|t| t.frequency_capped = true)),
            ("4", set(|t| t.throttled = true)),
            ("8", set(|t| t.soft_temp_limit = true)),
            ("10000", set(|t| t.under_voltage_occurred = true)),
            ("20000", set(|t| t.frequency_capped_occurred = true)),
            ("40000", set(|t| t.throttled_occurred = true)),
            ("80000", set(|t| t.soft_temp_limit_occurred = true)),
            // Bits the firmware defines nowhere else are ignored.
            ("f0f0", Throttled::default()),
        ];
        for (text, expected) in table {
            assert_eq!(parse_throttled(text), Ok(expected), "input {text:?}");
        }
    }

    #[test]
    fn throttled_should_read_the_drivers_hex_and_vcgencmds_prefix() {
        let expected = set(|t| {
            t.under_voltage = true;
            t.throttled = true;
            t.under_voltage_occurred = true;
            t.throttled_occurred = true;
        });
        assert_eq!(parse_throttled("50005\n"), Ok(expected));
        assert_eq!(parse_throttled("0x50005"), Ok(expected));
        assert_eq!(parse_throttled("0xf000f"), Ok(parse_throttled("F000F").expect("hex")));
    }

    #[test]
    fn throttled_should_reject_garbage() {
        for text in ["", "\n", "0x", "throttled", "5000g", "-1", "+5", "1 2", "123456789"] {
            assert!(parse_throttled(text).is_err(), "input {text:?}");
        }
    }

    #[test]
    fn flags_should_follow_the_entity_table() {
        let ids: Vec<&str> = Throttled::default().flags().iter().map(|(id, _)| *id).collect();
        let declared: Vec<&str> = THROTTLE_ENTITIES.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, declared);
    }

    #[test]
    fn temperature_and_frequency_should_convert_units() {
        assert_eq!(parse_millidegrees("48686\n"), Ok(48.686));
        assert_eq!(parse_millidegrees("-5000"), Ok(-5.0));
        assert_eq!(parse_khz("1500000\n"), Ok(1500.0));
        for text in ["", "hot", "48.6"] {
            assert!(parse_millidegrees(text).is_err(), "input {text:?}");
        }
        for text in ["", "fast", "-1"] {
            assert!(parse_khz(text).is_err(), "input {text:?}");
        }
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn temperature_should_prefer_the_cpu_zone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "sys/class/thermal/thermal_zone0/type", "acpitz\n");
        write(root, "sys/class/thermal/thermal_zone0/temp", "30000\n");
        write(root, "sys/class/thermal/thermal_zone10/type", "x86_pkg_temp\n");
        write(root, "sys/class/thermal/thermal_zone10/temp", "55000\n");
        assert_eq!(
            find_temperature_file(root),
            Some(root.join("sys/class/thermal/thermal_zone10/temp"))
        );
    }

    #[test]
    fn temperature_should_fall_back_to_the_first_readable_zone_then_hwmon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "sys/class/hwmon/hwmon1/temp1_input", "41000\n");
        write(root, "sys/class/hwmon/hwmon0/name", "no temperature here\n");
        assert_eq!(
            find_temperature_file(root),
            Some(root.join("sys/class/hwmon/hwmon1/temp1_input"))
        );

        write(root, "sys/class/thermal/thermal_zone0/temp", "garbage\n");
        write(root, "sys/class/thermal/thermal_zone2/type", "gpu\n");
        write(root, "sys/class/thermal/thermal_zone2/temp", "40000\n");
        write(root, "sys/class/thermal/thermal_zone11/temp", "45000\n");
        assert_eq!(
            find_temperature_file(root),
            Some(root.join("sys/class/thermal/thermal_zone2/temp"))
        );
    }

    #[test]
    fn board_model_should_strip_the_nul_and_whitespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(board_model(dir.path()), None);
        write(dir.path(), MODEL_PATH, "\0");
        assert_eq!(board_model(dir.path()), None);
        write(dir.path(), MODEL_PATH, "Raspberry Pi Zero 2 W Rev 1.0\n\0");
        assert_eq!(
            board_model(dir.path()).as_deref(),
            Some("Raspberry Pi Zero 2 W Rev 1.0")
        );
    }
}
