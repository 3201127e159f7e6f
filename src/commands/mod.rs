//! `[[commands]]`: programs that Home Assistant, the dashboard and
//! automations may run on this machine (start Kodi, run a backup), and the
//! process handling that command sensors share.
//!
//! Not to be confused with [`crate::command`], the messages that sinks send
//! to the outputs.
//!
//! - `controller.rs`: one command at run time: [`start`] gives the
//!   [`CommandHandle`] that sinks hold (requests in, [`CommandState`] out)
//!   and the [`CommandRunner`] task (one run at a time, status checks).
//! - `process.rs`: one run of one program: cleared environment, its own
//!   process group, capped output, timeout, the group killed, no zombie.
//! - `status.rs`: what a `status` program's result means.
//! - `polkit.rs`: the polkit rule that lets the agent start and stop the
//!   systemd units of `unit = …` commands, for `install`.
//!
//! What comes from outside (an MQTT payload, a request body) selects at most
//! an [`Action`] of a configured command; no string from outside reaches a
//! command line, an environment or a working directory.

pub mod controller;
pub mod polkit;
pub mod process;
pub mod status;

pub use controller::{start, Accepted, Action, CommandHandle, CommandRunner, CommandState, LastRun, Refused, Running};
pub use status::Status;
