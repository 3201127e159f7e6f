//! The MQTT sink: publishes availability, Home Assistant discovery and every
//! entity's state, and keeps doing so across broker restarts.
//!
//! Two tasks: [`connection`] owns rumqttc's event loop (connect, backoff,
//! incoming packets) and reports to [`sink`], which follows the hub and
//! decides what to publish. Topic and discovery code ([`topics`],
//! [`discovery`]) is pure and does no I/O; [`tls`] builds the rustls
//! configuration.

pub mod backoff;
pub mod connection;
pub mod discovery;
pub mod sink;
pub mod tls;
pub mod topics;

pub use sink::{prepare, run, Prepared};
