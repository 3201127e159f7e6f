//! The default node id: the host name, unless that is a factory default
//! that every fresh SD card carries (`raspberrypi`), in which case a short
//! suffix from this board keeps two such Pis from sharing a node id and an
//! MQTT client id (they would take the broker session from each other
//! forever).
//!
//! The suffix comes from files under the config's root (`system.root`), so
//! fixture trees can test it: the board serial first (the device tree's
//! `serial-number`, else `Serial` in `/proc/cpuinfo`), because two Pis
//! cloned from one SD image share `/etc/machine-id`; `/etc/machine-id` on
//! boards without a serial.

use std::path::Path;

/// Host names that images ship with, compared on the first label (so
/// `raspberrypi.lan` counts). Raspberry Pi OS (`raspberrypi`; `raspberry`,
/// `raspbian` and `rpi` in older or third-party images), DietPi, Ubuntu,
/// Debian, Fedora, Kali, Arch Linux ARM (`alarm`, `alarmpi`, `archlinux`),
/// OctoPi, OSMC, LibreELEC, RetroPie, a bare `pi`, an unset `localhost`,
/// and `majortom`, our own name when the host has none.
pub const FACTORY_HOSTNAMES: &[&str] = &[
    "raspberrypi",
    "raspberry",
    "raspbian",
    "rpi",
    "pi",
    "localhost",
    "ubuntu",
    "debian",
    "dietpi",
    "fedora",
    "kali",
    "alarm",
    "alarmpi",
    "archlinux",
    "octopi",
    "osmc",
    "libreelec",
    "retropie",
    "majortom",
];

/// How many hex digits of the serial or machine id are appended: 24 bits,
/// plenty to tell a household's Pis apart, short enough to read.
const SUFFIX_LEN: usize = 6;

/// Where the node id came from; `majortom check` and the start-up log say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIdOrigin {
    /// `node.id` in the config.
    Configured,
    /// The host name.
    HostName,
    /// A factory-default host name made unique by a suffix from `source`.
    Suffixed { hostname: String, source: SuffixSource },
    /// A factory-default host name, and nothing to make it unique with.
    FactoryDefault { hostname: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuffixSource {
    DeviceTreeSerial,
    CpuinfoSerial,
    MachineId,
}

impl SuffixSource {
    pub fn describe(self) -> &'static str {
        match self {
            SuffixSource::DeviceTreeSerial => "the board serial (/proc/device-tree/serial-number)",
            SuffixSource::CpuinfoSerial => "the board serial (Serial in /proc/cpuinfo)",
            SuffixSource::MachineId => "/etc/machine-id",
        }
    }
}

impl NodeIdOrigin {
    /// One line for the log and `majortom check`; `None` when there is
    /// nothing to say (an id from the config or an ordinary host name).
    pub fn describe(&self, id: &str) -> Option<String> {
        match self {
            NodeIdOrigin::Configured | NodeIdOrigin::HostName => None,
            NodeIdOrigin::Suffixed { hostname, source } => Some(format!(
                "the host name `{hostname}` is a factory default, so the node id `{id}` carries a suffix from {} \
                 to keep it unique (set node.id to choose one)",
                source.describe()
            )),
            NodeIdOrigin::FactoryDefault { hostname } => Some(format!(
                "the host name `{hostname}` is a factory default and this machine has no serial or machine id: \
                 another machine with that name would share the node id `{id}`; set node.id"
            )),
        }
    }
}

/// True for a host name an image ships with.
pub fn is_factory_hostname(hostname: &str) -> bool {
    let first = hostname.trim().split('.').next().unwrap_or("").to_ascii_lowercase();
    FACTORY_HOSTNAMES.contains(&first.as_str())
}

/// A short suffix that tells this machine apart, read under `root`, and
/// where it came from.
pub fn machine_suffix(root: &Path) -> Option<(String, SuffixSource)> {
    let read = |relative: &str| std::fs::read_to_string(root.join(relative)).ok();
    read("proc/device-tree/serial-number")
        .and_then(|text| suffix_of(&text))
        .map(|s| (s, SuffixSource::DeviceTreeSerial))
        .or_else(|| {
            read("proc/cpuinfo")
                .and_then(|text| cpuinfo_serial(&text).and_then(suffix_of))
                .map(|s| (s, SuffixSource::CpuinfoSerial))
        })
        .or_else(|| {
            read("etc/machine-id")
                .and_then(|text| suffix_of(&text))
                .map(|s| (s, SuffixSource::MachineId))
        })
}

/// `Serial : 10000000a1b2c3d4` from `/proc/cpuinfo`.
fn cpuinfo_serial(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "Serial").then(|| value.trim())
    })
}

/// The last hex digits of an id, lowercased; `None` for one that is not
/// hex, too short, or all zeros (some boards report a zero serial).
fn suffix_of(text: &str) -> Option<String> {
    let id = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if id.len() < SUFFIX_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(id[id.len() - SUFFIX_LEN..].to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_hostnames_should_be_recognised_on_their_first_label() {
        for name in [
            "raspberrypi",
            "RaspberryPi",
            "raspberrypi.lan",
            "localhost",
            "dietpi",
            "ubuntu",
        ] {
            assert!(is_factory_hostname(name), "{name}");
        }
        for name in ["kitchen-pi", "raspberrypi4", "pihole", ""] {
            assert!(!is_factory_hostname(name), "{name}");
        }
    }

    #[test]
    fn suffixes_should_come_from_the_serial_first_then_the_machine_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert_eq!(machine_suffix(root), None);
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::write(root.join("etc/machine-id"), "0123456789abcdef0123456789ABCDEF\n").expect("write");
        assert_eq!(machine_suffix(root), Some(("abcdef".into(), SuffixSource::MachineId)));
        std::fs::create_dir_all(root.join("proc/device-tree")).expect("mkdir");
        std::fs::write(
            root.join("proc/cpuinfo"),
            "processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 00000000c0ffee42\n",
        )
        .expect("write");
        assert_eq!(
            machine_suffix(root),
            Some(("ffee42".into(), SuffixSource::CpuinfoSerial))
        );
        // A zero serial says nothing; the next source is used.
        std::fs::write(root.join("proc/device-tree/serial-number"), "0000000000000000\0").expect("write");
        assert_eq!(
            machine_suffix(root),
            Some(("ffee42".into(), SuffixSource::CpuinfoSerial))
        );
        std::fs::write(root.join("proc/device-tree/serial-number"), "10000000A1B2C3D4\0").expect("write");
        assert_eq!(
            machine_suffix(root),
            Some(("b2c3d4".into(), SuffixSource::DeviceTreeSerial))
        );
    }
}
