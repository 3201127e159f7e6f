//! Outputs: relays, LEDs, and PWM lights and fans. One task owns every
//! output: it drives them to their initial state at start, applies
//! [`Command`]s from the sinks, turns pulsed outputs off again
//! (`auto_off_s`), remembers `restore` outputs in the state file, and leaves
//! each in its safe state on stop. An output with `min_switch_interval_ms`
//! changes at most once in that time: commands that come sooner are merged
//! into the state applied when it is over, so a flood of TOGGLEs cannot wear
//! out a relay or a motor.
//!
//! The state published on the hub is always what the pin was actually set
//! to, so Home Assistant never shows a guess: ON/OFF for a pin, the level in
//! percent (0 = off) for a PWM output.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

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
    /// When the pin last changed (for `min_switch_interval`)...
    switched_at: Option<Instant>,
    /// ...and the state (on, level) commanded since, too soon after it.
    pending: Option<(bool, u8)>,
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

    /// The state commanded last: the pending one, else the pin's.
    fn wanted(&self) -> (bool, u8) {
        self.pending.unwrap_or((self.on, self.level))
    }

    /// When a pending state may be applied.
    fn pending_at(&self) -> Option<Instant> {
        let interval = self.config.min_switch_interval;
        self.pending.and(self.switched_at).map(|at| at + interval)
    }

    /// Sets the output to `on` at `level` now, or, within
    /// `min_switch_interval` of its last change, when that is over
    /// (`Ok(false)`: merged into the pending state).
    fn request(&mut self, on: bool, level: u8, now: Instant) -> Result<bool, HalError> {
        let changes = (on, level) != (self.on, self.level);
        if !changes && self.pending.take().is_some() {
            // Commands that undo the pending one: the pin is already right.
            return Ok(true);
        }
        let interval = self.config.min_switch_interval;
        if changes && self.switched_at.is_some_and(|at| now < at + interval) {
            self.pending = Some((on, level));
            return Ok(false);
        }
        self.pending = None;
        self.drive(on, level)?;
        if changes && !interval.is_zero() {
            self.switched_at = Some(now);
        }
        Ok(true)
    }

    /// What the hub shows: ON/OFF, or the level for a PWM output.
    fn value(&self) -> Value {
        match self.driver {
            Driver::Pin(_) => Value::Bool(self.on),
            Driver::Pwm(_) => Value::Number(if self.on { f64::from(self.level) } else { 0.0 }),
        }
    }
}

/// The environment variable that hands the outputs' states to the process
/// the Restart button starts (`relay=1,fan=40`), so that it keeps them.
pub const KEPT_ENV: &str = "MAJORTOM_KEPT_OUTPUTS";

/// The hand-over for [`KEPT_ENV`]: each output's state on the hub, 1 or 0
/// for a pin, the level for a PWM output (0 = off).
pub fn kept_states(hub: &Hub, names: &[String]) -> String {
    let mut kept = Vec::new();
    for name in names {
        let level = match hub.get(name).and_then(|e| e.value) {
            Some(Value::Bool(on)) => u8::from(on),
            Some(Value::Number(level)) => level.clamp(0.0, 100.0) as u8,
            None => continue,
        };
        kept.push(format!("{name}={level}"));
    }
    kept.join(",")
}

/// [`kept_states`] read back; what does not parse is left out (it comes
/// from the environment).
pub fn parse_kept(text: &str) -> HashMap<String, u8> {
    text.split(',')
        .filter_map(|pair| {
            let (name, level) = pair.split_once('=')?;
            Some((name.to_owned(), level.parse().ok()?))
        })
        .collect()
}

/// Every output, claimed and at its initial state.
pub struct Outputs {
    outputs: Vec<Output>,
    state_file: StateFile,
    remembered: OutputStates,
    /// Set by the Restart button: the stop leaves every output as it is.
    keep: Arc<AtomicBool>,
}

impl Outputs {
    /// Claims every output pin and drives it at once to its initial state
    /// (`restore` reads the state file; off when it has nothing), or to
    /// the state `kept` hands over from before a restart.
    pub fn claim(
        gpio: &dyn Gpio,
        configs: Vec<OutputConfig>,
        state_file: StateFile,
        kept: &HashMap<String, u8>,
    ) -> Result<Outputs, HalError> {
        let restores = configs.iter().any(|c| c.initial == Initial::Restore);
        let remembered = if restores {
            state_file.load()
        } else {
            OutputStates::default()
        };
        let mut outputs = Vec::with_capacity(configs.len());
        for config in configs {
            let pwm = matches!(config.drive, Drive::Pwm(_));
            let (on, level) = match (kept.get(&config.name), config.initial) {
                (Some(0), _) => (false, config.level),
                (Some(level), _) if pwm => (true, (*level).min(100)),
                (Some(_), _) => (true, config.level),
                (None, Initial::Off) => (false, config.level),
                (None, Initial::On) => (true, config.level),
                (None, Initial::Restore) => (
                    remembered.outputs.get(&config.name).copied().unwrap_or(false),
                    config.level,
                ),
            };
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
                switched_at: None,
                pending: None,
            };
            if let Driver::Pwm(_) = output.driver {
                output.drive(on, level)?;
            }
            outputs.push(output);
        }
        if !kept.is_empty() {
            info!("outputs kept as they were before the restart");
        }
        Ok(Outputs {
            outputs,
            state_file,
            remembered,
            keep: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Set it before the stop to leave every output as it is (the Restart
    /// button) instead of in its safe state.
    pub fn keeper(&self) -> Arc<AtomicBool> {
        self.keep.clone()
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
            let next = self
                .outputs
                .iter()
                .flat_map(|o| [o.off_at, o.pending_at()])
                .flatten()
                .min();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.apply(&command, &hub),
                    None => cancel.cancelled().await,
                },
                () = sleep_until(next), if next.is_some() => {
                    self.expire_pulses(&hub);
                    self.apply_pending(&hub);
                }
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
        // Relative to the state commanded last, so that merged commands
        // add up as they were sent.
        let (wanted_on, wanted_level) = output.wanted();
        let (on, level) = match command.action {
            Action::On => (true, wanted_level),
            Action::Off => (false, wanted_level),
            Action::Toggle => (!wanted_on, wanted_level),
            Action::Level(0) => (false, wanted_level),
            Action::Level(level) if matches!(output.driver, Driver::Pwm(_)) => (true, level),
            Action::Level(_) | Action::Press => {
                warn!(output = %output.config.name, action = ?command.action, "ignoring a command this output does not take");
                return;
            }
        };
        let now = Instant::now();
        match output.request(on, level, now) {
            Ok(true) => {
                info!(output = %output.config.name, on, origin = ?command.origin, "output set");
                output.off_at = match (on, output.config.auto_off) {
                    (true, Some(after)) => Some(now + after),
                    _ => None,
                };
            }
            Ok(false) => {
                debug!(output = %output.config.name, on, origin = ?command.origin, "too soon after the last switch; merged into the next");
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
                match output.request(false, output.wanted().1, now) {
                    Ok(true) => info!(output = %output.config.name, "pulse ended; output off"),
                    Ok(false) => {
                        debug!(output = %output.config.name, "pulse ended; off once the switch interval is over")
                    }
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

    /// Applies the states merged while an output's switch interval ran.
    fn apply_pending(&mut self, hub: &Hub) {
        let now = Instant::now();
        let mut applied = Vec::new();
        for output in &mut self.outputs {
            let Some((on, level)) = output
                .pending
                .filter(|_| output.pending_at().is_some_and(|at| at <= now))
            else {
                continue;
            };
            match output.request(on, level, now) {
                Ok(_) => {
                    info!(output = %output.config.name, on, "output set (merged commands)");
                    output.off_at = match (on, output.config.auto_off) {
                        (true, Some(after)) => Some(now + after),
                        _ => None,
                    };
                }
                Err(error) => warn!(output = %output.config.name, %error, "cannot set output; it keeps its state"),
            }
            hub.set(&output.config.name, output.value());
            if output.config.initial == Initial::Restore {
                applied.push((output.config.name.clone(), output.on));
            }
        }
        for (name, on) in applied {
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

    /// Every output to its safe state, at once (a pending state is
    /// dropped). The state file keeps the commanded states, so `restore`
    /// brings back what was on before the stop.
    fn go_safe(&mut self, hub: &Hub) {
        if self.keep.load(Ordering::SeqCst) {
            info!("restarting: every output is left as it is");
            return;
        }
        for output in &mut self.outputs {
            output.pending = None;
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
            min_switch_interval: Duration::ZERO,
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
        let outputs = Outputs::claim(&gpio, configs, state_file, &HashMap::new()).expect("claim");
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

    #[test]
    fn kept_states_should_be_read_back_leaving_out_what_does_not_parse() {
        let kept = parse_kept("relay=1,fan=40,lamp=0,broken,big=300,=2");
        let expected: HashMap<String, u8> = [("relay", 1), ("fan", 40), ("lamp", 0), ("", 2)]
            .into_iter()
            .map(|(name, level)| (name.to_owned(), level))
            .collect();
        assert_eq!(kept, expected);
        assert!(parse_kept("").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn commands_faster_than_the_switch_interval_should_be_merged_into_the_last_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut relay = output("relay", 5);
        relay.min_switch_interval = Duration::from_secs(1);
        let running = start(vec![relay, output("free", 6)], &dir.path().join("s.json"));
        running.send("relay", Action::On).await;
        assert_eq!(running.sim.output(5), Some(true), "the first switch is at once");
        let before = running.sim.output_writes(5);
        // 5,000 TOGGLEs in 3 s, then an OFF: the relay switches at most
        // once a second, and ends in the last state commanded.
        let target = running.targets.iter().find(|(id, ..)| id == "relay").expect("relay").3;
        let started = Instant::now();
        for n in 0..5_000 {
            let toggle = Command {
                target,
                action: Action::Toggle,
                origin: Origin::Mqtt,
            };
            running.commands.send(toggle).await.expect("outputs task runs");
            if n % 5 == 4 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        running.send("relay", Action::Off).await;
        running.send("free", Action::On).await;
        let seconds = started.elapsed().as_secs();
        assert_eq!(seconds, 3);
        let switches = running.sim.output_writes(5) - before;
        assert!((1..=3).contains(&switches), "{switches} switches in 3 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(running.sim.output(5), Some(false));
        assert_eq!(running.state("relay"), Some(Value::Bool(false)));
        assert!(running.sim.output_writes(5) - before <= 4);
        // An output without an interval follows every command.
        for _ in 0..10 {
            running.send("free", Action::Toggle).await;
        }
        assert_eq!(running.sim.output_writes(6), 1 + 1 + 10);
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
