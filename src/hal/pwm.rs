//! PWM outputs through the kernel's PWM sysfs
//! (`<root>/sys/class/pwm/pwmchipN/pwmM/{period,duty_cycle,enable}`), which
//! `dtoverlay=pwm` or `pwm-2chan` gives a Pi (GPIO 18, and 19). Used by the
//! cdev and rppal backends; the root is injectable, so it is tested against
//! fixture trees.
//!
//! It does not unexport the channel when dropped: the channel keeps running
//! at the safe duty cycle the outputs task set last.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{HalError, PwmChannel, PwmOutput};

/// How long an exported channel's files may take to appear (and, on
/// Raspberry Pi OS, for udev to give them to the `gpio` group).
const EXPORT_WAIT: Duration = Duration::from_secs(2);

/// One exported, enabled PWM channel.
pub struct SysfsPwm {
    dir: PathBuf,
    period_ns: u64,
    what: String,
}

impl SysfsPwm {
    /// Exports the channel if needed, sets its period for the frequency
    /// and enables it at a duty cycle of 0.
    pub fn open(root: &Path, channel: PwmChannel) -> Result<SysfsPwm, HalError> {
        let chip_name = format!("pwmchip{}", channel.chip);
        let chip = root.join("sys/class/pwm").join(&chip_name);
        let what = format!("{chip_name} channel {}", channel.channel);
        let npwm = std::fs::read_to_string(chip.join("npwm")).map_err(|e| HalError::NoPwm {
            chip: chip_name.clone(),
            detail: format!("{}: {e}", chip.display()),
        })?;
        let channels: u32 = npwm.trim().parse().unwrap_or(0);
        if channel.channel >= channels {
            return Err(HalError::Pwm {
                what,
                detail: format!("{chip_name} has {channels} channel(s), numbered from 0"),
            });
        }
        let dir = chip.join(format!("pwm{}", channel.channel));
        let failed = |step: &str, error: io::Error| HalError::Pwm {
            what: what.clone(),
            detail: format!("{step}: {error}{}", advice(&error)),
        };
        if !dir.is_dir() {
            write(&chip.join("export"), &channel.channel.to_string()).map_err(|e| failed("export", e))?;
        }
        let deadline = Instant::now() + EXPORT_WAIT;
        while write_access(&dir.join("period")).is_err() {
            if Instant::now() > deadline {
                let error = write_access(&dir.join("period"))
                    .err()
                    .unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound));
                return Err(failed("waiting for the exported channel", error));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let period_ns = 1_000_000_000 / u64::from(channel.frequency_hz.max(1));
        // A period shorter than the current duty cycle is refused: zero the
        // duty cycle first.
        write(&dir.join("duty_cycle"), "0").map_err(|e| failed("duty_cycle", e))?;
        write(&dir.join("period"), &period_ns.to_string()).map_err(|e| failed("period", e))?;
        write(&dir.join("enable"), "1").map_err(|e| failed("enable", e))?;
        Ok(SysfsPwm { dir, period_ns, what })
    }
}

impl PwmOutput for SysfsPwm {
    fn set_duty(&mut self, duty: f64) -> Result<(), HalError> {
        let duty_ns = (self.period_ns as f64 * duty.clamp(0.0, 1.0)).round() as u64;
        write(&self.dir.join("duty_cycle"), &duty_ns.to_string()).map_err(|error| HalError::Pwm {
            what: self.what.clone(),
            detail: format!("duty_cycle: {error}{}", advice(&error)),
        })
    }
}

/// Writes an attribute that must exist (a sysfs file is never created).
fn write(path: &Path, value: &str) -> io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(value.as_bytes())
}

fn write_access(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path).map(drop)
}

/// What to do about a write that failed.
fn advice(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(libc::EACCES) => " (the PWM files belong to root: on Raspberry Pi OS udev gives them to the `gpio` group; elsewhere add a udev rule that does)",
        Some(libc::EROFS) => " (read-only /sys: the service's unit needs ReadWritePaths= for the PWM chip; the installed majortom.service has pwmchip0-3)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(root: &Path, channels: u32, exported: bool) -> PathBuf {
        let chip = root.join("sys/class/pwm/pwmchip0");
        std::fs::create_dir_all(&chip).unwrap();
        std::fs::write(chip.join("npwm"), format!("{channels}\n")).unwrap();
        std::fs::write(chip.join("export"), "").unwrap();
        if exported {
            make_channel(&chip.join("pwm1"));
        }
        chip
    }

    fn make_channel(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for file in ["period", "duty_cycle", "enable"] {
            std::fs::write(dir.join(file), "0\n").unwrap();
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    const FAN: PwmChannel = PwmChannel {
        chip: 0,
        channel: 1,
        frequency_hz: 25_000,
    };

    #[test]
    fn an_exported_channel_should_get_its_period_and_duty_cycle() {
        let root = tempfile::tempdir().unwrap();
        let chip = chip(root.path(), 2, true);
        let mut pwm = SysfsPwm::open(root.path(), FAN).unwrap();
        assert_eq!(read(chip.join("pwm1/period")), "40000", "25 kHz");
        assert_eq!(read(chip.join("pwm1/enable")), "1");
        assert_eq!(read(chip.join("pwm1/duty_cycle")), "0");
        pwm.set_duty(0.4).unwrap();
        assert_eq!(read(chip.join("pwm1/duty_cycle")), "16000");
        pwm.set_duty(7.0).unwrap();
        assert_eq!(read(chip.join("pwm1/duty_cycle")), "40000", "clamped to the period");
        assert_eq!(read(chip.join("export")), "", "already exported: not again");
    }

    #[test]
    fn a_channel_should_be_exported_and_waited_for() {
        let root = tempfile::tempdir().unwrap();
        let chip = chip(root.path(), 2, false);
        // Plays the kernel: the channel's directory appears after the export.
        let kernel = {
            let chip = chip.clone();
            std::thread::spawn(move || {
                while read(chip.join("export")).is_empty() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                make_channel(&chip.join("pwm1"));
            })
        };
        SysfsPwm::open(root.path(), FAN).unwrap();
        kernel.join().unwrap();
        assert_eq!(read(chip.join("export")), "1");
        assert_eq!(read(chip.join("pwm1/period")), "40000");
    }

    #[test]
    fn a_missing_chip_or_channel_should_say_how_to_enable_pwm() {
        let root = tempfile::tempdir().unwrap();
        let message = SysfsPwm::open(root.path(), FAN).err().unwrap().to_string();
        assert!(message.contains("dtoverlay=pwm"), "{message}");
        chip(root.path(), 1, false);
        let message = SysfsPwm::open(root.path(), FAN).err().unwrap().to_string();
        assert!(message.contains("has 1 channel(s)"), "{message}");
    }
}
