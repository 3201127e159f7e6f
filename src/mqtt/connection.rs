//! Drives rumqttc's event loop: connects, reconnects with backoff, and turns
//! what happens on the wire into [`ConnectionEvent`]s for the sink.
//!
//! It runs as its own task because `EventLoop::poll` is not safe to cancel
//! in the middle of a write; the sink stops it by sending a DISCONNECT (or by
//! aborting it while it is only waiting to reconnect).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{ConnectReturnCode, ConnectionError, Event, EventLoop, Outgoing, Packet};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::mqtt::backoff::Backoff;
use crate::status::AgentStatus;

/// First and largest delay between connection attempts.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What the sink needs to know about the connection.
#[derive(Debug)]
pub enum ConnectionEvent {
    /// CONNACK received. The broker may have kept our session
    /// (`clean_session = false`), but everything is (re)published and
    /// (re)subscribed anyway: a restarted broker may have lost it.
    Connected,
    /// The connection broke; the driver is backing off.
    Disconnected,
    /// An attempt failed before any connection, in words a user can act on
    /// (`explain`); the driver backs off and tries again. For `doctor`.
    Failed(String),
    /// A message on a subscribed topic.
    Message {
        topic: String,
        payload: Vec<u8>,
        /// Delivered from the broker's retained store.
        retain: bool,
    },
}

/// Polls the event loop until a DISCONNECT has gone out (or the sink aborts
/// it). Events that come after the sink stopped listening are dropped, but
/// the polling goes on: the safe output states and `offline` queued at stop
/// are still to be written.
pub async fn drive(
    mut eventloop: EventLoop,
    events: mpsc::Sender<ConnectionEvent>,
    status: Arc<AgentStatus>,
    broker: String,
) {
    let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
    // rumqttc pings every keepalive and so hears from a live broker at
    // least that often; silence for 1.5 keepalives means a dead path (a
    // Wi-Fi drop leaves the socket open), noticed sooner than rumqttc's own
    // check, which waits for a second unanswered ping.
    let silence_limit = eventloop.mqtt_options.keep_alive().mul_f32(1.5);
    let mut last_heard = Instant::now();
    let mut connected = false;
    // Failures since the last successful connection; only the first is a
    // warning, so a Pi waiting for its broker does not fill the journal.
    let mut failures: u32 = 0;
    loop {
        let polled = if connected {
            match tokio::time::timeout_at(last_heard + silence_limit, eventloop.poll()).await {
                Ok(polled) => polled,
                Err(_) => {
                    // Dropping the network resets rumqttc's state whole, so
                    // abandoning the poll above cannot leave half a packet.
                    eventloop.clean();
                    Err(ConnectionError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("nothing heard from the broker for {silence_limit:?}"),
                    )))
                }
            }
        } else {
            eventloop.poll().await
        };
        if let Ok(Event::Incoming(_)) = &polled {
            last_heard = Instant::now();
        }
        let event = match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(%broker, "connected to MQTT broker");
                connected = true;
                failures = 0;
                backoff.reset();
                status.set_mqtt_connected(true);
                ConnectionEvent::Connected
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => ConnectionEvent::Message {
                topic: publish.topic,
                payload: publish.payload.to_vec(),
                retain: publish.retain,
            },
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                status.count_published();
                continue;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!("disconnect sent");
                status.set_mqtt_connected(false);
                return;
            }
            Ok(_) => continue,
            Err(error) => {
                let delay = backoff.next_delay();
                let explanation = explain(&error, &broker);
                if connected {
                    warn!(%broker, error = %explanation, "lost connection to MQTT broker; reconnecting");
                } else if failures == 0 {
                    warn!(%broker, error = %explanation, "cannot connect to MQTT broker; retrying in the background");
                } else {
                    debug!(%broker, error = %explanation, retry_in = ?delay, "MQTT connection attempt failed");
                }
                failures = failures.saturating_add(1);
                let was_connected = std::mem::replace(&mut connected, false);
                if was_connected {
                    status.set_mqtt_connected(false);
                    let _ = events.send(ConnectionEvent::Disconnected).await;
                } else {
                    let _ = events.try_send(ConnectionEvent::Failed(explanation));
                }
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let _ = events.send(event).await;
    }
}

/// A connection error in words a user can act on.
pub fn explain(error: &ConnectionError, broker: &str) -> String {
    match error {
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword) => {
            "the broker refused the connection: not authorised (check mqtt.username and the password)".to_owned()
        }
                ConnectionError::ConnectionRefused(code) => format!("the broker refused the connection: {code:?}"),
        ConnectionError::Tls(tls) => format!(
            "TLS handshake failed: {tls} (check that mqtt.tls.ca_file holds the CA that signed the broker's certificate, \
             and that the certificate names mqtt.host, or set mqtt.tls.server_name)"
        ),
        ConnectionError::Io(io) if broker.split(':').next().is_some_and(|h| h.ends_with(".local")) => format!(
            "{io}; note that `.local` (mDNS) names are not resolved by this static build: use the broker's IP address or a DNS name"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_should_be_explained_as_not_authorised() {
        let message = explain(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
            "b:1883",
        );
        assert!(message.contains("not authorised"), "{message}");
    }

    #[test]
    fn unresolvable_local_names_should_mention_mdns() {
        let io = std::io::Error::other("failed to lookup address information");
        let message = explain(&ConnectionError::Io(io), "broker.local:1883");
        assert!(message.contains("mDNS"), "{message}");
    }
}
