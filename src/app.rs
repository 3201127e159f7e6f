//! Wires the agent together: builds the hub, the sources, the outputs and
//! the sinks, runs them as tasks, and stops them in order.
//!
//! Two cancellation tokens make the stop ordered: producers (sources,
//! inputs, outputs) stop first, so the outputs' safe states reach the hub;
//! then the sinks, so MQTT publishes those states before `offline`.
//! Start-up errors (a port in use, a missing sensor, no GPIO) are returned
//! before any task starts; after that, tasks log their own errors and carry
//! on.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::automations::{self, Automations, Clock, LocalClock};
use crate::command::{CommandReceiver, Commands, Routes, Target, Targets};
use crate::commands::CommandSet;
use crate::config::{Config, Drive, NodeIdOrigin};
use crate::fleet::publisher::{Identity, Publisher};
use crate::fleet::{Fleet, FleetLink};
use crate::hal::cdev::CdevGpio;
use crate::hal::rpi::RppalGpio;
use crate::hal::select::{self, Choice};
use crate::hal::sim::{SimControl, SimGpio};
use crate::hal::Gpio;
use crate::hub::{EntitySpec, Group, Hub, DEFAULT_HISTORY_LEN};
use crate::node::{dashboard_url, lan_address, NodeInfo};
use crate::outputs::{self, Outputs};
use crate::resident;
use crate::sim_panel::SimPins;
use crate::sources::inputs::Input;
use crate::sources::sensors::setup as sensor_setup;
use crate::sources::system::{board_model, SystemSource};
use crate::state_file::{self, StateFile};
use crate::status::AgentStatus;
use crate::vocab::{Button, Component};
use crate::{command, mqtt, web};

/// How long producers get to stop (outputs to their safe state).
const PRODUCERS_GRACE: Duration = Duration::from_millis(300);
/// How long sinks get after that. The MQTT sink needs most of it to publish
/// `offline`; the whole stop stays well under 2 s.
const SINKS_GRACE: Duration = Duration::from_millis(1300);

/// A running agent.
pub struct Agent {
    producers: Stage,
    sinks: Stage,
    /// Where the web server listens, if it runs (useful with port 0).
    pub web_addr: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    pub status: Arc<AgentStatus>,
    /// The simulated GPIO backend's control handle, when it is in use.
    pub sim: Option<SimControl>,
    /// Presses of the agent's own buttons (restart, reboot).
    buttons: CommandReceiver,
    reboot_command: Option<Vec<String>>,
    /// The outputs' entity ids, for the Restart button's hand-over.
    output_names: Vec<String>,
    /// Set before a restart's stop: the outputs stay as they are.
    keep_outputs: Option<Arc<AtomicBool>>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A stop signal: exit.
    Stopped,
    /// The Restart button: start again from scratch (the caller re-executes
    /// the binary, with `kept_outputs` in `outputs::KEPT_ENV`, so that
    /// the outputs stay as they are: no safe state, no initial state).
    Restart { kept_outputs: String },
    /// The Reboot button: run this command.
    Reboot(Vec<String>),
}

/// A group of tasks stopped together.
struct Stage {
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// How many tasks were started; fewer running means one has died.
    spawned: usize,
}

impl Stage {
    fn new() -> Stage {
        Stage {
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            spawned: 0,
        }
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&mut self, task: F) {
        self.tasks.spawn(task);
        self.spawned += 1;
    }

    fn healthy(&self) -> bool {
        self.tasks.len() == self.spawned
    }

    /// Cancels and waits up to `grace`; false when something overstayed.
    async fn stop(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// Runs the agent until `shutdown` completes, then stops it. Under systemd
/// (`Type=notify`) it reports readiness, pings the watchdog while every task
/// is still running, and reports stopping. With `ready_file`, readiness is
/// also written there (see [`Agent::ready_json`]).
pub async fn run(
    config: Config,
    ready_file: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Outcome> {
    let mut agent = start(config).await?;
    // Whoever waits for the ready file would wait in vain: a failure to
    // write it stops the agent (through the one stop below) and says why.
    let unready = match ready_file {
        Some(path) => {
            let json = Arc::new(agent.ready_json().into_bytes());
            state_file::write_off_thread(path, json).await.err()
        }
        None => None,
    };
    if unready.is_none() {
        notify(sd_notify::NotifyState::Ready);
    }
    // WATCHDOG_USEC comes from outside: 0 would panic `interval`, a tiny
    // value would spin, a huge one overflow the timer.
    let watchdog = sd_notify::watchdog_enabled().filter(|timeout| !timeout.is_zero());
    let ping_every = watchdog.map_or(Duration::from_secs(3600), |timeout| {
        (timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(3600))
    });
    // On the grid: in the wake-up of the rounds due then.
    let mut ping = crate::time::aligned_interval(ping_every);
    tokio::pin!(shutdown);
    let mut reported_unhealthy = false;
    let settled = tokio::time::sleep(resident::STARTUP_SETTLES);
    tokio::pin!(settled);
    let mut released = false;
    let outcome = loop {
        if unready.is_some() {
            break Outcome::Stopped;
        }
        tokio::select! {
            () = &mut shutdown => break Outcome::Stopped,
            Some(press) = agent.buttons.recv() => match press.target {
                Target::Button(Button::Restart) => {
                    info!(origin = ?press.origin, "restart requested");
                    if let Some(keep) = &agent.keep_outputs {
                        keep.store(true, Ordering::SeqCst);
                    }
                    break Outcome::Restart { kept_outputs: String::new() };
                }
                Target::Button(Button::Reboot) => match agent.reboot_command.clone() {
                    Some(command) => {
                        warn!(origin = ?press.origin, ?command, "reboot requested");
                        break Outcome::Reboot(command);
                    }
                    None => warn!("ignoring a reboot press: buttons.reboot is off"),
                },
                other => warn!(target = ?other, "ignoring a command that is not a button press"),
            },
            () = &mut settled, if !released => {
                released = true;
                // Nothing to do about a failure (a kernel before 5.4): the
                // pages stay, as they always did.
                let _ = resident::release_startup_pages();
            }
            _ = ping.tick(), if watchdog.is_some() => {
                if agent.healthy() {
                    notify(sd_notify::NotifyState::Watchdog);
                } else if !reported_unhealthy {
                    // No more pings: systemd restarts us after WatchdogSec.
                    error!("a task of the agent has stopped; no longer pinging the watchdog");
                    reported_unhealthy = true;
                }
            }
        }
    };
    notify(sd_notify::NotifyState::Stopping);
    let (hub, output_names) = (agent.hub.clone(), std::mem::take(&mut agent.output_names));
    agent.stop().await;
    // Read after the stop: the outputs' last states, which they keep.
    let outcome = match outcome {
        Outcome::Restart { .. } => Outcome::Restart {
            kept_outputs: outputs::kept_states(&hub, &output_names),
        },
        other => other,
    };
    match unready {
        Some(error) => Err(anyhow::anyhow!("cannot write the --ready-file: {error}")),
        None => Ok(outcome),
    }
}

/// Tells systemd about a state change; a no-op outside systemd.
fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(error) = sd_notify::notify(&[state]) {
        warn!(%error, "cannot notify systemd");
    }
}

/// The GPIO backend the config asks for (see `hal::select`), why it was
/// chosen, and the simulation's control handle when that is what runs.
fn open_gpio(config: &Config) -> anyhow::Result<(Arc<dyn Gpio>, Option<SimControl>, String)> {
    let mut probe = select::probe(&config.root);
    let decision = select::decide(config.gpio.backend, config.gpio.chip.as_deref(), &probe)?;
    let reason = decision.reason;
    match decision.choice {
        Choice::Sim => {
            if config.gpio.backend == crate::config::Backend::Sim {
                info!(%reason, "using the simulated GPIO backend");
            } else {
                warn!(%reason, "using the simulated GPIO backend (set gpio.backend = \"sim\" to silence this)");
            }
            let gpio = SimGpio::new();
            let control = gpio.control();
            Ok((Arc::new(gpio), Some(control), reason))
        }
        Choice::Rppal => {
            let gpio = RppalGpio::new(&config.root)
                .context("cannot open the Raspberry Pi's GPIO (gpio.backend = \"rppal\")")?;
            info!(%reason, "using the rppal GPIO backend");
            Ok((Arc::new(gpio), None, reason))
        }
        Choice::Cdev(index) => {
            let chip = match probe.chips.swap_remove(index).opened {
                Ok(chip) => chip,
                Err(failure) => anyhow::bail!("cannot open the GPIO chip: {}", failure.cause()),
            };
            info!(%reason, "using the GPIO character device");
            Ok((Arc::new(CdevGpio::new(chip, &config.root)), None, reason))
        }
    }
}

/// Starts every part of the agent and returns once they are running.
pub async fn start(config: Config) -> anyhow::Result<Agent> {
    start_with_clock(config, Arc::new(LocalClock)).await
}

/// `start` with the clock daily automations follow (tests pass one that
/// moves with paused time).
pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Agent> {
    info!(config = %config.origin, node = %config.node.id, version = env!("CARGO_PKG_VERSION"), "starting majortom");
    for warning in &config.warnings {
        warn!("{warning}");
    }
    match (&config.node.id_origin, config.node.id_origin.describe(&config.node.id)) {
        (NodeIdOrigin::FactoryDefault { .. }, Some(why)) => warn!("{why}"),
        (_, Some(why)) => info!("{why}"),
        (_, None) => {}
    }
    let hub = Hub::new(DEFAULT_HISTORY_LEN);

    let system = config
        .system
        .as_ref()
        .map(|s| SystemSource::probe(&config.root, s.interval).with_filters(&s.filters));
    for spec in system.iter().flat_map(SystemSource::entities) {
        hub.register(spec);
    }

    // Hardware: claimed now, so a busy pin or a missing sensor stops the
    // start; outputs go to their initial state at once.
    let (gpio, sim, gpio_reason) = if config.uses_gpio() {
        let (gpio, sim, reason) = open_gpio(&config)?;
        (Some(gpio), sim, Some(reason))
    } else {
        (None, None, None)
    };
    let mut inputs = Vec::new();
    let mut outputs = None;
    let mut state_writers = Vec::new();
    if let Some(gpio) = &gpio {
        for input in &config.inputs {
            let claimed = Input::claim(gpio.as_ref(), input.clone())
                .with_context(|| format!("cannot set up input `{}` on {}", input.name, input.pin))?;
            hub.register(claimed.entity());
            inputs.push(claimed);
        }
        if !config.outputs.is_empty() {
            let (state_file, writer) = StateFile::new(config.gpio.state_file.clone());
            // What the process before a restart handed over, if this is one.
            let kept = std::env::var(outputs::KEPT_ENV)
                .map(|text| outputs::parse_kept(&text))
                .unwrap_or_default();
            let claimed = Outputs::claim(gpio.as_ref(), config.outputs.clone(), state_file, &kept)
                .context("cannot set up the outputs")?;
            state_writers.push(writer);
            for spec in claimed.entities() {
                hub.register(spec);
            }
            outputs = Some(claimed);
        }
    }
    let sensors = sensor_setup::from_config(&config, gpio.as_deref()).context("cannot set up the sensors")?;
    for spec in sensors.iter().flat_map(|s| s.entities()) {
        hub.register(spec);
    }

    let mqtt = match &config.mqtt {
        Some(mqtt) => {
            let contact = mqtt::ContactFile::beside(&config.gpio.state_file, &config.root);
            Some(mqtt::prepare(mqtt, &config.node.id, contact).context("cannot set up MQTT")?)
        }
        None => None,
    };

    // Bind before anything runs, so a port in use is a start-up error.
    let listener = match &config.web {
        Some(web) => Some(TcpListener::bind(web.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (is another program using it? set web.port)",
                web.listen
            )
        })?),
        None => None,
    };
    let web_addr = listener.as_ref().and_then(|l| l.local_addr().ok());

    let dashboard = web_addr.and_then(|addr| lan_address(addr.ip()).map(|host| dashboard_url(&host, addr.port())));
    let node = NodeInfo::detect(&config, board_model(&config.root), dashboard);
    let broker = config.mqtt.as_ref().map(|m| format!("{}:{}", m.host, m.port));
    let gpio_status = gpio.as_ref().zip(gpio_reason).map(|(g, reason)| (g.backend(), reason));
    let status = Arc::new(AgentStatus::new(node, broker, gpio_status));

    let mut producers = Stage::new();
    let mut sinks = Stage::new();
    // The fleet: our `info` goes out through the MQTT sink, which fills the
    // table the web side and the automations read.
    let fleet = match (&config.fleet, &mqtt) {
        (Some(fleet_config), Some(_)) => {
            let fleet = Fleet::new(&config.node.id);
            let identity = Identity {
                name: status.node.name.clone(),
                model: status.node.model.clone(),
                url: status.node.configuration_url.clone(),
            };
            let (publisher, info) = Publisher::new(hub.clone(), identity, fleet_config.info_interval);
            sinks.spawn(publisher.run(sinks.cancel.clone()));
            Some((fleet, info))
        }
        _ => None,
    };
    // Commands from the edges go through a router to whoever owns the
    // target: the outputs, the automations, or the agent's own buttons.
    // Each owner tells its targets; the edges resolve entity ids with them.
    let (commands, command_receiver) = command::channel();
    let mut targets = Targets::new();
    let mut routes = Routes {
        outputs: None,
        automations: None,
        buttons: None,
        commands: None,
    };
    // `[[commands]]`: a runner task each, and one task that takes routed
    // requests to them and mirrors their states into the hub.
    let mut command_set = CommandSet::new(&config.commands, &|name| std::env::var_os(name));
    let command_handles = command_set.handles();
    if !command_set.is_empty() {
        for spec in command_set.entities() {
            hub.register(spec);
        }
        for (id, component, target) in command_set.targets() {
            targets.add(id, component, false, target);
        }
        for runner in command_set.take_runners() {
            producers.spawn(runner.run(producers.cancel.clone()));
        }
        let (to_commands, commands_receiver) = command::channel();
        routes.commands = Some(to_commands);
        producers.spawn(command_set.run(hub.clone(), commands_receiver, producers.cancel.clone()));
    }
    let (to_outputs, outputs_receiver) = command::channel();
    let mut output_names = Vec::new();
    let mut keep_outputs = None;
    if let Some(outputs) = outputs {
        for (id, component, dimmable, target) in outputs.targets() {
            output_names.push(id.clone());
            targets.add(id, component, dimmable, target);
        }
        keep_outputs = Some(outputs.keeper());
        routes.outputs = Some(to_outputs.clone());
        producers.spawn(outputs.run(hub.clone(), outputs_receiver, producers.cancel.clone()));
    }
    let (publish, publishes) = command::publish_channel();
    let (state_file, writer) = StateFile::new(automations::state_file_beside(&config.gpio.state_file));
    let automations = Automations::new(
        config.automations.clone(),
        hub.clone(),
        &targets,
        // Through the router: steps drive outputs and run commands.
        (!config.outputs.is_empty() || !config.commands.is_empty()).then(|| commands.clone()),
        config.mqtt.is_some().then(|| publish.clone()),
        clock,
        state_file,
    )
    .with_fleet(fleet.as_ref().map(|(fleet, _)| fleet.subscribe()));
    if !automations.is_empty() {
        state_writers.push(writer);
        let (to_automations, automations_receiver) = command::channel();
        for spec in automations.entities() {
            hub.register(spec);
        }
        for (id, component, target) in automations.targets() {
            targets.add(id, component, false, target);
        }
        routes.automations = Some(to_automations);
        producers.spawn(automations.run(automations_receiver, producers.cancel.clone()));
    }
    let (to_buttons, buttons) = command::channel();
    for (button, spec) in button_entities(&config) {
        targets.add(button.id(), Component::Button, false, Target::Button(button));
        hub.register(spec);
    }
    routes.buttons = Some(to_buttons);
    let commands = Commands {
        targets: Arc::new(targets),
        sender: commands,
    };
    producers.spawn(command::route(command_receiver, routes, producers.cancel.clone()));
    // Each ends once its owner (outputs, automations) stops, after writing
    // the last save.
    for writer in state_writers {
        producers.spawn(writer.run());
    }
    for input in inputs {
        producers.spawn(input.run(hub.clone(), producers.cancel.clone()));
    }
    for sensor in sensors {
        producers.spawn(sensor.run(hub.clone(), producers.cancel.clone()));
    }
    if let Some(system) = system {
        producers.spawn(system.run(hub.clone(), producers.cancel.clone()));
    }
    if let Some(mqtt) = mqtt {
        sinks.spawn(mqtt::run(
            mqtt,
            hub.clone(),
            status.clone(),
            commands.clone(),
            publishes,
            fleet.as_ref().map(|(fleet, info)| FleetLink {
                fleet: fleet.clone(),
                info: info.clone(),
            }),
            sinks.cancel.clone(),
        ));
    } else {
        info!("MQTT is disabled");
    }
    if let Some(listener) = listener {
        let sim_panel = sim.clone().map(|control| {
            Arc::new(SimPins {
                control,
                inputs: config
                    .inputs
                    .iter()
                    .filter_map(|i| Some((i.name.clone(), i.pin.bcm()?)))
                    .collect(),
                outputs: config
                    .outputs
                    .iter()
                    .filter_map(|o| match &o.drive {
                        Drive::Gpio(pin) => Some((o.name.clone(), pin.bcm()?)),
                        Drive::Pwm(_) => None,
                    })
                    .collect(),
            }) as Arc<dyn web::SimPanel>
        });
        let token = config.web.as_ref().and_then(|w| w.token.clone());
        let hosts = config.web.as_ref().map(|w| w.allowed_hosts.clone()).unwrap_or_default();
        let mut state = web::AppState::new(hub.clone(), status.clone(), sim_panel, Some(commands.clone()), token)
            .with_allowed_hosts(hosts)
            .with_fleet(fleet.as_ref().map(|(fleet, _)| fleet.clone()));
        state.command_handles = command_handles;
        sinks.spawn(web::serve(listener, state, sinks.cancel.clone()));
    }
    Ok(Agent {
        producers,
        sinks,
        web_addr,
        hub,
        status,
        sim,
        buttons,
        reboot_command: config.buttons.reboot.clone(),
        output_names,
        keep_outputs,
    })
}

/// Home Assistant buttons for the agent itself: Restart (unless turned
/// off) and Reboot (only when turned on).
fn button_entities(config: &Config) -> Vec<(Button, EntitySpec)> {
    let mut buttons = Vec::new();
    for (button, wanted) in [
        (Button::Restart, config.buttons.restart),
        (Button::Reboot, config.buttons.reboot.is_some()),
    ] {
        if wanted {
            let mut spec = EntitySpec::output(button.id(), button.name(), Component::Button);
            spec.group = Group::System;
            // Home Assistant's button device class: both restart something.
            spec.device_class = Some("restart");
            spec.diagnostic = true;
            buttons.push((button, spec));
        }
    }
    buttons
}

impl Agent {
    /// What `--ready-file` holds: `{"pid": …, "web": "127.0.0.1:8080" or
    /// null, "node": …, "version": …}`, one line of JSON.
    pub fn ready_json(&self) -> String {
        // Nothing here needs escaping: a node id is `[a-z0-9_-]`, an
        // address and a version are plain too.
        let web = self
            .web_addr
            .map_or_else(|| "null".to_owned(), |addr| format!("\"{addr}\""));
        format!(
            "{{\"pid\":{},\"web\":{web},\"node\":\"{}\",\"version\":\"{}\"}}\n",
            std::process::id(),
            self.status.node.id,
            env!("CARGO_PKG_VERSION")
        )
    }

    /// True while every task is still running.
    pub fn healthy(&self) -> bool {
        self.producers.healthy() && self.sinks.healthy()
    }

    /// Stops producers (outputs to their safe state), then sinks; each
    /// stage bounded in time.
    pub async fn stop(self) {
        info!("stopping");
        if !self.producers.stop(PRODUCERS_GRACE).await {
            warn!("sources and outputs did not stop within {PRODUCERS_GRACE:?}");
        }
        if !self.sinks.stop(SINKS_GRACE).await {
            warn!("sinks did not stop within {SINKS_GRACE:?}; exiting anyway");
        }
        info!("stopped");
    }
}
