//! The Raspberry Pi backend, over rppal (being written).
