//! Automations with the broker away: the README's three examples
//! (`docs/examples/*.toml`) run in-process on the simulated backend in
//! paused tokio time, so minutes and days pass in milliseconds; plus a
//! disabled automation, and the automation switches and device buttons
//! through the real binary and MQTT.

use std::sync::Arc;
use std::time::Duration;

use majortom::automations::Clock;
use majortom::config::{Config, Context, Origin};
use majortom::hub::Value;

use crate::support::{free_port, test_config, wait_for, wait_retained, Agent, Broker, Observer};

fn example(name: &str) -> String {
    let path = format!("{}/docs/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An agent config around an example: simulated GPIO, a broker that is not
/// there, no web server, no system stats unless `system` says otherwise.
fn offline_config(example: &str, state_dir: &std::path::Path, system: &str) -> Config {
    let text = format!(
        "[node]\nid = \"auto\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n\n[web]\nenabled = false\n\n{system}\n\n[gpio]\nbackend = \"sim\"\nstate_file = \"{}\"\n\n{example}",
        free_port(),
        state_dir.join("outputs.json").display()
    );
    Config::from_toml(&text, Origin::BuiltIn, &Context::system()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Local time that moves with tokio's (paused) clock, from `start`.
struct PausedClock {
    start_seconds: f64,
    start: tokio::time::Instant,
}

impl Clock for PausedClock {
    fn seconds_of_day(&self) -> f64 {
        (self.start_seconds + self.start.elapsed().as_secs_f64()) % 86_400.0
    }
}

/// A Pi before NTP: the wall clock is not set until `set_after` (paused
/// time), and reads `PausedClock`'s time after that.
struct UnsetClock {
    clock: PausedClock,
    set_after: Duration,
}

impl Clock for UnsetClock {
    fn seconds_of_day(&self) -> f64 {
        self.clock.seconds_of_day()
    }

    fn is_set(&self) -> bool {
        self.clock.start.elapsed() >= self.set_after
    }
}

/// Lets `seconds` of paused time pass (the clock jumps once every task
/// waits): the time itself is what these tests are about.
async fn pass(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn wall_switch_should_switch_the_relay_with_the_broker_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = offline_config(&example("wall-switch.toml"), dir.path(), "[system]\nenabled = false\n");
    let agent = majortom::app::start(config).await.expect("starts");
    let sim = agent.sim.clone().expect("sim");
    pass(0.1).await;
    assert_eq!(sim.output(27), Some(false));
    assert!(!agent.status.mqtt_connected(), "no broker in this test");

    // A long press (inverted input: pressed = low) toggles the relay on...
    sim.set_input(17, false).expect("claimed");
    pass(1.0).await;
    sim.set_input(17, true).expect("claimed");
    pass(0.5).await;
    assert_eq!(sim.output(27), Some(true));
    // ...a second long press toggles it off, and on again.
    for expected in [false, true] {
        sim.set_input(17, false).expect("claimed");
        pass(1.0).await;
        sim.set_input(17, true).expect("claimed");
        pass(0.5).await;
        assert_eq!(sim.output(27), Some(expected));
    }
    // A double press turns it off.
    for _ in 0..2 {
        sim.set_input(17, false).expect("claimed");
        pass(0.1).await;
        sim.set_input(17, true).expect("claimed");
        pass(0.1).await;
    }
    pass(0.5).await;
    assert_eq!(sim.output(27), Some(false));
    // A short single press is not wired to anything: nothing changes.
    let writes = sim.output_writes(27);
    sim.set_input(17, false).expect("claimed");
    pass(0.1).await;
    sim.set_input(17, true).expect("claimed");
    pass(1.0).await;
    assert_eq!(sim.output_writes(27), writes);
    let last_run = agent.hub.get("automation_wall_button_off").expect("switch").attributes;
    assert!(
        last_run.iter().any(|(k, v)| *k == "last_run" && v.ends_with('Z')),
        "{last_run:?}"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pump_should_run_at_seven_once_a_day_and_stop_after_ten_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = offline_config(&example("pump.toml"), dir.path(), "[system]\nenabled = false\n");
    let clock = Arc::new(PausedClock {
        start_seconds: 6.0 * 3600.0 + 59.0 * 60.0, // 06:59
        start: tokio::time::Instant::now(),
    });
    let agent = majortom::app::start_with_clock(config, clock).await.expect("starts");
    let sim = agent.sim.clone().expect("sim");
    pass(30.0).await;
    assert_eq!(sim.output(22), Some(false), "06:59:30");
    pass(60.0).await;
    assert_eq!(sim.output(22), Some(true), "07:00:30: watering");
    let writes_after_start = sim.output_writes(22);
    pass(9.0 * 60.0).await;
    assert_eq!(sim.output(22), Some(true), "07:09:30: still watering");
    pass(60.0).await;
    assert_eq!(sim.output(22), Some(false), "07:10:30: stopped by auto-off");
    assert_eq!(sim.output_writes(22), writes_after_start + 1, "on once, off once");
    // Nothing more until tomorrow morning, and then once.
    pass(23.0 * 3600.0 + 45.0 * 60.0).await;
    assert_eq!(sim.output_writes(22), writes_after_start + 1, "06:55:30 the next day");
    pass(6.0 * 60.0).await;
    assert_eq!(sim.output(22), Some(true), "07:01:30 the next day");
    assert_eq!(sim.output_writes(22), writes_after_start + 2);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn fan_should_follow_the_temperature_with_hysteresis_and_not_flap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = crate::support::merged_root(&["pi4"]);
    let temp = root.path().join("sys/class/thermal/thermal_zone0/temp");
    std::fs::write(&temp, "50000\n").expect("write temperature");
    let system = format!("[system]\ninterval_s = 1\nroot = \"{}\"\n", root.path().display());
    let config = offline_config(&example("fan.toml"), dir.path(), &system);
    let agent = majortom::app::start(config).await.expect("starts");
    let sim = agent.sim.clone().expect("sim");
    pass(0.5).await;
    assert_eq!(sim.output(18), Some(false));
    // A noisy reading around 60 °C, then down through 55 °C and back up a
    // little: on once, off once.
    let noisy = [
        58.0, 61.0, 59.5, 60.4, 59.0, 62.0, 57.0, 56.0, 55.5, 54.5, 56.0, 54.0, 57.0, 59.0,
    ];
    let mut fan = Vec::new();
    for celsius in noisy {
        std::fs::write(&temp, format!("{}\n", (celsius * 1000.0) as i64)).expect("write temperature");
        pass(1.0).await;
        fan.push(sim.output(18).unwrap_or_default());
    }
    assert_eq!(
        fan,
        [false, true, true, true, true, true, true, true, true, false, false, false, false, false],
        "fan state after each reading of {noisy:?}"
    );
    // The first reading (50 °C) put the fan off, which it already was;
    // then on once and off once.
    assert_eq!(sim.output_writes(18), 1 + 1 + 1 + 1);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pwm_fan_should_speed_up_with_the_temperature_and_keep_cooling_when_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = crate::support::merged_root(&["pi4"]);
    let temp = root.path().join("sys/class/thermal/thermal_zone0/temp");
    std::fs::write(&temp, "50000\n").expect("write temperature");
    let system = format!("[system]\ninterval_s = 1\nroot = \"{}\"\n", root.path().display());
    let config = offline_config(&example("pwm-fan.toml"), dir.path(), &system);
    let agent = majortom::app::start(config).await.expect("starts");
    let sim = agent.sim.clone().expect("sim");
    pass(0.5).await;
    assert_eq!(sim.pwm(0, 0), Some(0.3), "initial on, at its level");
    let level = |agent: &majortom::app::Agent| agent.hub.get("fan").and_then(|e| e.value);
    assert_eq!(level(&agent), Some(Value::Number(30.0)));
    let mut duty = Vec::new();
    for celsius in [60.0, 66.0, 60.0, 56.0, 54.0, 58.0] {
        std::fs::write(&temp, format!("{}\n", (celsius * 1000.0) as i64)).expect("write temperature");
        pass(1.0).await;
        duty.push(sim.pwm(0, 0).unwrap_or_default());
    }
    assert_eq!(
        duty,
        [0.3, 1.0, 1.0, 1.0, 0.3, 0.3],
        "up above 65, down below 55, nothing between"
    );
    assert_eq!(level(&agent), Some(Value::Number(30.0)));
    agent.stop().await;
    assert_eq!(sim.pwm(0, 0), Some(0.3), "safe state on: still cooling");
}

#[tokio::test(start_paused = true)]
async fn a_daily_automation_should_wait_until_the_clock_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = offline_config(&example("pump.toml"), dir.path(), "[system]\nenabled = false\n");
    // The unset clock happens to read 06:59 (a Pi at 1970 reads some time
    // of day too): nothing may run until NTP has set it, 10 minutes in.
    let clock = Arc::new(UnsetClock {
        clock: PausedClock {
            start_seconds: 6.0 * 3600.0 + 59.0 * 60.0,
            start: tokio::time::Instant::now(),
        },
        set_after: Duration::from_secs(600),
    });
    let agent = majortom::app::start_with_clock(config, clock).await.expect("starts");
    let sim = agent.sim.clone().expect("sim");
    pass(5.0 * 60.0).await;
    assert_eq!(sim.output(22), Some(false), "not at an unset 07:00");
    // Set at 07:09; the next 07:00 is tomorrow's.
    pass(24.0 * 3600.0 + 150.0 - 5.0 * 60.0).await;
    assert_eq!(sim.output(22), Some(true), "07:01:30 the next day, on a set clock");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_disabled_automation_should_do_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disabled = example("wall-switch.toml").replace(
        "name = \"wall_button_toggles_relay\"",
        "name = \"wall_button_toggles_relay\"\nenabled = false",
    );
    let config = offline_config(&disabled, dir.path(), "[system]\nenabled = false\n");
    let agent = majortom::app::start(config).await.expect("starts");
    let sim = agent.sim.clone().expect("sim");
    pass(0.1).await;
    let writes = sim.output_writes(27);
    sim.set_input(17, false).expect("claimed");
    pass(1.0).await;
    sim.set_input(17, true).expect("claimed");
    pass(0.5).await;
    assert_eq!(
        sim.output_writes(27),
        writes,
        "a long press does nothing while the automation is off"
    );
    let switch = agent.hub.get("automation_wall_button_toggles_relay").expect("switch");
    assert_eq!(switch.value, Some(majortom::hub::Value::Bool(false)));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn automation_switches_and_buttons_should_work_from_mqtt() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let rebooted = dir.path().join("rebooted");
    let extra = format!(
        "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\nstate_file = \"{}\"\n\n[buttons]\nreboot = true\nreboot_command = [\"touch\", \"{}\"]\n\n{}",
        dir.path().join("outputs.json").display(),
        rebooted.display(),
        example("wall-switch.toml")
    );
    let config = test_config("buttons", broker.port, &extra);
    let mut agent = Agent::start(&config).await;
    let port = broker.port;
    for topic in [
        "homeassistant/switch/buttons/automation_wall_button_toggles_relay/config",
        "homeassistant/button/buttons/restart/config",
        "homeassistant/button/buttons/reboot/config",
    ] {
        wait_retained(port, topic, Duration::from_secs(10)).await;
    }
    let observer = Observer::connect(port, "majortom/buttons/#").await;

    // Home Assistant turns the automation off, and that sticks across a
    // restart (the Restart button).
    observer
        .publish(
            "majortom/buttons/automation_wall_button_toggles_relay/set",
            "OFF",
            false,
        )
        .await;
    observer
        .wait_for_message(
            "majortom/buttons/automation_wall_button_toggles_relay/state",
            Duration::from_secs(5),
            |m| m.payload == "OFF" && !m.retain,
        )
        .await;
    let pid = agent.pid();
    observer.clear();
    observer.publish("majortom/buttons/restart/set", "PRESS", false).await;
    observer
        .wait_for_message("majortom/buttons/status", Duration::from_secs(10), |m| {
            m.payload == "offline"
        })
        .await;
    observer
        .wait_for_message("majortom/buttons/status", Duration::from_secs(10), |m| {
            m.payload == "online"
        })
        .await;
    assert_eq!(agent.pid(), pid, "restarted in place");
    assert!(agent.is_running());
    assert_eq!(agent.log().matches("starting majortom").count(), 2, "{}", agent.log());
    assert_eq!(
        wait_retained(
            port,
            "majortom/buttons/automation_wall_button_toggles_relay/state",
            Duration::from_secs(5)
        )
        .await,
        "OFF",
        "the switch was remembered"
    );

    // A button takes PRESS and nothing else: once a valid command sent
    // after the `ON` is echoed, the `ON` has been dealt with.
    observer.publish("majortom/buttons/reboot/set", "ON", false).await;
    let switch = "majortom/buttons/automation_wall_button_toggles_relay";
    observer.publish(&format!("{switch}/set"), "ON", false).await;
    observer
        .wait_for_message(&format!("{switch}/state"), Duration::from_secs(5), |m| {
            m.payload == "ON" && !m.retain
        })
        .await;
    assert!(!rebooted.exists());
    observer.publish("majortom/buttons/reboot/set", "PRESS", false).await;
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the agent hands over to the reboot");
    assert!(status.success(), "{}", agent.log());
    assert!(rebooted.exists(), "the reboot command ran");
    wait_for("offline before the reboot", Duration::from_secs(5), || {
        observer.last("majortom/buttons/status").filter(|p| p == "offline")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_automations_message_should_go_out_when_connected_and_be_dropped_when_not() {
    let mut broker = Broker::start();
    let extra = "[system]\nenabled = false\n\n[[automations]]\nname = \"tick\"\ntrigger = { interval_s = 0.5 }\nactions = [{ publish = \"house/tick\", payload = \"tock\" }]\n";
    let agent = Agent::start(&test_config("ticker", broker.port, extra)).await;
    let observer = Observer::connect(broker.port, "house/tick").await;
    let message = observer
        .wait_for_message("house/tick", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!((message.payload.as_str(), message.retain), ("tock", false));

    broker.stop();
    wait_for("the automation to drop a message", Duration::from_secs(10), || {
        agent
            .log()
            .contains("dropping an automation's MQTT message: not connected")
            .then_some(())
    })
    .await;
    // Nothing was queued: after the broker returns, only new ticks arrive,
    // at the pace of the interval (0.5 s), not as a burst of old ones.
    broker.restart();
    let observer = Observer::connect(broker.port, "house/tick").await;
    let ticks = wait_for("three ticks after the return", Duration::from_secs(10), || {
        let ticks = observer.messages();
        (ticks.len() >= 3).then_some(ticks)
    })
    .await;
    let spread = ticks[2].at.duration_since(ticks[0].at);
    assert!(
        spread >= Duration::from_millis(500),
        "three ticks {spread:?} apart, two intervals are 1 s: a burst of queued ones"
    );
}

#[test]
fn the_readme_should_show_exactly_the_tested_examples() {
    let readme = std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).expect("README");
    for name in ["wall-switch.toml", "pump.toml", "fan.toml", "pwm-fan.toml"] {
        assert!(
            readme.contains(&example(name)),
            "README.md must show docs/examples/{name} as it is"
        );
    }
}
