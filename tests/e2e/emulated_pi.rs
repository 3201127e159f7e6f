//! The static aarch64 build on an emulated Raspberry Pi 3 (QEMU `raspi3b`)
//! running Debian's own arm64 kernel: the mainline kernel that Debian,
//! Ubuntu and Fedora images for the Pi run (no `/dev/gpiomem`, `/dev/mem`
//! closed). One boot runs every scenario from a busybox initramfs and
//! prints its results between markers on the serial console:
//!
//! - the board model and the GPIO chips the kernel made;
//! - `majortom doctor` (text and `--json`) with a line held by another
//!   program (the legacy sysfs interface, consumer `sysfs`);
//! - the agent with `gpio.backend = "auto"`: it picks the character
//!   device; outputs it switches are seen by the kernel
//!   (`/sys/kernel/debug/gpio`: held by `majortom`, high and low); inputs
//!   are requested with bias, active-low and both edges;
//! - a line taken by someone else is refused, naming that consumer;
//! - SIGTERM releases every line.
//!
//! Upstream QEMU's bcm2835 GPIO models neither input levels driven from
//! outside nor edge interrupts, and Debian's arm64 kernels have no
//! `gpio-sim`: edges are covered below the hardware trait (ARCHITECTURE.md).
//!
//! Needs `target/arm/aarch64-unknown-linux-musl/release/majortom`
//! (cross/build.sh), the kernel, device tree and busybox that
//! `scripts/emulated-pi.sh` fetches, and `qemu-system-aarch64` and `cpio`;
//! `scripts/test.sh` provides all of them. Ignored by plain `cargo test`;
//! fails loudly when something is missing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::find_program;

/// The whole boot, scenarios included; it takes about 15 s on 2 cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const TOKEN: &str = "emulated-pi-token";

fn cache_dir() -> PathBuf {
    match std::env::var_os("MAJORTOM_EMULATED_PI") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/majortom/emulated-pi"),
    }
}

fn need(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: {how}", path.display());
    path
}

const AGENT_TOML: &str = r#"
[node]
id = "emupi"
name = "Emulated Pi"

[mqtt]
enabled = false

[web]
bind = "127.0.0.1"
port = 8080
token = "emulated-pi-token"

[system]
interval_s = 5

[gpio]
backend = "auto"
state_file = "/tmp/outputs.json"

[[inputs]]
name = "button"
pin = 17
inverted = true

[[inputs]]
name = "door"
pin = "GPIO23"
pull = "down"

[[outputs]]
name = "relay"
pin = 27

[[outputs]]
name = "lamp"
pin = "GPIO24"
initial = "on"
"#;

/// What `doctor` looks at: the agent's config, a broker that is not there,
/// and an output on GPIO 22, which the sysfs interface holds.
fn doctor_toml() -> String {
    AGENT_TOML.replace(
        "[mqtt]\nenabled = false\n",
        "[mqtt]\nhost = \"127.0.0.1\"\nport = 1883\n",
    ) + "\n[[outputs]]\nname = \"heater\"\npin = 22\n"
}

const BUSY_SYSFS_TOML: &str = "[mqtt]\nenabled = false\n[web]\nenabled = false\n[system]\nenabled = false\n\
    [gpio]\nstate_file = \"/tmp/busy.json\"\n[[outputs]]\nname = \"heater\"\npin = 22\n";
const BUSY_AGENT_TOML: &str = "[mqtt]\nenabled = false\n[web]\nenabled = false\n[system]\nenabled = false\n\
    [gpio]\nstate_file = \"/tmp/busy.json\"\n[[outputs]]\nname = \"other\"\npin = 27\n";

/// The guest's /init: every scenario in turn, results between markers.
fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmp /tmp
ifconfig lo 127.0.0.1 up
echo "@@init $(cut -d' ' -f1 /proc/uptime)"
section() {{ name=$1; shift; echo "@@begin $name"; "$@" 2>&1; status=$?; echo; echo "@@status $name $status"; }}
post() {{ wget -q -O - --header "Authorization: Bearer {TOKEN}" --header "Content-Type: application/json" --post-data "{{\"state\":\"$2\"}}" "http://127.0.0.1:8080/api/outputs/$1"; echo; }}
section model cat /proc/device-tree/model
section chips ls /dev/gpiochip0 /dev/gpiochip1 /dev/gpiomem
# Another program holds GPIO 22 through the legacy sysfs interface.
for chip in /sys/class/gpio/gpiochip*; do
  if [ "$(cat $chip/label)" = pinctrl-bcm2835 ]; then echo $(( $(cat $chip/base) + 22 )) > /sys/class/gpio/export; fi
done
section doctor majortom doctor --config /etc/majortom/doctor.toml
section doctor-json majortom doctor --config /etc/majortom/doctor.toml --json
echo "@@agent-start $(cut -d' ' -f1 /proc/uptime)"
majortom run --config /etc/majortom/agent.toml 2> /tmp/agent.log &
agent=$!
i=0
while ! wget -q -O /tmp/health http://127.0.0.1:8080/api/health 2>/dev/null; do
  i=$((i+1)); [ $i -gt 600 ] && break; usleep 50000
done
echo "@@serving $(cut -d' ' -f1 /proc/uptime)"
section health cat /tmp/health
section gpio-started cat /sys/kernel/debug/gpio
section relay-on post relay ON
section gpio-on cat /sys/kernel/debug/gpio
section relay-off post relay OFF
section gpio-off cat /sys/kernel/debug/gpio
section state wget -q -O - http://127.0.0.1:8080/api/state
section busy-sysfs majortom run --config /etc/majortom/busy-sysfs.toml
section busy-agent majortom run --config /etc/majortom/busy-agent.toml
kill -TERM $agent
wait $agent
echo "@@agent-exit $?"
section gpio-stopped cat /sys/kernel/debug/gpio
section agent-log cat /tmp/agent.log
echo "@@done"
poweroff -f
"#
    )
}

/// One boot's console, split into sections.
struct Run {
    sections: HashMap<String, String>,
    status: HashMap<String, i32>,
    markers: HashMap<String, String>,
    /// Host time from starting QEMU to the agent answering in the guest.
    to_serving: Duration,
    console: String,
}

impl Run {
    fn section(&self, name: &str) -> &str {
        self.sections
            .get(name)
            .unwrap_or_else(|| panic!("no section {name} in the console:\n{}", self.console))
    }

    fn status(&self, name: &str) -> i32 {
        *self
            .status
            .get(name)
            .unwrap_or_else(|| panic!("no status of {name} in the console:\n{}", self.console))
    }

    /// The line of `/sys/kernel/debug/gpio` in `section` for `name`.
    fn line(&self, section: &str, name: &str) -> Option<String> {
        let needle = format!("({name} ");
        self.section(section)
            .lines()
            .find(|l| l.contains(&needle))
            .map(str::to_owned)
    }
}

fn boot() -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = need(
        root.join("target/arm/aarch64-unknown-linux-musl/release/majortom"),
        "build it with cross/build.sh (scripts/test.sh does)",
    );
    let cache = cache_dir();
    let fetch = "fetch it with scripts/emulated-pi.sh (scripts/test.sh does)";
    let kernel = need(cache.join("vmlinuz"), fetch);
    let dtb = need(cache.join("bcm2837-rpi-3-b.dtb"), fetch);
    let busybox = need(cache.join("busybox"), fetch);
    let qemu = find_program("qemu-system-aarch64", "qemu-system-arm", &[]);
    let cpio = find_program("cpio", "cpio", &[]);

    let dir = tempfile::tempdir().expect("tempdir");
    let initramfs = dir.path().join("root");
    for sub in ["bin", "dev", "proc", "sys", "tmp", "etc/majortom"] {
        std::fs::create_dir_all(initramfs.join(sub)).expect("mkdir");
    }
    std::fs::copy(&busybox, initramfs.join("bin/busybox")).expect("copy busybox");
    std::fs::copy(&binary, initramfs.join("bin/majortom")).expect("copy majortom");
    let files = [
        ("init", init_script()),
        ("etc/majortom/agent.toml", AGENT_TOML.to_owned()),
        ("etc/majortom/doctor.toml", doctor_toml()),
        ("etc/majortom/busy-sysfs.toml", BUSY_SYSFS_TOML.to_owned()),
        ("etc/majortom/busy-agent.toml", BUSY_AGENT_TOML.to_owned()),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n".to_owned()),
        ("etc/group", "root:x:0:\n".to_owned()),
    ];
    for (path, text) in files {
        std::fs::write(initramfs.join(path), text).expect("write initramfs file");
    }
    for executable in ["init", "bin/busybox", "bin/majortom"] {
        let path = initramfs.join(executable);
        let mut permissions = std::fs::metadata(&path).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).expect("chmod");
    }
    // An uncompressed newc archive: the kernel takes it as it is.
    let archive = dir.path().join("initrd.cpio");
    let listing = Command::new("find")
        .arg(".")
        .current_dir(&initramfs)
        .output()
        .expect("find");
    let mut pack = Command::new(cpio)
        .args(["-o", "-H", "newc", "--quiet", "-F"])
        .arg(&archive)
        .current_dir(&initramfs)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run cpio");
    std::io::Write::write_all(pack.stdin.as_mut().expect("stdin"), &listing.stdout).expect("feed cpio");
    drop(pack.stdin.take());
    assert!(pack.wait().expect("cpio").success(), "cpio failed");

    let started = Instant::now();
    let mut qemu = Command::new(qemu)
        .args([
            "-M",
            "raspi3b",
            "-m",
            "1G",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-kernel",
        ])
        .arg(&kernel)
        .arg("-dtb")
        .arg(&dtb)
        .arg("-initrd")
        .arg(&archive)
        .args(["-append", "console=ttyAMA0 rdinit=/init quiet loglevel=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-aarch64");
    let stdout = qemu.stdout.take().expect("stdout");
    let (lines, console) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    let mut run = Run {
        sections: HashMap::new(),
        status: HashMap::new(),
        markers: HashMap::new(),
        to_serving: Duration::ZERO,
        console: String::new(),
    };
    let mut current: Option<String> = None;
    let deadline = started + BOOT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((at, line)) = console.recv_timeout(left) else {
            let _ = qemu.kill();
            let stderr = qemu
                .stderr
                .take()
                .map(|mut e| {
                    let mut text = String::new();
                    let _ = std::io::Read::read_to_string(&mut e, &mut text);
                    text
                })
                .unwrap_or_default();
            panic!(
                "the emulated Pi did not finish within {BOOT_TIMEOUT:?}; console:\n{}\nqemu: {stderr}",
                run.console
            );
        };
        let line = line.trim_end_matches('\r').to_owned();
        run.console.push_str(&line);
        run.console.push('\n');
        if let Some(rest) = line.strip_prefix("@@begin ") {
            current = Some(rest.to_owned());
            run.sections.insert(rest.to_owned(), String::new());
        } else if let Some(rest) = line.strip_prefix("@@status ") {
            let (name, code) = rest.split_once(' ').expect("@@status NAME CODE");
            run.status.insert(name.to_owned(), code.parse().expect("exit code"));
            current = None;
        } else if let Some(rest) = line.strip_prefix("@@") {
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if name == "serving" {
                run.to_serving = at.duration_since(started);
            }
            run.markers.insert(name.to_owned(), value.to_owned());
            if name == "done" {
                break;
            }
        } else if let Some(name) = &current {
            let text = run.sections.get_mut(name).expect("open section");
            text.push_str(&line);
            text.push('\n');
        }
    }
    // QEMU does not exit when this machine powers off.
    let _ = qemu.kill();
    let _ = qemu.wait();
    run
}

#[test]
#[ignore = "needs cross/build.sh, scripts/emulated-pi.sh and qemu-system-arm; run by scripts/test.sh"]
fn the_agent_should_run_the_gpio_of_an_emulated_pi_3_on_a_mainline_kernel() {
    let run = boot();
    println!(
        "emulated Pi: init at {} s (guest uptime), agent started at {} s, serving at {} s; {:.1} s from starting QEMU",
        run.markers["init"],
        run.markers["agent-start"],
        run.markers["serving"],
        run.to_serving.as_secs_f64()
    );
    println!("majortom doctor on the emulated Pi:\n{}", run.section("doctor"));
    println!("/sys/kernel/debug/gpio with the relay on:\n{}", run.section("gpio-on"));

    // The board and what its mainline kernel offers.
    assert_eq!(
        run.section("model")
            .trim_matches(|c: char| c == '\0' || c.is_whitespace()),
        "Raspberry Pi 3 Model B"
    );
    let chips = run.section("chips");
    assert!(
        chips.contains("/dev/gpiochip0") && chips.contains("/dev/gpiomem: No such file"),
        "{chips}"
    );

    // `auto` takes the character device, and says why.
    let health: serde_json::Value = serde_json::from_str(run.section("health")).expect("health JSON");
    assert_eq!(health["gpio"], "cdev", "{health}");
    let reason = health["gpio_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("/dev/gpiochip0 (pinctrl-bcm2835, 54 lines)"),
        "{reason}"
    );
    assert_eq!(health["model"], "Raspberry Pi 3 Model B");

    // The kernel sees our lines, held by our consumer name.
    let line = |section: &str, name: &str| {
        run.line(section, name)
            .unwrap_or_else(|| panic!("no {name} in {section}:\n{}", run.section(section)))
    };
    let relay = line("gpio-started", "GPIO27");
    assert!(relay.contains("|majortom") && relay.contains(" out lo"), "{relay}");
    let lamp = line("gpio-started", "GPIO24");
    assert!(
        lamp.contains("|majortom") && lamp.contains(" out hi"),
        "initial on: {lamp}"
    );
    let button = line("gpio-started", "GPIO17");
    assert!(
        button.contains("|majortom")
            && button.contains(" in ")
            && button.contains("IRQ")
            && button.contains("ACTIVE LOW"),
        "an input with both edges and active-low: {button}"
    );
    let door = line("gpio-started", "GPIO23");
    assert!(
        door.contains("|majortom") && door.contains(" in "),
        "claimed by its line name: {door}"
    );
    assert!(
        run.section("relay-on").contains("\"state\":\"ON\""),
        "{}",
        run.section("relay-on")
    );
    assert!(
        line("gpio-on", "GPIO27").contains(" out hi"),
        "{}",
        run.section("gpio-on")
    );
    assert!(
        line("gpio-off", "GPIO27").contains(" out lo"),
        "{}",
        run.section("gpio-off")
    );

    // What the agent publishes is what the kernel reads: the emulated
    // inputs are low, so the active-low button is ON and the door OFF.
    let state: serde_json::Value = serde_json::from_str(run.section("state")).expect("state JSON");
    let value = |id: &str| {
        state["entities"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["id"] == id))
            .map(|e| e["state"].clone())
            .unwrap_or_else(|| panic!("no {id} in {state}"))
    };
    assert_eq!((value("button"), value("door")), ("ON".into(), "OFF".into()));

    // Lines held by someone else are refused, naming the holder.
    assert_ne!(run.status("busy-sysfs"), 0);
    let busy = run.section("busy-sysfs");
    assert!(busy.contains("GPIO 22 is already in use by `sysfs`"), "{busy}");
    assert_ne!(run.status("busy-agent"), 0);
    let busy = run.section("busy-agent");
    assert!(busy.contains("GPIO 27 is already in use by `majortom`"), "{busy}");

    // A clean stop releases every line.
    assert_eq!(run.markers["agent-exit"], "0", "{}", run.section("agent-log"));
    let stopped = run.section("gpio-stopped");
    assert!(!stopped.contains("majortom"), "{stopped}");

    // doctor: right about this machine, and unhappy about the broker that
    // is not there, the clock at 1970 and the line sysfs holds.
    assert_eq!(run.status("doctor"), 1, "{}", run.section("doctor"));
    let doctor = run.section("doctor");
    for expected in [
        "Raspberry Pi 3 Model B",
        "cdev",
        "/dev/gpiochip0 (pinctrl-bcm2835, 54 lines)",
        "no /dev/gpiomem",
        "GPIO 22",
        "`sysfs`",
        "1970",
        "127.0.0.1:1883",
    ] {
        assert!(doctor.contains(expected), "doctor does not say {expected:?}:\n{doctor}");
    }
    let json: serde_json::Value = serde_json::from_str(run.section("doctor-json")).expect("doctor --json");
    assert!(json["checks"].as_array().is_some_and(|c| !c.is_empty()), "{json}");
    assert_eq!(json["ok"], false);
}
