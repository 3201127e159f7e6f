//! An automation's `trigger`: the raw keys, their checks against the rest
//! of the config (`Known`), and the typed `Trigger` the runtime matches.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::automations::{seconds, Known, MIN_INTERVAL_S};
use super::{ConfigError, Validator};
use crate::vocab::{Press, FLEET_ALERTS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    On,
    Off,
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// An input's debounced state changes.
    Input {
        input: String,
        to: Change,
    },
    /// A `[[commands]]` switch's status changes (its `status` program or
    /// its last successful run).
    Command {
        command: String,
        to: Change,
    },
    /// A press event of an input with `events = true`.
    Press {
        input: String,
        press: Press,
    },
    /// A numeric entity crosses `above` (rising) or `below` (falling); with
    /// both, the band between them is hysteresis.
    Threshold {
        entity: String,
        above: Option<f64>,
        below: Option<f64>,
    },
    Interval(Duration),
    /// A node of the fleet goes online or offline (a live status change
    /// seen on the broker); `node` is a node id or `*` for any.
    Node {
        node: String,
        online: bool,
    },
    /// An alert appears on a node of the fleet (`under_voltage`,
    /// `throttled`, `disk_full`); `node` is a node id or `*`.
    NodeAlert {
        node: String,
        alert: &'static str,
    },
    /// Local time of day, `HH:MM`, in minutes after midnight.
    Daily {
        minute_of_day: u32,
    },
}

/// How `majortom check` says what starts an automation.
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Input { input, to: Change::On } => write!(f, "`{input}` turns on"),
            Trigger::Input { input, to: Change::Off } => write!(f, "`{input}` turns off"),
            Trigger::Input { input, to: Change::Any } => write!(f, "`{input}` changes"),
            Trigger::Command {
                command,
                to: Change::On,
            } => write!(f, "command `{command}` turns on"),
            Trigger::Command {
                command,
                to: Change::Off,
            } => write!(f, "command `{command}` turns off"),
            Trigger::Command {
                command,
                to: Change::Any,
            } => write!(f, "command `{command}` changes"),
            Trigger::Press { input, press } => write!(f, "a {} press of `{input}`", press.as_str()),
            Trigger::Threshold { entity, above, below } => match (above, below) {
                (Some(above), Some(below)) => write!(f, "`{entity}` rises above {above} (again below {below})"),
                (Some(above), None) => write!(f, "`{entity}` rises above {above}"),
                (None, Some(below)) => write!(f, "`{entity}` falls below {below}"),
                (None, None) => write!(f, "`{entity}` crosses no threshold"),
            },
            Trigger::Interval(every) => write!(f, "every {} s", every.as_secs_f64()),
            Trigger::Node { node, online } => {
                let status = if *online { "online" } else { "offline" };
                if node == "*" {
                    write!(f, "any node of the fleet goes {status}")
                } else {
                    write!(f, "node `{node}` goes {status}")
                }
            }
            Trigger::NodeAlert { node, alert } if node == "*" => write!(f, "`{alert}` on any node of the fleet"),
            Trigger::NodeAlert { node, alert } => write!(f, "`{alert}` on node `{node}`"),
            Trigger::Daily { minute_of_day } => {
                write!(f, "daily at {:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrigger {
    pub(super) input: Option<String>,
    pub(super) command: Option<String>,
    pub(super) to: Option<String>,
    pub(super) press: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) entity: Option<String>,
    pub(super) above: Option<f64>,
    pub(super) below: Option<f64>,
    pub(super) interval_s: Option<f64>,
    pub(super) at: Option<String>,
    pub(super) node: Option<String>,
    pub(super) status: Option<String>,
    pub(super) alert: Option<String>,
}

/// `HH:MM` → minutes after midnight.
pub(super) fn parse_time_of_day(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60 && text.trim().len() == 5).then_some(hours * 60 + minutes)
}

impl Validator<'_> {
    pub(super) fn trigger(
        &self,
        raw: &Spanned<RawTrigger>,
        key: &str,
        known: &Known<'_>,
    ) -> Result<Trigger, ConfigError> {
        let t = raw.get_ref();
        let err = |message: String| self.error(raw, key, message);
        let kinds = [
            t.input.is_some(),
            t.command.is_some(),
            t.press.is_some(),
            t.entity.is_some(),
            t.interval_s.is_some(),
            t.at.is_some(),
            t.node.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(err(
                "needs exactly one of `input` or `command` (with `to`), `press` (with `kind`), `entity` (with `above`/`below`), `interval_s`, `at`, `node` (with `status` or `alert`)".into(),
            ));
        }
        let to = || match t.to.as_deref() {
            Some("on") => Ok(Change::On),
            Some("off") => Ok(Change::Off),
            Some("change") | None => Ok(Change::Any),
            Some(other) => Err(err(format!("`to = \"{other}\"`: use on, off or change"))),
        };
        if let Some(node) = &t.node {
            if !known.fleet {
                return Err(err(
                    "a `node` trigger needs the fleet: turn on [mqtt] and [fleet]".into()
                ));
            }
            let valid = node == "*"
                || ((1..=64).contains(&node.len())
                    && node
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
            if !valid {
                return Err(err(format!(
                    "`node = \"{node}\"`: a node id ([a-z0-9_-]) or \"*\" for any"
                )));
            }
            if let (Some(alert), None) = (&t.alert, &t.status) {
                let Some(alert) = FLEET_ALERTS.into_iter().find(|a| a == alert) else {
                    return Err(err(format!(
                        "`alert = \"{alert}\"`: use one of {}",
                        FLEET_ALERTS.join(", ")
                    )));
                };
                return Ok(Trigger::NodeAlert {
                    node: node.clone(),
                    alert,
                });
            }
            let online = match (t.status.as_deref(), &t.alert) {
                (Some(_), Some(_)) => return Err(err("a `node` trigger takes `status` or `alert`, not both".into())),
                (Some("online"), None) => true,
                (Some("offline"), None) => false,
                (Some(other), None) => return Err(err(format!("`status = \"{other}\"`: use online or offline"))),
                (None, _) => {
                    return Err(err(
                        "a `node` trigger needs `status = \"online\"` or `\"offline\"`, or an `alert`".into(),
                    ))
                }
            };
            return Ok(Trigger::Node {
                node: node.clone(),
                online,
            });
        }
        if let Some(input) = &t.input {
            if !known.inputs.iter().any(|i| i.name == *input) {
                return Err(err(format!("`{input}` is not an input in [[inputs]]")));
            }
            return Ok(Trigger::Input {
                input: input.clone(),
                to: to()?,
            });
        }
        if let Some(command) = &t.command {
            if known.command_switch(command).is_none() {
                return Err(err(format!(
                    "`{command}` is not a switch in [[commands]] (one with `on` and `off`, or `unit`)"
                )));
            }
            return Ok(Trigger::Command {
                command: command.clone(),
                to: to()?,
            });
        }
        if let Some(input) = &t.press {
            let Some(config) = known.inputs.iter().find(|i| i.name == *input) else {
                return Err(err(format!("`{input}` is not an input in [[inputs]]")));
            };
            if config.presses.is_none() {
                return Err(err(format!(
                    "input `{input}` has no press events: set `events = true` on it"
                )));
            }
            let press = match t.kind.as_deref() {
                Some("single") | None => Press::Single,
                Some("double") => Press::Double,
                Some("long") => Press::Long,
                Some(other) => return Err(err(format!("`kind = \"{other}\"`: use single, double or long"))),
            };
            return Ok(Trigger::Press {
                input: input.clone(),
                press,
            });
        }
        if let Some(entity) = &t.entity {
            if !known.is_numeric(entity) {
                return Err(err(format!(
                    "`{entity}` is not a numeric entity (a sensor or a system value)"
                )));
            }
            if t.above.is_none() && t.below.is_none() {
                return Err(err("a threshold needs `above` and/or `below`".into()));
            }
            if let (Some(above), Some(below)) = (t.above, t.below) {
                if below >= above {
                    return Err(err("for hysteresis `below` must be lower than `above`".into()));
                }
            }
            return Ok(Trigger::Threshold {
                entity: entity.clone(),
                above: t.above,
                below: t.below,
            });
        }
        if let Some(interval) = t.interval_s {
            let every = seconds(interval)
                .filter(|_| interval >= MIN_INTERVAL_S)
                .ok_or_else(|| err(format!("`interval_s` must be at least {MIN_INTERVAL_S} (seconds)")))?;
            return Ok(Trigger::Interval(every));
        }
        let at = t.at.as_deref().unwrap_or_default();
        let minute_of_day =
            parse_time_of_day(at).ok_or_else(|| err(format!("`at = \"{at}\"`: use a 24-hour HH:MM time")))?;
        Ok(Trigger::Daily { minute_of_day })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_should_be_24_hour_hh_mm() {
        assert_eq!(parse_time_of_day("07:30"), Some(450));
        assert_eq!(parse_time_of_day("00:00"), Some(0));
        assert_eq!(parse_time_of_day("23:59"), Some(1439));
        for bad in ["24:00", "7:30", "07:60", "0730", "", "ab:cd"] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
