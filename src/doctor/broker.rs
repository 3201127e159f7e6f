//! The broker, step by step: DNS, TCP, then TLS and the CONNECT/CONNACK
//! exchange through rumqttc (so the same TLS and credentials as the agent),
//! the time to CONNACK, and whether Home Assistant's birth message is seen
//! on the discovery prefix. It connects under a client id of its own, with
//! no Last Will and a clean session, so a running agent is not disturbed.

use std::time::{Duration, Instant};

use rumqttc::{ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

use super::Report;
use crate::config::MqttConfig;

/// Each step waits at most this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to listen for Home Assistant's (retained) birth message.
const BIRTH_WAIT: Duration = Duration::from_millis(1500);

pub(super) async fn check(config: &MqttConfig, node_id: &str, report: &mut Report) {
    let broker = format!("{}:{}", config.host, config.port);
    let started = Instant::now();
    let addresses = match tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host(broker.as_str())).await {
        Ok(Ok(found)) => found.collect::<Vec<_>>(),
        Ok(Err(error)) => {
            let local = if config.host.ends_with(".local") {
                " (this static build does not resolve mDNS .local names: use the broker's IP address)"
            } else {
                ""
            };
            report.problem(
                "broker",
                format!("{broker}: the name does not resolve: {error}{local}"),
                "check mqtt.host (a DNS name or an IP address)",
            );
            return;
        }
        Err(_) => {
            report.problem(
                "broker",
                format!("{broker}: DNS lookup timed out"),
                "check the network and DNS (/etc/resolv.conf)",
            );
            return;
        }
    };
    let Some(address) = addresses.first().copied() else {
        report.problem(
            "broker",
            format!("{broker}: the name has no address"),
            "check mqtt.host",
        );
        return;
    };
    match tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            report.problem(
                "broker",
                format!("{broker} ({address}): TCP connect failed: {error}"),
                "is the broker running and listening there (mqtt.host, mqtt.port)? a firewall?",
            );
            return;
        }
        Err(_) => {
            report.problem(
                "broker",
                format!("{broker} ({address}): TCP connect timed out"),
                "a firewall drops the packets, or the host is down",
            );
            return;
        }
    }

    let mut options = MqttOptions::new(
        format!("majortom-doctor-{node_id}-{}", std::process::id()),
        &config.host,
        config.port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    if let Some(credentials) = &config.credentials {
        options.set_credentials(&credentials.username, credentials.password.as_deref().unwrap_or(""));
    }
    if let Some(tls) = &config.tls {
        match crate::mqtt::tls::client_config(tls) {
            Ok(client) => {
                options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(client)));
            }
            Err(error) => {
                report.problem(
                    "broker",
                    format!("TLS set-up: {error}"),
                    "fix [mqtt.tls] (ca_file, cert_file, key_file)",
                );
                return;
            }
        }
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let connack = tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await;
    let tls = if config.tls.is_some() { "TLS, " } else { "" };
    match connack {
        Ok(Ok(())) => report.ok(
            "broker",
            format!("{broker}: {tls}CONNACK in {} ms", started.elapsed().as_millis()),
        ),
        Ok(Err(ConnectionError::ConnectionRefused(code))) => {
            let fix = match code {
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                    "check mqtt.username and the password ($MAJORTOM_MQTT_PASSWORD, mqtt.password_file)"
                }
                _ => "check the broker's log",
            };
            report.problem(
                "broker",
                format!("{broker}: the broker refused the connection: {code:?}"),
                fix,
            );
            return;
        }
        Ok(Err(ConnectionError::Tls(error))) => {
            report.problem(
                "broker",
                format!("{broker}: TLS failed: {error}"),
                "check [mqtt.tls]: the CA that signed the broker's certificate, server_name, the clock (a certificate is not valid in 1970)",
            );
            return;
        }
        Ok(Err(error)) => {
            report.problem(
                "broker",
                format!("{broker}: MQTT connect failed: {error}"),
                "is it an MQTT broker on that port (TLS on a plain port, or the reverse)?",
            );
            return;
        }
        Err(_) => {
            report.problem(
                "broker",
                format!("{broker}: no CONNACK within {STEP_TIMEOUT:?}"),
                "check the broker's log",
            );
            return;
        }
    }

    // Home Assistant publishes `online` on `<prefix>/status` when it starts;
    // only a retained one can be seen now.
    let topic = format!("{}/status", config.discovery_prefix);
    let _ = client.subscribe(&topic, QoS::AtMostOnce).await;
    let birth = tokio::time::timeout(BIRTH_WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                    return Some(String::from_utf8_lossy(&p.payload).into_owned())
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await;
    match birth {
        Ok(Some(payload)) if payload == "online" => {
            report.ok("home assistant", format!("birth message `online` seen on {topic}"))
        }
        Ok(Some(payload)) => report.problem(
            "home assistant",
            format!("{topic} says `{payload}`"),
            "start Home Assistant (or check its MQTT integration)",
        ),
        _ => report.note(
            "home assistant",
            format!("no retained birth message on {topic}: Home Assistant sends it (not retained by default) when it starts, and the agent republishes then; if Home Assistant uses another discovery prefix, set mqtt.discovery_prefix"),
        ),
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
}
