//! The broker, step by step: DNS and TCP (blocking sockets), then TLS,
//! CONNECT/CONNACK (authentication) and its time, and whether Home
//! Assistant's birth message is retained on the discovery prefix, through
//! the agent's own connection driver (`mqtt::connection::drive`), so the
//! check costs almost no code of its own and fails for the same reasons
//! the agent would, in the same words. It connects under a client id of
//! its own, with a clean session and no Last Will, so a running agent is not
//! disturbed.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Report;
use crate::config::MqttConfig;
use crate::mqtt::connection::{drive, ConnectionEvent};
use crate::status::AgentStatus;

/// Each step waits at most this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to listen for Home Assistant's (retained) birth message.
const BIRTH_WAIT: Duration = Duration::from_millis(1500);

pub(super) fn check(config: &MqttConfig, node_id: &str, status: Arc<AgentStatus>, report: &mut Report) {
    let broker = format!("{}:{}", config.host, config.port);
    let address: SocketAddr = match broker.to_socket_addrs().map(|mut found| found.next()) {
        Ok(Some(address)) => address,
        Ok(None) | Err(_) => {
            let local = if config.host.ends_with(".local") {
                " (this static build does not resolve mDNS .local names: use the broker's IP address)"
            } else {
                ""
            };
            report.problem(
                "broker",
                format!("{broker}: the name does not resolve{local}"),
                "check mqtt.host and DNS",
            );
            return;
        }
    };
    if let Err(error) = TcpStream::connect_timeout(&address, STEP_TIMEOUT) {
        report.problem(
            "broker",
            format!("{broker} ({address}): TCP connect failed: {error}"),
            "is the broker running and listening there (mqtt.host, mqtt.port)? a firewall?",
        );
        return;
    }
    let client_id = format!("majortom-doctor-{node_id}-{}", std::process::id());
    let (settings, link) = match crate::mqtt::sink::probe(config, &client_id) {
        Ok(probe) => probe,
        Err(error) => {
            report.problem(
                "broker",
                format!("TLS set-up: {error}"),
                "fix [mqtt.tls] (ca_file, cert_file, key_file, server_name)",
            );
            return;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            report.problem(
                "broker",
                format!("cannot start a runtime: {error}"),
                "check memory and limits",
            );
            return;
        }
    };
    let tls = if config.tls.is_some() { "TLS, " } else { "" };
    let prefix = config.discovery_prefix.clone();
    runtime.block_on(async move {
        let (events_tx, mut events) = mpsc::channel(16);
        let started = Instant::now();
        let driver = tokio::spawn(drive(settings, link, events_tx, status));
        // Twice the step: a broker that does not answer MQTT 5 gets 3.1.1
        // after one step, as the agent does.
        let client = match tokio::time::timeout(2 * STEP_TIMEOUT, events.recv()).await {
            Ok(Some(ConnectionEvent::Connected { client, .. })) => {
                report.ok(
                    "broker",
                    format!(
                        "{broker}: {tls}CONNACK in {} ms (MQTT {})",
                        started.elapsed().as_millis(),
                        client.protocol().as_str()
                    ),
                );
                client
            }
            Ok(Some(ConnectionEvent::Failed(reason))) => {
                let fix = if reason.contains("TLS") {
                    "check [mqtt.tls]: the CA that signed the broker's certificate, server_name, and the clock (no certificate is valid in 1970)"
                } else if reason.contains("refused the connection") {
                    "check mqtt.username and the password ($MAJORTOM_MQTT_PASSWORD, mqtt.password_file), and the broker's ACLs"
                } else {
                    "is it an MQTT broker on that port (TLS on a plain port, or the reverse)?"
                };
                report.problem("broker", format!("{broker}: {reason}"), fix);
                driver.abort();
                return;
            }
            _ => {
                report.problem(
                    "broker",
                    format!("{broker}: no CONNACK within {:?}", 2 * STEP_TIMEOUT),
                    "check the broker's log",
                );
                driver.abort();
                return;
            }
        };
        // Home Assistant publishes `online` on `<prefix>/status` when it
        // starts; only a retained one can be seen now.
        let topic = format!("{prefix}/status");
        let _ = client.try_subscribe(&topic);
        let deadline = tokio::time::Instant::now() + BIRTH_WAIT;
        let mut seen = None;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
            if let ConnectionEvent::Message { topic: on, payload, .. } = event {
                if on == topic {
                    seen = Some(String::from_utf8_lossy(&payload).into_owned());
                    break;
                }
            }
        }
        match seen.as_deref() {
            Some("online") => report.ok("home assistant", format!("birth message `online` seen on {topic}")),
            Some(other) => report.problem(
                "home assistant",
                format!("{topic} says `{other}`"),
                "start Home Assistant (or check its MQTT integration)",
            ),
            None => report.note(
                "home assistant",
                format!("no retained birth message on {topic}: Home Assistant sends one, not retained by default, when it starts (the agent republishes then); another discovery prefix? set mqtt.discovery_prefix"),
            ),
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let _ = client.disconnect().await;
            let _ = driver.await;
        })
        .await;
    });
}
