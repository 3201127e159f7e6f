//! The hardware boundary: GPIO pins and I2C buses behind narrow traits, with
//! a Raspberry Pi backend (rppal, in `rpi.rs`, the only module that imports
//! rppal) and a simulated backend (`sim.rs`) for tests, demos and laptops.
//!
//! Nothing outside this module touches hardware. Inputs report edges through
//! a channel (rppal's interrupt callbacks run on their own thread), so no
//! caller polls a pin.

pub mod rpi;
pub mod sim;

use std::time::Duration;

use tokio::sync::mpsc;

use crate::vocab::Pull;

/// A level change seen on an input pin: the raw level after the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub high: bool,
    pub at: tokio::time::Instant,
}

/// Hardware errors, each saying what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    #[error("permission denied opening the GPIO device: add the user to the `gpio` group (sudo usermod -aG gpio $USER) and log in again, or run the installed service")]
    GpioPermission,
    #[error("permission denied opening I2C bus {bus}: add the user to the `i2c` group (sudo usermod -aG i2c $USER)")]
    I2cPermission { bus: u8 },
    #[error("this does not look like a Raspberry Pi ({detail}); use gpio.backend = \"sim\" to try majortom without hardware")]
    NotAPi { detail: String },
    #[error("GPIO {pin} is already in use (by another input/output in the config, or another program)")]
    PinInUse { pin: u8 },
    #[error("GPIO {pin} does not exist on this board")]
    NoSuchPin { pin: u8 },
    #[error("I2C bus {bus} is not available: enable I2C (sudo raspi-config → Interface Options → I2C) ({detail})")]
    NoI2cBus { bus: u8, detail: String },
    #[error("I2C device 0x{address:02x} on bus {bus} did not answer: check wiring and address ({detail})")]
    I2cTransfer { bus: u8, address: u16, detail: String },
    #[error("GPIO error: {0}")]
    Gpio(String),
}

/// A GPIO backend: hands out pins and I2C buses.
pub trait Gpio: Send + Sync {
    /// "rppal" or "sim", for logs and the API.
    fn backend(&self) -> &'static str;

    /// Claims `pin` as an input with `pull`, and sends every edge to
    /// `edges` (dropping edges when the channel is full: the receiver reads
    /// the level anyway). `debounce` is a hint the backend may apply in
    /// hardware or its driver; callers debounce in software regardless.
    fn input(
        &self,
        pin: u8,
        pull: Pull,
        debounce: Option<Duration>,
        edges: mpsc::Sender<Edge>,
    ) -> Result<Box<dyn InputPin>, HalError>;

    /// Claims `pin` as an output, driven to `initial_high` at once.
    fn output(&self, pin: u8, initial_high: bool) -> Result<Box<dyn OutputPin>, HalError>;

    /// Opens I2C bus `bus` (1 on a Pi's header).
    fn i2c(&self, bus: u8) -> Result<Box<dyn I2cBus>, HalError>;
}

/// A claimed input; dropping it releases the pin and stops its edges.
pub trait InputPin: Send {
    fn is_high(&self) -> Result<bool, HalError>;
}

/// A claimed output. Dropping it leaves the pin at its last level (the
/// caller sets the safe state before it stops).
pub trait OutputPin: Send {
    fn set(&mut self, high: bool) -> Result<(), HalError>;
}

/// An I2C bus, addressed per transfer.
pub trait I2cBus: Send {
    /// Writes `write` (typically a register address) then reads `read.len()`
    /// bytes, as one transaction.
    fn write_read(&mut self, address: u16, write: &[u8], read: &mut [u8]) -> Result<(), HalError>;
    fn write(&mut self, address: u16, bytes: &[u8]) -> Result<(), HalError>;
}
