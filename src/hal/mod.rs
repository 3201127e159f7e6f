//! The hardware boundary: GPIO pins, PWM channels and I2C buses behind
//! narrow traits, with three backends: the Linux GPIO character device
//! (`cdev/`, every kernel), rppal (`rpi.rs`, the only module that imports
//! rppal; needs Raspberry Pi OS's `/dev/gpiomem`) and a simulated backend
//! (`sim.rs`) for tests, demos and laptops. `select.rs` decides which one a
//! machine gets, and why; `pwm.rs` drives the kernel's PWM sysfs.
//!
//! Nothing outside this module touches hardware. Inputs report edges through
//! a channel, so no caller polls a pin.

pub mod cdev;
pub mod pwm;
pub mod rpi;
pub mod select;
pub mod sim;

pub use crate::vocab::gpio::{Backend, Pin, PwmChannel};

use tokio::sync::mpsc;

use crate::vocab::Pull;

/// How an input is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSettings {
    pub pull: Pull,
    /// Report a low level as active (a button to ground with a pull-up).
    /// The cdev backend asks the kernel for it, the others invert in
    /// software: every backend reports logical levels.
    pub active_low: bool,
}

/// A change seen on an input: its logical level after the edge (active-low
/// applied) and when it happened (the kernel's timestamp where the backend
/// has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub active: bool,
    pub at: tokio::time::Instant,
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of the kernel's edge
/// events, and of the simulated edges' times the sim panel reports.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64).saturating_mul(1_000_000_000) + now.tv_nsec as u64
}

/// Hardware errors, each saying what the user can do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HalError {
    #[error("permission denied opening the GPIO device: add the user to the `gpio` group (sudo usermod -aG gpio $USER) and log in again, or run the installed service")]
    GpioPermission,
    #[error("permission denied opening I2C bus {bus}: add the user to the `i2c` group (sudo usermod -aG i2c $USER)")]
    I2cPermission { bus: u8 },
    #[error("this does not look like a Raspberry Pi ({detail}); use gpio.backend = \"sim\" to try majortom without hardware")]
    NotAPi { detail: String },
    #[error("{pin} is already in use{}: stop that program or driver, or pick another pin", consumer.as_ref().map(|c| format!(" by `{c}`")).unwrap_or_default())]
    PinInUse { pin: String, consumer: Option<String> },
    #[error("{pin} does not exist on {chip}")]
    NoSuchPin { pin: String, chip: String },
    #[error("PWM chip {chip} is not there ({detail}): enable PWM with `dtoverlay=pwm` (GPIO 18) or `dtoverlay=pwm-2chan` (GPIO 18 and 19) in /boot/firmware/config.txt and reboot")]
    NoPwm { chip: String, detail: String },
    #[error("PWM {what}: {detail}")]
    Pwm { what: String, detail: String },
    #[error("I2C bus {bus} is not available: enable I2C (sudo raspi-config → Interface Options → I2C) ({detail})")]
    NoI2cBus { bus: u8, detail: String },
    #[error("I2C device 0x{address:02x} on bus {bus} did not answer: check wiring and address ({detail})")]
    I2cTransfer { bus: u8, address: u16, detail: String },
    #[error("GPIO error: {0}")]
    Gpio(String),
}

/// A GPIO backend: hands out pins and I2C buses.
pub trait Gpio: Send + Sync {
    /// "cdev", "rppal" or "sim", for logs and the API.
    fn backend(&self) -> &'static str;

    /// Claims `pin` as an input and sends every edge to `edges` (dropping
    /// edges when the channel is full: the receiver reads the level
    /// anyway). Callers debounce in software: no backend delays an edge.
    fn input(
        &self,
        pin: &Pin,
        settings: InputSettings,
        edges: mpsc::Sender<Edge>,
    ) -> Result<Box<dyn InputPin>, HalError>;

    /// Claims `pin` as an output, driven to `initial_high` at once.
    fn output(&self, pin: &Pin, initial_high: bool) -> Result<Box<dyn OutputPin>, HalError>;

    /// Claims a PWM channel, configured to its frequency and not yet
    /// driven (the caller sets its duty cycle at once).
    fn pwm(&self, channel: PwmChannel) -> Result<Box<dyn PwmOutput>, HalError>;

    /// Opens I2C bus `bus` (1 on a Pi's header).
    fn i2c(&self, bus: u8) -> Result<Box<dyn I2cBus>, HalError>;
}

/// A claimed input; dropping it releases the pin and stops its edges.
pub trait InputPin: Send {
    /// The logical level (active-low applied).
    fn is_active(&self) -> Result<bool, HalError>;
}

/// A claimed output. Dropping it leaves the pin at its last level (the
/// caller sets the safe state before it stops).
pub trait OutputPin: Send {
    fn set(&mut self, high: bool) -> Result<(), HalError>;
}

/// A claimed PWM channel. Dropping it leaves it running at its last duty
/// cycle (the caller sets the safe state before it stops).
pub trait PwmOutput: Send {
    /// Drives the channel at `duty` (0.0 = always low, 1.0 = always high).
    fn set_duty(&mut self, duty: f64) -> Result<(), HalError>;
}

/// An I2C bus, addressed per transfer.
pub trait I2cBus: Send {
    /// Writes `write` (typically a register address) then reads `read.len()`
    /// bytes, as one transaction.
    fn write_read(&mut self, address: u16, write: &[u8], read: &mut [u8]) -> Result<(), HalError>;
    fn write(&mut self, address: u16, bytes: &[u8]) -> Result<(), HalError>;
}
