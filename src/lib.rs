//! majortom: a small home-automation agent for the Raspberry Pi.
//!
//! Data flows one way, from sources through the hub to sinks:
//!
//! ```text
//! sources (system stats, ...) ──► hub (latest value, change broadcast, history) ──► sinks (MQTT, web)
//! ```
//!
//! # Layout
//! - [`cli`]: command line, `check` and `init`; [`doctor`]: `majortom doctor`.
//! - [`install`]: `install`, `uninstall`, `rollback` as a systemd service;
//!   [`atomic_file`] replaces files whole (install, state files);
//!   [`update`]: a new binary fetched, checked, installed, watched and
//!   rolled back when it does not become healthy.
//! - [`config`]: TOML → validated [`config::Config`], errors with file, line and key.
//! - [`app`]: wires hub, sources and sinks; owns the cancellation token.
//! - [`hub`]: entities, their latest values and a short history; the only
//!   meeting point of sources and sinks.
//! - [`sources`]: one module per kind of thing that produces values.
//! - [`hal`]: the hardware boundary (GPIO character device, rppal and a
//!   simulated backend; PWM sysfs; which backend and why).
//! - [`mqtt`]: the MQTT sink with Home Assistant discovery.
//! - [`web`]: the HTTP API and embedded page; [`sim_panel`]: the simulated
//!   backend's routes, merged into it only with that backend.
//! - [`command`]: what sinks send back to the outputs.
//! - [`commands`]: `[[commands]]`, programs run on request, and running one
//!   process (also for command sensors).
//! - [`automations`]: triggers, conditions and actions run on the device;
//!   [`filters`] shape numeric values before the hub.
//! - [`outputs`]: applies commands to relays and LEDs; safe state on stop;
//!   [`state_file`] remembers `restore` outputs.
//! - [`fleet`]: every agent on the broker, from their `status` and `info`.
//! - [`node`], [`status`]: who the agent is and how it is doing.
//! - [`logging`]: the small stderr logger behind `tracing`.
//! - [`vocab`]: the shared words (entity ids, components, quantities,
//!   actions, buttons, the pin range); imports nothing of ours.
//! - [`pattern`], [`json_path`]: leaves that pull a number out of text (a
//!   regex subset) and out of JSON, for file and command sensors.

pub mod app;
pub mod atomic_file;
pub mod automations;
pub mod cli;
pub mod command;
pub mod commands;
pub mod config;
pub mod deadline;
pub mod doctor;
pub mod filters;
#[cfg(test)]
mod fixtures;
pub mod fleet;
pub mod hal;
pub mod hub;
pub mod install;
pub mod json_path;
pub mod logging;
pub mod mqtt;
pub mod node;
pub mod outputs;
pub mod pattern;
pub mod resident;
pub mod sim_panel;
pub mod sources;
pub mod state_file;
pub mod status;
pub mod time;
pub mod update;
pub mod vocab;
pub mod web;
