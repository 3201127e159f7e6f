//! DS18B20 temperature sensors on 1-wire, through sysfs (being written).
