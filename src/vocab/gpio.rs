//! The words for GPIO that the config and the hal share: which backend,
//! which line, which PWM channel. Spelling and checking only; opening and
//! driving them is the hal's.

use std::fmt;

/// `gpio.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The character device where a GPIO chip exists, else the simulation.
    Auto,
    Cdev,
    Rppal,
    Sim,
}

/// A GPIO line as the config names it: a BCM number (`17`, the Pi's
/// numbering, which is also the line's offset on the Pi's header chip) or a
/// line name from the device tree (`"GPIO17"`, or any name on other boards).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pin {
    Bcm(u8),
    Name(String),
}

impl Pin {
    /// The BCM number of a number, or of a name spelled `GPIO<n>`.
    pub fn bcm(&self) -> Option<u8> {
        match self {
            Pin::Bcm(n) => Some(*n),
            Pin::Name(name) => name.strip_prefix("GPIO").and_then(|n| n.parse().ok()),
        }
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Bcm(n) => write!(f, "GPIO {n}"),
            Pin::Name(name) => write!(f, "line `{name}`"),
        }
    }
}

/// A PWM channel of the kernel's PWM sysfs (`/sys/class/pwm/pwmchipN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PwmChannel {
    pub chip: u32,
    pub channel: u32,
    pub frequency_hz: u32,
}
