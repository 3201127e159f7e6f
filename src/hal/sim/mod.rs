//! The simulated backend: GPIO pins 0–27 and I2C bus 1 with two simulated
//! BME280 sensors (0x76, 0x77), so that majortom runs and is tested without
//! a Pi. [`SimControl`] plays the outside world: it sets input levels (as a
//! button would), reads back what outputs were driven to, and moves the
//! BME280's raw readings.
//!
//! It does not model timing, bouncing or electrical faults; the BME280 is a
//! register file, not a physical model.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

mod bme280;

use super::{Edge, Gpio, HalError, I2cBus, InputPin, InputSettings, OutputPin, Pin, Pull, PwmChannel, PwmOutput};
use bme280::SimBme280;

/// The highest BCM GPIO number on the Pi's 40-pin header.
const MAX_PIN: u8 = 27;
/// The only simulated I2C bus: the one on the Pi's header.
const BUS: u8 = 1;
/// Where the simulated BME280s answer: the two addresses the chip can have.
const BME280_ADDRESSES: [u16; 2] = [0x76, 0x77];

/// A misuse of the control handle.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("GPIO {pin} is not claimed as an input, so its level cannot be set: configure an input on that pin")]
    NotAnInput { pin: u8 },
    #[error("no simulated BME280 at 0x{address:02x}: the simulated bus 1 has them at 0x76 and 0x77")]
    NoSuchDevice { address: u16 },
}

/// The simulated GPIO backend. Cheap to clone: clones share the same pins.
#[derive(Clone)]
pub struct SimGpio {
    state: Arc<Mutex<State>>,
}

/// The outside world's side of a [`SimGpio`]; clones share its pins.
#[derive(Clone)]
pub struct SimControl {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    pins: HashMap<u8, SimPin>,
    /// The duty cycle each claimed PWM channel was last set to.
    pwm: HashMap<(u32, u32), f64>,
    bme280: HashMap<u16, SimBme280>,
}

#[derive(Default)]
struct SimPin {
    claim: Claim,
    /// The level an output last drove, kept after the output is released so
    /// that a test can check the safe state left behind at shutdown.
    driven: Option<bool>,
    /// How many times an output was driven, the initial level included.
    writes: usize,
    /// Injected fault: reads and writes of this pin fail (a loose wire, a
    /// driver error), to test that the agent carries on.
    failing: bool,
}

#[derive(Default)]
enum Claim {
    #[default]
    Free,
    Input {
        /// The raw level on the pin.
        high: bool,
        active_low: bool,
        edges: mpsc::Sender<Edge>,
    },
    Output,
}

impl SimGpio {
    /// A backend with every pin free and the BME280s at the datasheet's
    /// example reading.
    pub fn new() -> SimGpio {
        let bme280 = BME280_ADDRESSES
            .iter()
            .map(|&address| (address, SimBme280::new()))
            .collect();
        let state = State {
            pins: HashMap::new(),
            pwm: HashMap::new(),
            bme280,
        };
        SimGpio {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A handle that plays the outside world for this backend.
    pub fn control(&self) -> SimControl {
        SimControl {
            state: self.state.clone(),
        }
    }

    fn claim(&self, pin: &Pin, claim: Claim) -> Result<u8, HalError> {
        let Some(number) = pin.bcm().filter(|n| *n <= MAX_PIN) else {
            return Err(HalError::NoSuchPin {
                pin: pin.to_string(),
                chip: "the simulated header (GPIO 0-27)".into(),
            });
        };
        let mut state = lock(&self.state);
        let entry = state.pins.entry(number).or_default();
        if !matches!(entry.claim, Claim::Free) {
            return Err(HalError::PinInUse {
                pin: pin.to_string(),
                consumer: None,
            });
        }
        entry.claim = claim;
        Ok(number)
    }
}

impl Default for SimGpio {
    fn default() -> SimGpio {
        SimGpio::new()
    }
}

impl Gpio for SimGpio {
    fn backend(&self) -> &'static str {
        "sim"
    }

    fn input(
        &self,
        pin: &Pin,
        settings: InputSettings,
        edges: mpsc::Sender<Edge>,
    ) -> Result<Box<dyn InputPin>, HalError> {
        // An unconnected input reads what its resistor pulls it to.
        let high = settings.pull == Pull::Up;
        let active_low = settings.active_low;
        let pin = self.claim(
            pin,
            Claim::Input {
                high,
                active_low,
                edges,
            },
        )?;
        Ok(Box::new(SimInput {
            pin,
            state: self.state.clone(),
        }))
    }

    fn output(&self, pin: &Pin, initial_high: bool) -> Result<Box<dyn OutputPin>, HalError> {
        let pin = self.claim(pin, Claim::Output)?;
        let mut output = SimOutput {
            pin,
            state: self.state.clone(),
        };
        output.set(initial_high)?;
        Ok(Box::new(output))
    }

    fn pwm(&self, channel: PwmChannel) -> Result<Box<dyn PwmOutput>, HalError> {
        let key = (channel.chip, channel.channel);
        lock(&self.state).pwm.insert(key, 0.0);
        Ok(Box::new(SimPwm {
            key,
            state: self.state.clone(),
        }))
    }

    fn i2c(&self, bus: u8) -> Result<Box<dyn I2cBus>, HalError> {
        if bus != BUS {
            return Err(HalError::NoI2cBus {
                bus,
                detail: "the simulated backend has only bus 1".into(),
            });
        }
        Ok(Box::new(SimI2c {
            state: self.state.clone(),
        }))
    }
}

impl SimControl {
    /// Sets input `pin` to the raw level `high`, sending an edge when the
    /// level changes. Returns the edge's time on CLOCK_MONOTONIC in
    /// nanoseconds (none without a change): the start of an edge's latency
    /// measured by another process on this machine.
    pub fn set_input(&self, pin: u8, high: bool) -> Result<Option<u64>, SimError> {
        let mut state = lock(&self.state);
        let Some(SimPin {
            claim:
                Claim::Input {
                    high: level,
                    active_low,
                    edges,
                },
            ..
        }) = state.pins.get_mut(&pin)
        else {
            return Err(SimError::NotAnInput { pin });
        };
        if *level == high {
            return Ok(None);
        }
        *level = high;
        let (at_ns, at) = (super::monotonic_ns(), tokio::time::Instant::now());
        // As on the Pi, a full channel drops the edge; the level stays.
        let _ = edges.try_send(Edge {
            active: high != *active_low,
            at,
        });
        Ok(Some(at_ns))
    }

    /// The duty cycle a claimed PWM channel was last set to.
    pub fn pwm(&self, chip: u32, channel: u32) -> Option<f64> {
        lock(&self.state).pwm.get(&(chip, channel)).copied()
    }

    /// The level output `pin` was last driven to, if it ever was.
    pub fn output(&self, pin: u8) -> Option<bool> {
        lock(&self.state).pins.get(&pin).and_then(|p| p.driven)
    }

    /// How many times output `pin` was driven (claiming it counts as one).
    pub fn output_writes(&self, pin: u8) -> usize {
        lock(&self.state).pins.get(&pin).map_or(0, |p| p.writes)
    }

    /// Makes every read or write of `pin` fail (or work again).
    pub fn set_failing(&self, pin: u8, failing: bool) {
        lock(&self.state).pins.entry(pin).or_default().failing = failing;
    }

    /// Sets the raw ADC values the BME280 at `address` reports.
    pub fn set_bme280_raw(&self, address: u16, adc_t: u32, adc_p: u32, adc_h: u16) -> Result<(), SimError> {
        let mut state = lock(&self.state);
        let device = state
            .bme280
            .get_mut(&address)
            .ok_or(SimError::NoSuchDevice { address })?;
        device.set_raw(adc_t, adc_p, adc_h);
        Ok(())
    }
}

/// The state is plain data that every method leaves consistent, so a panic
/// elsewhere while it was locked (a failing test) does not make it unusable.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct SimInput {
    pin: u8,
    state: Arc<Mutex<State>>,
}

impl InputPin for SimInput {
    fn is_active(&self) -> Result<bool, HalError> {
        match lock(&self.state).pins.get(&self.pin) {
            Some(SimPin { failing: true, .. }) => Err(HalError::Gpio(format!("GPIO {}: simulated fault", self.pin))),
            Some(SimPin {
                claim: Claim::Input { high, active_low, .. },
                ..
            }) => Ok(*high != *active_low),
            _ => Err(HalError::Gpio(format!("GPIO {} is not an input", self.pin))),
        }
    }
}

impl Drop for SimInput {
    fn drop(&mut self) {
        if let Some(pin) = lock(&self.state).pins.get_mut(&self.pin) {
            pin.claim = Claim::Free;
        }
    }
}

struct SimOutput {
    pin: u8,
    state: Arc<Mutex<State>>,
}

impl OutputPin for SimOutput {
    fn set(&mut self, high: bool) -> Result<(), HalError> {
        let mut state = lock(&self.state);
        let pin = state.pins.entry(self.pin).or_default();
        if pin.failing {
            return Err(HalError::Gpio(format!("GPIO {}: simulated fault", self.pin)));
        }
        pin.driven = Some(high);
        pin.writes += 1;
        Ok(())
    }
}

impl Drop for SimOutput {
    fn drop(&mut self) {
        // The level stays recorded, as a real pin keeps driving it.
        if let Some(pin) = lock(&self.state).pins.get_mut(&self.pin) {
            pin.claim = Claim::Free;
        }
    }
}

struct SimPwm {
    key: (u32, u32),
    state: Arc<Mutex<State>>,
}

impl PwmOutput for SimPwm {
    fn set_duty(&mut self, duty: f64) -> Result<(), HalError> {
        lock(&self.state).pwm.insert(self.key, duty.clamp(0.0, 1.0));
        Ok(())
    }
}

struct SimI2c {
    state: Arc<Mutex<State>>,
}

impl SimI2c {
    fn nack(address: u16) -> HalError {
        HalError::I2cTransfer {
            bus: BUS,
            address,
            detail: "no simulated device at this address".into(),
        }
    }
}

impl I2cBus for SimI2c {
    fn write_read(&mut self, address: u16, write: &[u8], read: &mut [u8]) -> Result<(), HalError> {
        let mut state = lock(&self.state);
        let device = state.bme280.get_mut(&address).ok_or_else(|| Self::nack(address))?;
        device.write(write);
        device.read(read);
        Ok(())
    }

    fn write(&mut self, address: u16, bytes: &[u8]) -> Result<(), HalError> {
        let mut state = lock(&self.state);
        let device = state.bme280.get_mut(&address).ok_or_else(|| Self::nack(address))?;
        device.write(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pull: Pull) -> InputSettings {
        InputSettings {
            pull,
            active_low: false,
        }
    }

    fn input(sim: &SimGpio, pin: u8, pull: Pull) -> (Box<dyn InputPin>, mpsc::Receiver<Edge>) {
        let (tx, rx) = mpsc::channel(8);
        let input = sim.input(&Pin::Bcm(pin), settings(pull), tx).unwrap();
        (input, rx)
    }

    #[test]
    fn input_starts_at_the_level_of_its_pull() {
        let sim = SimGpio::new();
        let (up, _) = input(&sim, 4, Pull::Up);
        let (down, _) = input(&sim, 5, Pull::Down);
        let (off, _) = input(&sim, 6, Pull::Off);
        assert!(up.is_active().unwrap());
        assert!(!down.is_active().unwrap());
        assert!(!off.is_active().unwrap());
    }

    #[test]
    fn level_change_sends_an_edge_and_moves_the_level() {
        let sim = SimGpio::new();
        let (pin, mut edges) = input(&sim, 17, Pull::Up);
        sim.control().set_input(17, false).unwrap();
        let edge = edges.try_recv().unwrap();
        assert!(!edge.active);
        assert!(!pin.is_active().unwrap());
        sim.control().set_input(17, true).unwrap();
        assert!(edges.try_recv().unwrap().active);
    }

    #[test]
    fn setting_the_same_level_sends_no_edge_and_reports_no_time() {
        let sim = SimGpio::new();
        let (_pin, mut edges) = input(&sim, 17, Pull::Down);
        assert_eq!(sim.control().set_input(17, false).unwrap(), None);
        assert!(edges.try_recv().is_err());
    }

    #[test]
    fn an_edge_reports_its_time_on_the_monotonic_clock() {
        let sim = SimGpio::new();
        let (_pin, _edges) = input(&sim, 17, Pull::Down);
        let before = crate::hal::monotonic_ns();
        let at = sim.control().set_input(17, true).unwrap().expect("an edge");
        let after = crate::hal::monotonic_ns();
        assert!((before..=after).contains(&at), "{before} ≤ {at} ≤ {after}");
    }

    #[test]
    fn full_edge_channel_drops_edges_but_keeps_the_level() {
        let sim = SimGpio::new();
        let (tx, mut edges) = mpsc::channel(1);
        let pin = sim.input(&Pin::Bcm(22), settings(Pull::Down), tx).unwrap();
        let control = sim.control();
        control.set_input(22, true).unwrap();
        control.set_input(22, false).unwrap();
        control.set_input(22, true).unwrap();
        assert!(edges.try_recv().unwrap().active);
        assert!(edges.try_recv().is_err());
        assert!(pin.is_active().unwrap());
    }

    #[test]
    fn setting_an_unclaimed_or_output_pin_is_an_error() {
        let sim = SimGpio::new();
        let _output = sim.output(&Pin::Bcm(18), false).unwrap();
        for pin in [3, 18, 40] {
            let message = sim.control().set_input(pin, true).unwrap_err().to_string();
            assert!(message.contains(&format!("GPIO {pin} ")), "{message}");
        }
    }

    #[test]
    fn claiming_a_pin_twice_is_pin_in_use() {
        let sim = SimGpio::new();
        let (_input, _) = input(&sim, 4, Pull::Up);
        let _output = sim.output(&Pin::Bcm(5), false).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        assert!(matches!(
            sim.input(&Pin::Bcm(5), settings(Pull::Up), tx),
            Err(HalError::PinInUse { .. })
        ));
        assert!(matches!(
            sim.output(&Pin::Name("GPIO4".into()), true),
            Err(HalError::PinInUse { .. })
        ));
    }

    #[test]
    fn dropped_pin_can_be_claimed_again() {
        let sim = SimGpio::new();
        drop(input(&sim, 4, Pull::Up));
        drop(sim.output(&Pin::Bcm(4), true).unwrap());
        assert!(sim.output(&Pin::Bcm(4), false).is_ok());
    }

    #[test]
    fn pins_off_the_header_do_not_exist() {
        let sim = SimGpio::new();
        assert!(matches!(
            sim.output(&Pin::Bcm(28), false),
            Err(HalError::NoSuchPin { .. })
        ));
        let (tx, _rx) = mpsc::channel(1);
        assert!(matches!(
            sim.input(&Pin::Name("PA7".into()), settings(Pull::Off), tx),
            Err(HalError::NoSuchPin { .. })
        ));
    }

    #[test]
    fn output_records_its_level_and_every_write() {
        let sim = SimGpio::new();
        let control = sim.control();
        assert_eq!(control.output(23), None);
        assert_eq!(control.output_writes(23), 0);
        let mut relay = sim.output(&Pin::Bcm(23), true).unwrap();
        assert_eq!((control.output(23), control.output_writes(23)), (Some(true), 1));
        relay.set(false).unwrap();
        relay.set(false).unwrap();
        assert_eq!((control.output(23), control.output_writes(23)), (Some(false), 3));
        drop(relay);
        assert_eq!(control.output(23), Some(false), "a released output keeps its level");
    }

    #[test]
    fn i2c_bus_other_than_1_does_not_exist() {
        let sim = SimGpio::new();
        assert!(matches!(sim.i2c(0), Err(HalError::NoI2cBus { bus: 0, .. })));
    }

    #[test]
    fn i2c_to_an_absent_address_fails_like_a_nack() {
        let mut bus = SimGpio::new().i2c(1).unwrap();
        let mut id = [0u8];
        let error = bus.write_read(0x40, &[0xD0], &mut id).unwrap_err();
        assert!(matches!(
            error,
            HalError::I2cTransfer {
                bus: 1,
                address: 0x40,
                ..
            }
        ));
        assert!(bus.write(0x40, &[0xF4, 0]).is_err());
    }

    #[test]
    fn sim_bme280_answers_chip_id_and_calibration_at_both_addresses() {
        let mut bus = SimGpio::new().i2c(1).unwrap();
        for address in [0x76, 0x77] {
            let mut id = [0u8];
            bus.write_read(address, &[0xD0], &mut id).unwrap();
            assert_eq!(id, [0x60]);
            let mut t1 = [0u8; 2];
            bus.write_read(address, &[0x88], &mut t1).unwrap();
            assert_eq!(u16::from_le_bytes(t1), 27504);
        }
    }

    #[test]
    fn sim_bme280_reports_reset_values_until_started() {
        let mut bus = SimGpio::new().i2c(1).unwrap();
        let mut data = [0u8; 8];
        bus.write_read(0x76, &[0xF7], &mut data).unwrap();
        assert_eq!(data, [0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
        bus.write(0x76, &[0xF2, 0x01, 0xF4, 0x27]).unwrap();
        bus.write_read(0x76, &[0xF7], &mut data).unwrap();
        assert_eq!(data, [0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x69, 0x78]);
    }

    #[test]
    fn set_bme280_raw_changes_the_measurement_registers() {
        let sim = SimGpio::new();
        let mut bus = sim.i2c(1).unwrap();
        bus.write(0x77, &[0xF4, 0x27]).unwrap();
        sim.control().set_bme280_raw(0x77, 0xABCDE, 0x12345, 0xBEEF).unwrap();
        let mut data = [0u8; 8];
        bus.write_read(0x77, &[0xF7], &mut data).unwrap();
        assert_eq!(data, [0x12, 0x34, 0x50, 0xAB, 0xCD, 0xE0, 0xBE, 0xEF]);
        assert!(sim.control().set_bme280_raw(0x40, 0, 0, 0).is_err());
    }
}
