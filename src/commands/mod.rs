//! `[[commands]]`: programs that Home Assistant, the dashboard and
//! automations may run on this machine (start Kodi, run a backup), and the
//! process handling that command sensors share.
//!
//! Not to be confused with [`crate::command`], the messages that sinks send
//! to the outputs.
//!
//! - `process.rs`: one run of one program: cleared environment, its own
//!   process group, capped output, timeout, the group killed, no zombie.
//!
//! What comes from outside (an MQTT payload, a request body) selects at most
//! an [`Action`] of a configured command; no string from outside reaches a
//! command line, an environment or a working directory.

pub mod process;
