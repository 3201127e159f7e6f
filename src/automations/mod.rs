//! On-device automations: triggers (an input changing, a button press, a
//! threshold with hysteresis, an interval, a daily time), optional
//! conditions, and actions (set, toggle or pulse an output, publish an MQTT
//! message, wait). They run inside the agent from the hub's events, so they
//! keep working while the broker or Home Assistant is down.
//!
//! Each automation is also a `switch` entity (`automation_<name>`) that
//! Home Assistant or the dashboard can turn off; the choice survives a
//! restart (its own state file). An automation's actions run as a task of
//! their own, so a long `delay_s` never holds up other triggers; its `mode`
//! says what a trigger does while a run is still going (dropped, restart,
//! queued or side by side, at most `max`), so its runs are bounded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc};
use tokio::task::{AbortHandle, Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::command::{Action, AutomationId, Command, CommandReceiver, CommandSender, Origin, Publish, Target, Targets};
use crate::config::{AutomationConfig, Change, Mode, Step, Trigger};
use crate::deadline::sleep_until;
use crate::fleet::Change as FleetChange;
use crate::hub::{EntitySpec, Group, Hub, HubEvent, Value};
use crate::state_file::StateFile;
use crate::time::rfc3339;
use crate::vocab::{automation_id, Component};

mod schedule;
mod threshold;

use schedule::{daily, DAILY_RECHECK};
pub use schedule::{Clock, LocalClock};
use threshold::{crossing, holds};

/// The state `automations.json` remembers: enabled or not, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Remembered {
    enabled: BTreeMap<String, bool>,
}

/// One step of an automation's actions, its output resolved to a target.
#[derive(Debug, Clone)]
enum Do {
    Set(Target, Action),
    /// On now, off after this long.
    Pulse(Target, Duration),
    Publish(Publish),
    Delay(Duration),
}

/// The steps with their outputs resolved; a step whose output has no
/// target (none can: the config checks them) is left out with a warning.
fn resolve(name: &str, steps: &[Step], targets: &Targets) -> Vec<Do> {
    let output = |output: &str| match targets.resolve(output) {
        Some((target @ Target::Output(_), _)) => Some(target),
        _ => {
            warn!(automation = %name, output, "leaving out a step for an output that does not exist");
            None
        }
    };
    steps
        .iter()
        .filter_map(|step| match step {
            Step::Set { output: name, action } => output(name).map(|target| Do::Set(target, *action)),
            Step::Pulse { output: name, duration } => output(name).map(|target| Do::Pulse(target, *duration)),
            Step::Publish { topic, payload, retain } => Some(Do::Publish(Publish {
                topic: topic.clone(),
                payload: payload.clone(),
                retain: *retain,
            })),
            Step::Command { command, action } => match targets.resolve(command) {
                Some((target @ Target::Command(_), _)) => Some(Do::Set(target, *action)),
                _ => {
                    warn!(automation = %name, command, "leaving out a step for a command that does not exist");
                    None
                }
            },
            Step::Delay(duration) => Some(Do::Delay(*duration)),
        })
        .collect()
}

struct Automation {
    config: AutomationConfig,
    entity: String,
    actions: Vec<Do>,
    actions_below: Vec<Do>,
    enabled: bool,
    /// The last state seen of the input an input trigger watches.
    last_input: Option<bool>,
    /// For threshold triggers: above (true) or below (false), once known.
    band: Option<bool>,
    /// When a timer trigger fires next (a daily one: looks at the clock).
    next_at: Option<Instant>,
    /// When a daily trigger last fired.
    fired_at: Option<Instant>,
    /// Its runs still going.
    running: Vec<AbortHandle>,
    /// Runs waiting their turn (`mode = "queued"`): `actions_below` or not.
    queued: VecDeque<bool>,
}

/// Every run of every automation: the tasks, and whose each is.
#[derive(Default)]
struct Runs {
    tasks: JoinSet<()>,
    owners: HashMap<Id, usize>,
}

/// Every automation, ready to run.
pub struct Automations {
    list: Vec<Automation>,
    hub: Arc<Hub>,
    outputs: Option<CommandSender>,
    publish: Option<mpsc::Sender<Publish>>,
    clock: Arc<dyn Clock>,
    state_file: StateFile,
    remembered: Remembered,
    /// The fleet's changes, for `node` triggers; `None` without the fleet.
    fleet: Option<broadcast::Receiver<FleetChange>>,
    /// Said once: daily triggers wait for the clock to be set.
    told_clock_unset: bool,
}

/// The file next to the outputs' state file.
pub fn state_file_beside(outputs_state_file: &std::path::Path) -> PathBuf {
    outputs_state_file.with_file_name(crate::config::AUTOMATIONS_STATE_FILE_NAME)
}

impl Automations {
    /// `targets` resolves the outputs and commands the actions name;
    /// `outputs` is where their commands go (the router).
    pub fn new(
        configs: Vec<AutomationConfig>,
        hub: Arc<Hub>,
        targets: &Targets,
        outputs: Option<CommandSender>,
        publish: Option<mpsc::Sender<Publish>>,
        clock: Arc<dyn Clock>,
        state_file: StateFile,
    ) -> Automations {
        let remembered: Remembered = state_file.load_as().unwrap_or_default();
        let list = configs
            .into_iter()
            .map(|config| Automation {
                entity: automation_id(&config.name),
                actions: resolve(&config.name, &config.actions, targets),
                actions_below: resolve(&config.name, &config.actions_below, targets),
                enabled: remembered.enabled.get(&config.name).copied().unwrap_or(config.enabled),
                last_input: None,
                band: None,
                next_at: None,
                fired_at: None,
                running: Vec::new(),
                queued: VecDeque::new(),
                config,
            })
            .collect();
        Automations {
            list,
            hub,
            outputs,
            publish,
            clock,
            state_file,
            remembered,
            fleet: None,
            told_clock_unset: false,
        }
    }

    /// Watches the fleet for `node` triggers.
    pub fn with_fleet(mut self, changes: Option<broadcast::Receiver<FleetChange>>) -> Automations {
        self.fleet = changes;
        self
    }

    /// Whether daily triggers may look at the clock; says once why not.
    fn clock_ready(&mut self) -> bool {
        if self.clock.is_set() {
            if self.told_clock_unset {
                info!("the clock is set now; daily automations run");
                self.told_clock_unset = false;
            }
            return true;
        }
        if !self.told_clock_unset {
            warn!(now = %crate::time::rfc3339(SystemTime::now()), "the clock is not set (no RTC, NTP not done yet): daily automations wait until it is");
            self.told_clock_unset = true;
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// One switch per automation.
    pub fn entities(&self) -> Vec<EntitySpec> {
        self.list
            .iter()
            .map(|a| {
                let mut spec =
                    EntitySpec::output(&a.entity, &format!("Automation: {}", a.config.label), Component::Switch);
                spec.group = Group::Automations;
                spec.icon = Some("mdi:robot");
                spec
            })
            .collect()
    }

    /// The command target of each automation's switch, by entity id.
    pub fn targets(&self) -> Vec<(String, Component, Target)> {
        self.list
            .iter()
            .enumerate()
            .map(|(index, a)| {
                (
                    a.entity.clone(),
                    Component::Switch,
                    Target::Automation(AutomationId(index)),
                )
            })
            .collect()
    }

    /// Runs until cancelled: watches the hub, the timers and the commands
    /// for the switches; actions run as tasks, aborted on stop.
    pub async fn run(mut self, mut commands: CommandReceiver, cancel: CancellationToken) {
        let mut changes = self.hub.subscribe();
        let now = Instant::now();
        let has_daily = self
            .list
            .iter()
            .any(|a| matches!(a.config.trigger, Trigger::Daily { .. }));
        let clock_ready = !has_daily || self.clock_ready();
        for index in 0..self.list.len() {
            let automation = &mut self.list[index];
            self.hub.set(&automation.entity, Value::Bool(automation.enabled));
            automation.next_at = match automation.config.trigger {
                Trigger::Interval(every) => Some(now + every),
                Trigger::Daily { .. } if !clock_ready => Some(now + DAILY_RECHECK),
                Trigger::Daily { minute_of_day } => {
                    let (reached, wait) = daily(self.clock.seconds_of_day(), minute_of_day, None);
                    // Starting at its time, maybe just after it ran before a
                    // restart: count it as done, as before.
                    if reached {
                        automation.fired_at = Some(now);
                    }
                    Some(now + wait)
                }
                _ => None,
            };
            // Input triggers fire on changes, not on the state at start.
            if let Trigger::Input { input, .. } | Trigger::Command { command: input, .. } = &automation.config.trigger {
                automation.last_input = self.hub.get(input).and_then(|e| match e.value {
                    Some(Value::Bool(on)) => Some(on),
                    _ => None,
                });
            }
        }
        let mut runs = Runs::default();
        let mut fleet = self.fleet.take();
        loop {
            let next_timer = self.list.iter().filter_map(|a| a.next_at).min();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.command(&command),
                    None => cancel.cancelled().await,
                },
                change = changes.recv() => match change {
                    Ok(event) => self.event(&event, &mut runs),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "automations fell behind the hub; some triggers may have been missed");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                () = sleep_until(next_timer), if next_timer.is_some() => self.timers(&mut runs),
                Some(ended) = runs.tasks.join_next_with_id(), if !runs.tasks.is_empty() => {
                    let id = match ended {
                        Ok((id, ())) => id,
                        Err(error) => error.id(),
                    };
                    self.ended(id, &mut runs);
                }
                change = next_fleet(fleet.as_mut()) => match change {
                    Ok(FleetChange::Status { node, online }) => self.node_status(&node.id, online, &mut runs),
                    Ok(FleetChange::Alert { node, alert }) => self.node_alert(&node, alert, &mut runs),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "automations fell behind the fleet; some node triggers may have been missed");
                    }
                    Err(broadcast::error::RecvError::Closed) => fleet = None,
                },
            }
        }
        runs.tasks.abort_all();
        debug!("automations stopped");
    }

    fn command(&mut self, command: &Command) {
        let automation = match command.target {
            Target::Automation(AutomationId(index)) => self.list.get_mut(index),
            _ => None,
        };
        let Some(automation) = automation else {
            warn!(target = ?command.target, "ignoring command for an unknown automation");
            return;
        };
        let enabled = match command.action {
            Action::On => true,
            Action::Off => false,
            Action::Toggle => !automation.enabled,
            Action::Press | Action::Level(_) => automation.enabled,
        };
        automation.enabled = enabled;
        info!(automation = %automation.config.name, enabled, origin = ?command.origin, "automation switched");
        self.hub.set(&automation.entity, Value::Bool(enabled));
        let name = automation.config.name.clone();
        self.remembered.enabled.insert(name, enabled);
        // The writer task writes it (and logs a failure) off this thread.
        self.state_file.save_as(&self.remembered);
    }

    fn event(&mut self, event: &HubEvent, runs: &mut Runs) {
        let mut fire = Vec::new();
        for (index, automation) in self.list.iter_mut().enumerate() {
            match (&automation.config.trigger, event) {
                (
                    Trigger::Input { input, to } | Trigger::Command { command: input, to },
                    HubEvent::Updated(spec, Value::Bool(on)),
                ) if spec.id == *input => {
                    let previous = automation.last_input.replace(*on);
                    let changed = previous.is_some_and(|p| p != *on);
                    let wanted = match to {
                        Change::On => *on,
                        Change::Off => !*on,
                        Change::Any => true,
                    };
                    if changed && wanted {
                        fire.push((index, false));
                    }
                }
                (Trigger::Press { input, press }, HubEvent::Pressed(spec, pressed))
                    if spec.id == *input && pressed == press =>
                {
                    fire.push((index, false));
                }
                (Trigger::Threshold { entity, above, below }, HubEvent::Updated(spec, Value::Number(value)))
                    if spec.id == *entity =>
                {
                    if let Some(rising) = crossing(&mut automation.band, *value, *above, *below) {
                        // With only `below`, falling is what the user asked for.
                        let below_only = above.is_none();
                        match (rising, below_only) {
                            (true, _) | (false, true) => fire.push((index, false)),
                            (false, false) => fire.push((index, true)),
                        }
                    }
                }
                _ => {}
            }
        }
        for (index, below) in fire {
            self.fire(index, below, runs);
        }
    }

    /// A node of the fleet went online or offline.
    fn node_status(&mut self, id: &str, now_online: bool, runs: &mut Runs) {
        let fire: Vec<usize> = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(&a.config.trigger, Trigger::Node { node, online }
                    if *online == now_online && (node == "*" || node == id))
            })
            .map(|(index, _)| index)
            .collect();
        for index in fire {
            info!(
                node = id,
                online = now_online,
                "a node of the fleet triggers an automation"
            );
            self.fire(index, false, runs);
        }
    }

    /// An alert appeared on a node of the fleet.
    fn node_alert(&mut self, id: &str, appeared: &str, runs: &mut Runs) {
        let fire: Vec<usize> = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(&a.config.trigger, Trigger::NodeAlert { node, alert }
                    if *alert == appeared && (node == "*" || node == id))
            })
            .map(|(index, _)| index)
            .collect();
        for index in fire {
            info!(
                node = id,
                alert = appeared,
                "an alert of the fleet triggers an automation"
            );
            self.fire(index, false, runs);
        }
    }

    fn timers(&mut self, runs: &mut Runs) {
        let now = Instant::now();
        let any_daily = self
            .list
            .iter()
            .any(|a| matches!(a.config.trigger, Trigger::Daily { .. }) && a.next_at.is_some_and(|at| at <= now));
        let clock_ready = !any_daily || self.clock_ready();
        let mut due = Vec::new();
        for (index, automation) in self.list.iter_mut().enumerate() {
            if automation.next_at.is_none_or(|at| at > now) {
                continue;
            }
            match automation.config.trigger {
                Trigger::Interval(every) => {
                    automation.next_at = Some(now + every);
                    due.push(index);
                }
                Trigger::Daily { .. } if !clock_ready => automation.next_at = Some(now + DAILY_RECHECK),
                Trigger::Daily { minute_of_day } => {
                    let since = automation.fired_at.map(|at| now.saturating_duration_since(at));
                    let (fire, wait) = daily(self.clock.seconds_of_day(), minute_of_day, since);
                    automation.next_at = Some(now + wait);
                    if fire {
                        automation.fired_at = Some(now);
                        due.push(index);
                    }
                }
                _ => automation.next_at = None,
            }
        }
        for index in due {
            self.fire(index, false, runs);
        }
    }

    /// Runs an automation's actions (or its `actions_below`), when it is
    /// enabled and its conditions hold, as its mode says.
    fn fire(&mut self, index: usize, below: bool, runs: &mut Runs) {
        let automation = &mut self.list[index];
        let name = &automation.config.name;
        if !automation.enabled {
            debug!(automation = %name, "triggered but turned off");
            return;
        }
        if let Some(failed) = automation.config.conditions.iter().find(|c| !holds(&self.hub, c)) {
            debug!(automation = %name, condition = ?failed, "triggered but a condition does not hold");
            return;
        }
        let steps = if below {
            &automation.actions_below
        } else {
            &automation.actions
        };
        if steps.is_empty() {
            return;
        }
        let busy = automation.running.len() + automation.queued.len();
        match automation.config.mode {
            Mode::Single if busy > 0 => {
                debug!(automation = %name, "triggered while running; dropped (mode single)");
                return;
            }
            Mode::Restart => {
                for run in automation.running.drain(..) {
                    run.abort();
                }
            }
            Mode::Queued { max } | Mode::Parallel { max } if busy >= max as usize => {
                let mode = automation.config.mode.name();
                warn!(automation = %name, mode, max, "triggered while at its most runs; dropped");
                return;
            }
            Mode::Queued { .. } if busy > 0 => {
                automation.queued.push_back(below);
                return;
            }
            _ => {}
        }
        self.start(index, below, runs);
    }

    fn start(&mut self, index: usize, below: bool, runs: &mut Runs) {
        let automation = &mut self.list[index];
        let name = &automation.config.name;
        let steps = if below {
            automation.actions_below.clone()
        } else {
            automation.actions.clone()
        };
        info!(automation = %name, "automation runs");
        self.hub
            .set_attribute(&automation.entity, "last_run", rfc3339(SystemTime::now()));
        let run = runs
            .tasks
            .spawn(perform(name.clone(), steps, self.outputs.clone(), self.publish.clone()));
        runs.owners.insert(run.id(), index);
        automation.running.push(run);
    }

    /// A run ended (or was aborted): the next queued one starts.
    fn ended(&mut self, id: Id, runs: &mut Runs) {
        let Some(index) = runs.owners.remove(&id) else {
            return;
        };
        let automation = &mut self.list[index];
        automation.running.retain(|run| run.id() != id);
        if automation.running.is_empty() {
            if let Some(below) = automation.queued.pop_front() {
                self.start(index, below, runs);
            }
        }
    }
}

/// The next fleet change; pending forever without the fleet.
async fn next_fleet(
    fleet: Option<&mut broadcast::Receiver<FleetChange>>,
) -> Result<FleetChange, broadcast::error::RecvError> {
    match fleet {
        Some(fleet) => fleet.recv().await,
        None => std::future::pending().await,
    }
}

/// Performs one run's steps in order. Pulses turn their output off on
/// their own schedule while later steps go on.
async fn perform(name: String, steps: Vec<Do>, outputs: Option<CommandSender>, publish: Option<mpsc::Sender<Publish>>) {
    let send = |target: Target, action: Action| {
        let outputs = outputs.clone();
        let command = Command {
            target,
            action,
            origin: Origin::Automation,
        };
        async move {
            if let Some(outputs) = outputs {
                if outputs.send(command).await.is_err() {
                    debug!("outputs stopped; automation step dropped");
                }
            }
        }
    };
    let mut pulses: Vec<(Instant, Target)> = Vec::new();
    for step in steps {
        match step {
            Do::Set(target, action) => send(target, action).await,
            Do::Pulse(target, duration) => {
                send(target, Action::On).await;
                pulses.push((Instant::now() + duration, target));
            }
            Do::Publish(message) => match &publish {
                Some(publish) => {
                    if let Err(error) = publish.try_send(message) {
                        warn!(automation = %name, %error, "dropping the automation's MQTT message");
                    }
                }
                None => warn!(automation = %name, "MQTT is disabled; the automation's message is dropped"),
            },
            Do::Delay(duration) => tokio::time::sleep(duration).await,
        }
    }
    pulses.sort_by_key(|(at, _)| *at);
    for (at, target) in pulses {
        tokio::time::sleep_until(at).await;
        send(target, Action::Off).await;
    }
}

#[cfg(test)]
mod tests {
    use super::schedule::DAY;
    use super::*;

    #[tokio::test]
    async fn node_triggers_should_fire_on_live_status_changes_and_new_alerts_only() {
        let fleet = crate::fleet::Fleet::new("me");
        let config = AutomationConfig {
            name: "garage_down".into(),
            label: "Garage down".into(),
            enabled: true,
            trigger: Trigger::Node {
                node: "garage".into(),
                online: false,
            },
            conditions: Vec::new(),
            actions: vec![Step::Publish {
                topic: "alerts/garage".into(),
                payload: "down".into(),
                retain: false,
            }],
            actions_below: Vec::new(),
            mode: crate::config::Mode::Single,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (state_file, _writer) = StateFile::new(dir.path().join("automations.json"));
        let (publish, mut published) = mpsc::channel(8);
        let alert = AutomationConfig {
            name: "any_uv".into(),
            label: "Under-voltage anywhere".into(),
            trigger: Trigger::NodeAlert {
                node: "*".into(),
                alert: "under_voltage",
            },
            actions: vec![Step::Publish {
                topic: "alerts/uv".into(),
                payload: "low".into(),
                retain: false,
            }],
            ..config.clone()
        };
        let automations = Automations::new(
            vec![config, alert],
            Hub::new(4),
            &Targets::new(),
            None,
            Some(publish),
            Arc::new(LocalClock),
            state_file,
        )
        .with_fleet(Some(fleet.subscribe()));
        let (_commands, receiver) = crate::command::channel();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(automations.run(receiver, cancel.clone()));
        use crate::fleet::Kind::Status;
        // Already offline when we subscribed (retained), another node, the
        // wrong way: none fires.
        fleet.observe(Status, "garage", b"offline", true);
        fleet.observe(Status, "shed", b"online", false);
        fleet.observe(Status, "shed", b"offline", false);
        fleet.observe(Status, "garage", b"online", false);
        fleet.observe(Status, "garage", b"offline", false);
        let message = tokio::time::timeout(Duration::from_secs(5), published.recv())
            .await
            .expect("fired")
            .expect("a message");
        assert_eq!(
            (message.topic.as_str(), message.payload.as_str()),
            ("alerts/garage", "down")
        );
        use crate::fleet::Kind::Info;
        fleet.observe(Info, "shed", br#"{"under_voltage":true}"#, true);
        fleet.observe(Info, "shed", br#"{"under_voltage":false}"#, false);
        fleet.observe(Info, "shed", br#"{"under_voltage":true}"#, false);
        let message = tokio::time::timeout(Duration::from_secs(5), published.recv())
            .await
            .expect("fired")
            .expect("a message");
        assert_eq!((message.topic.as_str(), message.payload.as_str()), ("alerts/uv", "low"));
        cancel.cancel();
        task.await.expect("stops");
        assert!(published.try_recv().is_err(), "each fired once");
    }

    #[test]
    fn a_band_should_fire_on_entering_each_side_and_not_flap_in_between() {
        let mut band = None;
        let readings = [58.0, 61.0, 59.5, 60.5, 59.0, 61.0, 56.0, 54.0, 57.0, 55.5, 54.9, 61.0];
        let fired: Vec<Option<bool>> = readings
            .iter()
            .map(|v| crossing(&mut band, *v, Some(60.0), Some(55.0)))
            .collect();
        assert_eq!(
            fired,
            vec![
                None,
                Some(true),
                None,
                None,
                None,
                None,
                None,
                Some(false),
                None,
                None,
                None,
                Some(true)
            ]
        );
    }

    #[test]
    fn a_single_limit_should_fire_only_when_crossed() {
        let mut band = None;
        let fired: Vec<Option<bool>> = [70.0, 50.0, 65.0, 70.0, 59.0, 61.0]
            .iter()
            .map(|v| crossing(&mut band, *v, Some(60.0), None))
            .collect();
        assert_eq!(fired, vec![None, None, Some(true), None, None, Some(true)]);
        let mut band = None;
        let fired: Vec<Option<bool>> = [20.0, 5.0, 15.0, 9.0]
            .iter()
            .map(|v| crossing(&mut band, *v, None, Some(10.0)))
            .collect();
        assert_eq!(fired, vec![None, Some(false), None, Some(false)]);
    }

    /// Runs a daily trigger as `run` and `timers` do, for `days`, on a wall
    /// clock that `wall` gives for each monotonic second; returns the
    /// monotonic seconds it fired at.
    fn fire_times(minute_of_day: u32, days: f64, wall: impl Fn(f64) -> f64) -> Vec<f64> {
        let (reached, wait) = daily(wall(0.0), minute_of_day, None);
        let mut fired_at = reached.then_some(0.0);
        let mut t = wait.as_secs_f64();
        let mut fired = Vec::new();
        while t < days * DAY {
            let since = fired_at.map(|at: f64| Duration::from_secs_f64(t - at));
            let (fire, wait) = daily(wall(t), minute_of_day, since);
            assert!(wait > Duration::ZERO && wait <= DAILY_RECHECK, "{wait:?} at {t}");
            if fire {
                fired_at = Some(t);
                fired.push(t);
            }
            t += wait.as_secs_f64();
        }
        fired
    }

    #[test]
    fn daily_should_fire_once_a_day_at_its_time() {
        // Start at 06:00; 07:30 is an hour and a half away.
        let fired = fire_times(450, 3.0, |t| (6.0 * 3600.0 + t) % DAY);
        assert_eq!(fired.len(), 3, "{fired:?}");
        for (day, t) in fired.iter().enumerate() {
            assert!((t - (5400.0 + day as f64 * DAY)).abs() < 0.01, "{fired:?}");
        }
    }

    #[test]
    fn midnight_should_fire_once_even_when_woken_just_before_it() {
        // Woken 0.2 s early by the wall clock: fires, then not again at
        // 00:00:00 (the wrap made that a 0.2 s wait, a second run).
        assert_eq!(daily(86_399.8, 0, None), (true, DAILY_RECHECK));
        assert_eq!(daily(0.0, 0, Some(Duration::from_millis(200))), (false, DAILY_RECHECK));
        assert!(!daily(60.2, 0, Some(Duration::from_secs_f64(60.4))).0);
        // The wall clock runs 0.2 s behind the monotonic one, from 23:00.
        let fired = fire_times(0, 3.0, |t| (23.0 * 3600.0 + t * (1.0 - 1e-5)) % DAY);
        assert_eq!(fired.len(), 3, "{fired:?}");
    }

    #[test]
    fn daily_should_follow_the_wall_clock_when_it_is_stepped() {
        // 06:00 at start; ten minutes later NTP steps the clock 45 minutes
        // forward: 07:00 comes after 15 minutes, not 60.
        let fired = fire_times(420, 1.0, |t| 6.0 * 3600.0 + t + if t >= 600.0 { 2700.0 } else { 0.0 });
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!((fired[0] - 900.0).abs() < 0.01, "{fired:?}");
        // The end of DST (03:00 back to 02:00) repeats 02:30: once, not twice.
        let fired = fire_times(150, 2.0, |t| {
            let wall = if t >= 3.0 * 3600.0 { t - 3600.0 } else { t };
            wall % DAY
        });
        assert_eq!(fired.len(), 2, "{fired:?}");
        assert!(
            (fired[0] - 9000.0).abs() < 0.01 && (fired[1] - (9000.0 + 3600.0 + DAY)).abs() < 0.01,
            "{fired:?}"
        );
    }

    #[test]
    fn odd_clocks_should_never_panic_or_busy_loop() {
        // A leap second's 23:59:60.5, a clock before 1970, nonsense.
        for now in [
            86_400.5,
            -1.0,
            -86_400.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
        ] {
            for minute in [0, 1, 1439] {
                let (_, wait) = daily(now, minute, None);
                assert!(
                    wait > Duration::ZERO && wait <= DAILY_RECHECK,
                    "{now} {minute}: {wait:?}"
                );
            }
        }
        // 23:59:60.5 is half a second past midnight's 00:00.
        assert!(daily(86_400.5, 0, None).0);
    }
}
