//! End-to-end tests: the real `majortom` binary against a real mosquitto on
//! a free loopback port, and against systemd's own tools. One test binary; the modules, in reading order:
//!
//! - `cli`: `init`, `check`, bad configs (exit codes and messages).
//! - `commands`: `[[commands]]` with real processes: a switch over MQTT,
//!   its state from a status file, a button, a runaway killed at its
//!   timeout, shell metacharacters in payloads, the HTTP API.
//! - `discovery`: Home Assistant discovery configs, states, stale configs,
//!   the Home Assistant birth message.
//! - `lifecycle`: availability, SIGTERM and SIGKILL.
//! - `reconnect`: broker restart, no broker (backoff, not a spin).
//! - `sysfs`: Raspberry Pi fixture trees through the whole agent.
//! - `gpio`: inputs, outputs and sensors on the simulated backend: edges,
//!   commands, pulses, safe states, restore, discovery of every kind.
//! - `automations`: the README's examples with the broker away, in paused
//!   time; automation modes (300 flips no longer leave 300 runs);
//!   automation switches and device buttons over MQTT; Restart keeps the
//!   outputs as they are.
//! - `faults`: 20 broker restarts, a silent partition, commands queued
//!   while reconnecting, failing GPIO pins, kill -9 during state writes.
//! - `mqtt_defences`: two agents with one client id (the clash named, a
//!   growing backoff), 100 KB messages retained or queued on subscribed
//!   topics, commands gone stale while the agent was stopped, a broker
//!   that refuses MQTT 5 (amqtt), a unique node id on a factory host name;
//!   under MQTT 5 and 3.1.1.
//! - `tls`: TLS with the right and a wrong CA, client certificates, a
//!   server name override, wrong and right passwords.
//! - `notify`: systemd readiness, watchdog pings and stopping (sd_notify).
//! - `fleet`: three agents on one broker see each other; a SIGKILLed one
//!   goes offline through its Last Will, an automation on another runs.
//! - `wakeups`: the runtime thread sleeps once a round with the system
//!   stats and two sensors on their reading threads.
//! - `web`: /metrics through promtool, HTTP without MQTT, stopping with open
//!   event streams.
//! - `hostile`: issue 15's reproductions from the LAN and the broker: a
//!   dashboard lock-out, a forged and flooded log, sim inputs without the
//!   token, DNS rebinding, 5,000 TOGGLEs on a relay with a switch interval
//!   (install's symlinks are in `install`, 300 flips in `automations`).
//! - `arm`: the static ARM builds under qemu-user (ignored by plain `cargo
//!   test`; `scripts/test.sh` builds them and runs these too).
//! - `dist`: the release archives from `cross/dist.sh` (ignored likewise):
//!   checksums, entries, contents, and the x86_64 one unpacked and installed.
//! - `emulated_pi`: the aarch64 build on QEMU's Raspberry Pi 3 with
//!   Debian's arm64 kernel: the GPIO character device for real (outputs
//!   seen by the kernel, busy lines, `doctor`). Ignored like `arm`.
//! - `install`: `install`, `uninstall`, `rollback` into a temporary root,
//!   and the installed unit through `systemd-analyze verify` and `security`.
//! - `update`: `majortom update` into a temporary root with a stand-in for
//!   systemctl: a good binary, one rolled back, refusals (checksum,
//!   architecture, plain HTTP), a release archive over HTTPS with
//!   `SHA256SUMS`.
//! - `browser`: the dashboard and the API page in a real headless Chromium
//!   (chromedriver, `support/webdriver.rs`): cards, live updates, controls
//!   with the token, read-only, an agent restart, screenshots.

mod support;

mod arm;
mod automations;
mod browser;
mod cli;
mod commands;
mod discovery;
mod dist;
mod emulated_pi;
mod faults;
mod fleet;
mod gpio;
mod hostile;
mod install;
mod lifecycle;
mod mqtt_defences;
mod notify;
mod reconnect;
mod sysfs;
mod tls;
mod update;
mod wakeups;
mod web;
