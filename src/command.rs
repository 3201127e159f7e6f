//! Commands: what flows back against the data, from the edges (MQTT `/set`
//! topics, the web API, automations) to whoever owns the target: the
//! outputs task, the automations, the agent's own buttons. And the other
//! message that flows that way: an automation's MQTT publish.
//!
//! An entity id from outside is resolved once, at the edge, through
//! [`Targets`] into a typed [`Target`]; from there on a command carries no
//! string, and [`route`] hands it on by its target's kind.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::vocab::Component;
pub use crate::vocab::{Action, Button};

/// An output, by its place among the configured outputs (the outputs task
/// hands these out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutputId(pub usize);

/// An automation's on/off switch, by its place among the automations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AutomationId(pub usize);

/// What a command is for. A new kind of target (a shell command, a PWM
/// output) is a new variant here and an arm in [`route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Output(OutputId),
    Automation(AutomationId),
    Button(Button),
}

/// Where a command came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Mqtt,
    Web,
    Automation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub target: Target,
    pub action: Action,
    pub origin: Origin,
}

/// Why an entity id and an action do not make a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing by that id takes commands.
    Unknown,
    /// It does, but not this action (a button takes PRESS, a switch the rest).
    NotAccepted(Component),
}

/// Every entity that takes commands: its id, its component, whether it
/// takes a level (a PWM output) and its target.
/// Built once at start by the owners of the targets; the edges look ids up
/// here and nowhere else.
#[derive(Debug, Default)]
pub struct Targets {
    /// Sorted by id, for `binary_search`.
    entries: Vec<(String, Component, bool, Target)>,
}

impl Targets {
    pub fn new() -> Targets {
        Targets::default()
    }

    /// Adds (or replaces) the target of entity `id`.
    pub fn add(&mut self, id: impl Into<String>, component: Component, dimmable: bool, target: Target) {
        let id = id.into();
        let entry = (id, component, dimmable, target);
        match self.entries.binary_search_by(|(e, ..)| e.as_str().cmp(&entry.0)) {
            Ok(at) => self.entries[at] = entry,
            Err(at) => self.entries.insert(at, entry),
        }
    }

    /// The target and component of entity `id`, if it takes commands.
    pub fn resolve(&self, id: &str) -> Option<(Target, Component)> {
        let at = self.entries.binary_search_by(|(e, ..)| e.as_str().cmp(id)).ok()?;
        let (_, component, _, target) = &self.entries[at];
        Some((*target, *component))
    }

    /// `action` for entity `id` as a command, or why not.
    pub fn command(&self, id: &str, action: Action, origin: Origin) -> Result<Command, Refusal> {
        let at = self.entries.binary_search_by(|(e, ..)| e.as_str().cmp(id));
        let (_, component, dimmable, target) = *at.map(|at| &self.entries[at]).map_err(|_| Refusal::Unknown)?;
        if !action.accepted_by(component, dimmable) {
            return Err(Refusal::NotAccepted(component));
        }
        Ok(Command { target, action, origin })
    }

    /// The entity id of `target`, for logs and echoes.
    pub fn id_of(&self, target: Target) -> Option<&str> {
        self.entries
            .iter()
            .find(|(.., t)| *t == target)
            .map(|(id, ..)| id.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How sinks hand commands on. Bounded: a flood of commands waits rather
/// than growing memory.
pub type CommandSender = mpsc::Sender<Command>;
pub type CommandReceiver = mpsc::Receiver<Command>;

pub fn channel() -> (CommandSender, CommandReceiver) {
    mpsc::channel(64)
}

/// What an edge needs to take commands: the targets to resolve ids with
/// and the router to send to.
#[derive(Clone)]
pub struct Commands {
    pub targets: Arc<Targets>,
    pub sender: CommandSender,
}

/// An MQTT message an automation wants sent. The MQTT sink sends it when
/// connected and drops it (with a log line) when not: nothing piles up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

/// Messages waiting for the MQTT sink; more are dropped with a warning.
const PUBLISH_QUEUE: usize = 16;

pub fn publish_channel() -> (mpsc::Sender<Publish>, mpsc::Receiver<Publish>) {
    mpsc::channel(PUBLISH_QUEUE)
}

/// Where [`route`] sends each kind of target; `None`: nothing of that kind
/// exists.
pub struct Routes {
    pub outputs: Option<CommandSender>,
    pub automations: Option<CommandSender>,
    pub buttons: Option<CommandSender>,
}

/// Forwards each command to the task that owns its target, by the
/// target's kind, until cancelled.
pub async fn route(mut commands: CommandReceiver, routes: Routes, cancel: tokio_util::sync::CancellationToken) {
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
        let owner = match command.target {
            Target::Output(_) => &routes.outputs,
            Target::Automation(_) => &routes.automations,
            Target::Button(_) => &routes.buttons,
        };
        match owner {
            Some(owner) => {
                if owner.send(command).await.is_err() {
                    tracing::debug!("a command's target has stopped");
                }
            }
            None => tracing::warn!(target = ?command.target, "ignoring command for something that is not there"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_should_resolve_once_into_targets_that_take_the_action() {
        let mut targets = Targets::new();
        targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
        targets.add(
            "automation_x",
            Component::Switch,
            false,
            Target::Automation(AutomationId(0)),
        );
        targets.add("restart", Component::Button, false, Target::Button(Button::Restart));
        let command = targets.command("relay", Action::Toggle, Origin::Mqtt).expect("valid");
        assert_eq!(command.target, Target::Output(OutputId(0)));
        assert_eq!(
            targets.command("restart", Action::Press, Origin::Web).map(|c| c.target),
            Ok(Target::Button(Button::Restart))
        );
        assert_eq!(
            targets.command("restart", Action::On, Origin::Web),
            Err(Refusal::NotAccepted(Component::Button))
        );
        assert_eq!(
            targets.command("relay", Action::Press, Origin::Web),
            Err(Refusal::NotAccepted(Component::Switch))
        );
        assert_eq!(
            targets.command("nobody", Action::On, Origin::Web),
            Err(Refusal::Unknown)
        );
        assert_eq!(targets.id_of(Target::Automation(AutomationId(0))), Some("automation_x"));
    }

    #[tokio::test]
    async fn commands_should_reach_the_task_that_owns_their_target() {
        let (input, receiver) = channel();
        let (outputs, mut to_outputs) = channel();
        let (automations, mut to_automations) = channel();
        let routes = Routes {
            outputs: Some(outputs),
            automations: Some(automations),
            buttons: None,
        };
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(route(receiver, routes, cancel.clone()));
        for target in [
            Target::Output(OutputId(1)),
            Target::Button(Button::Reboot),
            Target::Automation(AutomationId(2)),
        ] {
            let command = Command {
                target,
                action: Action::On,
                origin: Origin::Web,
            };
            input.send(command).await.expect("router runs");
        }
        assert_eq!(
            to_outputs.recv().await.map(|c| c.target),
            Some(Target::Output(OutputId(1)))
        );
        assert_eq!(
            to_automations.recv().await.map(|c| c.target),
            Some(Target::Automation(AutomationId(2)))
        );
        cancel.cancel();
        task.await.expect("router ends");
        assert!(to_outputs.try_recv().is_err(), "the button press went nowhere");
    }

    #[tokio::test(start_paused = true)]
    async fn without_senders_the_router_should_run_until_cancelled() {
        let (input, receiver) = channel();
        drop(input);
        let cancel = tokio_util::sync::CancellationToken::new();
        let routes = Routes {
            outputs: None,
            automations: None,
            buttons: None,
        };
        let task = tokio::spawn(route(receiver, routes, cancel.clone()));
        // A minute of paused time (it passes once the router waits): that
        // it keeps running through it is what is under test.
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(!task.is_finished(), "a router with nobody to hear from still runs");
        cancel.cancel();
        task.await.expect("router ends");
    }
}
