//! Which GPIO backend this machine gets, and why: `gpio.backend = "auto"`
//! takes the character device wherever a GPIO chip exists, and the
//! simulation only when none exists at all. A chip that exists but cannot be
//! opened is an error naming the real cause (group, the unit's device
//! policy, not a chip) and its fix; so is `rppal` without `/dev/gpiomem`.
//!
//! [`probe`] looks at `<root>/dev` (injectable, so this is tested against
//! fixture trees); [`decide`] is pure. `app` opens what was decided, and
//! `doctor` reports it.

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::cdev::Chip;
use super::Backend;

/// The labels of the chips that carry a Raspberry Pi's 40-pin header:
/// Pi 1-3 and Zero, Pi 4 and 400, Pi 5 (RP1).
pub const HEADER_LABELS: [&str; 3] = ["pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1"];

/// One `/dev/gpiochipN`, opened or not.
pub struct ProbedChip {
    /// The path as the user knows it (`/dev/gpiochip0`), without the root.
    pub path: PathBuf,
    pub opened: Result<Chip, OpenFailure>,
}

/// Why a chip could not be opened, with what is needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFailure {
    pub errno: Option<i32>,
    pub detail: String,
    /// The device's group and mode, when it could be looked at.
    pub group: Option<String>,
    pub mode: Option<u32>,
}

/// What is on this machine.
pub struct Probe {
    pub chips: Vec<ProbedChip>,
    /// `/dev/gpiomem` (Raspberry Pi OS kernels only) or `/dev/gpiomem0` (Pi 5).
    pub gpiomem: bool,
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The chip at this index of [`Probe::chips`].
    Cdev(usize),
    Rppal,
    Sim,
}

/// The backend chosen and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub choice: Choice,
    pub reason: String,
}

/// A GPIO set-up that cannot work, with its cause and fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("cannot open the GPIO chip {path}: {cause}")]
    CannotOpen { path: String, cause: String },
    #[error("gpio.backend = \"rppal\" needs /dev/gpiomem, which only Raspberry Pi OS kernels have; this kernel (mainline: Debian, Ubuntu, Fedora, ...) has {chips}: set gpio.backend = \"auto\" or \"cdev\"")]
    NoGpiomem { chips: String },
    #[error("gpio.backend = \"{backend}\" but there is no GPIO chip (/dev/gpiochipN) and no /dev/gpiomem: not a Pi, or its GPIO driver is not loaded; use gpio.backend = \"sim\" to try majortom without hardware")]
    NoChip { backend: &'static str },
    #[error("gpio.chip = \"{chip}\" matches no GPIO chip; there are: {chips}")]
    NoSuchChip { chip: String, chips: String },
}

/// Lists `<root>/dev/gpiochip*` (in number order) and opens each.
pub fn probe(root: &Path) -> Probe {
    let dev = root.join("dev");
    let mut names: Vec<String> = std::fs::read_dir(&dev)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with("gpiochip"))
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|name| (name.len(), name.clone()));
    let chips = names
        .into_iter()
        .map(|name| {
            let full = dev.join(&name);
            ProbedChip {
                path: Path::new("/dev").join(&name),
                opened: Chip::open(&full).map_err(|error| failure(root, &full, &error)),
            }
        })
        .collect();
    Probe {
        chips,
        gpiomem: dev.join("gpiomem").exists() || dev.join("gpiomem0").exists(),
    }
}

fn failure(root: &Path, path: &Path, error: &io::Error) -> OpenFailure {
    let meta = std::fs::metadata(path).ok();
    OpenFailure {
        errno: error.raw_os_error(),
        detail: error.to_string(),
        group: meta.as_ref().and_then(|m| group_name(root, m.gid())),
        mode: meta.map(|m| m.mode() & 0o777),
    }
}

/// The name of group `gid` in `<root>/etc/group`.
pub fn group_name(root: &Path, gid: u32) -> Option<String> {
    let groups = std::fs::read_to_string(root.join("etc/group")).ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse() == Ok(gid)).then(|| name.to_owned())
    })
}

impl OpenFailure {
    /// The real cause, and what to do.
    pub fn cause(&self) -> String {
        let group = self.group.as_deref().unwrap_or("gpio");
        match self.errno {
            Some(libc::EACCES) => format!(
                "permission denied (the device is group `{group}`, mode {:o}): add the user to that group (sudo usermod -aG {group} $USER, then log in again), or run the installed service, which has SupplementaryGroups=gpio",
                self.mode.unwrap_or(0)
            ),
            // The device cgroup answers EPERM, file permissions EACCES.
            Some(libc::EPERM) => "operation not permitted by the device policy: under systemd the unit needs DeviceAllow=char-gpiochip rw (the installed majortom.service has it; check drop-ins with `systemctl cat majortom`)".into(),
            Some(libc::ENOTTY) | Some(libc::EINVAL) => "it is not a GPIO character device".into(),
            _ => self.detail.clone(),
        }
    }
}

/// Chooses the backend for `backend` and `gpio.chip` (`chip`: a path such
/// as `/dev/gpiochip4`, a name such as `gpiochip4`, or a label such as
/// `pinctrl-rp1`) on what `probe` found.
pub fn decide(backend: Backend, chip: Option<&str>, probe: &Probe) -> Result<Decision, SelectError> {
    match backend {
        Backend::Sim => {
            return Ok(Decision {
                choice: Choice::Sim,
                reason: "gpio.backend = \"sim\"".into(),
            })
        }
        Backend::Rppal if !probe.gpiomem && probe.chips.is_empty() => {
            return Err(SelectError::NoChip { backend: "rppal" })
        }
        Backend::Rppal if !probe.gpiomem => return Err(SelectError::NoGpiomem { chips: list(probe) }),
        Backend::Rppal => {
            return Ok(Decision {
                choice: Choice::Rppal,
                reason: "gpio.backend = \"rppal\" (/dev/gpiomem)".into(),
            })
        }
        Backend::Auto if probe.chips.is_empty() => {
            return Ok(Decision {
                choice: Choice::Sim,
                reason: "no GPIO chip in /dev (not a Pi, or no GPIO driver): simulated pins".into(),
            })
        }
        Backend::Cdev if probe.chips.is_empty() => return Err(SelectError::NoChip { backend: "cdev" }),
        Backend::Auto | Backend::Cdev => {}
    }
    let cannot_open = |chip: &ProbedChip| match &chip.opened {
        Err(failure) => Some(SelectError::CannotOpen {
            path: chip.path.display().to_string(),
            cause: failure.cause(),
        }),
        Ok(_) => None,
    };
    let opened = |chip: &ProbedChip| chip.opened.as_ref().ok().map(|c| c.describe());
    let how = if backend == Backend::Auto {
        "gpio.backend = \"auto\""
    } else {
        "gpio.backend = \"cdev\""
    };
    let index = if let Some(wanted) = chip {
        let by_path = probe
            .chips
            .iter()
            .position(|c| c.path == Path::new(wanted) || c.path.file_name().is_some_and(|name| name == wanted));
        let by_label = || {
            probe
                .chips
                .iter()
                .position(|c| c.opened.as_ref().is_ok_and(|c| c.label == wanted))
        };
        let Some(index) = by_path.or_else(by_label) else {
            // A chip we could not open might be the one: say why first.
            if let Some(error) = probe.chips.iter().find_map(cannot_open) {
                return Err(error);
            }
            return Err(SelectError::NoSuchChip {
                chip: wanted.to_owned(),
                chips: list(probe),
            });
        };
        index
    } else {
        // Any chip we cannot open might be the header's: the real cause
        // beats a guess.
        if let Some(error) = probe.chips.iter().find_map(cannot_open) {
            return Err(error);
        }
        let header = probe.chips.iter().position(|c| {
            c.opened
                .as_ref()
                .is_ok_and(|c| HEADER_LABELS.contains(&c.label.as_str()))
        });
        let gpiochip0 = || probe.chips.iter().position(|c| c.path == Path::new("/dev/gpiochip0"));
        header.or_else(gpiochip0).unwrap_or(0)
    };
    let chosen = &probe.chips[index];
    if let Some(error) = cannot_open(chosen) {
        return Err(error);
    }
    let described = opened(chosen).unwrap_or_default();
    let why = match (chip, &chosen.opened) {
        (Some(wanted), _) => format!("gpio.chip = \"{wanted}\""),
        (None, Ok(c)) if HEADER_LABELS.contains(&c.label.as_str()) => "the Pi's header chip".into(),
        (None, _) => "the first GPIO chip (no Pi header chip found)".into(),
    };
    Ok(Decision {
        choice: Choice::Cdev(index),
        reason: format!("{how}: GPIO character device {described}, {why}"),
    })
}

/// `/dev/gpiochip0 (pinctrl-bcm2835, 54 lines), /dev/gpiochip1 (...)`.
fn list(probe: &Probe) -> String {
    let mut out = String::new();
    for chip in &probe.chips {
        if !out.is_empty() {
            out.push_str(", ");
        }
        match &chip.opened {
            Ok(c) => out.push_str(&c.describe()),
            Err(_) => {
                let _ = write!(out, "{} (cannot be opened)", chip.path.display());
            }
        }
    }
    if out.is_empty() {
        out.push_str("no GPIO chip");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(path: &str, errno: i32) -> ProbedChip {
        ProbedChip {
            path: path.into(),
            opened: Err(OpenFailure {
                errno: Some(errno),
                detail: io::Error::from_raw_os_error(errno).to_string(),
                group: Some("gpio".into()),
                mode: Some(0o660),
            }),
        }
    }

    fn found(chips: Vec<ProbedChip>, gpiomem: bool) -> Probe {
        Probe { chips, gpiomem }
    }

    #[test]
    fn auto_without_any_chip_should_simulate_and_say_why() {
        let decision = decide(Backend::Auto, None, &found(vec![], false)).unwrap();
        assert_eq!(decision.choice, Choice::Sim);
        assert!(decision.reason.contains("no GPIO chip"), "{}", decision.reason);
    }

    #[test]
    fn a_chip_that_cannot_be_opened_should_name_the_group_or_the_unit() {
        let denied = decide(
            Backend::Auto,
            None,
            &found(vec![failed("/dev/gpiochip0", libc::EACCES)], false),
        );
        let message = denied.unwrap_err().to_string();
        assert!(
            message.contains("/dev/gpiochip0") && message.contains("usermod -aG gpio"),
            "{message}"
        );
        let refused = decide(
            Backend::Auto,
            None,
            &found(vec![failed("/dev/gpiochip0", libc::EPERM)], false),
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("DeviceAllow=char-gpiochip"), "{message}");
        let not_a_chip = decide(
            Backend::Cdev,
            None,
            &found(vec![failed("/dev/gpiochip0", libc::ENOTTY)], false),
        );
        assert!(not_a_chip
            .unwrap_err()
            .to_string()
            .contains("not a GPIO character device"));
    }

    #[test]
    fn rppal_without_gpiomem_should_point_at_the_mainline_kernel() {
        let message = decide(
            Backend::Rppal,
            None,
            &found(vec![failed("/dev/gpiochip0", libc::EACCES)], false),
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("only Raspberry Pi OS kernels") && message.contains("\"auto\""),
            "{message}"
        );
        let decision = decide(Backend::Rppal, None, &found(vec![], true)).unwrap();
        assert_eq!(decision.choice, Choice::Rppal);
    }

    #[test]
    fn cdev_without_chips_and_unknown_chip_names_should_be_errors() {
        assert_eq!(
            decide(Backend::Cdev, None, &found(vec![], false)),
            Err(SelectError::NoChip { backend: "cdev" })
        );
        let message = decide(Backend::Rppal, None, &found(vec![], false))
            .unwrap_err()
            .to_string();
        assert!(message.contains("gpio.backend = \"sim\""), "{message}");
        let error = decide(
            Backend::Cdev,
            Some("pinctrl-rp1"),
            &found(vec![failed("/dev/gpiochip0", libc::ENOTTY)], false),
        );
        assert!(matches!(error, Err(SelectError::CannotOpen { .. })), "{error:?}");
    }

    #[test]
    fn fixture_tree_without_dev_should_have_no_chips() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysroot/pi4");
        let found = probe(&root);
        assert!(found.chips.is_empty() && !found.gpiomem);
    }

    #[test]
    fn fixture_files_that_are_not_chips_should_be_found_and_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        for name in ["gpiochip10", "gpiochip1", "gpiomem", "null"] {
            std::fs::write(root.path().join("dev").join(name), "").unwrap();
        }
        let found = probe(root.path());
        let paths: Vec<_> = found.chips.iter().map(|c| c.path.display().to_string()).collect();
        assert_eq!(paths, ["/dev/gpiochip1", "/dev/gpiochip10"]);
        assert!(found.gpiomem);
        let message = decide(Backend::Auto, None, &found).unwrap_err().to_string();
        assert!(
            message.contains("/dev/gpiochip1:") && message.contains("not a GPIO character device"),
            "{message}"
        );
    }
}
