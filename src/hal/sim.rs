//! The simulated backend (being written).
