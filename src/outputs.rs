//! Outputs: relays, LEDs, and PWM lights and fans. One task owns every
//! output: it drives them to their initial state at start, applies
//! [`Command`]s from the sinks, turns pulsed outputs off again
//! (`auto_off_s`), remembers `restore` outputs in the state file, and leaves
//! each in its safe state on stop.
//!
//! The state published on the hub is always what the pin was actually set
//! to, so Home Assistant never shows a guess: ON/OFF for a pin, the level in
//! percent (0 = off) for a PWM output.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::command::{Action, Command, CommandReceiver, OutputId, Target};
use crate::config::{Drive, Initial, OnOff, OutputConfig};
use crate::deadline::sleep_until;
use crate::hal::{Gpio, HalError, OutputPin, PwmOutput};
use crate::hub::{EntitySpec, Hub, Value};
use crate::state_file::{OutputStates, StateFile};
use crate::vocab::Component;

enum Driver {
    Pin(Box<dyn OutputPin>),
    Pwm(Box<dyn PwmOutput>),
}

struct Output {
    config: OutputConfig,
    driver: Driver,
    on: bool,
    /// The level, in percent, a PWM output has when on (kept while off, so
    /// ON brings it back).
    level: u8,
    /// When a pulsed output turns itself off.
    off_at: Option<Instant>,
}

impl Output {
    /// Drives the pin or channel; inverted outputs are ON when low.
    fn drive(&mut self, on: bool, level: u8) -> Result<(), HalError> {
        let inverted = self.config.inverted;
        match &mut self.driver {
            Driver::Pin(pin) => pin.set(on != inverted)?,
            Driver::Pwm(pwm) => {
                let duty = if on { f64::from(level) / 100.0 } else { 0.0 };
                pwm.set_duty(if inverted { 1.0 - duty } else { duty })?;
            }
        }
        self.on = on;
        self.level = level;
        Ok(())
    }

    /// What the hub shows: ON/OFF, or the level for a PWM output.
    fn value(&self) -> Value {
        match self.driver {
            Driver::Pin(_) => Value::Bool(self.on),
            Driver::Pwm(_) => Value::Number(if self.on { f64::from(self.level) } else { 0.0 }),
        }
    }
}

/// Every output, claimed and at its initial state.
pub struct Outputs {
    outputs: Vec<Output>,
    state_file: StateFile,
    remembered: OutputStates,
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
            let level = config.level;
            let driver = match &config.drive {
                Drive::Gpio(pin) => Driver::Pin(gpio.output(pin, on != config.inverted)?),
                Drive::Pwm(channel) => Driver::Pwm(gpio.pwm(*channel)?),
            };
            let mut output = Output {
                config,
                driver,
                on,
                level,
                off_at: None,
            };
            if let Driver::Pwm(_) = output.driver {
                output.drive(on, level)?;
            }
            outputs.push(output);
        }
        Ok(Outputs {
            outputs,
            state_file,
            remembered,
        })
    }

    pub fn entities(&self) -> Vec<EntitySpec> {
        self.outputs
            .iter()
            .map(|o| {
                let spec = EntitySpec::output(&o.config.name, &o.config.label, o.config.kind.component());
                match o.driver {
                    Driver::Pin(_) => spec,
                    Driver::Pwm(_) => spec.dimmable(),
                }
            })
            .collect()
    }

    /// The command target of each output, by entity id.
    pub fn targets(&self) -> Vec<(String, Component, bool, Target)> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(index, o)| {
                let target = Target::Output(OutputId(index));
                let dimmable = matches!(o.driver, Driver::Pwm(_));
                (o.config.name.clone(), o.config.kind.component(), dimmable, target)
            })
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
            hub.set(&output.config.name, output.value());
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
        let output = match command.target {
            Target::Output(OutputId(index)) => self.outputs.get_mut(index),
            _ => None,
        };
        let Some(output) = output else {
            warn!(target = ?command.target, origin = ?command.origin, "ignoring command for an unknown output");
            return;
        };
        let (on, level) = match command.action {
            Action::On => (true, output.level),
            Action::Off => (false, output.level),
            Action::Toggle => (!output.on, output.level),
            Action::Level(0) => (false, output.level),
            Action::Level(level) if matches!(output.driver, Driver::Pwm(_)) => (true, level),
            Action::Level(_) | Action::Press => {
                warn!(output = %output.config.name, action = ?command.action, "ignoring a command this output does not take");
                return;
            }
        };
        match output.drive(on, level) {
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
        hub.set(&output.config.name, output.value());
        if output.config.initial == Initial::Restore {
            let (name, on) = (output.config.name.clone(), output.on);
            self.remember(&name, on);
        }
    }

    fn expire_pulses(&mut self, hub: &Hub) {
        let now = Instant::now();
        let mut ended = Vec::new();
        for output in &mut self.outputs {
            if output.off_at.is_some_and(|at| at <= now) {
                output.off_at = None;
                match output.drive(false, output.level) {
                    Ok(()) => info!(output = %output.config.name, "pulse ended; output off"),
                    Err(error) => warn!(output = %output.config.name, %error, "cannot turn pulsed output off"),
                }
                hub.set(&output.config.name, output.value());
                if output.config.initial == Initial::Restore {
                    ended.push((output.config.name.clone(), output.on));
                }
            }
        }
        // Or a restart would restore ON and start the pulse (a door strike,
        // a pump) again.
        for (name, on) in ended {
            self.remember(&name, on);
        }
    }

    fn remember(&mut self, name: &str, on: bool) {
        if self.remembered.outputs.get(name) == Some(&on) {
            return;
        }
        self.remembered.outputs.insert(name.to_owned(), on);
        // The writer task writes it (and logs a failure) off this thread.
        self.state_file.save(&self.remembered);
    }

    /// Every output to its safe state. The state file keeps the commanded
    /// states, so `restore` brings back what was on before the stop.
    fn go_safe(&mut self, hub: &Hub) {
        for output in &mut self.outputs {
            let on = output.config.safe_state == OnOff::On;
            if let Err(error) = output.drive(on, output.config.level) {
                warn!(output = %output.config.name, %error, "cannot set output to its safe state");
            }
            hub.set(&output.config.name, output.value());
        }
    }
}

#[cfg(test)]
mod tests {
    //! The outputs task on the simulated backend, in paused time.

    use std::time::Duration;

    use super::*;
    use crate::command::Origin;
    use crate::config::OutputKind;
    use crate::hal::sim::{SimControl, SimGpio};

    fn output(name: &str, pin: u8) -> OutputConfig {
        OutputConfig {
            name: name.into(),
            label: name.into(),
            drive: Drive::Gpio(crate::hal::Pin::Bcm(pin)),
            level: 100,
            inverted: false,
            initial: Initial::Off,
            safe_state: OnOff::Off,
            auto_off: None,
            kind: OutputKind::Switch,
        }
    }

    struct Running {
        sim: SimControl,
        targets: Vec<(String, Component, bool, Target)>,
        hub: Arc<Hub>,
        commands: crate::command::CommandSender,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        writer: tokio::task::JoinHandle<()>,
    }

    fn start(configs: Vec<OutputConfig>, state_file: &std::path::Path) -> Running {
        let gpio = SimGpio::new();
        let sim = gpio.control();
        let hub = Hub::new(4);
        let (state_file, writer) = StateFile::new(state_file.to_owned());
        let writer = tokio::spawn(writer.run());
        let outputs = Outputs::claim(&gpio, configs, state_file).expect("claim");
        for spec in outputs.entities() {
            hub.register(spec);
        }
        let targets = outputs.targets();
        let (commands, receiver) = crate::command::channel();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(outputs.run(hub.clone(), receiver, cancel.clone()));
        Running {
            sim,
            targets,
            hub,
            commands,
            cancel,
            task,
            writer,
        }
    }

    impl Running {
        /// Sends a command and lets the outputs task handle it: in paused
        /// time, the 1 ms passes only once every task waits. (Every sleep
        /// in these tests is paused time: pulses and their ends.)
        async fn send(&self, output: &str, action: Action) {
            let target = self.targets.iter().find(|(id, ..)| id == output).map_or(
                // Not an output of this task: an index it never handed out.
                Target::Output(OutputId(usize::MAX)),
                |(.., target)| *target,
            );
            let command = Command {
                target,
                action,
                origin: Origin::Mqtt,
            };
            self.commands.send(command).await.expect("outputs task runs");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        fn state(&self, output: &str) -> Option<Value> {
            self.hub.get(output).and_then(|e| e.value)
        }

        async fn stop(self) -> SimControl {
            self.cancel.cancel();
            self.task.await.expect("task ends");
            // It ends with the task's state file, after the last save.
            self.writer.await.expect("writer ends");
            self.sim
        }
    }

    #[tokio::test(start_paused = true)]
    async fn commands_should_drive_the_pin_and_echo_the_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lamp = output("lamp", 6);
        lamp.inverted = true;
        let running = start(vec![output("relay", 5), lamp], &dir.path().join("s.json"));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(running.state("relay"), Some(Value::Bool(false)));
        assert_eq!(running.sim.output(6), Some(true), "inverted and off: high");
        running.send("relay", Action::On).await;
        assert_eq!(
            (running.sim.output(5), running.state("relay")),
            (Some(true), Some(Value::Bool(true)))
        );
        running.send("relay", Action::Toggle).await;
        assert_eq!(running.sim.output(5), Some(false));
        running.send("lamp", Action::On).await;
        assert_eq!(running.sim.output(6), Some(false), "inverted and on: low");
        let writes = running.sim.output_writes(5);
        running.send("nothing", Action::On).await;
        assert_eq!(
            running.sim.output_writes(5),
            writes,
            "an unknown output changes nothing"
        );
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_pulse_should_end_after_auto_off_and_a_new_on_should_restart_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut pump = output("pump", 5);
        pump.auto_off = Some(Duration::from_secs(10));
        let running = start(vec![pump], &dir.path().join("s.json"));
        running.send("pump", Action::On).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        running.send("pump", Action::On).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(running.sim.output(5), Some(true), "the second ON restarted the 10 s");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(running.sim.output(5), Some(false));
        assert_eq!(running.state("pump"), Some(Value::Bool(false)));
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_pulse_that_ended_should_stay_off_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_file = dir.path().join("s.json");
        let mut strike = output("strike", 5);
        strike.initial = Initial::Restore;
        strike.auto_off = Some(Duration::from_secs(3));
        let running = start(vec![strike.clone()], &state_file);
        running.send("strike", Action::On).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(running.sim.output(5), Some(false), "the pulse ended");
        running.stop().await;

        let running = start(vec![strike], &state_file);
        assert_eq!(running.sim.output(5), Some(false), "not pulsed again at start");
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_should_leave_safe_states_and_restore_should_bring_back_the_commanded_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_file = dir.path().join("s.json");
        let mut relay = output("relay", 5);
        relay.initial = Initial::Restore;
        let mut fan = output("fan", 6);
        fan.initial = Initial::On;
        fan.safe_state = OnOff::On;
        let running = start(vec![relay.clone(), fan.clone()], &state_file);
        assert_eq!(running.sim.output(5), Some(false), "nothing remembered yet: off");
        assert_eq!(running.sim.output(6), Some(true), "initial on, at once");
        running.send("relay", Action::On).await;
        let sim = running.stop().await;
        assert_eq!(sim.output(5), Some(false), "safe state off");
        assert_eq!(sim.output(6), Some(true), "safe state on");

        let running = start(vec![relay, fan], &state_file);
        assert_eq!(running.sim.output(5), Some(true), "restored at claim time");
        running.stop().await;
    }
}
