//! Who this agent is: the identity shown in Home Assistant's device block and
//! on the dashboard. Detected once at start-up; read-only afterwards.

use std::path::Path;

use crate::config::Config;

/// The identity of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    /// The board ("Raspberry Pi 4 Model B Rev 1.4") or the machine.
    pub model: String,
    pub manufacturer: String,
    pub sw_version: String,
    /// The dashboard's address as seen from the LAN, when the web server runs.
    pub configuration_url: Option<String>,
}

impl NodeInfo {
    /// `board_model` is the device tree's (the system source reads it); on
    /// a PC without one, DMI under the system root names the machine.
    /// `configuration_url` is the dashboard's address, if any.
    pub fn detect(config: &Config, board_model: Option<String>, configuration_url: Option<String>) -> NodeInfo {
        let root = config.root.as_path();
        let model = board_model
            .or_else(|| read_trimmed(&root.join("sys/class/dmi/id/product_name")))
            .unwrap_or_else(|| format!("Linux {}", std::env::consts::ARCH));
        let manufacturer = if model.starts_with("Raspberry Pi") {
            "Raspberry Pi Ltd".to_owned()
        } else {
            read_trimmed(&root.join("sys/class/dmi/id/sys_vendor")).unwrap_or_else(|| "Unknown".to_owned())
        };
        NodeInfo {
            id: config.node.id.clone(),
            name: config.node.name.clone(),
            model,
            manufacturer,
            sw_version: env!("CARGO_PKG_VERSION").to_owned(),
            configuration_url,
        }
    }
}

/// The dashboard's URL for a host (name or address) and port.
pub fn dashboard_url(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}/")
    } else {
        format!("http://{host}:{port}/")
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_owned())
}

/// The address other machines on the LAN would use to reach us: the source
/// address of the route to a public address (no packet is sent), unless the
/// web server is bound to one specific address.
pub fn lan_address(bind: std::net::IpAddr) -> Option<String> {
    if !bind.is_unspecified() {
        return Some(bind.to_string());
    }
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // TEST-NET-1: routed like any public address, never answered.
    socket.connect("192.0.2.1:9").ok()?;
    socket.local_addr().ok().map(|addr| addr.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_url_should_bracket_ipv6_hosts() {
        assert_eq!(dashboard_url("192.168.1.5", 8080), "http://192.168.1.5:8080/");
        assert_eq!(dashboard_url("fe80::1", 80), "http://[fe80::1]:80/");
    }
}
