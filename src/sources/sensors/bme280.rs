//! A BME280 (temperature, pressure, humidity) or BMP280 (no humidity) read
//! directly over an [`I2cBus`]: chip detection, calibration readout, the
//! chip's configuration, and the datasheet's integer compensation formulas.
//!
//! Our own driver rather than a crate: it is small, it talks to our
//! [`I2cBus`] trait without embedded-hal adapters, and it keeps the binary
//! within its size budget. It knows nothing about entities or intervals
//! (that is [`super::Sensor`]); a BME280 bound to the kernel's IIO driver is
//! read by `iio.rs` instead.
//!
//! The chip runs in normal mode: it measures by itself once a second, so a
//! read is one burst transfer of the latest result and never waits for a
//! conversion. Forced mode would need a ~10 ms wait per read, which would
//! stall the current-thread runtime that every task shares; the price of
//! normal mode is a few µA and a reading up to a second old.

use std::num::Wrapping;

use crate::hal::{HalError, I2cBus};

use super::{Quantity, SensorError, SensorReader};

const REG_CALIB_TP: u8 = 0x88; // 0x88..=0xA1: dig_T1..dig_P9, then dig_H1
const REG_CHIP_ID: u8 = 0xD0;
const REG_CALIB_H: u8 = 0xE1; // 0xE1..=0xE7: dig_H2..dig_H6
const REG_CTRL_HUM: u8 = 0xF2;
const REG_CTRL_MEAS: u8 = 0xF4;
const REG_CONFIG: u8 = 0xF5;
const REG_DATA: u8 = 0xF7; // 0xF7..=0xFE: pressure, temperature, humidity

const CHIP_ID_BME280: u8 = 0x60;
const CHIP_ID_BMP280: u8 = 0x58;

/// Humidity oversampling ×1.
const CTRL_HUM_X1: u8 = 0b001;
/// osrs_t ×1 (bits 7:5), osrs_p ×1 (4:2), normal mode (1:0). Indoor air
/// changes slowly; more oversampling only removes noise below what we show.
const CTRL_MEAS_NORMAL: u8 = (0b001 << 5) | (0b001 << 2) | 0b11;
/// t_sb 1000 ms between measurements (bits 7:5, 0b101 on both chips), IIR
/// filter off (4:2).
const CONFIG_1S_NO_FILTER: u8 = 0b101 << 5;

/// What the measurement registers hold when a quantity was not measured,
/// as after power-on (20-bit temperature/pressure, 16-bit humidity).
const SKIPPED_20: i32 = 0x80000;
const SKIPPED_16: i32 = 0x8000;

/// The datasheet's operating range; a value outside it means a bad wire or
/// a broken chip, not weather.
const TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = -40.0..=85.0;
const PRESSURE_RANGE_HPA: std::ops::RangeInclusive<f64> = 300.0..=1100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chip {
    Bme280,
    Bmp280,
}

impl Chip {
    fn name(self) -> &'static str {
        match self {
            Chip::Bme280 => "BME280",
            Chip::Bmp280 => "BMP280",
        }
    }
}

/// A BME280 or BMP280 at one address on one I2C bus.
pub struct Bme280Reader {
    bus: Box<dyn I2cBus>,
    bus_number: u8,
    address: u16,
    chip: Chip,
    calibration: Calibration,
}

impl Bme280Reader {
    /// Identifies the chip, reads its calibration and starts it measuring.
    pub fn new(mut bus: Box<dyn I2cBus>, bus_number: u8, address: u16) -> Result<Bme280Reader, SensorError> {
        let mut id = [0u8];
        bus.write_read(address, &[REG_CHIP_ID], &mut id)?;
        let chip = match id[0] {
            CHIP_ID_BME280 => Chip::Bme280,
            CHIP_ID_BMP280 => Chip::Bmp280,
            other => {
                return Err(SensorError::Device(format!(
                    "the device at 0x{address:02x} on I2C bus {bus_number} has chip id 0x{other:02x}, \
                     not a BME280 (0x60) or BMP280 (0x58): check the address and the sensor kind"
                )))
            }
        };
        let mut tp = [0u8; 26];
        bus.write_read(address, &[REG_CALIB_TP], &mut tp)?;
        let mut h = [0u8; 7];
        if chip == Chip::Bme280 {
            bus.write_read(address, &[REG_CALIB_H], &mut h)?;
        }
        let mut reader = Bme280Reader {
            bus,
            bus_number,
            address,
            chip,
            calibration: Calibration::parse(&tp, &h),
        };
        reader.configure()?;
        Ok(reader)
    }

    /// Starts normal mode, in one write of (register, value) pairs.
    fn configure(&mut self) -> Result<(), HalError> {
        // Sleep first: the chip may still be in normal mode from an earlier
        // run, and the datasheet says writes to config may then be ignored.
        // ctrl_hum takes effect only with the ctrl_meas write after it.
        let mut bytes = vec![REG_CTRL_MEAS, 0];
        if self.chip == Chip::Bme280 {
            bytes.extend([REG_CTRL_HUM, CTRL_HUM_X1]);
        }
        bytes.extend([REG_CONFIG, CONFIG_1S_NO_FILTER, REG_CTRL_MEAS, CTRL_MEAS_NORMAL]);
        self.bus.write(self.address, &bytes)
    }
}

impl SensorReader for Bme280Reader {
    fn describe(&self) -> String {
        format!(
            "{} 0x{:02x} on I2C bus {}",
            self.chip.name(),
            self.address,
            self.bus_number
        )
    }

    fn quantities(&self) -> Vec<Quantity> {
        match self.chip {
            Chip::Bme280 => vec![Quantity::Temperature, Quantity::Pressure, Quantity::Humidity],
            Chip::Bmp280 => vec![Quantity::Temperature, Quantity::Pressure],
        }
    }

    fn read(&mut self) -> Vec<(Quantity, Result<f64, SensorError>)> {
        let mut data = [0u8; 8];
        let len = match self.chip {
            Chip::Bme280 => 8,
            Chip::Bmp280 => 6,
        };
        // One burst: the chip then returns one measurement's values, never
        // a mix of two.
        if let Err(error) = self.bus.write_read(self.address, &[REG_DATA], &mut data[..len]) {
            return self.failed(|| SensorError::Hal(error.clone()));
        }
        let raw = Raw::parse(&data);
        if raw.adc_t == SKIPPED_20 {
            // A chip that lost power is back in sleep mode with reset
            // values: start it again, and the next read has a measurement.
            return match self.configure() {
                Ok(()) => self.failed(|| {
                    SensorError::Device("no measurement yet (the sensor was just started or lost power)".into())
                }),
                Err(error) => self.failed(|| SensorError::Hal(error.clone())),
            };
        }
        readings(&self.calibration, self.chip, raw)
    }
}

impl Bme280Reader {
    fn failed(&self, error: impl Fn() -> SensorError) -> Vec<(Quantity, Result<f64, SensorError>)> {
        self.quantities().into_iter().map(|q| (q, Err(error()))).collect()
    }
}

/// The trimming parameters from the chip's NVM, named as in the datasheet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Calibration {
    t1: u16,
    t2: i16,
    t3: i16,
    p1: u16,
    p2: i16,
    p3: i16,
    p4: i16,
    p5: i16,
    p6: i16,
    p7: i16,
    p8: i16,
    p9: i16,
    h1: u8,
    h2: i16,
    h3: u8,
    h4: i16,
    h5: i16,
    h6: i8,
}

impl Calibration {
    /// `tp` is 0x88..=0xA1, `h` is 0xE1..=0xE7 (zeros on a BMP280).
    fn parse(tp: &[u8; 26], h: &[u8; 7]) -> Calibration {
        let u = |i: usize| u16::from_le_bytes([tp[i], tp[i + 1]]);
        let s = |i: usize| i16::from_le_bytes([tp[i], tp[i + 1]]);
        Calibration {
            t1: u(0),
            t2: s(2),
            t3: s(4),
            p1: u(6),
            p2: s(8),
            p3: s(10),
            p4: s(12),
            p5: s(14),
            p6: s(16),
            p7: s(18),
            p8: s(20),
            p9: s(22),
            h1: tp[25],
            h2: i16::from_le_bytes([h[0], h[1]]),
            h3: h[2],
            // dig_H4 and dig_H5 are 12-bit signed values sharing 0xE5:
            // H4 = E4[7:0] E5[3:0], H5 = E6[7:0] E5[7:4]. The sign comes
            // from the whole byte (E4, E6), shifted up by a nibble.
            h4: (i16::from(h[3] as i8) << 4) | i16::from(h[4] & 0x0F),
            h5: (i16::from(h[5] as i8) << 4) | i16::from(h[4] >> 4),
            h6: h[6] as i8,
        }
    }
}

/// Raw ADC values from the burst read of 0xF7..=0xFE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Raw {
    adc_p: i32,
    adc_t: i32,
    adc_h: i32,
}

impl Raw {
    fn parse(d: &[u8; 8]) -> Raw {
        let adc20 = |m: u8, l: u8, x: u8| (i32::from(m) << 12) | (i32::from(l) << 4) | i32::from(x >> 4);
        Raw {
            adc_p: adc20(d[0], d[1], d[2]),
            adc_t: adc20(d[3], d[4], d[5]),
            adc_h: (i32::from(d[6]) << 8) | i32::from(d[7]),
        }
    }
}

/// Compensated values in our units, each checked against the chip's range.
fn readings(calibration: &Calibration, chip: Chip, raw: Raw) -> Vec<(Quantity, Result<f64, SensorError>)> {
    let (centi_celsius, t_fine) = compensate_temperature(calibration, raw.adc_t);
    let celsius = f64::from(centi_celsius) / 100.0;
    let plausible = TEMPERATURE_RANGE.contains(&celsius);
    let temperature = if plausible {
        Ok(celsius)
    } else {
        Err(implausible(format!("temperature {celsius:.2} °C")))
    };
    // Pressure and humidity are compensated with the temperature: without
    // a plausible one they are not worth reporting.
    let derived = |skipped: bool, value: &dyn Fn() -> Result<f64, SensorError>| {
        if !plausible {
            Err(implausible(format!("temperature {celsius:.2} °C")))
        } else if skipped {
            Err(SensorError::Device("no measurement yet".into()))
        } else {
            value()
        }
    };
    let pressure = derived(raw.adc_p == SKIPPED_20, &|| {
        let hpa = f64::from(compensate_pressure(calibration, t_fine, raw.adc_p)) / 25600.0;
        if PRESSURE_RANGE_HPA.contains(&hpa) {
            Ok(hpa)
        } else {
            Err(implausible(format!("pressure {hpa:.2} hPa")))
        }
    });
    let mut values = vec![(Quantity::Temperature, temperature), (Quantity::Pressure, pressure)];
    if chip == Chip::Bme280 {
        let humidity = derived(raw.adc_h == SKIPPED_16, &|| {
            Ok(f64::from(compensate_humidity(calibration, t_fine, raw.adc_h)) / 1024.0)
        });
        values.push((Quantity::Humidity, humidity));
    }
    values
}

fn implausible(what: String) -> SensorError {
    SensorError::Device(format!(
        "implausible {what}, outside what the chip measures: check the wiring"
    ))
}

// The compensation formulas are the datasheet's integer code (BME280
// datasheet 4.2.3, BMP280 datasheet 3.11.3), with its C types. `Wrapping`
// makes their arithmetic wrap as that C does on every compiler we meet:
// only calibration no real chip has can overflow it, and the range checks
// above reject the garbage that follows, where plain Rust arithmetic would
// panic in a debug build.

/// Temperature in 0.01 °C, and t_fine, which the other two formulas use.
fn compensate_temperature(c: &Calibration, adc_t: i32) -> (i32, i32) {
    let adc = Wrapping(adc_t);
    let t1 = Wrapping(i32::from(c.t1));
    let t2 = Wrapping(i32::from(c.t2));
    let t3 = Wrapping(i32::from(c.t3));
    let var1 = (((adc >> 3) - (t1 << 1)) * t2) >> 11;
    let d = (adc >> 4) - t1;
    let var2 = (((d * d) >> 12) * t3) >> 14;
    let t_fine = var1 + var2;
    let t = (t_fine * Wrapping(5) + Wrapping(128)) >> 8;
    (t.0, t_fine.0)
}

/// Pressure in Pa as Q24.8 (the 64-bit formula); 0 when the calibration
/// would divide by zero.
fn compensate_pressure(c: &Calibration, t_fine: i32, adc_p: i32) -> u32 {
    let w = |v: i64| Wrapping(v);
    let [p1, p2, p3, p4, p5, p6, p7, p8, p9] = [
        i64::from(c.p1),
        i64::from(c.p2),
        i64::from(c.p3),
        i64::from(c.p4),
        i64::from(c.p5),
        i64::from(c.p6),
        i64::from(c.p7),
        i64::from(c.p8),
        i64::from(c.p9),
    ]
    .map(w);
    let mut var1 = w(i64::from(t_fine)) - w(128_000);
    let mut var2 = var1 * var1 * p6;
    var2 += (var1 * p5) << 17;
    var2 += p4 << 35;
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12);
    var1 = (((w(1) << 47) + var1) * p1) >> 33;
    if var1.0 == 0 {
        return 0;
    }
    let mut p = w(1_048_576) - w(i64::from(adc_p));
    p = (((p << 31) - var2) * w(3125)) / var1;
    var1 = (p9 * (p >> 13) * (p >> 13)) >> 25;
    var2 = (p8 * p) >> 19;
    p = ((p + var1 + var2) >> 8) + (p7 << 4);
    p.0 as u32
}

/// Relative humidity in % as Q22.10 (the 32-bit formula), within 0..=100.
fn compensate_humidity(c: &Calibration, t_fine: i32, adc_h: i32) -> u32 {
    let w = Wrapping::<i32>;
    let [h1, h2, h3, h4, h5, h6] = [
        i32::from(c.h1),
        i32::from(c.h2),
        i32::from(c.h3),
        i32::from(c.h4),
        i32::from(c.h5),
        i32::from(c.h6),
    ]
    .map(w);
    let mut v = w(t_fine) - w(76_800);
    let a = ((w(adc_h) << 14) - (h4 << 20) - (h5 * v) + w(16_384)) >> 15;
    let b = (((((v * h6) >> 10) * (((v * h3) >> 11) + w(32_768))) >> 10) + w(2_097_152)) * h2 + w(8_192);
    v = a * (b >> 14);
    v -= ((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4;
    (v.0.clamp(0, 419_430_400) >> 12) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::sim::SimGpio;
    use crate::hal::Gpio;

    /// The BMP280 datasheet's worked example (section 3.12); humidity
    /// calibration typical of a real BME280.
    fn example() -> Calibration {
        Calibration {
            t1: 27504,
            t2: 26435,
            t3: -1000,
            p1: 36477,
            p2: -10685,
            p3: 3024,
            p4: 2855,
            p5: 140,
            p6: -7,
            p7: 15500,
            p8: -14600,
            p9: 6000,
            h1: 75,
            h2: 370,
            h3: 0,
            h4: 297,
            h5: 50,
            h6: 30,
        }
    }

    #[test]
    fn temperature_matches_the_datasheet_example() {
        assert_eq!(compensate_temperature(&example(), 519_888), (2508, 128_422));
    }

    #[test]
    fn pressure_matches_the_datasheet_example() {
        // The datasheet's table prints 25767236 (100653.27 Pa, the double
        // formula's value), but its own 64-bit code gives 25767233 for these
        // inputs, as everyone who runs it finds: 0.01 Pa apart.
        let q24_8 = compensate_pressure(&example(), 128_422, 415_148);
        assert_eq!(q24_8, 25_767_233);
        assert!((f64::from(q24_8) / 256.0 - 100_653.27).abs() < 0.05);
    }

    /// The datasheet's double-precision humidity formula (BME280 datasheet
    /// 8.1), as an independent reference for the integer one.
    fn humidity_double(c: &Calibration, t_fine: i32, adc_h: i32) -> f64 {
        let (h1, h2, h3) = (f64::from(c.h1), f64::from(c.h2), f64::from(c.h3));
        let (h4, h5, h6) = (f64::from(c.h4), f64::from(c.h5), f64::from(c.h6));
        let mut v = f64::from(t_fine) - 76800.0;
        v = (f64::from(adc_h) - (h4 * 64.0 + h5 / 16384.0 * v))
            * (h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v)));
        v *= 1.0 - h1 * v / 524288.0;
        v.clamp(0.0, 100.0)
    }

    #[test]
    fn humidity_agrees_with_the_double_precision_formula() {
        let other = Calibration {
            h1: 60,
            h2: 380,
            h3: 12,
            h4: 310,
            h5: -40,
            h6: 25,
            ..example()
        };
        // (adc_H, t_fine): 25.08 °C, 5 °C, 35 °C, from dry to wet.
        let cases = [
            (20_000, 128_422),
            (24_000, 128_422),
            (27_000, 128_422),
            (30_000, 128_422),
            (35_000, 128_422),
            (26_000, 25_600),
            (28_000, 179_200),
        ];
        for calibration in [example(), other] {
            for (adc_h, t_fine) in cases {
                let integer = f64::from(compensate_humidity(&calibration, t_fine, adc_h)) / 1024.0;
                let double = humidity_double(&calibration, t_fine, adc_h);
                assert!(
                    (integer - double).abs() < 0.1,
                    "adc_H {adc_h}, t_fine {t_fine}, {calibration:?}: {integer} vs {double}"
                );
            }
        }
    }

    #[test]
    fn humidity_stays_within_0_and_100_percent() {
        let c = example();
        assert_eq!(compensate_humidity(&c, 128_422, 0), 0);
        assert_eq!(compensate_humidity(&c, 128_422, 0xFFFF), 100 << 10);
    }

    #[test]
    fn calibration_registers_parse_little_endian_and_packed_nibbles() {
        let mut tp = [0u8; 26];
        tp[0..2].copy_from_slice(&27504u16.to_le_bytes());
        tp[4..6].copy_from_slice(&(-1000i16).to_le_bytes());
        tp[6..8].copy_from_slice(&36477u16.to_le_bytes());
        tp[22..24].copy_from_slice(&6000i16.to_le_bytes());
        tp[25] = 75;
        // H4 = 0xE4 << 4 | E5[3:0] = 0x123; H5 = 0xE6 << 4 | E5[7:4] = 0x456.
        let h = [0x72, 0x01, 0x05, 0x12, 0x63, 0x45, 0x1E];
        let c = Calibration::parse(&tp, &h);
        assert_eq!((c.t1, c.t3, c.p1, c.p9, c.h1), (27504, -1000, 36477, 6000, 75));
        assert_eq!((c.h2, c.h3, c.h4, c.h5, c.h6), (0x172, 5, 0x123, 0x456, 30));
    }

    #[test]
    fn packed_humidity_calibration_is_signed() {
        // E4 = 0xFE, E5 = 0xF8, E6 = 0xFD: H4 = 0xFE8 = -24, H5 = 0xFDF = -33.
        let c = Calibration::parse(&[0; 26], &[0, 0, 0, 0xFE, 0xF8, 0xFD, 0xE2]);
        assert_eq!((c.h4, c.h5, c.h6), (-24, -33, -30));
    }

    #[test]
    fn raw_values_are_20_and_16_bit_big_endian() {
        let raw = Raw::parse(&[0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x69, 0x78]);
        assert_eq!(
            raw,
            Raw {
                adc_p: 415_148,
                adc_t: 519_888,
                adc_h: 27_000
            }
        );
    }

    #[test]
    fn garbage_calibration_gives_errors_not_a_panic() {
        let c = Calibration::parse(&[0xFF; 26], &[0xFF; 7]);
        for adc in [0, 0x7FFFF, 0xFFFFF] {
            let raw = Raw {
                adc_p: adc,
                adc_t: adc,
                adc_h: adc & 0xFFFF,
            };
            for (quantity, value) in readings(&c, Chip::Bme280, raw) {
                if let Ok(v) = value {
                    assert!((-40.0..=1100.0).contains(&v), "{quantity:?} = {v}");
                }
            }
        }
    }

    fn value(readings: &[(Quantity, Result<f64, SensorError>)], quantity: Quantity) -> f64 {
        match readings.iter().find(|(q, _)| *q == quantity) {
            Some((_, Ok(v))) => *v,
            other => panic!("no {quantity:?} in {other:?}"),
        }
    }

    fn sim_reader(sim: &SimGpio, address: u16) -> Result<Bme280Reader, SensorError> {
        Bme280Reader::new(sim.i2c(1).unwrap(), 1, address)
    }

    #[test]
    fn sim_bme280_reads_the_datasheet_example() {
        let sim = SimGpio::new();
        let mut reader = sim_reader(&sim, 0x76).unwrap();
        assert_eq!(reader.describe(), "BME280 0x76 on I2C bus 1");
        let readings = reader.read();
        assert_eq!(
            readings.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
            reader.quantities()
        );
        assert_eq!(format!("{:.2}", value(&readings, Quantity::Temperature)), "25.08");
        assert_eq!(format!("{:.2}", value(&readings, Quantity::Pressure)), "1006.53");
        let humidity = value(&readings, Quantity::Humidity);
        assert!((40.0..50.0).contains(&humidity), "{humidity}");
    }

    #[test]
    fn sim_bme280_reading_follows_its_raw_values() {
        let sim = SimGpio::new();
        let mut reader = sim_reader(&sim, 0x77).unwrap();
        let before = reader.read();
        sim.control().set_bme280_raw(0x77, 530_000, 400_000, 30_000).unwrap();
        let after = reader.read();
        for quantity in [Quantity::Temperature, Quantity::Pressure, Quantity::Humidity] {
            assert_ne!(value(&before, quantity), value(&after, quantity), "{quantity:?}");
        }
        assert!(value(&after, Quantity::Temperature) > value(&before, Quantity::Temperature));
    }

    #[test]
    fn absent_address_fails_at_new_naming_the_address() {
        let sim = SimGpio::new();
        let message = match sim_reader(&sim, 0x78) {
            Ok(_) => panic!("a reader on an empty address"),
            Err(error) => error.to_string(),
        };
        assert!(message.contains("0x78"), "{message}");
    }

    /// A register file answering on one address, for chips the sim lacks.
    struct FakeChip {
        registers: [u8; 256],
        pointer: u8,
    }

    impl I2cBus for FakeChip {
        fn write_read(&mut self, _: u16, write: &[u8], read: &mut [u8]) -> Result<(), HalError> {
            self.write(0, write)?;
            for byte in read {
                *byte = self.registers[usize::from(self.pointer)];
                self.pointer = self.pointer.wrapping_add(1);
            }
            Ok(())
        }

        fn write(&mut self, _: u16, bytes: &[u8]) -> Result<(), HalError> {
            self.pointer = bytes.first().copied().unwrap_or(self.pointer);
            Ok(())
        }
    }

    fn fake(chip_id: u8, data: [u8; 8]) -> Box<FakeChip> {
        let mut registers = [0u8; 256];
        registers[0xD0] = chip_id;
        registers[0x88..0x8E].copy_from_slice(&[0x70, 0x6B, 0x43, 0x67, 0x18, 0xFC]);
        registers[0x8E..0x90].copy_from_slice(&36477u16.to_le_bytes());
        registers[0xF7..0xFF].copy_from_slice(&data);
        Box::new(FakeChip { registers, pointer: 0 })
    }

    const EXAMPLE_DATA: [u8; 8] = [0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x69, 0x78];

    #[test]
    fn bmp280_has_no_humidity() {
        let mut reader = Bme280Reader::new(fake(0x58, EXAMPLE_DATA), 1, 0x76).unwrap();
        assert_eq!(reader.quantities(), [Quantity::Temperature, Quantity::Pressure]);
        let readings = reader.read();
        assert_eq!(readings.len(), 2);
        assert_eq!(format!("{:.2}", value(&readings, Quantity::Temperature)), "25.08");
    }

    #[test]
    fn unknown_chip_id_is_named_in_the_error() {
        let message = match Bme280Reader::new(fake(0x61, EXAMPLE_DATA), 1, 0x77) {
            Ok(_) => panic!("accepted a BME680"),
            Err(error) => error.to_string(),
        };
        assert!(message.contains("0x61") && message.contains("0x77"), "{message}");
    }

    #[test]
    fn reset_values_are_an_error_not_a_reading() {
        let reset = [0x80, 0, 0, 0x80, 0, 0, 0x80, 0];
        let mut reader = Bme280Reader::new(fake(0x60, reset), 1, 0x76).unwrap();
        let readings = reader.read();
        assert_eq!(readings.len(), 3);
        for (quantity, value) in readings {
            assert!(value.is_err(), "{quantity:?} = {value:?}");
        }
    }
}
