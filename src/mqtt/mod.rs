//! The MQTT sink: publishes availability, Home Assistant discovery and every
//! entity's state, and keeps doing so across broker restarts.
//!
//! Two tasks: [`connection`] owns rumqttc's event loop (connect, backoff,
//! incoming packets) and reports to [`sink`], the driver, which feeds the
//! pure state machine in [`state`] and carries out its actions. Everything
//! but those two is pure and does no I/O: the decisions ([`state`]), the
//! outbox ([`outbox`]), `/set` parsing ([`command`]), topics ([`topics`])
//! and discovery payloads ([`discovery`]); [`tls`] builds the rustls
//! configuration.

pub mod backoff;
pub mod client;
pub mod command;
pub mod connection;
pub mod contact;
pub mod discovery;
pub mod link;
pub mod outbox;
pub mod sink;
pub mod state;
pub mod tls;
pub mod topics;

pub use contact::ContactFile;
pub use sink::{prepare, run, Prepared};
