//! The MQTT sink: publishes availability, Home Assistant discovery and every
//! entity's state, and keeps doing so across broker restarts.
//!
//! Two tasks: [`connection`] owns the event loop (connect, reconnect as
//! [`link`] decides, incoming packets) and reports to [`sink`], the driver,
//! which feeds the pure state machine in [`state`] and carries out its
//! actions. [`client`] is rumqttc's two clients, MQTT 5 and 3.1.1, behind
//! one face; [`contact`] keeps the time of the last contact across
//! restarts. The rest is pure and does no I/O: the decisions ([`state`],
//! [`link`]), the outbox ([`outbox`]), `/set` parsing ([`command`]), topics
//! ([`topics`]), discovery payloads ([`discovery`]) and the backoff
//! ([`backoff`]); [`tls`] builds the rustls configuration.

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
