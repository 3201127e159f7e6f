//! Commands as entities of the agent: each command is a hub entity (a
//! switch for `on`/`off`, a button for `once`), so MQTT discovery, the
//! dashboard and automations see it like any output; its target routes
//! requests to its [`CommandHandle`].
//!
//! [`CommandSet::run`] is the one task between the two sides: commands from
//! the router become [`CommandHandle::request`]s, and each command's
//! [`CommandState`] is mirrored into the hub (value = status, availability
//! = the status check works, attributes = the running action and the last
//! run). Owns no process: the [`CommandRunner`]s run the programs.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::controller::{start, Action, CommandHandle, CommandRunner, CommandState};
use super::status::Status;
use crate::command::{self, CommandId, CommandReceiver, Target};
use crate::config::{CommandConfig, CommandKind};
use crate::hub::{EntitySpec, Group, Hub, Value};
use crate::vocab::Component;

/// The configured commands: handles for the edges, runners to spawn.
pub struct CommandSet {
    handles: Vec<CommandHandle>,
    runners: Vec<CommandRunner>,
    specs: Vec<EntitySpec>,
}

impl CommandSet {
    /// Builds every command of the config; `env` is the agent's
    /// environment (see [`start`]).
    pub fn new(configs: &[CommandConfig], env: &dyn Fn(&str) -> Option<OsString>) -> CommandSet {
        let mut commands = CommandSet {
            handles: Vec::new(),
            runners: Vec::new(),
            specs: Vec::new(),
        };
        for config in configs {
            let (handle, runner) = start(config, env);
            commands.handles.push(handle);
            commands.runners.push(runner);
            commands.specs.push(spec(config));
        }
        commands
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The hub entities, one per command.
    pub fn entities(&self) -> impl Iterator<Item = EntitySpec> + '_ {
        self.specs.iter().cloned()
    }

    /// Each command's entity id, component and target.
    pub fn targets(&self) -> impl Iterator<Item = (String, Component, Target)> + '_ {
        self.specs
            .iter()
            .enumerate()
            .map(|(at, spec)| (spec.id.clone(), spec.component, Target::Command(CommandId(at))))
    }

    /// The handles, for the web side (state and last output).
    pub fn handles(&self) -> Arc<[CommandHandle]> {
        self.handles.clone().into()
    }

    /// Takes the runners out, to be spawned as tasks.
    pub fn take_runners(&mut self) -> Vec<CommandRunner> {
        std::mem::take(&mut self.runners)
    }

    /// Routes `requests` to the commands and mirrors their states into
    /// `hub` until `cancel`.
    pub async fn run(self, hub: Arc<Hub>, mut requests: CommandReceiver, cancel: CancellationToken) {
        let mut mirrors = tokio::task::JoinSet::new();
        for handle in &self.handles {
            mirrors.spawn(mirror(
                handle.subscribe(),
                handle.name().to_owned(),
                hub.clone(),
                cancel.clone(),
            ));
        }
        loop {
            let request = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                request = requests.recv() => match request {
                    Some(request) => request,
                    None => {
                        cancel.cancelled().await;
                        break;
                    }
                },
            };
            let Target::Command(CommandId(at)) = request.target else {
                continue;
            };
            let Some(handle) = self.handles.get(at) else {
                continue;
            };
            let Some(action) = translate(request.action, &handle.state()) else {
                warn!(command = handle.name(), action = ?request.action, "ignoring an action a command does not take");
                continue;
            };
            match handle.request(action) {
                Ok(accepted) => {
                    info!(command = handle.name(), action = action.as_str(), origin = ?request.origin, ?accepted, "command requested")
                }
                Err(refused) => {
                    warn!(command = handle.name(), action = action.as_str(), origin = ?request.origin, %refused, "command refused")
                }
            }
        }
        while mirrors.join_next().await.is_some() {}
    }
}

/// A command's hub entity.
fn spec(config: &CommandConfig) -> EntitySpec {
    let component = match config.kind {
        CommandKind::Switch { .. } => Component::Switch,
        CommandKind::Button { .. } => Component::Button,
    };
    let mut spec = EntitySpec::output(&config.name, &config.label, component).own_availability();
    spec.group = Group::Commands;
    spec
}

/// The command action an entity action asks for: a switch takes ON, OFF
/// and TOGGLE (against its known status), a button PRESS.
pub fn translate(action: command::Action, state: &CommandState) -> Option<Action> {
    match action {
        command::Action::On => Some(Action::On),
        command::Action::Off => Some(Action::Off),
        command::Action::Toggle => Some(if state.status == Status::On {
            Action::Off
        } else {
            Action::On
        }),
        command::Action::Press => Some(Action::Once),
        command::Action::Level(_) => None,
    }
}

/// Copies one command's state into the hub at start and on every change
/// (an attribute only when it changed: each one is broadcast).
async fn mirror(mut state: watch::Receiver<CommandState>, id: String, hub: Arc<Hub>, cancel: CancellationToken) {
    let is_switch = hub.get(&id).is_some_and(|e| e.spec.component == Component::Switch);
    let mut shown: (Option<Action>, Option<SystemTime>) = (None, None);
    loop {
        let current = state.borrow_and_update().clone();
        match current.status {
            Status::On if is_switch => hub.set(&id, Value::Bool(true)),
            Status::Off if is_switch => hub.set(&id, Value::Bool(false)),
            _ => false,
        };
        hub.set_available(&id, current.available);
        let running = current.running.as_ref().map(|r| r.action);
        if running != shown.0 {
            hub.set_attribute(&id, "running", running.map_or("", Action::as_str).to_owned());
        }
        let last_at = current.last_run.as_ref().map(|last| last.at);
        if let Some(last) = current.last_run.as_ref().filter(|_| last_at != shown.1) {
            hub.set_attribute(
                &id,
                "last_run",
                format!("{}: {}", last.action.as_str(), last.finished.ended),
            );
        }
        shown = (running, last_at);
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            changed = state.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::command::{Command, Origin};
    use crate::config::{Concurrency, Program, RunSettings};

    fn switch(name: &str) -> CommandConfig {
        CommandConfig {
            name: name.into(),
            label: "Heater".into(),
            kind: CommandKind::Switch {
                on: Program::Argv(vec!["true".into()]),
                off: Program::Argv(vec!["false".into()]),
            },
            status: None,
            run: RunSettings {
                timeout: Duration::from_secs(5),
                env: vec![],
                working_dir: "/".into(),
            },
            concurrency: Concurrency::Refuse,
            unit: None,
        }
    }

    fn env(name: &str) -> Option<OsString> {
        (name == "PATH").then(|| std::env::var_os("PATH")).flatten()
    }

    #[test]
    fn entity_actions_should_map_to_command_actions() {
        let (handle, _runner) = start(&switch("x"), &env);
        let mut state = handle.state();
        assert_eq!(translate(command::Action::On, &state), Some(Action::On));
        assert_eq!(translate(command::Action::Press, &state), Some(Action::Once));
        assert_eq!(translate(command::Action::Toggle, &state), Some(Action::On));
        state.status = Status::On;
        assert_eq!(translate(command::Action::Toggle, &state), Some(Action::Off));
        assert_eq!(translate(command::Action::Level(50), &state), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_routed_command_should_run_and_its_state_should_reach_the_hub() {
        let mut set = CommandSet::new(&[switch("heater")], &env);
        let hub = Hub::new(8);
        for spec in set.entities() {
            assert_eq!((spec.component, spec.group), (Component::Switch, Group::Commands));
            hub.register(spec);
        }
        let targets: Vec<_> = set.targets().collect();
        assert_eq!(
            targets,
            [("heater".to_owned(), Component::Switch, Target::Command(CommandId(0)))]
        );
        let cancel = CancellationToken::new();
        let runners: Vec<_> = set
            .take_runners()
            .into_iter()
            .map(|runner| tokio::spawn(runner.run(cancel.clone())))
            .collect();
        let (sender, receiver) = command::channel();
        let task = tokio::spawn(set.run(hub.clone(), receiver, cancel.clone()));
        let mut changes = hub.subscribe();
        let send = |action| Command {
            target: Target::Command(CommandId(0)),
            action,
            origin: Origin::Mqtt,
        };
        sender.send(send(command::Action::On)).await.expect("send");
        // Without `status`, a switch follows its last successful run.
        loop {
            if let crate::hub::HubEvent::Updated(spec, Value::Bool(true)) = changes.recv().await.expect("event") {
                assert_eq!(spec.id, "heater");
                break;
            }
        }
        let entity = hub.get("heater").expect("entity");
        assert!(entity.available);
        // `off` fails (`false`): the state stays on, the run is recorded.
        sender.send(send(command::Action::Off)).await.expect("send");
        loop {
            if let crate::hub::HubEvent::Attributes(_) = changes.recv().await.expect("event") {
                let entity = hub.get("heater").expect("entity");
                let last = entity
                    .attributes
                    .iter()
                    .find(|(k, _)| *k == "last_run")
                    .map(|(_, v)| v.clone());
                if last.as_deref() == Some("off: exit code 1") {
                    break;
                }
            }
        }
        assert_eq!(hub.get("heater").and_then(|e| e.value), Some(Value::Bool(true)));
        cancel.cancel();
        task.await.expect("ends");
        for runner in runners {
            runner.await.expect("ends");
        }
    }
}
