//! The static ARM binaries from `cross/build.sh`, checked the way a Pi would
//! meet them: no dynamic loader or libraries, `--version` on the matching CPU
//! under qemu-user, and the Pi Zero (armv6) build end to end against a real
//! mosquitto.
//!
//! These need the binaries under `target/arm/`, which `scripts/test.sh`
//! builds first; plain `cargo test` lists them as ignored, and they fail
//! loudly when run without the binaries.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{binary, find_program, retained, test_config, wait_retained, Agent, Broker};

struct Target {
    triple: &'static str,
    qemu: &'static str,
    /// The oldest CPU of the Pis this build is for.
    cpu: &'static str,
}

const ARMV6: Target = Target {
    triple: "arm-unknown-linux-musleabihf",
    qemu: "qemu-arm-static",
    cpu: "arm1176",
};
const ARMV7: Target = Target {
    triple: "armv7-unknown-linux-musleabihf",
    qemu: "qemu-arm-static",
    cpu: "cortex-a7",
};
const AARCH64: Target = Target {
    triple: "aarch64-unknown-linux-musl",
    qemu: "qemu-aarch64-static",
    cpu: "cortex-a53",
};
const TARGETS: [Target; 3] = [ARMV6, ARMV7, AARCH64];

fn binary_for(target: &Target) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/arm")
        .join(target.triple)
        .join("release/majortom");
    assert!(
        path.is_file(),
        "{} is missing: build it with cross/build.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

fn emulated(target: &Target, cpu: &str) -> Command {
    let qemu = find_program(target.qemu, "qemu-user-static", &[]);
    let mut command = Command::new(qemu);
    command.arg("-cpu").arg(cpu).arg(binary_for(target));
    command
}

fn readelf(flag: &str, binary: &PathBuf) -> String {
    let output = Command::new(find_program("readelf", "binutils", &[]))
        .arg(flag)
        .arg(binary)
        .output()
        .expect("run readelf");
    assert!(output.status.success(), "readelf {flag} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
#[ignore = "needs cross/build.sh; run by scripts/test.sh"]
fn every_arm_binary_should_be_fully_static() {
    for target in &TARGETS {
        let binary = binary_for(target);
        let headers = readelf("-l", &binary);
        assert!(headers.contains("LOAD"), "{}: not an ELF executable?", target.triple);
        assert!(
            !headers.contains("INTERP"),
            "{} asks for a dynamic loader:\n{headers}",
            target.triple
        );
        let dynamic = readelf("-d", &binary);
        assert!(
            !dynamic.contains("NEEDED"),
            "{} needs shared libraries:\n{dynamic}",
            target.triple
        );
    }
}

#[test]
#[ignore = "needs cross/build.sh; run by scripts/test.sh"]
fn every_arm_binary_should_run_on_its_pi_cpu_under_qemu() {
    for target in &TARGETS {
        let output = emulated(target, target.cpu)
            .arg("--version")
            .output()
            .expect("run qemu");
        assert!(
            output.status.success(),
            "{} on {}: {:?}\n{}",
            target.triple,
            target.cpu,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format!("majortom {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// The check above is only worth something if the emulated CPU is strict:
/// the armv7 build must not run on the Pi Zero's armv6 core.
#[test]
#[ignore = "needs cross/build.sh; run by scripts/test.sh"]
fn the_armv7_binary_should_fail_on_the_pi_zero_cpu() {
    let output = emulated(&ARMV7, ARMV6.cpu).arg("--version").output().expect("run qemu");
    assert!(
        !output.status.success(),
        "an armv7 binary ran on arm1176: the CPU check proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs cross/build.sh; run by scripts/test.sh"]
async fn the_pi_zero_build_should_publish_discovery_and_states_under_qemu() {
    let broker = Broker::start();
    let root = format!("{}/tests/fixtures/sysroot/pi4", env!("CARGO_MANIFEST_DIR"));
    let config = test_config(
        "zero",
        broker.port,
        &format!("[system]\ninterval_s = 1\nroot = \"{root}\"\n"),
    );
    let agent = Agent::start_program(emulated(&ARMV6, ARMV6.cpu), &config).await;

    assert_eq!(
        wait_retained(broker.port, "majortom/zero/status", Duration::from_secs(20)).await,
        "online"
    );
    wait_retained(broker.port, "majortom/zero/cpu_usage/state", Duration::from_secs(20)).await;
    let configs = retained(broker.port, "homeassistant/+/zero/+/config", Duration::from_millis(500)).await;
    let topics: Vec<&str> = configs.iter().map(|m| m.topic.as_str()).collect();
    for id in ["cpu_usage", "memory_used", "cpu_temperature", "under_voltage"] {
        assert!(
            topics.iter().any(|t| t.contains(&format!("/zero/{id}/"))),
            "{id} not discovered: {topics:?}"
        );
    }
    let states = retained(broker.port, "majortom/zero/+/state", Duration::from_millis(500)).await;
    let state = |id: &str| {
        states
            .iter()
            .find(|m| m.topic == format!("majortom/zero/{id}/state"))
            .map(|m| m.payload.clone())
            .unwrap_or_else(|| panic!("no state for {id}"))
    };
    assert_eq!(state("cpu_temperature"), "48.7");
    assert_eq!(state("under_voltage"), "ON");
    assert!(state("memory_used").parse::<f64>().is_ok());
    assert_eq!(agent.get_json("/api/health")["model"], "Raspberry Pi 4 Model B Rev 1.4");
}

/// `majortom update` as a Pi Zero runs it: the armv6 build on the arm1176
/// CPU (`uname -m` is `armv6l` under qemu), into a `--root` with
/// `--no-start`. The ARMv7 build, which would die on its first ARMv7
/// instruction there, and an x86_64 build are refused, each naming the
/// build to take; the armv6 build is taken.
#[test]
#[ignore = "needs cross/build.sh; run by scripts/test.sh"]
fn update_on_the_pi_zero_should_take_the_armv6_build_and_refuse_armv7_and_x86_64() {
    let root = tempfile::tempdir().expect("tempdir");
    let root_arg = format!("--root={}", root.path().display());
    let install = Command::new(binary())
        .args(["install", "--no-start", &root_arg])
        .env_remove("MAJORTOM_CONFIG")
        .output()
        .expect("run install");
    assert!(
        install.status.success(),
        "install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let installed = root.path().join("usr/local/bin/majortom");
    let original = std::fs::read(&installed).expect("read the installed binary");
    let update = |new: &std::path::Path| {
        let output = emulated(&ARMV6, ARMV6.cpu)
            .args([
                "update".as_ref(),
                new.as_os_str(),
                root_arg.as_ref(),
                "--no-start".as_ref(),
            ])
            .env_remove("MAJORTOM_CONFIG")
            .output()
            .expect("run qemu");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    };

    let (ok, _, stderr) = update(&binary_for(&ARMV7));
    assert!(!ok, "the armv7 build was taken on a Pi Zero");
    assert!(
        stderr.contains(
            "it is built for ARMv7, but this CPU is ARMv6 (a Pi Zero or 1) (`uname -m`: armv6l): \
             take the arm-unknown-linux-musleabihf build"
        ),
        "{stderr}"
    );
    // A stripped x86_64 build (the debug build is over update's size cap).
    let dir = tempfile::tempdir().expect("tempdir");
    let x86_64 = dir.path().join("majortom-x86_64");
    let strip = Command::new(find_program("strip", "binutils", &[]))
        .arg("-o")
        .arg(&x86_64)
        .arg(binary())
        .output()
        .expect("run strip");
    assert!(
        strip.status.success(),
        "strip: {}",
        String::from_utf8_lossy(&strip.stderr)
    );
    let (ok, _, stderr) = update(&x86_64);
    assert!(!ok, "the x86_64 build was taken on a Pi Zero");
    assert!(
        stderr.contains(
            "it is built for x86_64, but this system runs 32-bit ARM binaries: take the arm-unknown-linux-musleabihf build"
        ),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&installed).expect("read"),
        original,
        "a refused build was installed"
    );

    let (ok, stdout, stderr) = update(&binary_for(&ARMV6));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("built for this machine (armv6l)"), "{stdout}");
    assert_eq!(
        std::fs::read(&installed).expect("read"),
        std::fs::read(binary_for(&ARMV6)).expect("read the armv6 build")
    );
    assert_eq!(
        std::fs::read(root.path().join("usr/local/bin/majortom.prev")).expect("read .prev"),
        original
    );
}
