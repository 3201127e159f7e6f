//! BME280 over I2C with the datasheet compensation (being written).
