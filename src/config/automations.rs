//! `[[automations]]` and `[buttons]`: raw TOML and validation. Every
//! reference (an input, an output, an entity, a press event) is checked here,
//! so `majortom check` catches a typo, naming the automation and the key.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::hardware::{InputConfig, OutputConfig};
use super::mqtt::{MQTT_MAX_STRING, TOO_LONG_FOR_MQTT};
use super::sensors::SensorConfig;
use super::triggers::RawTrigger;
pub use super::triggers::{Change, Trigger};
use super::{ConfigError, Validator};
use crate::vocab::system::{FLAG_ENTITY_IDS, NUMERIC_ENTITY_IDS};
use crate::vocab::{automation_id, Action, Quantity};

// ---- typed ----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct AutomationConfig {
    /// Its switch entity is `automation_<name>`.
    pub name: String,
    pub label: String,
    /// At start, unless Home Assistant turned it off or on since (then the
    /// state file remembers).
    pub enabled: bool,
    pub trigger: Trigger,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Step>,
    /// Only for a threshold with both `above` and `below`: run when the
    /// value falls below `below`.
    pub actions_below: Vec<Step>,
    /// What a trigger does while a run is still going (a delay, a pulse).
    pub mode: Mode,
}

/// What a trigger does while the automation's actions still run, as in
/// Home Assistant (`mode`, and `max` for the last two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The trigger is dropped (the default).
    Single,
    /// The running actions are stopped and start again.
    Restart,
    /// The run waits for the ones before it; at most `max` running or
    /// waiting, more are dropped.
    Queued { max: u32 },
    /// Runs side by side, at most `max` at once; more are dropped.
    Parallel { max: u32 },
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Restart => "restart",
            Mode::Queued { .. } => "queued",
            Mode::Parallel { .. } => "parallel",
        }
    }
}

/// Home Assistant's default `max`.
const DEFAULT_MAX_RUNS: u32 = 10;
/// More runs of one automation than this at once is a mistake, not a plan.
const MAX_RUNS: u32 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// An on/off entity is in this state.
    State { entity: String, on: bool },
    /// A numeric entity is above and/or below these.
    Range {
        entity: String,
        above: Option<f64>,
        below: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Set {
        output: String,
        action: Action,
    },
    /// On now, off after this long (the rest of the steps go on meanwhile).
    Pulse {
        output: String,
        duration: Duration,
    },
    Publish {
        topic: String,
        payload: String,
        retain: bool,
    },
    /// Runs a `[[commands]]` entry: ON or OFF for a switch, PRESS (`once`)
    /// for a button.
    Command {
        command: String,
        action: Action,
    },
    Delay(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonsConfig {
    /// A "Restart" button in Home Assistant (on by default).
    pub restart: bool,
    /// The command a "Reboot" button runs; `None`: no such button.
    pub reboot: Option<Vec<String>>,
}

// ---- raw ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutomation {
    name: Spanned<String>,
    label: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
    trigger: Spanned<RawTrigger>,
    #[serde(default)]
    conditions: Vec<Spanned<RawCondition>>,
    actions: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    actions_below: Option<Spanned<Vec<Spanned<RawStep>>>>,
    mode: Option<Spanned<String>>,
    max: Option<Spanned<u32>>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    entity: String,
    state: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    output: Option<String>,
    set: Option<String>,
    pulse_s: Option<f64>,
    publish: Option<String>,
    payload: Option<String>,
    retain: Option<bool>,
    delay_s: Option<f64>,
    command: Option<String>,
    action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawButtons {
    restart: bool,
    reboot: bool,
    reboot_command: Option<Spanned<Vec<String>>>,
}

impl Default for RawButtons {
    fn default() -> Self {
        RawButtons {
            restart: true,
            reboot: false,
            reboot_command: None,
        }
    }
}

/// What an automation may refer to, from the rest of the config.
pub(super) struct Known<'a> {
    pub inputs: &'a [InputConfig],
    pub outputs: &'a [OutputConfig],
    pub sensors: &'a [SensorConfig],
    pub commands: &'a [super::CommandConfig],
    /// The fleet is on (node triggers need it).
    pub fleet: bool,
}

impl Known<'_> {
    pub(super) fn is_on_off(&self, id: &str) -> bool {
        self.inputs.iter().any(|i| i.name == id)
            || self.outputs.iter().any(|o| o.name == id)
            || self.command_switch(id).is_some()
            || FLAG_ENTITY_IDS.contains(&id)
    }

    /// The `[[commands]]` switch (on/off, not a once-button) named `id`.
    pub(super) fn command_switch(&self, id: &str) -> Option<&super::CommandConfig> {
        self.commands
            .iter()
            .find(|c| c.name == id && matches!(c.kind, super::CommandKind::Switch { .. }))
    }

    pub(super) fn is_numeric(&self, id: &str) -> bool {
        NUMERIC_ENTITY_IDS.contains(&id)
            || self.sensors.iter().any(|s| {
                s.name == id
                    || Quantity::ALL
                        .iter()
                        .any(|q| id.strip_prefix(s.name.as_str()) == Some(&format!("_{}", q.suffix())))
            })
    }
}

/// The shortest `interval_s`: shorter would keep a Pi busy for nothing.
pub(super) const MIN_INTERVAL_S: f64 = 0.1;

/// The longest `payload`: the MQTT sink caps packets at 64 KiB (see
/// src/mqtt/sink.rs), and the topic must fit in beside it.
const MAX_PAYLOAD: usize = 16 * 1024;
/// Topic and payload together, leaving room for the packet's header.
const MAX_PUBLISH: usize = 64 * 1024 - 64;

pub(super) fn seconds(value: f64) -> Option<Duration> {
    (value > 0.0 && value <= 31_536_000.0).then(|| Duration::from_secs_f64(value))
}

impl Validator<'_> {
    pub(super) fn automations(
        &self,
        raw: Vec<RawAutomation>,
        known: &Known<'_>,
        names: &mut HashMap<String, String>,
    ) -> Result<Vec<AutomationConfig>, ConfigError> {
        let mut automations = Vec::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let key = format!("automations[{i}]");
            let name = raw.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(self.error(
                    &raw.name,
                    &format!("{key}.name"),
                    "may contain only lowercase letters, digits and `_`",
                ));
            }
            let entity = automation_id(&name);
            if let Some(first) = names.get(&entity) {
                let message = format!("`{name}` is already used by {first}; names must be unique");
                return Err(self.error(&raw.name, &format!("{key}.name"), message));
            }
            names.insert(entity, format!("`{key}.name`"));
            let trigger = self.trigger(&raw.trigger, &format!("{key}.trigger"), known)?;
            let conditions = raw
                .conditions
                .iter()
                .enumerate()
                .map(|(n, c)| self.condition(c, &format!("{key}.conditions[{n}]"), known))
                .collect::<Result<Vec<_>, _>>()?;
            let actions = self.steps(&raw.actions, &format!("{key}.actions"), known)?;
            let actions_below = match &raw.actions_below {
                None => Vec::new(),
                Some(steps) => {
                    let both = matches!(
                        trigger,
                        Trigger::Threshold {
                            above: Some(_),
                            below: Some(_),
                            ..
                        }
                    );
                    if !both {
                        return Err(self.error(
                            steps,
                            &format!("{key}.actions_below"),
                            "only a threshold trigger with both `above` and `below` has actions_below",
                        ));
                    }
                    self.steps(steps, &format!("{key}.actions_below"), known)?
                }
            };
            let mode = self.mode(raw.mode.as_ref(), raw.max.as_ref(), &key)?;
            automations.push(AutomationConfig {
                mode,
                label: raw.label.unwrap_or_else(|| name.replace('_', " ")),
                name,
                enabled: raw.enabled,
                trigger,
                conditions,
                actions,
                actions_below,
            });
        }
        Ok(automations)
    }

    fn mode(&self, mode: Option<&Spanned<String>>, max: Option<&Spanned<u32>>, key: &str) -> Result<Mode, ConfigError> {
        let runs = match max {
            Some(max) if !(1..=MAX_RUNS).contains(max.get_ref()) => {
                return Err(self.error(max, &format!("{key}.max"), format!("must be 1 to {MAX_RUNS}")));
            }
            Some(max) => *max.get_ref(),
            None => DEFAULT_MAX_RUNS,
        };
        let mode = match mode {
            None => Mode::Single,
            Some(spanned) => match spanned.get_ref().as_str() {
                "single" => Mode::Single,
                "restart" => Mode::Restart,
                "queued" => Mode::Queued { max: runs },
                "parallel" => Mode::Parallel { max: runs },
                other => {
                    let message = format!("`{other}`: use single, restart, queued or parallel");
                    return Err(self.error(spanned, &format!("{key}.mode"), message));
                }
            },
        };
        if let (Some(max), Mode::Single | Mode::Restart) = (max, mode) {
            let message = format!(
                "only a queued or parallel automation has a max (this one is {})",
                mode.name()
            );
            return Err(self.error(max, &format!("{key}.max"), message));
        }
        Ok(mode)
    }

    fn condition(&self, raw: &Spanned<RawCondition>, key: &str, known: &Known<'_>) -> Result<Condition, ConfigError> {
        let c = raw.get_ref();
        let err = |message: String| self.error(raw, key, message);
        match (&c.state, c.above.is_some() || c.below.is_some()) {
            (Some(state), false) => {
                if !known.is_on_off(&c.entity) {
                    return Err(err(format!(
                        "`{}` is not an on/off entity (an input, an output, a flag)",
                        c.entity
                    )));
                }
                let on = match state.as_str() {
                    "on" => true,
                    "off" => false,
                    other => return Err(err(format!("`state = \"{other}\"`: use on or off"))),
                };
                Ok(Condition::State {
                    entity: c.entity.clone(),
                    on,
                })
            }
            (None, true) => {
                if !known.is_numeric(&c.entity) {
                    return Err(err(format!("`{}` is not a numeric entity", c.entity)));
                }
                Ok(Condition::Range {
                    entity: c.entity.clone(),
                    above: c.above,
                    below: c.below,
                })
            }
            _ => Err(err("needs either `state` or `above`/`below`".into())),
        }
    }

    fn steps(
        &self,
        raw: &Spanned<Vec<Spanned<RawStep>>>,
        key: &str,
        known: &Known<'_>,
    ) -> Result<Vec<Step>, ConfigError> {
        if raw.get_ref().is_empty() {
            return Err(self.error(raw, key, "needs at least one action"));
        }
        raw.get_ref()
            .iter()
            .enumerate()
            .map(|(n, step)| self.step(step, &format!("{key}[{n}]"), known))
            .collect()
    }

    fn step(&self, raw: &Spanned<RawStep>, key: &str, known: &Known<'_>) -> Result<Step, ConfigError> {
        let s = raw.get_ref();
        let err = |message: String| self.error(raw, key, message);
        let kinds = [
            s.output.is_some(),
            s.publish.is_some(),
            s.delay_s.is_some(),
            s.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(err(
                "needs exactly one of `output` (with `set` or `pulse_s`), `command` (with `action`), `publish`, `delay_s`"
                    .into(),
            ));
        }
        if s.action.is_some() && s.command.is_none() {
            return Err(err("`action` goes with `command`".into()));
        }
        if let Some(name) = &s.command {
            let Some(command) = known.commands.iter().find(|c| c.name == *name) else {
                return Err(err(format!("`{name}` is not a command in [[commands]]")));
            };
            let is_switch = matches!(command.kind, super::CommandKind::Switch { .. });
            let action = match (s.action.as_deref(), is_switch) {
                (Some("on"), true) => Action::On,
                (Some("off"), true) => Action::Off,
                (Some("once"), false) => Action::Press,
                (other, true) => {
                    return Err(err(format!(
                        "`action = {other:?}`: command `{name}` is a switch: use \"on\" or \"off\""
                    )))
                }
                (other, false) => {
                    return Err(err(format!(
                        "`action = {other:?}`: command `{name}` is a button: use \"once\""
                    )))
                }
            };
            return Ok(Step::Command {
                command: name.clone(),
                action,
            });
        }
        if let Some(output) = &s.output {
            let Some(target) = known.outputs.iter().find(|o| o.name == *output) else {
                return Err(err(format!("`{output}` is not an output in [[outputs]]")));
            };
            let pwm = matches!(target.drive, super::Drive::Pwm(_));
            return match (&s.set, s.pulse_s) {
                (Some(set), None) => {
                    let action = Action::parse(set.as_bytes())
                        .filter(|a| *a != Action::Press)
                        .filter(|a| pwm || !matches!(a, Action::Level(_)))
                        .ok_or_else(|| {
                            let levels = if pwm {
                                ", toggle or a level \"0\" to \"100\""
                            } else {
                                " or toggle"
                            };
                            err(format!("`set = \"{set}\"`: use on, off{levels}"))
                        })?;
                    Ok(Step::Set {
                        output: output.clone(),
                        action,
                    })
                }
                (None, Some(pulse)) => Ok(Step::Pulse {
                    output: output.clone(),
                    duration: seconds(pulse).ok_or_else(|| err("`pulse_s` must be more than 0".into()))?,
                }),
                _ => Err(err("an output action needs either `set` or `pulse_s`".into())),
            };
        }
        if let Some(topic) = &s.publish {
            if topic.is_empty() || topic.contains(['+', '#']) {
                return Err(err("`publish` must be a topic without wildcards".into()));
            }
            if topic.len() > MQTT_MAX_STRING {
                return Err(err(format!("`publish` {TOO_LONG_FOR_MQTT}")));
            }
            if s.payload.as_ref().is_some_and(|p| p.len() > MAX_PAYLOAD) {
                return Err(err(format!(
                    "`payload` must be at most {MAX_PAYLOAD} bytes (MQTT packets are capped at 64 KiB)"
                )));
            }
            if topic.len() + s.payload.as_ref().map_or(0, String::len) > MAX_PUBLISH {
                return Err(err(format!(
                    "`publish` and `payload` together must be at most {MAX_PUBLISH} bytes (MQTT packets are capped at 64 KiB)"
                )));
            }
            return Ok(Step::Publish {
                topic: topic.clone(),
                payload: s.payload.clone().unwrap_or_default(),
                retain: s.retain.unwrap_or(false),
            });
        }
        let delay = s.delay_s.unwrap_or_default();
        Ok(Step::Delay(
            seconds(delay).ok_or_else(|| err("`delay_s` must be more than 0".into()))?,
        ))
    }

    pub(super) fn buttons(&self, raw: RawButtons) -> Result<ButtonsConfig, ConfigError> {
        let reboot = match (raw.reboot, raw.reboot_command) {
            (false, _) => None,
            (true, None) => Some(vec!["systemctl".to_owned(), "reboot".to_owned()]),
            (true, Some(command)) if command.get_ref().is_empty() => {
                return Err(self.error(&command, "buttons.reboot_command", "needs a program to run"));
            }
            (true, Some(command)) => Some(command.into_inner()),
        };
        Ok(ButtonsConfig {
            restart: raw.restart,
            reboot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Context, Origin};

    fn load_error(text: &str) -> String {
        match Config::from_toml(text, Origin::BuiltIn, &Context::system()) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(error) => error.to_string(),
        }
    }

    /// The error for one automation with this trigger and these actions.
    fn error_of(trigger: &str, actions: &str) -> String {
        load_error(&format!(
            "[[automations]]\nname = \"a\"\ntrigger = {trigger}\nactions = {actions}\n"
        ))
    }

    #[test]
    fn a_publish_should_fit_an_mqtt_packet() {
        let long_payload = format!(
            "[{{ publish = \"x/y\", payload = \"{}\" }}]",
            "p".repeat(MAX_PAYLOAD + 1)
        );
        let message = error_of("{ interval_s = 1 }", &long_payload);
        assert!(
            message.contains("key `automations[0].actions[0]`") && message.contains("`payload` must be at most 16384"),
            "{message}"
        );
        let long_topic = format!("[{{ publish = \"{}\" }}]", "t".repeat(MQTT_MAX_STRING + 1));
        let message = error_of("{ interval_s = 1 }", &long_topic);
        assert!(message.contains("65535"), "{message}");
        let together = format!(
            "[{{ publish = \"{}\", payload = \"{}\" }}]",
            "t".repeat(MAX_PUBLISH - MAX_PAYLOAD + 1),
            "p".repeat(MAX_PAYLOAD)
        );
        assert!(error_of("{ interval_s = 1 }", &together).contains("together"));
        for bad in ["", "a/+", "a/#"] {
            let message = error_of("{ interval_s = 1 }", &format!("[{{ publish = \"{bad}\" }}]"));
            assert!(message.contains("without wildcards"), "{bad}: {message}");
        }
    }

    #[test]
    fn an_interval_should_be_at_least_a_tenth_of_a_second() {
        let message = error_of("{ interval_s = 0.05 }", "[{ delay_s = 1 }]");
        assert!(
            message.contains("key `automations[0].trigger`") && message.contains("at least 0.1"),
            "{message}"
        );
    }

    #[test]
    fn the_outputs_state_file_should_not_be_named_like_the_automations_file() {
        let message = load_error("[gpio]\nstate_file = \"/var/lib/majortom/automations.json\"\n");
        assert!(
            message.contains("gpio.state_file") && message.contains("automations.json"),
            "{message}"
        );
    }
}
