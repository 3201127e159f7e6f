//! What the agent knows about itself: identity, start time and the MQTT
//! connection's state and counters. Written by the MQTT sink, read by the web
//! side; plain atomics, so neither ever waits on the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::node::NodeInfo;

pub struct AgentStatus {
    pub node: NodeInfo,
    pub started: Instant,
    /// `host:port` of the broker, `None` when MQTT is disabled.
    pub broker: Option<String>,
    /// The GPIO backend in use and why it was chosen, `None` when no pin
    /// is used.
    pub gpio: Option<(&'static str, String)>,
    mqtt_connected: AtomicBool,
    mqtt_connects: AtomicU64,
    mqtt_published: AtomicU64,
}

impl AgentStatus {
    pub fn new(node: NodeInfo, broker: Option<String>, gpio: Option<(&'static str, String)>) -> AgentStatus {
        AgentStatus {
            node,
            started: Instant::now(),
            broker,
            gpio,
            mqtt_connected: AtomicBool::new(false),
            mqtt_connects: AtomicU64::new(0),
            mqtt_published: AtomicU64::new(0),
        }
    }

    pub fn set_mqtt_connected(&self, connected: bool) {
        self.mqtt_connected.store(connected, Ordering::Relaxed);
        if connected {
            self.mqtt_connects.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn mqtt_connected(&self) -> bool {
        self.mqtt_connected.load(Ordering::Relaxed)
    }

    /// Successful connections since start (the first one included).
    pub fn mqtt_connects(&self) -> u64 {
        self.mqtt_connects.load(Ordering::Relaxed)
    }

    pub fn count_published(&self) {
        self.mqtt_published.fetch_add(1, Ordering::Relaxed);
    }

    pub fn mqtt_published(&self) -> u64 {
        self.mqtt_published.load(Ordering::Relaxed)
    }
}
