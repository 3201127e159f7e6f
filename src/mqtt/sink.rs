//! The MQTT sink's driver: owns rumqttc's client, feeds the pure
//! [`SinkState`] with what happens (the connection task's reports, hub
//! changes, automations' messages), carries out the actions it returns,
//! flushes its outbox as the client has room, and publishes `offline` on a
//! clean stop. Every decision is in `state.rs`; here is only I/O.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::command::{Commands, Publish};
use crate::config::MqttConfig;
use crate::hub::Hub;
use crate::mqtt::connection::{drive, ConnectionEvent};
use crate::mqtt::outbox::Outbox;
use crate::mqtt::state::{SinkAction, SinkEvent, SinkState, UNAVAILABLE};
use crate::mqtt::tls::{self, TlsError};
use crate::mqtt::topics::Topics;
use crate::status::AgentStatus;

/// Requests rumqttc buffers between the sink and the connection task; more
/// wait in the outbox.
const REQUEST_CHANNEL_CAPACITY: usize = 64;
/// How long a stop may spend getting `offline` and DISCONNECT out.
const STOP_GRACE: Duration = Duration::from_millis(1000);
/// How soon to retry a flush that found rumqttc's channel full.
const FLUSH_RETRY: Duration = Duration::from_millis(20);

/// Everything the sink needs that can fail, built before the agent starts so
/// that bad TLS material is a start-up error.
pub struct Prepared {
    options: MqttOptions,
    topics: Topics,
    broker: String,
}

/// Builds the connection options (Last Will, credentials, TLS) and topics.
pub fn prepare(config: &MqttConfig, node_id: &str) -> Result<Prepared, TlsError> {
    let topics = Topics::new(&config.base_topic, &config.discovery_prefix, node_id);
    let mut options = options(config, &config.client_id)?;
    // A persistent session: the broker keeps our subscriptions and queues
    // QoS 1 commands sent while we are reconnecting (discovery asks Home
    // Assistant for QoS 1), and delivers them once we are back. Everything
    // we publish is republished on connect anyway.
    options.set_clean_session(false);
    options.set_last_will(LastWill::new(topics.status(), UNAVAILABLE, QoS::AtLeastOnce, true));
    Ok(Prepared {
        options,
        topics,
        broker: format!("{}:{}", config.host, config.port),
    })
}

/// Broker, credentials and TLS as the config says, under `client_id`, with
/// a clean session and no Last Will (`prepare` adds the agent's; `doctor`
/// connects with these as they are).
pub fn options(config: &MqttConfig, client_id: &str) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(client_id, &config.host, config.port);
    options.set_keep_alive(config.keepalive);
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some(credentials) = &config.credentials {
        options.set_credentials(&credentials.username, credentials.password.as_deref().unwrap_or(""));
    }
    if let Some(tls) = &config.tls {
        let client_config = tls::client_config(tls)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(client_config)));
    }
    Ok(options)
}

/// Runs the sink until `cancel` fires, then publishes `offline` and
/// disconnects.
pub async fn run(
    prepared: Prepared,
    hub: Arc<Hub>,
    status: Arc<AgentStatus>,
    commands: Commands,
    mut publishes: mpsc::Receiver<Publish>,
    cancel: CancellationToken,
) {
    let Prepared {
        options,
        topics,
        broker,
    } = prepared;
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
    let (events_tx, mut events) = mpsc::channel(16);
    let mut driver = tokio::spawn(drive(eventloop, events_tx, status.clone(), broker));
    let mut state = SinkState::new(topics, status.node.clone(), hub.clone(), commands.targets.clone());
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
                    perform(&mut actions, &client, &commands);
                }
                if state.is_connected() {
                    flush(&mut state.outbox, &client);
                }
                break;
            }
            event = events.recv() => match event {
                Some(ConnectionEvent::Connected) => SinkEvent::Connected,
                Some(ConnectionEvent::Disconnected) => SinkEvent::Disconnected,
                Some(ConnectionEvent::Message { topic, payload, retain }) => SinkEvent::Message { topic, payload, retain },
                // The driver has logged it; `doctor` is who listens for it.
                Some(ConnectionEvent::Failed(_)) => continue,
                None => break,
            },
            change = changes.recv() => match change {
                Ok(change) => SinkEvent::Hub(change),
                Err(broadcast::error::RecvError::Lagged(missed)) => SinkEvent::HubLagged(missed),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some(publish) = publishes.recv() => SinkEvent::Publish(publish),
            _ = tokio::time::sleep(FLUSH_RETRY), if retry_flush => {
                flush(&mut state.outbox, &client);
                continue;
            }
        };
        state.handle(event, Instant::now(), &mut actions);
        perform(&mut actions, &client, &commands);
        if state.is_connected() {
            flush(&mut state.outbox, &client);
        }
    }

    if let Some((topic, payload)) = state.goodbye() {
        let goodbye = async {
            // `publish().await` waits for room in the channel, which the
            // connection task keeps draining.
            let _ = client.publish(topic, QoS::AtLeastOnce, true, payload).await;
            let _ = client.disconnect().await;
            let _ = (&mut driver).await;
        };
        if tokio::time::timeout(STOP_GRACE, goodbye).await.is_err() {
            warn!("could not publish `{UNAVAILABLE}` to the MQTT broker in time; the Last Will will say it");
        } else {
            info!("published offline and disconnected from MQTT broker");
        }
    }
    driver.abort();
}

/// Carries out what the state machine decided, emptying `actions`.
fn perform(actions: &mut Vec<SinkAction>, client: &AsyncClient, commands: &Commands) {
    for action in actions.drain(..) {
        match action {
            SinkAction::Subscribe(filter) => {
                if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    warn!(%filter, %error, "could not subscribe");
                }
            }
            SinkAction::Publish { topic, payload, retain } => {
                if let Err(error) = client.try_publish(&topic, QoS::AtLeastOnce, retain, payload) {
                    warn!(%topic, %error, "dropping a message: the MQTT client is not keeping up");
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

/// Hands retained messages to rumqttc until its channel is full; the rest
/// wait in the outbox (only their latest payload) for the next flush.
fn flush(outbox: &mut Outbox, client: &AsyncClient) {
    while let Some((topic, payload)) = outbox.front() {
        match client.try_publish(topic, QoS::AtLeastOnce, true, payload.to_vec()) {
            Ok(()) => outbox.pop(),
            // Full (or the connection task is gone): try again later.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flushing_should_stop_when_the_client_channel_is_full_and_keep_the_rest() {
        let options = MqttOptions::new("t", "127.0.0.1", 1);
        // The event loop is never polled, so the channel fills up.
        let (client, _eventloop) = AsyncClient::new(options, 2);
        let mut outbox = Outbox::default();
        for n in 0..5 {
            outbox.put(format!("t/{n}"), b"x".to_vec());
        }
        flush(&mut outbox, &client);
        assert_eq!(outbox.len(), 3, "two fit in the channel, three wait");
        assert_eq!(outbox.front().map(|(topic, _)| topic), Some("t/2"));
    }
}
