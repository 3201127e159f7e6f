//! GPIO inputs, outputs and sensors through the whole agent, on the
//! simulated backend: edges flipped over HTTP reach MQTT, commands on `/set`
//! drive the simulated pins, sensors read fixture sysfs trees and a
//! simulated BME280 on I2C.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{merged_root, retained, test_config, wait_retained, Agent, Broker, Observer};

/// 4 inputs, 4 outputs and every sensor kind, on the simulated backend.
fn full_config(node: &str, port: u16, root: &std::path::Path, state_file: &std::path::Path) -> String {
    test_config(
        node,
        port,
        &format!(
            r#"[system]
enabled = false
root = "{root}"

[gpio]
backend = "sim"
state_file = "{state}"

[[inputs]]
name = "front_door"
pin = 17
inverted = true
device_class = "door"
debounce_ms = 0

[[inputs]]
name = "window"
pin = 18
device_class = "window"

[[inputs]]
name = "hall_motion"
pin = 23
pull = "down"
device_class = "motion"

[[inputs]]
name = "button"
pin = 24
inverted = true
debounce_ms = 10
events = true

[[outputs]]
name = "relay"
pin = 5
initial = "restore"

[[outputs]]
name = "pump"
pin = 6
auto_off_s = 0.5

[[outputs]]
name = "lamp"
pin = 13
kind = "light"
inverted = true

[[outputs]]
name = "led"
pin = 19
initial = "on"
safe_state = "on"

[[sensors]]
kind = "ds18b20"
name = "garden"
id = "28-0316a2795cff"
interval_s = 1

[[sensors]]
kind = "iio"
name = "living"
device = "dht11"
interval_s = 1

[[sensors]]
kind = "iio"
name = "attic"
device = "iio:device1"
interval_s = 1

[[sensors]]
kind = "bme280"
name = "outside"
address = 0x76
interval_s = 1
offset = {{ temperature = -0.08 }}
"#,
            root = root.display(),
            state = state_file.display()
        ),
    )
}

struct Rig {
    broker: Broker,
    agent: Agent,
    _root: tempfile::TempDir,
    state_dir: tempfile::TempDir,
    node: String,
}

async fn start(node: &str) -> Rig {
    let broker = Broker::start();
    let root = merged_root(&["w1", "iio"]);
    let state_dir = tempfile::tempdir().expect("tempdir");
    let config = full_config(node, broker.port, root.path(), &state_dir.path().join("outputs.json"));
    let agent = Agent::start(&config).await;
    wait_retained(broker.port, &format!("majortom/{node}/status"), Duration::from_secs(10)).await;
    Rig {
        broker,
        agent,
        _root: root,
        state_dir,
        node: node.to_owned(),
    }
}

impl Rig {
    fn topic(&self, entity: &str, leaf: &str) -> String {
        format!("majortom/{}/{entity}/{leaf}", self.node)
    }

    fn flip(&self, input: &str, high: bool) {
        let (status, body) = self.agent.send(
            "PUT",
            &format!("/api/sim/inputs/{input}"),
            &format!("{{\"high\": {high}}}"),
        );
        assert_eq!(status, 200, "flipping {input}: {body}");
    }

    /// The simulated output pin: (level, number of writes).
    fn pin(&self, output: &str) -> (bool, u64) {
        let pins = self.agent.get_json("/api/sim/pins");
        let pin = &pins["outputs"][output];
        (
            pin["high"]
                .as_bool()
                .unwrap_or_else(|| panic!("no pin for {output}: {pins}")),
            pin["writes"].as_u64().expect("writes"),
        )
    }

    async fn state(&self, entity: &str) -> Option<String> {
        crate::support::retained_payload(self.broker.port, &self.topic(entity, "state")).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_input_output_and_sensor_kind_should_be_discovered_in_sim_mode() {
    let rig = start("rig").await;
    wait_retained(
        rig.broker.port,
        &rig.topic("outside_pressure", "state"),
        Duration::from_secs(10),
    )
    .await;
    let configs: HashMap<String, Json> = retained(
        rig.broker.port,
        "homeassistant/+/rig/+/config",
        Duration::from_millis(500),
    )
    .await
    .into_iter()
    .map(|m| (m.topic.clone(), serde_json::from_str(&m.payload).expect("json")))
    .collect();
    let config = |component: &str, id: &str| -> &Json {
        configs
            .get(&format!("homeassistant/{component}/rig/{id}/config"))
            .unwrap_or_else(|| panic!("{component}/{id} not discovered; have {:?}", configs.keys()))
    };
    assert_eq!(config("binary_sensor", "front_door")["device_class"], "door");
    assert_eq!(config("binary_sensor", "window")["device_class"], "window");
    assert_eq!(config("binary_sensor", "hall_motion")["device_class"], "motion");
    config("binary_sensor", "button");
    for press in ["single", "double", "long"] {
        let trigger = config("device_automation", &format!("button_{press}"));
        assert_eq!(trigger["topic"], "majortom/rig/button/event");
        assert_eq!(trigger["payload"], press);
    }
    for switch in ["relay", "pump", "led"] {
        assert_eq!(
            config("switch", switch)["command_topic"],
            format!("majortom/rig/{switch}/set")
        );
    }
    assert_eq!(config("light", "lamp")["command_topic"], "majortom/rig/lamp/set");
    let sensors = [
        ("garden", "temperature", "°C"),
        ("living_temperature", "temperature", "°C"),
        ("living_humidity", "humidity", "%"),
        ("attic_temperature", "temperature", "°C"),
        ("attic_humidity", "humidity", "%"),
        ("attic_pressure", "pressure", "hPa"),
        ("outside_temperature", "temperature", "°C"),
        ("outside_pressure", "pressure", "hPa"),
        ("outside_humidity", "humidity", "%"),
    ];
    for (id, class, unit) in sensors {
        let c = config("sensor", id);
        assert_eq!(c["device_class"], class, "{id}");
        assert_eq!(c["unit_of_measurement"], unit, "{id}");
        assert_eq!(c["state_class"], "measurement", "{id}");
        assert_eq!(c["availability"][1]["topic"], format!("majortom/rig/{id}/availability"));
    }
    // The 1-wire device with a CRC failure was found on its own and is
    // unavailable; the good one reads 23.1 °C.
    let crc = config("sensor", "ds18b20_0416b3b8c1ff");
    assert_eq!(crc["device_class"], "temperature");
    assert_eq!(
        wait_retained(
            rig.broker.port,
            &rig.topic("ds18b20_0416b3b8c1ff", "availability"),
            Duration::from_secs(5)
        )
        .await,
        "offline"
    );
    assert_eq!(rig.state("garden").await.as_deref(), Some("23.1"));
    assert_eq!(
        wait_retained(
            rig.broker.port,
            &rig.topic("garden", "availability"),
            Duration::from_secs(5)
        )
        .await,
        "online"
    );
    // The simulated BME280 reads the datasheet's example, calibrated by -0.08.
    assert_eq!(rig.state("outside_temperature").await.as_deref(), Some("25.0"));
    assert_eq!(rig.state("outside_pressure").await.as_deref(), Some("1006.5"));
    assert_eq!(rig.state("living_temperature").await.as_deref(), Some("21.3"));
    assert_eq!(rig.state("living_humidity").await.as_deref(), Some("45.2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sim_input_edge_should_reach_mqtt_as_on_and_off() {
    let rig = start("edges").await;
    let observer = Observer::connect(rig.broker.port, "majortom/edges/+/state").await;
    let door = rig.topic("front_door", "state");
    // Pulled up and inverted: the door reads OFF until the pin goes low.
    observer
        .wait_for_message(&door, Duration::from_secs(5), |m| m.payload == "OFF")
        .await;
    observer.clear();
    rig.flip("front_door", false);
    observer
        .wait_for_message(&door, Duration::from_secs(5), |m| m.payload == "ON")
        .await;
    rig.flip("front_door", true);
    observer
        .wait_for_message(&door, Duration::from_secs(5), |m| m.payload == "OFF")
        .await;
    // Not inverted, pulled down: high is ON.
    rig.flip("hall_motion", true);
    observer
        .wait_for_message(&rig.topic("hall_motion", "state"), Duration::from_secs(5), |m| {
            m.payload == "ON"
        })
        .await;
    let (status, body) = rig.agent.send("PUT", "/api/sim/inputs/nope", "{\"high\": true}");
    assert_eq!(status, 404, "{body}");
    let (status, body) = rig.agent.send("PUT", "/api/sim/inputs/window", "{\"high\": 1}");
    assert!(status == 400 || status == 422, "{status}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_press_of_the_button_should_publish_a_single_press_event() {
    let rig = start("press").await;
    let observer = Observer::connect(rig.broker.port, "majortom/press/button/event").await;
    rig.flip("button", false);
    // A user's short press: held 100 ms (more than the debounce, far less
    // than a long press), then let go.
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.flip("button", true);
    let event = observer
        .wait_for_message(&rig.topic("button", "event"), Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(event.payload, "single");
    assert!(!event.retain);
}

#[tokio::test(flavor = "multi_thread")]
async fn set_commands_should_drive_the_sim_outputs_and_echo_the_state() {
    let rig = start("cmds").await;
    let observer = Observer::connect(rig.broker.port, "majortom/cmds/+/state").await;
    let relay = rig.topic("relay", "state");
    assert!(!rig.pin("relay").0);

    observer.publish(&rig.topic("relay", "set"), "on", false).await;
    observer
        .wait_for_message(&relay, Duration::from_secs(5), |m| m.payload == "ON")
        .await;
    assert!(rig.pin("relay").0);

    observer.clear();
    observer.publish(&rig.topic("relay", "set"), "TOGGLE", false).await;
    observer
        .wait_for_message(&relay, Duration::from_secs(5), |m| m.payload == "OFF")
        .await;
    assert!(!rig.pin("relay").0);

    // The lamp is active-low: ON drives the pin low.
    assert!(rig.pin("lamp").0, "off = high on an inverted output");
    observer.publish(&rig.topic("lamp", "set"), "ON", false).await;
    observer
        .wait_for_message(&rig.topic("lamp", "state"), Duration::from_secs(5), |m| {
            m.payload == "ON"
        })
        .await;
    assert!(!rig.pin("lamp").0);

    // Garbage changes nothing and is logged with topic and payload.
    let writes = rig.pin("relay").1;
    observer.publish(&rig.topic("relay", "set"), "maybe", false).await;
    observer.publish(&rig.topic("front_door", "set"), "ON", false).await;
    // A valid command after them: once it is echoed, they were dealt with.
    observer.clear();
    observer.publish(&rig.topic("lamp", "set"), "OFF", false).await;
    observer
        .wait_for_message(&rig.topic("lamp", "state"), Duration::from_secs(5), |m| {
            m.payload == "OFF"
        })
        .await;
    assert_eq!(rig.pin("relay"), (false, writes));
    let log = rig.agent.log();
    assert!(log.contains("ignoring command") && log.contains("maybe"), "{log}");
    assert!(log.contains("majortom/cmds/front_door/set"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pulsed_output_should_turn_itself_off() {
    let rig = start("pulse").await;
    let observer = Observer::connect(rig.broker.port, "majortom/pulse/pump/state").await;
    let pump = rig.topic("pump", "state");
    observer.publish(&rig.topic("pump", "set"), "ON", false).await;
    observer
        .wait_for_message(&pump, Duration::from_secs(5), |m| m.payload == "ON")
        .await;
    observer.clear();
    observer
        .wait_for_message(&pump, Duration::from_secs(5), |m| m.payload == "OFF")
        .await;
    assert!(!rig.pin("pump").0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_should_leave_safe_states_and_restore_should_survive_a_restart() {
    let mut rig = start("safe").await;
    let observer = Observer::connect(rig.broker.port, "majortom/safe/+/state").await;
    observer.publish(&rig.topic("relay", "set"), "ON", false).await;
    observer
        .wait_for_message(&rig.topic("relay", "state"), Duration::from_secs(5), |m| {
            m.payload == "ON"
        })
        .await;
    assert_eq!(rig.state("led").await.as_deref(), Some("ON"));

    rig.agent.signal(libc::SIGTERM);
    let status = rig.agent.wait_exit(Duration::from_secs(3)).await.expect("stopped");
    assert!(status.success());
    // The safe states went out before `offline`.
    assert_eq!(rig.state("relay").await.as_deref(), Some("OFF"));
    assert_eq!(rig.state("led").await.as_deref(), Some("ON"), "led's safe state is on");
    let log = rig.agent.log();
    assert!(log.contains("published offline"), "{log}");

    // A new agent on the same state file restores the relay.
    let root = merged_root(&["w1", "iio"]);
    let config = full_config(
        "safe",
        rig.broker.port,
        root.path(),
        &rig.state_dir.path().join("outputs.json"),
    );
    let agent = Agent::start(&config).await;
    let observer = Observer::connect(rig.broker.port, "majortom/safe/relay/state").await;
    observer
        .wait_for_message(&rig.topic("relay", "state"), Duration::from_secs(10), |m| {
            m.payload == "ON"
        })
        .await;
    rig.agent = agent;
    assert!(rig.pin("relay").0);
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_backend_on_a_machine_that_is_not_a_pi_should_use_sim_with_one_warning() {
    let broker = Broker::start();
    let root = merged_root(&["minimal"]);
    let config = test_config(
        "auto",
        broker.port,
        &format!(
            "[system]\nroot = \"{}\"\n\n[gpio]\nbackend = \"auto\"\n\n[[inputs]]\nname = \"door\"\npin = 4\n\n[[outputs]]\nname = \"relay\"\npin = 5\n",
            root.path().display()
        ),
    );
    let agent = Agent::start(&config).await;
    wait_retained(broker.port, "majortom/auto/door/state", Duration::from_secs(10)).await;
    let log = agent.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("simulated GPIO"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    let health = agent.get_json("/api/health");
    assert_eq!(health["gpio"], "sim");
    assert!(
        health["gpio_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no GPIO chip")),
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_backend_with_a_chip_that_cannot_be_opened_should_fail_naming_it_not_simulate() {
    let broker = Broker::start();
    let root = merged_root(&["minimal"]);
    // A /dev/gpiochip0 that exists but is no GPIO device (the real-chip
    // paths run in the emulated Pi: tests/e2e/emulated_pi.rs).
    std::fs::create_dir_all(root.path().join("dev")).expect("mkdir dev");
    std::fs::write(root.path().join("dev/gpiochip0"), "").expect("fake chip");
    let config = test_config(
        "nochip",
        broker.port,
        &format!(
            "[system]\nroot = \"{}\"\n\n[[outputs]]\nname = \"relay\"\npin = 5\n",
            root.path().display()
        ),
    );
    let mut agent = Agent::spawn(&config, &[]);
    let status = agent.wait_exit(Duration::from_secs(10)).await.expect("exits");
    assert!(!status.success());
    let log = agent.log();
    assert!(
        log.contains("/dev/gpiochip0") && log.contains("not a GPIO character device"),
        "{log}"
    );
    assert!(
        !log.contains("simulated"),
        "a chip that exists is never replaced by the simulation: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_rppal_backend_off_a_pi_should_fail_at_start_saying_what_to_do() {
    let broker = Broker::start();
    let root = merged_root(&["minimal"]);
    let config = test_config(
        "rppal",
        broker.port,
        &format!(
            "[system]\nroot = \"{}\"\n\n[gpio]\nbackend = \"rppal\"\n\n[[inputs]]\nname = \"door\"\npin = 4\n",
            root.path().display()
        ),
    );
    let mut agent = Agent::spawn(&config, &[]);
    let status = agent.wait_exit(Duration::from_secs(10)).await.expect("exits");
    assert!(!status.success());
    let log = agent.log();
    assert!(
        log.contains("gpio.backend = \"rppal\"") && log.contains("/dev/gpiomem") && log.contains("\"sim\""),
        "{log}"
    );
}

/// A PWM fan and a PWM light, as Home Assistant meets them: discovered with
/// a percentage and a brightness on the command topic, a level sets the
/// duty cycle, OFF publishes 0, ON brings the level back; a level sent to
/// an on/off relay is refused.
#[tokio::test(flavor = "multi_thread")]
async fn pwm_outputs_should_be_a_fan_and_a_light_with_levels_over_mqtt() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(
        "pwm",
        broker.port,
        &format!(
            "[system]\nenabled = false\n[gpio]\nbackend = \"sim\"\nstate_file = \"{}\"\n\
             [[outputs]]\nname = \"fan\"\nkind = \"fan\"\npwm_channel = 0\nlevel = 60\n\
             [[outputs]]\nname = \"lamp\"\nkind = \"light\"\npwm_channel = 1\nfrequency_hz = 2000\n\
             [[outputs]]\nname = \"relay\"\npin = 5\n",
            dir.path().join("state.json").display()
        ),
    );
    let agent = Agent::start(&config).await;
    assert_eq!(
        wait_retained(broker.port, "majortom/pwm/fan/state", Duration::from_secs(10)).await,
        "0"
    );
    let fan: Json = serde_json::from_str(
        &wait_retained(broker.port, "homeassistant/fan/pwm/fan/config", Duration::from_secs(10)).await,
    )
    .expect("json");
    assert_eq!(fan["percentage_command_topic"], "majortom/pwm/fan/set");
    assert_eq!(fan["percentage_state_topic"], "majortom/pwm/fan/state");
    let lamp: Json = serde_json::from_str(
        &wait_retained(
            broker.port,
            "homeassistant/light/pwm/lamp/config",
            Duration::from_secs(10),
        )
        .await,
    )
    .expect("json");
    assert_eq!(lamp["brightness_command_topic"], "majortom/pwm/lamp/set");
    assert_eq!(lamp["brightness_scale"], 100);

    let observer = Observer::connect(broker.port, "majortom/pwm/+/state").await;
    let expect = |topic: &'static str, payload: &'static str| {
        let observer = &observer;
        async move {
            observer
                .wait_for_message(topic, Duration::from_secs(5), |m| m.payload == payload)
                .await;
            observer.clear();
        }
    };
    observer.clear();
    observer.publish("majortom/pwm/fan/set", "ON", false).await;
    expect("majortom/pwm/fan/state", "60").await;
    observer.publish("majortom/pwm/fan/set", "35", false).await;
    expect("majortom/pwm/fan/state", "35").await;
    observer.publish("majortom/pwm/fan/set", "OFF", false).await;
    expect("majortom/pwm/fan/state", "0").await;
    observer.publish("majortom/pwm/fan/set", "ON", false).await;
    expect("majortom/pwm/fan/state", "35").await;
    observer.publish("majortom/pwm/lamp/set", "80", false).await;
    expect("majortom/pwm/lamp/state", "80").await;
    // A level is not a command for an on/off relay: refused, and the ON
    // after it is what the relay's state shows.
    observer.publish("majortom/pwm/relay/set", "50", false).await;
    observer.publish("majortom/pwm/relay/set", "ON", false).await;
    expect("majortom/pwm/relay/state", "ON").await;
    assert!(agent.log().contains("ignoring command"), "{}", agent.log());
    let state = agent.get_json("/api/entities/fan");
    assert_eq!(state["value"], 35.0);
}
