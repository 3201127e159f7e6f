//! Drives rumqttc's event loop: connects, reconnects as the [`Link`]
//! decides (backoff, the protocol, a clean session), and turns what happens
//! on the wire into [`ConnectionEvent`]s for the sink (or for `doctor`).
//!
//! It runs as its own task because polling an event loop is not safe to
//! cancel in the middle of a write; the sink stops it by sending a
//! DISCONNECT (or by aborting it while it is only waiting to reconnect).
//! The protocols' differences are in `client.rs`, the decisions in
//! `link.rs`; here is the loop and the log.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::mqtt::client::{taken_over, Client, Failure, Polled, Settings};
use crate::mqtt::link::{Cause, Link, Notice, Retry};
use crate::status::AgentStatus;

/// What the sink needs to know about the connection.
#[derive(Debug)]
pub enum ConnectionEvent {
    /// CONNACK received, through `client` (a new one when the protocol
    /// changed). The broker may have kept our session (`session_present`),
    /// but everything is (re)published and (re)subscribed anyway: a
    /// restarted broker may have lost it.
    Connected { client: Client, session_present: bool },
    /// The connection broke; the driver is backing off.
    Disconnected,
    /// An attempt failed before any connection, in words a user can act
    /// on; the driver backs off and tries again.
    Failed(String),
    /// A message on a subscribed topic.
    Message {
        topic: String,
        payload: Vec<u8>,
        /// Delivered from the broker's retained store.
        retain: bool,
    },
}

/// Connects and polls until a DISCONNECT has gone out (or the sink aborts
/// it). Events that come after the sink stopped listening are dropped, but
/// the polling goes on: the safe output states and `offline` queued at stop
/// are still to be written.
pub async fn drive(
    settings: Settings,
    mut link: Link,
    events: mpsc::Sender<ConnectionEvent>,
    status: Arc<AgentStatus>,
) {
    let broker = settings.broker.clone();
    let mut protocol = link.protocol();
    let (mut client, mut eventloop) = settings.open(protocol);
    // rumqttc pings every keepalive and so hears from a live broker at
    // least that often; silence for 1.5 keepalives means a dead path (a
    // Wi-Fi drop leaves the socket open), noticed sooner than rumqttc's own
    // check, which waits for a second unanswered ping.
    let silence_limit = settings.keepalive().mul_f32(1.5);
    let mut last_heard = Instant::now();
    // One timer for the whole run, moved on only when it fires: a timer
    // per poll (one per message) cost more than the message.
    let silence = tokio::time::sleep_until(last_heard + silence_limit);
    tokio::pin!(silence);
    let mut connected = false;
    // Failures since the last successful connection; only the first is a
    // warning, so a Pi waiting for its broker does not fill the journal.
    let mut failures: u32 = 0;
    loop {
        let polled = if connected {
            let heard = {
                let poll = eventloop.poll(&settings);
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        biased;
                        polled = &mut poll => break Some(polled),
                        () = &mut silence => {
                            let deadline = last_heard + silence_limit;
                            if deadline <= Instant::now() {
                                break None;
                            }
                            silence.as_mut().reset(deadline);
                        }
                    }
                }
            };
            match heard {
                Some(polled) => polled,
                None => {
                    // Dropping the network resets rumqttc's state whole, so
                    // abandoning the poll above cannot leave half a packet.
                    eventloop.drop_connection();
                    Err(Failure {
                        cause: Cause::Other,
                        explanation: format!("nothing heard from the broker for {silence_limit:?}"),
                    })
                }
            }
        } else {
            eventloop.poll(&settings).await
        };
        if let Ok(Polled::Connected { .. } | Polled::Message { .. } | Polled::Heard) = &polled {
            last_heard = Instant::now();
        }
        let event = match polled {
            Ok(Polled::Connected { session_present }) => {
                if link.connected(Instant::now()) == Some(Notice::FellBack) {
                    info!(
                        %broker,
                        "the broker refused MQTT 5; speaking MQTT 3.1.1 until majortom restarts \
                         (set mqtt.protocol = \"3.1.1\" to skip trying 5)"
                    );
                }
                info!(%broker, protocol = protocol.as_str(), session_present, "connected to MQTT broker");
                connected = true;
                failures = 0;
                status.set_mqtt_connected(true);
                ConnectionEvent::Connected {
                    client: client.clone(),
                    session_present,
                }
            }
            Ok(Polled::Message { topic, payload, retain }) => ConnectionEvent::Message { topic, payload, retain },
            Ok(Polled::Published) => {
                status.count_published();
                continue;
            }
            Ok(Polled::Disconnected) => {
                debug!("disconnect sent");
                status.set_mqtt_connected(false);
                return;
            }
            Ok(Polled::Heard | Polled::Sent) => continue,
            Err(failure) => {
                let was_connected = std::mem::replace(&mut connected, false);
                let retry = if was_connected {
                    link.lost(Instant::now(), failure.cause)
                } else {
                    link.failed(failure.cause)
                };
                report(&failure, &retry, was_connected, failures, &settings);
                if retry.notice != Some(Notice::TryingV311) {
                    failures = failures.saturating_add(1);
                }
                if was_connected {
                    status.set_mqtt_connected(false);
                    let _ = events.send(ConnectionEvent::Disconnected).await;
                } else if retry.notice != Some(Notice::TryingV311) {
                    // MQTT 5 refused is not the end: 3.1.1 is tried at once.
                    let _ = events.try_send(ConnectionEvent::Failed(failure.explanation));
                }
                if retry.protocol != protocol {
                    protocol = retry.protocol;
                    (client, eventloop) = settings.open(protocol);
                }
                eventloop.set_clean_start(retry.clean_start || !settings.is_persistent());
                tokio::time::sleep(retry.delay).await;
                continue;
            }
        };
        let _ = events.send(event).await;
    }
}

/// Logs a failure the way a user needs it: a clash as an error naming the
/// client id, the first failure of a series as a warning, the rest quietly.
fn report(failure: &Failure, retry: &Retry, was_connected: bool, failures: u32, settings: &Settings) {
    let broker = &settings.broker;
    let error = &failure.explanation;
    let retry_in = retry.delay;
    match retry.notice {
        Some(Notice::Clash) if failure.cause == Cause::TakenOver => {
            error!(%broker, ?retry_in, "{error}");
        }
        Some(Notice::Clash) => error!(
            %broker,
            ?retry_in,
            "the broker keeps closing our connection right after accepting it: probably {}",
            taken_over(&settings.client_id)
        ),
        Some(Notice::TooLarge) => warn!(
            %broker,
            %error,
            ?retry_in,
            "lost connection to MQTT broker; the next connection starts a clean session"
        ),
        Some(Notice::TryingV311) => debug!(%broker, %error, "MQTT 5 not taken; trying MQTT 3.1.1"),
        Some(Notice::FellBack) | None if was_connected => {
            warn!(%broker, %error, "lost connection to MQTT broker; reconnecting");
        }
        Some(Notice::FellBack) | None if failures == 0 => {
            warn!(%broker, %error, "cannot connect to MQTT broker; retrying in the background");
        }
        Some(Notice::FellBack) | None => {
            debug!(%broker, %error, ?retry_in, "MQTT connection attempt failed");
        }
    }
}
