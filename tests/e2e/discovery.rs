//! Home Assistant discovery and states, as a subscriber sees them.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{
    poll_until, retained, retained_payload, test_config, wait_for, wait_retained, Agent, Broker, Message, Observer,
};

/// Retained discovery configs of `node`, by entity id.
async fn discovery_configs(port: u16, node: &str) -> HashMap<String, (String, Json)> {
    retained(port, &format!("homeassistant/+/{node}/+/config"), Duration::ZERO)
        .await
        .into_iter()
        .filter(|m| !m.payload.is_empty())
        .map(|m| {
            let levels: Vec<&str> = m.topic.split('/').collect();
            let json: Json = serde_json::from_str(&m.payload).unwrap_or_else(|e| panic!("{}: not JSON ({e})", m.topic));
            (levels[3].to_owned(), (levels[1].to_owned(), json))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_entity_should_be_discovered_retained_with_a_complete_config_and_numeric_state() {
    let broker = Broker::start();
    let agent = Agent::start(&test_config("disco", broker.port, "[system]\ninterval_s = 1\n")).await;

    // Wait for the second sample, which brings the rates (cpu_usage).
    let observer = Observer::connect(broker.port, "majortom/disco/#").await;
    observer
        .wait_for_message("majortom/disco/cpu_usage/state", Duration::from_secs(10), |_| true)
        .await;

    let entities = agent.get_json("/api/state")["entities"]
        .as_array()
        .expect("entities")
        .clone();
    let ids: Vec<String> = entities
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    for required in [
        "cpu_usage",
        "load_1m",
        "load_5m",
        "load_15m",
        "memory_used",
        "swap_used",
        "disk_used",
        "uptime",
        "network_rx",
        "network_tx",
    ] {
        assert!(ids.iter().any(|id| id == required), "{required} missing from {ids:?}");
    }

    let configs = discovery_configs(broker.port, "disco").await;
    assert_eq!(
        configs.len(),
        ids.len(),
        "one retained config per entity: {:?}",
        configs.keys()
    );
    let web_port = agent.web.expect("web").port();
    for entity in &entities {
        let id = entity["id"].as_str().expect("id");
        let (component, config) = configs
            .get(id)
            .unwrap_or_else(|| panic!("no discovery config for {id}"));
        assert_eq!(component, entity["component"].as_str().expect("component"));
        assert_eq!(config["unique_id"], format!("majortom_disco_{id}"));
        if component == "button" {
            // The agent's own Restart button: a command, no state.
            assert_eq!(config["command_topic"], format!("majortom/disco/{id}/set"));
            assert_eq!(config["payload_press"], "PRESS");
        } else {
            assert_eq!(config["state_topic"], format!("majortom/disco/{id}/state"));
        }
        assert_eq!(config["availability"][0]["topic"], "majortom/disco/status");
        assert_eq!(config["entity_category"], "diagnostic", "{id}");
        if component != "button" {
            let expire = &config["expire_after"];
            assert!(expire.as_u64().is_some_and(|s| s >= 3), "{id}: expire_after {expire}");
        }
        assert!(config["name"].as_str().is_some_and(|n| !n.is_empty()));
        let device = &config["device"];
        assert_eq!(device["identifiers"], serde_json::json!(["majortom_disco"]), "{id}");
        assert_eq!(device["name"], "E2E disco");
        assert_eq!(device["sw_version"], env!("CARGO_PKG_VERSION"));
        assert!(device["model"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(device["manufacturer"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(device["configuration_url"], format!("http://127.0.0.1:{web_port}/"));
        if component == "sensor" {
            assert_eq!(config["state_class"], "measurement", "{id}");
        }
    }
    let unit = |id: &str| configs[id].1["unit_of_measurement"].clone();
    assert_eq!(unit("cpu_usage"), "%");
    assert_eq!(unit("memory_used"), "%");
    assert_eq!(unit("disk_used"), "%");
    assert_eq!(unit("uptime"), "s");
    assert_eq!(configs["uptime"].1["device_class"], "duration");
    assert_eq!(unit("network_rx"), "kB/s");
    assert_eq!(configs["network_rx"].1["device_class"], "data_rate");

    // States: retained, and numbers for every sensor.
    let states: HashMap<String, String> = retained(broker.port, "majortom/disco/+/state", Duration::ZERO)
        .await
        .into_iter()
        .map(|m| (m.topic.split('/').nth(2).expect("entity level").to_owned(), m.payload))
        .collect();
    assert_eq!(
        configs["restart"].0, "button",
        "the Restart button is discovered by default"
    );
    for (id, (component, _)) in configs.iter().filter(|(_, (component, _))| component != "button") {
        let state = states.get(id).unwrap_or_else(|| panic!("no retained state for {id}"));
        match component.as_str() {
            "sensor" => {
                let n: f64 = state
                    .parse()
                    .unwrap_or_else(|_| panic!("{id} state {state:?} is not a number"));
                assert!(n.is_finite() && n >= 0.0, "{id} = {n}");
            }
            _ => assert!(state == "ON" || state == "OFF", "{id} = {state}"),
        }
    }
    let percent = |id: &str| states[id].parse::<f64>().expect("number");
    for id in ["cpu_usage", "memory_used", "disk_used", "swap_used"] {
        assert!((0.0..=100.0).contains(&percent(id)), "{id} = {}", percent(id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn home_assistant_birth_message_should_trigger_a_republish_of_discovery() {
    let broker = Broker::start();
    // A long interval, so nothing else publishes in the meantime; and a
    // relay, whose echoed state marks a point in what the agent sends.
    let extra = "[system]\ninterval_s = 3600\n\n[gpio]\nbackend = \"sim\"\n\n[[outputs]]\nname = \"relay\"\npin = 27\n";
    let _agent = Agent::start(&test_config("birth", broker.port, extra)).await;
    let relay = "majortom/birth/relay/state";
    // The states come after the discovery configs: once one is retained,
    // every config is.
    wait_retained(broker.port, relay, Duration::from_secs(10)).await;
    let configs: BTreeSet<String> = discovery_topics(&retained(broker.port, CONFIGS, Duration::ZERO).await);
    assert!(configs.len() >= 5, "{configs:?}");
    let observer = Observer::connect(broker.port, "#").await;
    observer.sync().await;
    observer.clear();

    // `offline`, then a command: the command's echo comes after anything
    // the `offline` could have made the agent send.
    observer.publish("homeassistant/status", "offline", false).await;
    observer.publish("majortom/birth/relay/set", "ON", false).await;
    observer
        .wait_for_message(relay, Duration::from_secs(10), |m| m.payload == "ON" && !m.retain)
        .await;
    assert!(
        discovery_topics(&observer.messages()).is_empty(),
        "`offline` from Home Assistant must not trigger a republish"
    );

    observer.clear();
    observer.publish("homeassistant/status", "online", false).await;
    wait_for("discovery to be republished", Duration::from_secs(10), || {
        (discovery_topics(&observer.messages()) == configs).then_some(())
    })
    .await;
    assert!(
        observer.messages().iter().all(|m| !m.retain),
        "live messages, not the retained store"
    );
}

/// The discovery config topics of node `birth` among `messages`.
const CONFIGS: &str = "homeassistant/+/birth/+/config";

fn discovery_topics(messages: &[Message]) -> BTreeSet<String> {
    messages
        .iter()
        .filter(|m| {
            m.topic.starts_with("homeassistant/") && m.topic.contains("/birth/") && m.topic.ends_with("/config")
        })
        .map(|m| m.topic.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_discovery_of_a_removed_entity_should_be_cleared() {
    let broker = Broker::start();
    let seed = Observer::connect(broker.port, "nothing/here").await;
    let stale = "homeassistant/sensor/stale/gpu_temperature/config";
    let other_node = "homeassistant/sensor/someone_else/gpu_temperature/config";
    seed.publish(stale, r#"{"name":"old"}"#, true).await;
    seed.publish(other_node, r#"{"name":"not ours"}"#, true).await;
    wait_retained(broker.port, stale, Duration::from_secs(5)).await;
    wait_retained(broker.port, other_node, Duration::from_secs(5)).await;

    let agent = Agent::start(&test_config("stale", broker.port, "[system]\ninterval_s = 3600\n")).await;
    let cleared = poll_until(Duration::from_secs(10), async || {
        retained_payload(broker.port, stale).await.is_none().then_some(())
    })
    .await;
    assert!(cleared.is_some(), "stale config not cleared; log: {}", agent.log());

    let configs = discovery_configs(broker.port, "stale").await;
    assert!(!configs.contains_key("gpu_temperature"), "stale config still retained");
    assert!(
        configs.contains_key("cpu_usage") || configs.contains_key("load_1m"),
        "our own configs must stay: {:?}",
        configs.keys()
    );
    let others = retained(broker.port, other_node, Duration::ZERO).await;
    assert_eq!(others.len(), 1, "another node's config must be left alone");
}
