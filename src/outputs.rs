//! Outputs: relays and LEDs. One task owns every output pin: it drives them
//! to their initial state at start, applies [`Command`]s from the sinks,
//! turns pulsed outputs off again (`auto_off_s`), remembers `restore`
//! outputs in the state file, and leaves each in its safe state on stop.
//!
//! The state published on the hub is always what the pin was actually set
//! to, so Home Assistant never shows a guess.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::command::{Action, Command, CommandReceiver};
use crate::config::{Initial, OnOff, OutputConfig};
use crate::deadline::sleep_until;
use crate::hal::{Gpio, HalError, OutputPin};
use crate::hub::{EntitySpec, Hub, Value};
use crate::state_file::{OutputStates, StateFile};

struct Output {
    config: OutputConfig,
    pin: Box<dyn OutputPin>,
    on: bool,
    /// When a pulsed output turns itself off.
    off_at: Option<Instant>,
}

impl Output {
    /// Drives the pin; inverted outputs are ON when low.
    fn drive(&mut self, on: bool) -> Result<(), HalError> {
        self.pin.set(on != self.config.inverted)?;
        self.on = on;
        Ok(())
    }
}

/// Every output, claimed and at its initial state.
pub struct Outputs {
    outputs: Vec<Output>,
    state_file: StateFile,
    remembered: OutputStates,
    /// Set after the first failed save, so a read-only disk logs once.
    save_failed: bool,
}

impl Outputs {
    /// Claims every output pin and drives it at once to its initial state
    /// (`restore` reads the state file; off when it has nothing).
    pub fn claim(gpio: &dyn Gpio, configs: Vec<OutputConfig>, state_file: StateFile) -> Result<Outputs, HalError> {
        let restores = configs.iter().any(|c| c.initial == Initial::Restore);
        let remembered = if restores {
            state_file.load()
        } else {
            OutputStates::default()
        };
        let mut outputs = Vec::with_capacity(configs.len());
        for config in configs {
            let on = match config.initial {
                Initial::Off => false,
                Initial::On => true,
                Initial::Restore => remembered.outputs.get(&config.name).copied().unwrap_or(false),
            };
            let pin = gpio.output(config.pin, on != config.inverted)?;
            outputs.push(Output {
                config,
                pin,
                on,
                off_at: None,
            });
        }
        Ok(Outputs {
            outputs,
            state_file,
            remembered,
            save_failed: false,
        })
    }

    pub fn entities(&self) -> Vec<EntitySpec> {
        self.outputs
            .iter()
            .map(|o| EntitySpec::output(&o.config.name, &o.config.label, o.config.kind.component()))
            .collect()
    }

    /// Publishes the initial states, then applies commands and pulse
    /// timeouts until cancelled; then sets every output to its safe state.
    pub async fn run(mut self, hub: Arc<Hub>, mut commands: CommandReceiver, cancel: CancellationToken) {
        let now = Instant::now();
        for output in &mut self.outputs {
            if output.on {
                output.off_at = output.config.auto_off.map(|after| now + after);
            }
            hub.set(&output.config.name, Value::Bool(output.on));
        }
        loop {
            let next_off = self.outputs.iter().filter_map(|o| o.off_at).min();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.apply(&command, &hub),
                    None => cancel.cancelled().await,
                },
                () = sleep_until(next_off), if next_off.is_some() => self.expire_pulses(&hub),
            }
        }
        self.go_safe(&hub);
    }

    fn apply(&mut self, command: &Command, hub: &Hub) {
        let Some(index) = self.outputs.iter().position(|o| o.config.name == command.output) else {
            warn!(output = %command.output, origin = ?command.origin, "ignoring command for an unknown output");
            return;
        };
        let output = &mut self.outputs[index];
        let on = match command.action {
            Action::On => true,
            Action::Off => false,
            Action::Toggle => !output.on,
        };
        match output.drive(on) {
            Ok(()) => {
                info!(output = %output.config.name, on, origin = ?command.origin, "output set");
                output.off_at = match (on, output.config.auto_off) {
                    (true, Some(after)) => Some(Instant::now() + after),
                    _ => None,
                };
            }
            Err(error) => warn!(output = %output.config.name, %error, "cannot set output; it keeps its state"),
        }
        // Echo the real state, changed or not, so every consumer agrees.
        hub.set(&output.config.name, Value::Bool(output.on));
        if output.config.initial == Initial::Restore {
            let (name, on) = (output.config.name.clone(), output.on);
            self.remember(&name, on);
        }
    }

    fn expire_pulses(&mut self, hub: &Hub) {
        let now = Instant::now();
        for output in &mut self.outputs {
            if output.off_at.is_some_and(|at| at <= now) {
                output.off_at = None;
                match output.drive(false) {
                    Ok(()) => info!(output = %output.config.name, "pulse ended; output off"),
                    Err(error) => warn!(output = %output.config.name, %error, "cannot turn pulsed output off"),
                }
                hub.set(&output.config.name, Value::Bool(output.on));
            }
        }
    }

    fn remember(&mut self, name: &str, on: bool) {
        if self.remembered.outputs.get(name) == Some(&on) {
            return;
        }
        self.remembered.outputs.insert(name.to_owned(), on);
        match self.state_file.save(&self.remembered) {
            Ok(()) => self.save_failed = false,
            Err(error) if !self.save_failed => {
                warn!(%error, "output state will not survive a restart");
                self.save_failed = true;
            }
            Err(_) => {}
        }
    }

    /// Every output to its safe state. The state file keeps the commanded
    /// states, so `restore` brings back what was on before the stop.
    fn go_safe(&mut self, hub: &Hub) {
        for output in &mut self.outputs {
            let on = output.config.safe_state == OnOff::On;
            if let Err(error) = output.drive(on) {
                warn!(output = %output.config.name, %error, "cannot set output to its safe state");
            }
            hub.set(&output.config.name, Value::Bool(output.on));
        }
    }
}
