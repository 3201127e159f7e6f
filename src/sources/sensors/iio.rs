//! IIO sensors through sysfs (being written).
