//! The Raspberry Pi backend, over rppal: GPIO pins (inputs with edge
//! interrupts, outputs) and I2C buses. This is the only module that imports
//! rppal; it maps rppal's errors to [`HalError`] so the rest of majortom
//! never sees them.
//!
//! It does not decide whether to use the Pi backend ([`is_raspberry_pi`]
//! only answers the question for `gpio.backend = "auto"`), and it knows
//! nothing about what is wired to the pins.

use std::io;
use std::path::Path;

use rppal::gpio::{self as rp, Level, Trigger};
use rppal::i2c::{self as ri2c, I2c};
use tokio::sync::mpsc;

use super::{Edge, Gpio, HalError, I2cBus, InputPin, InputSettings, OutputPin, Pin, Pull, PwmChannel, PwmOutput};

/// The highest BCM GPIO number on the 40-pin header. rppal hands out the
/// SoC's internal lines too (up to 53 on a BCM283x), and some of those run
/// the SD card: a typo in the config must not reconfigure them.
const HEADER_MAX_PIN: u8 = 27;

/// True when `<root>/proc/device-tree/model` names a Raspberry Pi.
pub fn is_raspberry_pi(root: &Path) -> bool {
    std::fs::read(root.join("proc/device-tree/model")).is_ok_and(|model| model.starts_with(b"Raspberry Pi"))
}

/// The GPIO peripheral of a Raspberry Pi.
pub struct RppalGpio {
    gpio: rp::Gpio,
    /// Where the PWM sysfs is found.
    root: std::path::PathBuf,
}

impl RppalGpio {
    /// Opens the GPIO peripheral; fails with an error saying what to do on a
    /// machine that is not a Pi or a user without access to the GPIO device.
    pub fn new(root: &Path) -> Result<RppalGpio, HalError> {
        let gpio = rp::Gpio::new().map_err(gpio_error)?;
        Ok(RppalGpio {
            gpio,
            root: root.to_owned(),
        })
    }

    fn claim(&self, pin: &Pin) -> Result<rp::Pin, HalError> {
        match pin.bcm() {
            Some(n) if n <= HEADER_MAX_PIN => self.gpio.get(n).map_err(|e| gpio_error_for(e, pin)),
            _ => Err(HalError::NoSuchPin {
                pin: pin.to_string(),
                chip: "the Pi's 40-pin header (rppal knows BCM numbers and GPIO<n> names only)".into(),
            }),
        }
    }
}

/// Opens I2C bus `bus` (`/dev/i2c-<bus>`) through rppal's I2C, which needs
/// no `/dev/gpiomem`: every backend uses it.
pub(crate) fn open_i2c(bus: u8) -> Result<Box<dyn I2cBus>, HalError> {
    let i2c = I2c::with_bus(bus).map_err(|error| match error {
        ri2c::Error::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => HalError::I2cPermission { bus },
        other => HalError::NoI2cBus {
            bus,
            detail: format!("/dev/i2c-{bus}: {other}"),
        },
    })?;
    Ok(Box::new(RppalI2c {
        bus,
        i2c,
        address: None,
    }))
}

impl Gpio for RppalGpio {
    fn backend(&self) -> &'static str {
        "rppal"
    }

    fn input(
        &self,
        pin: &Pin,
        settings: InputSettings,
        edges: mpsc::Sender<Edge>,
    ) -> Result<Box<dyn InputPin>, HalError> {
        let pin = self.claim(pin)?;
        let active_low = settings.active_low;
        let mut input = match settings.pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::Off => pin.into_input(),
        };
        // The callback runs on rppal's interrupt thread: it must never block,
        // so a full channel drops the edge (the receiver reads the level
        // anyway). No logging here either: a bouncing contact would flood it.
        //
        // rppal requests the kernel line inside that thread, so a line held
        // by another program is not reported here: the pin still reads, it
        // just sends no edges.
        input
            .set_async_interrupt(Trigger::Both, None, move |event| {
                let high = event.trigger == Trigger::RisingEdge;
                let at = tokio::time::Instant::now();
                let _ = edges.try_send(Edge {
                    active: high != active_low,
                    at,
                });
            })
            .map_err(gpio_error)?;
        Ok(Box::new(RppalInput { input, active_low }))
    }

    fn output(&self, pin: &Pin, initial_high: bool) -> Result<Box<dyn OutputPin>, HalError> {
        let pin = self.claim(pin)?;
        let mut output = if initial_high {
            pin.into_output_high()
        } else {
            pin.into_output_low()
        };
        // rppal would turn the pin back into an input on drop, letting a relay
        // float; the outputs task sets the safe state itself before it stops.
        output.set_reset_on_drop(false);
        Ok(Box::new(RppalOutput(output)))
    }

    fn pwm(&self, channel: PwmChannel) -> Result<Box<dyn PwmOutput>, HalError> {
        Ok(Box::new(super::pwm::SysfsPwm::open(&self.root, channel)?))
    }

    fn i2c(&self, bus: u8) -> Result<Box<dyn I2cBus>, HalError> {
        open_i2c(bus)
    }
}

/// Holds the rppal pin: dropping it stops the interrupt thread and releases
/// the pin.
struct RppalInput {
    input: rp::InputPin,
    active_low: bool,
}

impl InputPin for RppalInput {
    fn is_active(&self) -> Result<bool, HalError> {
        Ok(self.input.is_high() != self.active_low)
    }
}

struct RppalOutput(rp::OutputPin);

impl OutputPin for RppalOutput {
    fn set(&mut self, high: bool) -> Result<(), HalError> {
        self.0.write(Level::from(high));
        Ok(())
    }
}

struct RppalI2c {
    bus: u8,
    i2c: I2c,
    /// The slave address last set, so that talking to one device does not
    /// cost an extra ioctl per transfer.
    address: Option<u16>,
}

impl RppalI2c {
    fn select(&mut self, address: u16) -> Result<(), HalError> {
        if self.address != Some(address) {
            self.i2c
                .set_slave_address(address)
                .map_err(|e| self.transfer_error(address, e))?;
            self.address = Some(address);
        }
        Ok(())
    }

    fn transfer_error(&self, address: u16, error: ri2c::Error) -> HalError {
        HalError::I2cTransfer {
            bus: self.bus,
            address,
            detail: error.to_string(),
        }
    }
}

impl I2cBus for RppalI2c {
    fn write_read(&mut self, address: u16, write: &[u8], read: &mut [u8]) -> Result<(), HalError> {
        self.select(address)?;
        self.i2c
            .write_read(write, read)
            .map_err(|e| self.transfer_error(address, e))
    }

    fn write(&mut self, address: u16, bytes: &[u8]) -> Result<(), HalError> {
        self.select(address)?;
        match self.i2c.write(bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(HalError::I2cTransfer {
                bus: self.bus,
                address,
                detail: format!("wrote {n} of {} bytes", bytes.len()),
            }),
            Err(e) => Err(self.transfer_error(address, e)),
        }
    }
}

fn gpio_error(error: rp::Error) -> HalError {
    match error {
        rp::Error::PermissionDenied(_) => HalError::GpioPermission,
        rp::Error::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => HalError::GpioPermission,
        rp::Error::UnknownModel => HalError::NotAPi {
            detail: "rppal cannot identify the board's model or SoC".into(),
        },
        other => HalError::Gpio(other.to_string()),
    }
}

fn gpio_error_for(error: rp::Error, pin: &Pin) -> HalError {
    match error {
        rp::Error::PinUsed(_) => HalError::PinInUse {
            pin: pin.to_string(),
            consumer: None,
        },
        rp::Error::PinNotAvailable(_) => HalError::NoSuchPin {
            pin: pin.to_string(),
            chip: "this board".into(),
        },
        other => gpio_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysroot")
            .join(name)
    }

    #[test]
    fn pi4_device_tree_is_a_raspberry_pi() {
        assert!(is_raspberry_pi(&fixture("pi4")));
    }

    #[test]
    fn machine_without_device_tree_is_not_a_raspberry_pi() {
        assert!(!is_raspberry_pi(&fixture("minimal")));
    }

    #[test]
    fn other_device_tree_model_is_not_a_raspberry_pi() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/device-tree")).unwrap();
        std::fs::write(root.path().join("proc/device-tree/model"), b"Pine64 RockPro64\0").unwrap();
        assert!(!is_raspberry_pi(root.path()));
    }

    #[test]
    fn opening_gpio_off_a_pi_fails_with_advice() {
        if is_raspberry_pi(Path::new("/")) {
            return; // This test is about machines without GPIO.
        }
        let error = match RppalGpio::new(Path::new("/")) {
            Ok(_) => panic!("opened the GPIO peripheral on a machine that is not a Pi"),
            Err(error) => error,
        };
        let message = error.to_string();
        assert!(
            message.contains("gpio.backend = \"sim\"") || message.contains("usermod"),
            "no advice in: {message}"
        );
    }
}
