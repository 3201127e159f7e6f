//! Commands: what flows back from the sinks (MQTT `/set` topics, the web
//! API) to the outputs. Sinks only send [`Command`]s; the outputs task owns
//! the pins and decides what happens.

use tokio::sync::mpsc;

use crate::hub::{Component, EntitySpec};

/// What to do to an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    On,
    Off,
    Toggle,
    /// For buttons.
    Press,
    /// A level in percent for a dimmable (PWM) output: 0 turns it off.
    Level(u8),
}

impl Action {
    /// `ON`, `OFF`, `TOGGLE` or `PRESS`, in any case, or a level `0` to
    /// `100`; surrounding whitespace ignored.
    pub fn parse(payload: &[u8]) -> Option<Action> {
        let text = std::str::from_utf8(payload).ok()?.trim();
        if !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().filter(|n| *n <= 100).map(Action::Level);
        }
        if text.eq_ignore_ascii_case("on") {
            Some(Action::On)
        } else if text.eq_ignore_ascii_case("off") {
            Some(Action::Off)
        } else if text.eq_ignore_ascii_case("toggle") {
            Some(Action::Toggle)
        } else if text.eq_ignore_ascii_case("press") {
            Some(Action::Press)
        } else {
            None
        }
    }
}

/// Whether `entity` takes `action`: buttons take PRESS, switches, lights
/// and fans ON, OFF and TOGGLE, dimmable ones also a level; nothing else
/// takes any.
pub fn accepts(entity: &EntitySpec, action: Action) -> bool {
    match (entity.component, action) {
        (Component::Button, action) => action == Action::Press,
        (Component::Switch | Component::Light | Component::Fan, Action::Level(_)) => entity.dimmable,
        (Component::Switch | Component::Light | Component::Fan, action) => action != Action::Press,
        (Component::Sensor | Component::BinarySensor, _) => false,
    }
}

/// Where a command came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Mqtt,
    Web,
    Automation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The output's entity id.
    pub output: String,
    pub action: Action,
    pub origin: Origin,
}

/// How sinks hand commands to the outputs task. Bounded: a flood of
/// commands waits rather than growing memory.
pub type CommandSender = mpsc::Sender<Command>;
pub type CommandReceiver = mpsc::Receiver<Command>;

pub fn channel() -> (CommandSender, CommandReceiver) {
    mpsc::channel(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_should_parse_case_insensitively_and_reject_anything_else() {
        let check =
            |payload: &[u8], expected: Option<Action>| assert_eq!(Action::parse(payload), expected, "{payload:?}");
        check(b"ON", Some(Action::On));
        check(b"on", Some(Action::On));
        check(b" Off\n", Some(Action::Off));
        check(b"ToGgLe", Some(Action::Toggle));
        check(b"PRESS", Some(Action::Press));
        check(b"40", Some(Action::Level(40)));
        check(b" 100\n", Some(Action::Level(100)));
        check(b"0", Some(Action::Level(0)));
        for bad in [
            &b""[..],
            b"101",
            b"-1",
            b"4.5",
            b"1000",
            b"true",
            b"onn",
            b"{\"state\":\"ON\"}",
            b"\xff\xfe",
        ] {
            check(bad, None);
        }
    }
}

/// Forwards each command to the task that owns its target (outputs,
/// automations, the agent's own buttons), by entity id, until cancelled.
pub async fn route(
    mut commands: CommandReceiver,
    routes: std::collections::HashMap<String, CommandSender>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let command = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            command = commands.recv() => match command {
                Some(command) => command,
                // No MQTT and no web: nobody sends commands, but the task
                // lives on, or the agent would count it as failed.
                None => {
                    cancel.cancelled().await;
                    return;
                }
            },
        };
        match routes.get(&command.output) {
            Some(target) => {
                if target.send(command).await.is_err() {
                    tracing::debug!("a command's target has stopped");
                }
            }
            None => tracing::warn!(entity = %command.output, "ignoring command for something that takes none"),
        }
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[tokio::test]
    async fn commands_should_reach_the_task_that_owns_their_target() {
        let (input, receiver) = channel();
        let (outputs, mut to_outputs) = channel();
        let (automations, mut to_automations) = channel();
        let routes = [("relay".to_owned(), outputs), ("automation_x".to_owned(), automations)]
            .into_iter()
            .collect();
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(route(receiver, routes, cancel.clone()));
        for target in ["relay", "nobody", "automation_x"] {
            let command = Command {
                output: target.into(),
                action: Action::On,
                origin: Origin::Web,
            };
            input.send(command).await.expect("router runs");
        }
        assert_eq!(to_outputs.recv().await.map(|c| c.output), Some("relay".into()));
        assert_eq!(
            to_automations.recv().await.map(|c| c.output),
            Some("automation_x".into())
        );
        cancel.cancel();
        task.await.expect("router ends");
        assert!(to_outputs.try_recv().is_err(), "the unknown target went nowhere");
    }

    #[tokio::test(start_paused = true)]
    async fn without_senders_the_router_should_run_until_cancelled() {
        let (input, receiver) = channel();
        drop(input);
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(route(receiver, Default::default(), cancel.clone()));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(!task.is_finished(), "a router with nobody to hear from still runs");
        cancel.cancel();
        task.await.expect("router ends");
    }
}
