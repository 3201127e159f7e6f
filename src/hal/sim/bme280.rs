//! The simulated BME280: a register file, not a physical model. It
//! answers the driver's reads with the datasheet's calibration and raw
//! readings that the control handle may move.

/// Raw ADC values of the BMP280 datasheet's worked example (section 3.12):
/// with [`bme280_registers`]' calibration they compensate to 25.08 °C and
/// 1006.53 hPa.
const DEFAULT_ADC_T: u32 = 519_888;
const DEFAULT_ADC_P: u32 = 415_148;
/// With the humidity calibration below and the example's temperature:
/// 44.96 %RH.
const DEFAULT_ADC_H: u16 = 27_000;

/// A BME280 as its registers: chip id, calibration, control registers and
/// the measurement registers, with the register pointer that auto-increments
/// on reads as the chip's does.
pub(super) struct SimBme280 {
    registers: [u8; 256],
    pointer: u8,
    /// The chip reports reset values (0x80000) until its first measurement,
    /// which needs a non-sleep mode written to ctrl_meas.
    measured: bool,
}

/// Registers the simulated chip lets the driver write.
const WRITABLE: [u8; 3] = [0xF2, 0xF4, 0xF5];
const CTRL_MEAS: u8 = 0xF4;
const DATA: usize = 0xF7;

impl SimBme280 {
    pub(super) fn new() -> SimBme280 {
        let mut device = SimBme280 {
            registers: bme280_registers(),
            pointer: 0,
            measured: false,
        };
        device.set_raw(DEFAULT_ADC_T, DEFAULT_ADC_P, DEFAULT_ADC_H);
        device
    }

    pub(super) fn set_raw(&mut self, adc_t: u32, adc_p: u32, adc_h: u16) {
        // Pressure and temperature are 20 bits: msb, lsb, xlsb[7:4].
        let p = adc_p << 4;
        let t = adc_t << 4;
        let [h_msb, h_lsb] = adc_h.to_be_bytes();
        self.registers[DATA..DATA + 8].copy_from_slice(&[
            (p >> 16) as u8,
            (p >> 8) as u8,
            p as u8,
            (t >> 16) as u8,
            (t >> 8) as u8,
            t as u8,
            h_msb,
            h_lsb,
        ]);
    }

    /// An I2C write: (register, value) pairs, as the datasheet's write
    /// protocol has them; a lone register address just moves the pointer
    /// for the read that follows. Writes to read-only registers are ignored,
    /// as the chip ignores them.
    pub(super) fn write(&mut self, bytes: &[u8]) {
        if let Some(&first) = bytes.first() {
            self.pointer = first;
        }
        for pair in bytes.chunks_exact(2) {
            let (register, value) = (pair[0], pair[1]);
            if WRITABLE.contains(&register) {
                self.registers[usize::from(register)] = value;
                if register == CTRL_MEAS && value & 0b11 != 0 {
                    self.measured = true;
                }
            }
        }
    }

    pub(super) fn read(&mut self, buffer: &mut [u8]) {
        for byte in buffer {
            let register = self.pointer;
            *byte = match register {
                // Reset values of press/temp msb, lsb, xlsb before the first
                // measurement: 0x80000, which the datasheet calls "skipped".
                0xF7 | 0xFA if !self.measured => 0x80,
                0xF8 | 0xF9 | 0xFB | 0xFC if !self.measured => 0x00,
                0xFD if !self.measured => 0x80,
                0xFE if !self.measured => 0x00,
                _ => self.registers[usize::from(register)],
            };
            self.pointer = register.wrapping_add(1);
        }
    }
}

/// Chip id and calibration: the BMP280 datasheet's example for temperature
/// and pressure (section 3.12), typical values for humidity.
fn bme280_registers() -> [u8; 256] {
    let mut registers = [0u8; 256];
    registers[0xD0] = 0x60;
    let t_p: [[u8; 2]; 12] = [
        27504u16.to_le_bytes(),
        26435i16.to_le_bytes(),
        (-1000i16).to_le_bytes(),
        36477u16.to_le_bytes(),
        (-10685i16).to_le_bytes(),
        3024i16.to_le_bytes(),
        2855i16.to_le_bytes(),
        140i16.to_le_bytes(),
        (-7i16).to_le_bytes(),
        15500i16.to_le_bytes(),
        (-14600i16).to_le_bytes(),
        6000i16.to_le_bytes(),
    ];
    registers[0x88..0xA0].copy_from_slice(t_p.as_flattened());
    // dig_H1 = 75 (0xA1); dig_H2 = 370, dig_H3 = 0, dig_H4 = 297,
    // dig_H5 = 50, dig_H6 = 30 (0xE1..0xE7), H4 and H5 packed as 12-bit
    // values into 0xE4..0xE6.
    registers[0xA1] = 75;
    let [h2_lsb, h2_msb] = 370i16.to_le_bytes();
    let (h4, h5) = (297u16, 50u16);
    registers[0xE1..=0xE7].copy_from_slice(&[
        h2_lsb,
        h2_msb,
        0,
        (h4 >> 4) as u8,
        ((h5 & 0x0F) << 4) as u8 | (h4 & 0x0F) as u8,
        (h5 >> 4) as u8,
        30,
    ]);
    registers
}
