//! The broker, step by step: DNS, TCP, TLS (with the agent's own rustls
//! config), CONNECT/CONNACK (authentication) and its time, then whether Home
//! Assistant's birth message is retained on the discovery prefix.
//!
//! Blocking I/O and a few MQTT 3.1.1 packets written by hand: each step's
//! failure is told apart, and it costs a fraction of driving rumqttc's event
//! loop (measured: docs/PERFORMANCE.md). It connects under a client id of
//! its own, with a clean session and no Last Will, so a running agent is not
//! disturbed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Report;
use crate::config::MqttConfig;

/// Each step waits at most this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to listen for Home Assistant's (retained) birth message.
const BIRTH_WAIT: Duration = Duration::from_millis(1500);

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

pub(super) fn check(config: &MqttConfig, node_id: &str, report: &mut Report) {
    let broker = format!("{}:{}", config.host, config.port);
    let started = Instant::now();
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
    let tcp = match TcpStream::connect_timeout(&address, STEP_TIMEOUT) {
        Ok(tcp) => tcp,
        Err(error) => {
            report.problem(
                "broker",
                format!("{broker} ({address}): TCP connect failed: {error}"),
                "is the broker running and listening there (mqtt.host, mqtt.port)? a firewall?",
            );
            return;
        }
    };
    let _ = tcp.set_read_timeout(Some(STEP_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(STEP_TIMEOUT));
    let mut stream: Box<dyn Stream> = match &config.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let client = crate::mqtt::tls::client_config(tls).map_err(|e| e.to_string());
            let name = rustls::pki_types::ServerName::try_from(config.host.clone()).map_err(|e| e.to_string());
            let connection = client
                .and_then(|client| Ok((client, name?)))
                .and_then(|(client, name)| {
                    rustls::ClientConnection::new(Arc::clone(&client), name).map_err(|e| e.to_string())
                });
            match connection {
                Ok(connection) => Box::new(rustls::StreamOwned::new(connection, tcp)),
                Err(error) => {
                    report.problem(
                        "broker",
                        format!("TLS set-up: {error}"),
                        "fix [mqtt.tls] (ca_file, cert_file, key_file, server_name)",
                    );
                    return;
                }
            }
        }
    };
    let client_id = format!("majortom-doctor-{node_id}-{}", std::process::id());
    let credentials = config
        .credentials
        .as_ref()
        .map(|c| (c.username.as_str(), c.password.as_deref().unwrap_or("")));
    let connack = stream
        .write_all(&connect_packet(&client_id, credentials))
        .and_then(|()| read_packet(&mut *stream));
    let tls = if config.tls.is_some() { "TLS, " } else { "" };
    match connack {
        Ok((0x20, body)) if body.get(1) == Some(&0) => report.ok(
            "broker",
            format!("{broker}: {tls}CONNACK in {} ms", started.elapsed().as_millis()),
        ),
        Ok((0x20, body)) => {
            let (why, fix) = match body.get(1) {
                // mosquitto answers a wrong password with 5, not 4.
                Some(4 | 5) => (
                    "bad user name or password, or not authorized",
                    "check mqtt.username and the password ($MAJORTOM_MQTT_PASSWORD, mqtt.password_file), and the broker's ACLs",
                ),
                _ => ("refused", "check the broker's log"),
            };
            report.problem(
                "broker",
                format!("{broker}: the broker refused the connection: {why}"),
                fix,
            );
            return;
        }
        Ok(_) => {
            report.problem(
                "broker",
                format!("{broker}: did not answer CONNECT with CONNACK"),
                "is it an MQTT broker on that port?",
            );
            return;
        }
        Err(error) if config.tls.is_some() && error.kind() == io::ErrorKind::InvalidData => {
            report.problem(
                "broker",
                format!("{broker}: TLS failed: {error}"),
                "check [mqtt.tls]: the CA that signed the broker's certificate, server_name, and the clock (no certificate is valid in 1970)",
            );
            return;
        }
        Err(error) => {
            report.problem(
                "broker",
                format!("{broker}: MQTT connect failed: {error}"),
                "is it an MQTT broker on that port (TLS on a plain port, or the reverse)?",
            );
            return;
        }
    }
    birth(&mut *stream, &config.discovery_prefix, report);
    // DISCONNECT: a clean goodbye.
    let _ = stream.write_all(&[0xE0, 0]);
}

/// Home Assistant publishes `online` on `<prefix>/status` when it starts;
/// only a retained one can be seen now.
fn birth(stream: &mut dyn Stream, prefix: &str, report: &mut Report) {
    let topic = format!("{prefix}/status");
    let mut subscribe = vec![0, 1];
    put_string(&mut subscribe, &topic);
    subscribe.push(0);
    let deadline = Instant::now() + BIRTH_WAIT;
    let mut seen = None;
    if stream.write_all(&packet(0x82, &subscribe)).is_ok() {
        while Instant::now() < deadline {
            match read_packet(stream) {
                Ok((kind, body)) if kind & 0xF0 == 0x30 => {
                    let length = usize::from(u16::from_be_bytes([body[0], *body.get(1).unwrap_or(&0)]));
                    if body.get(2..2 + length) == Some(topic.as_bytes()) {
                        seen = Some(String::from_utf8_lossy(&body[2 + length..]).into_owned());
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
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
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A packet: type byte, remaining length (MQTT's variable-length integer),
/// body.
fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut length = body.len();
    loop {
        let byte = (length % 128) as u8;
        length /= 128;
        out.push(if length > 0 { byte | 0x80 } else { byte });
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// MQTT 3.1.1 CONNECT: clean session, keepalive 30 s, no Last Will.
fn connect_packet(client_id: &str, credentials: Option<(&str, &str)>) -> Vec<u8> {
    let flags = 0x02 | credentials.map_or(0, |_| 0xC0);
    let mut body = Vec::new();
    put_string(&mut body, "MQTT");
    body.extend_from_slice(&[4, flags, 0, 30]);
    put_string(&mut body, client_id);
    if let Some((user, password)) = credentials {
        put_string(&mut body, user);
        put_string(&mut body, password);
    }
    packet(0x10, &body)
}

/// One packet: its type byte and body (at most 64 KiB).
fn read_packet(stream: &mut dyn Stream) -> io::Result<(u8, Vec<u8>)> {
    let mut byte = [0u8];
    stream.read_exact(&mut byte)?;
    let kind = byte[0];
    let (mut length, mut shift) = (0usize, 0);
    loop {
        stream.read_exact(&mut byte)?;
        length |= usize::from(byte[0] & 0x7F) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
        if shift > 21 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad remaining length"));
        }
    }
    if length > 65_536 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "packet too large"));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((kind, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_should_be_mqtt_3_1_1_with_a_clean_session_and_credentials() {
        assert_eq!(
            connect_packet("d", Some(("u", "p"))),
            [0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30, 0, 1, b'd', 0, 1, b'u', 0, 1, b'p']
        );
        assert_eq!(connect_packet("d", None)[9], 0x02, "no credentials: clean session only");
    }

    #[test]
    fn remaining_lengths_should_use_mqtts_variable_length_integer() {
        assert_eq!(&packet(0x30, &[0; 321])[..3], [0x30, 0xC1, 0x02]);
        let mut bytes: &[u8] = &[0x20, 2, 0, 5];
        let mut stream = io::Cursor::new(std::mem::take(&mut bytes).to_vec());
        assert_eq!(read_packet(&mut stream).unwrap(), (0x20, vec![0, 5]));
    }
}
