//! majortom: a small home-automation agent for the Raspberry Pi.
//!
//! Data flows one way, from sources through the hub to sinks:
//!
//! ```text
//! sources (system stats, ...) ──► hub (latest value, change broadcast, history) ──► sinks (MQTT, web)
//! ```
//!
//! # Layout
//! - [`hub`]: entities, their latest values and a short history; the only
//!   meeting point of sources and sinks.
//! - [`sources`]: one module per kind of thing that produces values.

pub mod hub;
pub mod sources;
