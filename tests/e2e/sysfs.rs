//! Raspberry Pi specifics read from fixture trees, through the whole agent
//! to the broker: what exists is discovered and published, what is absent
//! is simply not created.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{retained, test_config, wait_retained, Agent, Broker};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/sysroot/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn retained_map(port: u16, filter: &str) -> HashMap<String, String> {
    retained(port, filter, Duration::from_millis(400))
        .await
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn system_filters_should_shape_what_is_published() {
    let broker = Broker::start();
    let extra = format!(
        "[system]\ninterval_s = 3600\nroot = \"{}\"\n\n[system.filters]\ncpu_temperature = [{{ offset = -0.7 }}, {{ multiply = 2 }}]\n",
        fixture("pi4")
    );
    let _agent = Agent::start(&test_config("sysfilter", broker.port, &extra)).await;
    let payload = wait_retained(
        broker.port,
        "majortom/sysfilter/cpu_temperature/state",
        Duration::from_secs(10),
    )
    .await;
    // The fixture's 48.7 °C, less 0.7, doubled.
    assert_eq!(payload, "96.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn pi4_tree_should_publish_temperature_frequency_and_decoded_throttling_flags() {
    let broker = Broker::start();
    let extra = format!("[system]\ninterval_s = 3600\nroot = \"{}\"\n", fixture("pi4"));
    let agent = Agent::start(&test_config("pi4", broker.port, &extra)).await;
    wait_retained(broker.port, "majortom/pi4/throttled/state", Duration::from_secs(10)).await;

    let states = retained_map(broker.port, "majortom/pi4/+/state").await;
    let state = |id: &str| {
        states
            .get(&format!("majortom/pi4/{id}/state"))
            .cloned()
            .unwrap_or_else(|| panic!("no state for {id}: {states:?}"))
    };
    assert_eq!(state("cpu_temperature"), "48.7");
    assert_eq!(state("cpu_frequency"), "1500");
    // get_throttled = 0x50005: bits 0, 2, 16 and 18.
    assert_eq!(state("under_voltage"), "ON");
    assert_eq!(state("frequency_capped"), "OFF");
    assert_eq!(state("throttled"), "ON");
    assert_eq!(state("soft_temp_limit"), "OFF");
    assert_eq!(state("under_voltage_occurred"), "ON");
    assert_eq!(state("frequency_capped_occurred"), "OFF");
    assert_eq!(state("throttled_occurred"), "ON");
    assert_eq!(state("soft_temp_limit_occurred"), "OFF");

    let configs = retained_map(broker.port, "homeassistant/+/pi4/+/config").await;
    let config = |topic: &str| -> serde_json::Value {
        serde_json::from_str(configs.get(topic).unwrap_or_else(|| panic!("no {topic}"))).expect("json")
    };
    let temperature = config("homeassistant/sensor/pi4/cpu_temperature/config");
    assert_eq!(temperature["device_class"], "temperature");
    assert_eq!(temperature["unit_of_measurement"], "°C");
    assert_eq!(temperature["device"]["model"], "Raspberry Pi 4 Model B Rev 1.4");
    assert_eq!(temperature["device"]["manufacturer"], "Raspberry Pi Ltd");
    let under_voltage = config("homeassistant/binary_sensor/pi4/under_voltage/config");
    assert_eq!(under_voltage["device_class"], "problem");

    let health = agent.get_json("/api/health");
    assert_eq!(health["model"], "Raspberry Pi 4 Model B Rev 1.4");
}

#[tokio::test(flavor = "multi_thread")]
async fn tree_without_pi_files_should_create_none_of_those_entities() {
    let broker = Broker::start();
    let extra = format!("[system]\ninterval_s = 3600\nroot = \"{}\"\n", fixture("minimal"));
    let agent = Agent::start(&test_config("plain", broker.port, &extra)).await;
    wait_retained(broker.port, "majortom/plain/load_1m/state", Duration::from_secs(10)).await;

    let configs = retained_map(broker.port, "homeassistant/+/plain/+/config").await;
    assert!(
        configs.contains_key("homeassistant/sensor/plain/memory_used/config"),
        "{:?}",
        configs.keys()
    );
    for absent in [
        "cpu_temperature",
        "cpu_frequency",
        "under_voltage",
        "throttled",
        "soft_temp_limit_occurred",
    ] {
        assert!(
            configs.keys().all(|t| !t.contains(&format!("/{absent}/"))),
            "{absent} must not be discovered"
        );
    }
    let state = agent.get_json("/api/state");
    let ids: Vec<&str> = state["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&"cpu_temperature") && !ids.contains(&"throttled"),
        "{ids:?}"
    );
}
