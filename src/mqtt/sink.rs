//! The MQTT sink's driver: owns rumqttc's client, feeds the pure
//! [`SinkState`] with what happens (the connection task's reports, hub
//! changes, automations' messages), carries out the actions it returns,
//! flushes its outbox as the client has room, and publishes `offline` on a
//! clean stop. Every decision is in `state.rs`; here is only I/O.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::command::{Commands, Publish};
use crate::config::{MqttConfig, Protocol};
use crate::fleet::{Fleet, FleetLink};
use crate::hub::Hub;
use crate::mqtt::backoff::Backoff;
use crate::mqtt::client::{Busy, Client, Delivery, Settings};
use crate::mqtt::connection::{drive, ConnectionEvent};
use crate::mqtt::contact::ContactFile;
use crate::mqtt::link::{Link, BACKOFF_INITIAL, BACKOFF_MAX};
use crate::mqtt::outbox::Outbox;
use crate::mqtt::state::{SinkAction, SinkEvent, SinkState, UNAVAILABLE};
use crate::mqtt::tls::{self, TlsError};
use crate::mqtt::topics::Topics;
use crate::state_file::write_off_thread;
use crate::status::AgentStatus;

/// How long a stop may spend getting `offline` and DISCONNECT out.
const STOP_GRACE: Duration = Duration::from_millis(1000);
/// How soon to retry a flush that found rumqttc's channel full.
const FLUSH_RETRY: Duration = Duration::from_millis(20);

/// Everything the sink needs that can fail, built before the agent starts so
/// that bad TLS material is a start-up error.
pub struct Prepared {
    settings: Settings,
    topics: Topics,
    protocol: Protocol,
    command_max_age: Duration,
    contact: ContactFile,
    /// When the last run last had the broker (its record), if known.
    last_contact: Option<Instant>,
}

/// The broker, credentials and TLS as the config says, under `client_id`,
/// with a clean session and no Last Will: `doctor`'s connection, made
/// the way the agent's is (the same protocol and fallback through
/// [`link`](Link)).
pub fn probe(config: &MqttConfig, client_id: &str) -> Result<(Settings, Link), TlsError> {
    let tls = config.tls.as_ref().map(tls::client_config).transpose()?;
    Ok((
        Settings::new(config, client_id, tls),
        Link::new(
            config.protocol,
            config.keepalive,
            Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
        ),
    ))
}

/// Builds the connection settings (Last Will, credentials, TLS) and topics,
/// and reads when the last run last had the broker (`contact`).
pub fn prepare(config: &MqttConfig, node_id: &str, contact: ContactFile) -> Result<Prepared, TlsError> {
    let topics = Topics::new(&config.base_topic, &config.discovery_prefix, node_id);
    let tls = config.tls.as_ref().map(tls::client_config).transpose()?;
    let settings = Settings::new(config, &config.client_id, tls).persistent(topics.status(), UNAVAILABLE);
    Ok(Prepared {
        settings,
        topics,
        protocol: config.protocol,
        command_max_age: config.command_max_age,
        last_contact: contact.load(),
        contact,
    })
}

/// Runs the sink until `cancel` fires, then publishes `offline` and
/// disconnects.
pub async fn run(
    prepared: Prepared,
    hub: Arc<Hub>,
    status: Arc<AgentStatus>,
    commands: Commands,
    mut publishes: mpsc::Receiver<Publish>,
    fleet: Option<FleetLink>,
    cancel: CancellationToken,
) {
    let Prepared {
        settings,
        topics,
        protocol,
        command_max_age,
        contact,
        last_contact,
    } = prepared;
    let link = Link::new(
        protocol,
        settings.keepalive(),
        Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
    );
    let (events_tx, mut events) = mpsc::channel(16);
    let mut driver = tokio::spawn(drive(settings, link, events_tx, status.clone()));
    let mut state = SinkState::new(topics, status.node.clone(), hub.clone(), commands.targets.clone())
        .with_command_max_age(command_max_age, last_contact);
    let (fleet, mut info) = match fleet {
        Some(link) => {
            state = state.with_fleet();
            (Some(link.fleet), Some(link.info))
        }
        None => (None, None),
    };
    // The client of the current connection (a new one if the protocol
    // changed); `None` before the first.
    let mut client: Option<Client> = None;
    let mut changes = hub.subscribe();
    // The state machine's actions, one event at a time; the buffer is kept.
    let mut actions = Vec::new();
    loop {
        let retry_flush = !state.outbox.is_empty() && state.is_connected();
        let event = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                // Producers stop before sinks: what they set last (the
                // outputs' safe states) goes out before `offline`.
                while let Ok(change) = changes.try_recv() {
                    state.handle(SinkEvent::Hub(change), Instant::now(), &mut actions);
                    perform(&mut actions, client.as_ref(), &commands, fleet.as_deref());
                }
                if state.is_connected() {
                    flush(&mut state.outbox, client.as_ref());
                }
                break;
            }
            event = events.recv() => match event {
                Some(ConnectionEvent::Connected { client: current, session_present }) => {
                    client = Some(current);
                    SinkEvent::Connected { session_present }
                }
                Some(ConnectionEvent::Disconnected) => SinkEvent::Disconnected,
                // The connection task has logged it.
                Some(ConnectionEvent::Failed(_)) => continue,
                Some(ConnectionEvent::Message { topic, payload, retain }) => SinkEvent::Message { topic, payload, retain },
                None => break,
            },
            change = changes.recv() => match change {
                Ok(change) => SinkEvent::Hub(change),
                Err(broadcast::error::RecvError::Lagged(missed)) => SinkEvent::HubLagged(missed),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some(publish) = publishes.recv() => SinkEvent::Publish(publish),
            Some(payload) = next_info(info.as_mut()) => SinkEvent::Info(payload),
            _ = tokio::time::sleep(FLUSH_RETRY), if retry_flush => {
                flush(&mut state.outbox, client.as_ref());
                continue;
            }
        };
        let now = Instant::now();
        state.handle(event, now, &mut actions);
        perform(&mut actions, client.as_ref(), &commands, fleet.as_deref());
        // The rest of a round's changes, already waiting, in the same turn:
        // one wake-up and one flush per round instead of one per value.
        while let Some(event) = next_change(&mut changes) {
            state.handle(event, now, &mut actions);
            perform(&mut actions, client.as_ref(), &commands, fleet.as_deref());
        }
        if state.is_connected() {
            flush(&mut state.outbox, client.as_ref());
        }
    }

    // Remember when we last had the broker, for the next start's check of
    // the commands queued meanwhile (written while `offline` goes out).
    let remember = async {
        let Some(record) = state.last_contact(Instant::now()).and_then(|at| contact.record(at)) else {
            return;
        };
        if let Err(error) = write_off_thread(contact.path().to_owned(), Arc::new(record)).await {
            debug!(%error, "cannot remember when the broker was last connected");
        }
    };
    let goodbye = async {
        let (Some((topic, payload)), Some(client)) = (state.goodbye(), client.as_ref()) else {
            return;
        };
        let goodbye = async {
            // `publish().await` waits for room in the channel, which the
            // connection task keeps draining.
            let _ = client.publish(&topic, payload.into(), true).await;
            let _ = client.disconnect().await;
            let _ = (&mut driver).await;
        };
        if tokio::time::timeout(STOP_GRACE, goodbye).await.is_err() {
            warn!("could not publish `{UNAVAILABLE}` to the MQTT broker in time; the Last Will will say it");
        } else {
            info!("published offline and disconnected from MQTT broker");
        }
    };
    tokio::join!(remember, goodbye);
    driver.abort();
}

/// Carries out what the state machine decided, emptying `actions`.
fn perform(actions: &mut Vec<SinkAction>, client: Option<&Client>, commands: &Commands, fleet: Option<&Fleet>) {
    for action in actions.drain(..) {
        match action {
            SinkAction::Subscribe(filter) => {
                if let Some(Err(error)) = client.map(|c| c.try_subscribe(&filter)) {
                    warn!(%filter, %error, "could not subscribe");
                }
            }
            SinkAction::Publish { topic, payload, retain } => match client {
                Some(client) if client.is_full() => warn!(%topic, error = %Busy, "dropping a message"),
                Some(client) => {
                    // Only a connection task gone with its channel refuses
                    // now; the message goes with it.
                    let _ = client.try_publish(topic, payload, retain, Delivery::AtLeastOnce);
                }
                None => {}
            },
            SinkAction::Fleet {
                kind,
                node,
                payload,
                retain,
            } => {
                if let Some(fleet) = fleet {
                    fleet.observe(kind, &node, &payload, retain);
                }
            }
            SinkAction::Command(command) => {
                if let Err(error) = commands.sender.try_send(command) {
                    warn!(%error, "dropping command: the outputs are not keeping up");
                }
            }
        }
    }
}

/// A hub change already waiting, if any.
fn next_change(changes: &mut broadcast::Receiver<crate::hub::HubEvent>) -> Option<SinkEvent> {
    match changes.try_recv() {
        Ok(change) => Some(SinkEvent::Hub(change)),
        Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(SinkEvent::HubLagged(missed)),
        Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => None,
    }
}

/// Our next fleet `info` payload; pending forever without the fleet, or
/// once the publisher is gone.
async fn next_info(info: Option<&mut tokio::sync::watch::Receiver<Option<Vec<u8>>>>) -> Option<Vec<u8>> {
    let Some(info) = info else {
        return std::future::pending().await;
    };
    loop {
        if info.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(payload) = info.borrow_and_update().clone() {
            return Some(payload);
        }
    }
}

/// Hands retained messages to rumqttc until its channel is full; the rest
/// wait in the outbox (only their latest payload) for the next flush. They
/// go at QoS 0: all of it is state that every reconnect republishes.
fn flush(outbox: &mut Outbox, client: Option<&Client>) {
    let Some(client) = client else {
        return;
    };
    // Full: try again later. Only this task publishes, so room seen here
    // is still there for the message handed over next.
    while !outbox.is_empty() && !client.is_full() {
        let Some((topic, payload)) = outbox.pop_front() else {
            return;
        };
        if client.try_publish(topic, payload, true, Delivery::AtMostOnce).is_err() {
            // The connection task is gone with its channel (the protocol
            // changed): the next connection republishes everything.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flushing_should_stop_when_the_client_channel_is_full_and_keep_the_rest() {
        let options = rumqttc::MqttOptions::new("t", "127.0.0.1", 1);
        // The event loop is never polled, so the channel fills up.
        let (client, _eventloop) = rumqttc::AsyncClient::new(options, 2);
        let client = Client::V311(client);
        let mut outbox = Outbox::default();
        for n in 0..5 {
            outbox.put(format!("t/{n}"), b"x".to_vec());
        }
        flush(&mut outbox, Some(&client));
        assert_eq!(outbox.len(), 3, "two fit in the channel, three wait");
        assert_eq!(outbox.topics().next(), Some("t/2"));
    }
}
