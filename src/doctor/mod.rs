//! `majortom doctor`: checks what a hobbyist gets wrong on a Pi, each
//! finding with its fix: the board, the GPIO backend and why, access to
//! each GPIO chip (user, groups, the installed unit), every configured pin,
//! PWM, I2C, 1-wire, IIO, the broker (`broker.rs`), the clock and the
//! power supply. Everything under the config's root, so it is tested
//! against fixture trees; the real machine is the emulated Pi's test.
//!
//! It only looks: lines are read "as is" (never reconfigured) and released
//! at once, nothing is written. Blocking, with no runtime: it runs alone.

mod broker;

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use crate::config::{Config, Drive, SensorSource};
use crate::hal::cdev::{uapi, Chip};
use crate::hal::select::{self, Choice};
use crate::hal::Pin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Worth knowing; not a failure.
    Note,
    Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>, fix: Option<String>) {
        self.findings.push(Finding {
            check,
            status,
            message: message.into(),
            fix,
        });
    }
    fn ok(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Ok, message, None);
    }
    fn note(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Note, message, None);
    }
    fn problem(&mut self, check: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.add(check, Status::Problem, message, Some(fix.into()));
    }

    /// True when nothing is a problem (exit 0).
    pub fn all_well(&self) -> bool {
        self.findings.iter().all(|f| f.status != Status::Problem)
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let tag = match f.status {
                Status::Ok => "ok  ",
                Status::Note => "note",
                Status::Problem => "FAIL",
            };
            let _ = writeln!(out, "{tag}  {}: {}", f.check, f.message);
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
        let problems = self.findings.iter().filter(|f| f.status == Status::Problem).count();
        if problems == 0 {
            out.push_str("all is well\n");
        } else {
            let _ = writeln!(out, "{problems} problem(s)");
        }
        out
    }

    /// `{"ok": …, "checks": [{"check", "status", "message", "fix"}]}`,
    /// written by hand: serde_json's `Value` maps would cost the binary
    /// more than this.
    pub fn json(&self) -> String {
        let mut out = format!("{{\"ok\":{},\"checks\":[", self.all_well());
        for (n, f) in self.findings.iter().enumerate() {
            let status = match f.status {
                Status::Ok => "ok",
                Status::Note => "note",
                Status::Problem => "problem",
            };
            let comma = if n == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{comma}{{\"check\":{},\"status\":\"{status}\",\"message\":{},\"fix\":",
                quoted(f.check),
                quoted(&f.message)
            );
            match &f.fix {
                Some(fix) => out.push_str(&quoted(fix)),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs every check for `config` (blocking: a broker step waits up to 5 s).
pub fn run(config: &Config) -> Report {
    let mut report = Report::default();
    let root = config.root.as_path();
    board(root, &mut report);
    gpio(config, &mut report);
    buses(config, &mut report);
    if let Some(mqtt) = &config.mqtt {
        let node = crate::node::NodeInfo::detect(config, None, None);
        let status = std::sync::Arc::new(crate::status::AgentStatus::new(node, None, None));
        broker::check(mqtt, &config.node.id, status, &mut report);
    }
    clock(SystemTime::now(), &mut report);
    power(root, &mut report);
    report
}

fn board(root: &Path, report: &mut Report) {
    match crate::sources::system::board_model(root) {
        Some(model) => report.ok("board", model),
        None => report.note(
            "board",
            "no device-tree model: not a Raspberry Pi (or /proc not mounted)",
        ),
    }
}

/// Who we are: `root (uid 0; groups root, gpio)`.
fn identity(root: &Path) -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let user = passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse() == Ok(uid)).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    let mut gids = [0 as libc::gid_t; 64];
    // SAFETY: getgroups writes at most 64 ids into our buffer.
    let n = unsafe { libc::getgroups(64, gids.as_mut_ptr()) }.max(0) as usize;
    // SAFETY: getgid has no preconditions.
    let mut all = vec![unsafe { libc::getgid() }];
    all.extend(
        gids[..n]
            .iter()
            .filter(|g| !all.contains(g))
            .copied()
            .collect::<Vec<_>>(),
    );
    let names: Vec<String> = all
        .iter()
        .map(|g| select::group_name(root, *g).unwrap_or_else(|| g.to_string()))
        .collect();
    format!("{user} (uid {uid}; groups {})", names.join(", "))
}

/// The installed unit and its drop-ins, as one text.
fn installed_unit(root: &Path) -> Option<String> {
    let dir = root.join("etc/systemd/system");
    let mut text = std::fs::read_to_string(dir.join("majortom.service")).ok()?;
    if let Ok(entries) = std::fs::read_dir(dir.join("majortom.service.d")) {
        for entry in entries.flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    Some(text)
}

fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .flat_map(str::split_whitespace)
        .collect()
}

fn gpio(config: &Config, report: &mut Report) {
    let root = config.root.as_path();
    let probe = select::probe(root);
    let decision = select::decide(config.gpio.backend, config.gpio.chip.as_deref(), &probe);
    match &decision {
        Ok(d) => {
            let name = match d.choice {
                Choice::Cdev(_) => "cdev",
                Choice::Rppal => "rppal",
                Choice::Sim => "sim",
            };
            report.ok("gpio backend", format!("{name}: {}", d.reason));
        }
        Err(error) => report.problem(
            "gpio backend",
            error.to_string(),
            "see above; `majortom doctor` again after the change",
        ),
    }
    if probe.gpiomem {
        report.ok(
            "gpiomem",
            "/dev/gpiomem is there (Raspberry Pi OS kernel): rppal can work too",
        );
    } else {
        report.note("gpiomem", "no /dev/gpiomem (a mainline kernel): gpio.backend = \"rppal\" cannot work here; auto uses the character device");
    }
    let who = identity(root);
    for chip in &probe.chips {
        match &chip.opened {
            Ok(c) => report.ok("gpio chip", format!("{} opens for {who}", c.describe())),
            Err(failure) => report.problem(
                "gpio chip",
                format!("{} does not open for {who}", chip.path.display()),
                failure.cause(),
            ),
        }
    }
    match installed_unit(root) {
        None => report.note(
            "unit",
            "no installed service (/etc/systemd/system/majortom.service): `sudo majortom install` sets one up",
        ),
        Some(unit) => {
            let allow = unit_values(&unit, "DeviceAllow");
            let groups = unit_values(&unit, "SupplementaryGroups");
            if allow.contains(&"char-gpiochip") {
                report.ok(
                    "unit",
                    format!("the installed unit allows char-gpiochip; groups {}", groups.join(" ")),
                );
            } else {
                report.problem(
                    "unit",
                    "the installed unit has no DeviceAllow=char-gpiochip: the service cannot open /dev/gpiochipN",
                    "`sudo majortom install` rewrites it; remove drop-ins that set DevicePolicy/DeviceAllow",
                );
            }
        }
    }
    // The configured pins, on the chip the agent would use.
    let chip = match decision {
        Ok(select::Decision {
            choice: Choice::Cdev(index),
            ..
        }) => probe.chips.get(index).and_then(|c| c.opened.as_ref().ok()),
        _ => None,
    };
    let pins = config
        .inputs
        .iter()
        .map(|i| (&i.pin, format!("input `{}`", i.name)))
        .chain(config.outputs.iter().filter_map(|o| match &o.drive {
            Drive::Gpio(pin) => Some((pin, format!("output `{}`", o.name))),
            Drive::Pwm(_) => None,
        }));
    for (pin, what) in pins {
        match chip {
            Some(chip) => line(chip, pin, &what, report),
            None => report.note("pin", format!("{pin} ({what}): not checked (no GPIO chip in use)")),
        }
    }
    for output in &config.outputs {
        if let Drive::Pwm(pwm) = &output.drive {
            let dir = root.join(format!("sys/class/pwm/pwmchip{}", pwm.chip));
            let what = format!("pwmchip{} channel {} (output `{}`)", pwm.chip, pwm.channel, output.name);
            if !dir.is_dir() {
                report.problem("pwm", format!("{what}: no such PWM chip"), "add dtoverlay=pwm (GPIO 18) or dtoverlay=pwm-2chan (GPIO 18 and 19) to /boot/firmware/config.txt and reboot");
            } else if std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("export"))
                .is_err()
            {
                report.problem("pwm", format!("{what}: {} is not writable for {who}", dir.join("export").display()), "on Raspberry Pi OS the gpio group may write it; elsewhere add a udev rule that gives /sys/class/pwm to the gpio group");
            } else {
                report.ok("pwm", format!("{what}: there and writable"));
            }
        }
    }
}

/// One configured pin on the chip: there, free or held by whom, its level.
fn line(chip: &Chip, pin: &Pin, what: &str, report: &mut Report) {
    let offset = match chip.resolve(pin) {
        Ok(offset) => offset,
        Err(error) => {
            report.problem(
                "pin",
                format!("{pin} ({what}): {error}"),
                "use a BCM number (0-27) or a line name the chip has (gpioinfo lists them)",
            );
            return;
        }
    };
    let info = match chip.line_info(offset) {
        Ok(info) => info,
        Err(error) => {
            report.problem(
                "pin",
                format!("{pin} ({what}): cannot read its line info: {error}"),
                "check the GPIO chip's access above",
            );
            return;
        }
    };
    if info.used() {
        let consumer = info.consumer();
        if consumer == crate::hal::cdev::CONSUMER {
            report.note(
                "pin",
                format!("{pin} ({what}): held by `majortom` (the agent is running)"),
            );
        } else {
            report.problem(
                "pin",
                format!("{pin} ({what}): held by `{consumer}`"),
                "stop the program or driver that holds it (a dtoverlay, another daemon, /sys/class/gpio export), or pick another pin",
            );
        }
        return;
    }
    // Requested "as is" (no direction): reading does not reconfigure it.
    let level = uapi::request_line(chip, offset, "majortom-doctor", 0, None).and_then(|fd| uapi::get_value(&fd));
    let direction = if info.flags & uapi::FLAG_OUTPUT != 0 {
        "output"
    } else {
        "input"
    };
    match level {
        Ok(high) => report.ok(
            "pin",
            format!(
                "{pin} ({what}): free, {direction}, reads {}",
                if high { "high" } else { "low" }
            ),
        ),
        Err(error) => report.note("pin", format!("{pin} ({what}): free, level unknown ({error})")),
    }
}

fn buses(config: &Config, report: &mut Report) {
    let root = config.root.as_path();
    let mut i2c: Vec<String> = std::fs::read_dir(root.join("dev"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("i2c-"))
                .collect()
        })
        .unwrap_or_default();
    i2c.sort();
    let wanted: Vec<u8> = config
        .sensors
        .iter()
        .filter_map(|s| match s.source {
            SensorSource::Bme280 { bus, .. } => Some(bus),
            _ => None,
        })
        .collect();
    for bus in &wanted {
        if !i2c.contains(&format!("i2c-{bus}")) {
            report.problem("i2c", format!("bus {bus} is not there (no /dev/i2c-{bus})"), "enable I2C: dtparam=i2c_arm=on in /boot/firmware/config.txt (or sudo raspi-config nonint do_i2c 0), then reboot");
        }
    }
    if i2c.is_empty() {
        report.note(
            "i2c",
            "no I2C bus (enable with dtparam=i2c_arm=on when a sensor needs one)",
        );
    } else {
        report.ok("i2c", format!("buses: {}", i2c.join(", ")));
    }

    let found = crate::sources::sensors::ds18b20::discover(root);
    let w1 = root.join("sys/bus/w1/devices").is_dir();
    for sensor in &config.sensors {
        if let SensorSource::Ds18b20 { id } = &sensor.source {
            if !found.contains(id) {
                let fix = if w1 {
                    "check the sensor's wiring (data to GPIO 4 with a 4.7 kΩ pull-up) and its id"
                } else {
                    "enable 1-wire: dtoverlay=w1-gpio in /boot/firmware/config.txt, then reboot"
                };
                report.problem(
                    "1-wire",
                    format!("DS18B20 {id} (sensor `{}`) is not seen", sensor.name),
                    fix,
                );
            }
        }
    }
    match (w1, found.is_empty()) {
        (false, _) => report.note(
            "1-wire",
            "no 1-wire bus (enable with dtoverlay=w1-gpio for DS18B20 sensors)",
        ),
        (true, true) => report.note("1-wire", "bus there, no DS18B20 seen"),
        (true, false) => report.ok("1-wire", format!("DS18B20 seen: {}", found.join(", "))),
    }

    let mut iio: Vec<String> = std::fs::read_dir(root.join("sys/bus/iio/devices"))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let dir = e.file_name().into_string().ok()?;
                let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
                Some(format!("{dir} ({})", name.trim()))
            })
            .collect()
        })
        .unwrap_or_default();
    iio.sort();
    for sensor in &config.sensors {
        if let SensorSource::Iio { device } = &sensor.source {
            if !iio
                .iter()
                .any(|d| d.starts_with(&format!("{device} ")) || d.ends_with(&format!("({device})")))
            {
                report.problem(
                    "iio",
                    format!("IIO device `{device}` (sensor `{}`) is not there", sensor.name),
                    "load its overlay (e.g. dtoverlay=dht11,gpiopin=4) and reboot",
                );
            }
        }
    }
    if iio.is_empty() {
        report.note("iio", "no IIO device");
    } else {
        report.ok("iio", format!("devices: {}", iio.join(", ")));
    }
}

fn clock(now: SystemTime, report: &mut Report) {
    let shown = crate::time::rfc3339(now);
    if !crate::time::clock_is_set(now) {
        report.problem(
            "clock",
            format!("reads {shown}: not set (a Pi has no clock of its own; NTP sets it once the network is up). Daily automations wait until it is set"),
            "check the network and NTP (timedatectl status; sudo timedatectl set-ntp true)",
        );
        return;
    }
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: adjtimex with modes 0 only reads the kernel's clock state.
    let state = unsafe { libc::adjtimex(&mut timex) };
    if state == libc::TIME_ERROR {
        report.note("clock", format!("{shown}, not synchronized by NTP (yet)"));
    } else {
        report.ok("clock", format!("{shown}, synchronized"));
    }
}

fn power(root: &Path, report: &mut Report) {
    let Ok(text) = std::fs::read_to_string(root.join(crate::sources::system::THROTTLED_PATH)) else {
        report.note(
            "power",
            "the firmware's get_throttled is not there (not a Pi, or a kernel without it): under-voltage unknown",
        );
        return;
    };
    let Ok(flags) = crate::sources::system::parse_throttled(&text) else {
        report.note(
            "power",
            format!("get_throttled reads {:?}: not understood", text.trim()),
        );
        return;
    };
    let fix = "use a 5.1 V supply made for the Pi (3 A for a Pi 4, 5 A for a Pi 5) and a short, thick cable";
    if flags.under_voltage {
        report.problem("power", "under-voltage now", fix);
    } else if flags.under_voltage_occurred {
        report.problem("power", "under-voltage has occurred since boot", fix);
    } else {
        report.ok("power", "no under-voltage, now or since boot");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::config::{Context, Origin};

    fn config(root: &Path, extra: &str) -> Config {
        let ctx = Context {
            hostname: "pi",
            env: &|_| None,
        };
        let text = format!(
            "[mqtt]\nenabled = false\n[system]\nroot = \"{}\"\n{extra}",
            root.display()
        );
        Config::from_toml(&text, Origin::BuiltIn, &ctx).expect("valid config")
    }

    fn sysroot(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysroot")
            .join(name)
    }

    #[test]
    fn a_pi_with_under_voltage_and_no_gpio_chip_should_say_so_with_fixes() {
        let report = run(&config(&sysroot("pi4"), ""));
        let text = report.text();
        assert!(text.contains("ok    board: Raspberry Pi 4 Model B"), "{text}");
        assert!(text.contains("gpio backend: sim: no GPIO chip"), "{text}");
        assert!(text.contains("FAIL  power: under-voltage now"), "{text}");
        assert!(text.contains("fix: use a 5.1 V supply"), "{text}");
        assert!(!report.all_well());
        let json: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
        assert_eq!(json["ok"], false);
        let power = json["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["check"] == "power"))
            .cloned();
        assert_eq!(power.map(|p| p["status"].clone()), Some("problem".into()));
    }

    #[test]
    fn missing_buses_for_configured_sensors_should_be_problems_naming_the_overlay() {
        let root = tempfile::tempdir().unwrap();
        let extra = "[[sensors]]\nkind = \"bme280\"\nname = \"air\"\n[[sensors]]\nkind = \"ds18b20\"\nname = \"garden\"\nid = \"28-0316a2795cff\"\n\
                     [[outputs]]\nname = \"fan\"\nkind = \"fan\"\npwm_channel = 0\n";
        let text = run(&config(root.path(), extra)).text();
        for expected in [
            "dtparam=i2c_arm=on",
            "dtoverlay=w1-gpio",
            "dtoverlay=pwm",
            "no device-tree model",
        ] {
            assert!(text.contains(expected), "no {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn sensors_that_are_there_should_be_listed() {
        let root = tempfile::tempdir().unwrap();
        for tree in ["w1", "iio"] {
            copy(&sysroot(tree), root.path());
        }
        let text = run(&config(root.path(), "")).text();
        assert!(text.contains("ok    1-wire: DS18B20 seen: 28-"), "{text}");
        assert!(text.contains("ok    iio: devices: iio:device0"), "{text}");
    }

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    #[test]
    fn json_strings_should_be_escaped() {
        assert_eq!(quoted("a \"b\" \\ \n"), r#""a \"b\" \\ \u000a""#);
    }

    #[test]
    fn the_clock_at_1970_should_be_a_problem_that_mentions_daily_automations() {
        let mut report = Report::default();
        clock(UNIX_EPOCH + Duration::from_secs(12), &mut report);
        let text = report.text();
        assert!(text.contains("FAIL  clock: reads 1970-01-01T00:00:12"), "{text}");
        assert!(text.contains("Daily automations wait"), "{text}");
    }

    #[test]
    fn the_installed_units_device_policy_should_be_read_with_drop_ins() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc/systemd/system");
        std::fs::create_dir_all(dir.join("majortom.service.d")).unwrap();
        std::fs::write(
            dir.join("majortom.service"),
            include_str!("../../systemd/majortom.service"),
        )
        .unwrap();
        let unit = installed_unit(root.path()).unwrap();
        assert!(unit_values(&unit, "DeviceAllow").contains(&"char-gpiochip"));
        assert_eq!(unit_values(&unit, "SupplementaryGroups"), ["gpio", "i2c"]);
    }
}
