//! Wires the agent together: builds the hub, the sources and the sinks, runs
//! them as tasks, and stops them in order.
//!
//! Owns the one [`CancellationToken`] every task watches. Start-up errors
//! (a port in use) are returned before any task starts; after that, tasks
//! log their own errors and carry on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::hub::{Hub, DEFAULT_HISTORY_LEN};
use crate::node::{dashboard_url, lan_address, NodeInfo};
use crate::sources::system::SystemSource;
use crate::status::AgentStatus;
use crate::{command, mqtt, web};

/// How long tasks get to finish after a stop request. The MQTT sink needs
/// most of it to publish `offline`; the whole stop stays well under 2 s.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// A running agent.
pub struct Agent {
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Where the web server listens, if it runs (useful with port 0).
    pub web_addr: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    pub status: Arc<AgentStatus>,
    /// How many tasks were started; fewer running means one has died.
    spawned: usize,
}

/// Runs the agent until `shutdown` completes, then stops it. Under systemd
/// (`Type=notify`) it reports readiness, pings the watchdog while every task
/// is still running, and reports stopping.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let agent = start(config).await?;
    notify(sd_notify::NotifyState::Ready);
    let watchdog = sd_notify::watchdog_enabled();
    let mut ping = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |timeout| timeout / 2));
    tokio::pin!(shutdown);
    let mut reported_unhealthy = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
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
    }
    notify(sd_notify::NotifyState::Stopping);
    agent.stop().await;
    Ok(())
}

/// Tells systemd about a state change; a no-op outside systemd.
fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(error) = sd_notify::notify(&[state]) {
        warn!(%error, "cannot notify systemd");
    }
}

/// Starts every part of the agent and returns once they are running.
pub async fn start(config: Config) -> anyhow::Result<Agent> {
    info!(config = %config.origin, node = %config.node.id, version = env!("CARGO_PKG_VERSION"), "starting majortom");
    let hub = Hub::new(DEFAULT_HISTORY_LEN);

    let system = config
        .system
        .as_ref()
        .map(|s| SystemSource::probe(&config.root, s.interval));
    for spec in system.iter().flat_map(SystemSource::entities) {
        hub.register(spec);
    }

    let mqtt = match &config.mqtt {
        Some(mqtt) => Some(mqtt::prepare(mqtt, &config.node.id).context("cannot set up MQTT")?),
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
    let node = NodeInfo::detect(&config, dashboard);
    let broker = config.mqtt.as_ref().map(|m| format!("{}:{}", m.host, m.port));
    let status = Arc::new(AgentStatus::new(node, broker));

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    // Until outputs exist, commands have nowhere to go; the receiver is
    // dropped and the MQTT sink reports unknown outputs anyway.
    let (commands, _command_receiver) = command::channel();
    if let Some(mqtt) = mqtt {
        tasks.spawn(mqtt::run(
            mqtt,
            hub.clone(),
            status.clone(),
            commands.clone(),
            cancel.clone(),
        ));
    } else {
        info!("MQTT is disabled");
    }
    if let Some(listener) = listener {
        let state = web::AppState {
            hub: hub.clone(),
            status: status.clone(),
        };
        tasks.spawn(web::serve(listener, state, cancel.clone()));
    }
    if let Some(system) = system {
        tasks.spawn(system.run(hub.clone(), cancel.clone()));
    }
    Ok(Agent {
        spawned: tasks.len(),
        cancel,
        tasks,
        web_addr,
        hub,
        status,
    })
}

impl Agent {
    /// True while every task is still running.
    pub fn healthy(&self) -> bool {
        self.tasks.len() == self.spawned
    }

    /// Cancels every task and waits (bounded) for them to finish.
    pub async fn stop(self) {
        info!("stopping");
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait()).await.is_err() {
            warn!("some tasks did not stop within {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        info!("stopped");
    }
}
