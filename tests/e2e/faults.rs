//! Faults a Pi on a shelf meets: the broker restarting again and again, a
//! network path that silently drops packets, commands sent while the agent
//! is reconnecting, a GPIO pin that starts failing, and the power going out
//! while the output state file is being written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use majortom::config::{Config, Context, Origin};
use rumqttc::QoS;

use crate::support::{
    poll_until, retained, retained_payload, test_config, wait_for, wait_retained, wait_retained_payload, Agent, Broker,
    Observer, Proxy,
};

/// What the broker holds retained for a node: topic → payload. The fleet's
/// `info` carries the uptime and the time it was sent, so only its presence
/// is compared.
async fn retained_map(port: u16, node: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let info = format!("majortom/{node}/info");
    for filter in [format!("majortom/{node}/#"), format!("homeassistant/+/{node}/+/config")] {
        for m in retained(port, &filter, Duration::ZERO).await {
            let payload = if m.topic == info {
                "(present)".to_owned()
            } else {
                m.payload
            };
            map.insert(m.topic, payload);
        }
    }
    map
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_broker_restarts_should_each_restore_availability_discovery_and_states() {
    let mut broker = Broker::start();
    let agent = Agent::start(&test_config("cycles", broker.port, "[system]\ninterval_s = 3600\n")).await;
    wait_retained(
        broker.port,
        "majortom/cycles/memory_used/state",
        Duration::from_secs(10),
    )
    .await;
    let expected = retained_map(broker.port, "cycles").await;
    assert!(expected.len() > 15, "{expected:?}");

    let mut times = Vec::new();
    for cycle in 0..20 {
        broker.stop();
        let down = Instant::now();
        // The broker comes back once the agent has seen it go.
        wait_for(
            "the agent to notice the broker is gone",
            Duration::from_secs(10),
            || (agent.get_json("/api/health")["mqtt"]["connected"] == false).then_some(()),
        )
        .await;
        broker.restart();
        let mut now = BTreeMap::new();
        let restored = poll_until(Duration::from_secs(35), async || {
            now = retained_map(broker.port, "cycles").await;
            (now == expected).then_some(())
        })
        .await;
        assert!(
            restored.is_some(),
            "cycle {cycle}: not restored; missing {:?}\nlog: {}",
            expected
                .keys()
                .collect::<BTreeSet<_>>()
                .difference(&now.keys().collect())
                .collect::<Vec<_>>(),
            agent.log()
        );
        times.push(down.elapsed());
        // Kept: a broker that closes us again and again within a keepalive
        // of accepting us is what two clients with one client id look like
        // under MQTT 3.1.1 (`mqtt/link.rs`), and is answered with a growing
        // backoff. A restarting broker stays up longer than that.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!("broker down → everything back, 20 cycles: {times:?}");
    // Every restore came within the backoff cap (30 s) plus the broker's
    // own start; none should come close.
    let slowest = times.iter().max().copied().unwrap_or_default();
    assert!(slowest < Duration::from_secs(32), "slowest restore {slowest:?}");
    assert_eq!(agent.get_json("/api/health")["mqtt"]["connects"], 21);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_partition_should_be_noticed_within_one_and_a_half_keepalives_and_healed() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port).await;
    // keepalive_s = 5 (test_config): a dead path must be noticed in 7.5 s.
    let agent = Agent::start(&test_config("partition", proxy.port, "[system]\ninterval_s = 3600\n")).await;
    wait_retained(broker.port, "majortom/partition/status", Duration::from_secs(10)).await;
    assert_eq!(proxy.connections().len(), 1);

    proxy.blackhole.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let noticed = wait_for("the agent to notice the dead path", Duration::from_secs(15), || {
        proxy.connections().get(1).copied()
    })
    .await;
    let detection = noticed.duration_since(cut);
    eprintln!("silent partition noticed (new connection attempt) after {detection:?}");
    // 1.5 × 5 s, plus the first backoff delay (at most 0.5 s).
    assert!(detection <= Duration::from_millis(8_200), "noticed after {detection:?}");
    assert!(agent.log().contains("nothing heard from the broker"), "{}", agent.log());

    proxy.blackhole.store(false, Ordering::SeqCst);
    let observer = Observer::connect(broker.port, "majortom/partition/status").await;
    observer.clear();
    // The reconnect republishes availability (and the rest) live.
    observer
        .wait_for_message("majortom/partition/status", Duration::from_secs(20), |m| {
            m.payload == "online" && !m.retain
        })
        .await;
    assert_eq!(
        retained_payload(broker.port, "majortom/partition/status")
            .await
            .as_deref(),
        Some("online")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_qos1_command_sent_while_the_agent_reconnects_should_be_applied_once_when_it_returns() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port).await;
    let config = test_config(
        "queued",
        proxy.port,
        "[system]\ninterval_s = 3600\n\n[gpio]\nbackend = \"sim\"\n\n[[outputs]]\nname = \"relay\"\npin = 27\n",
    );
    let agent = Agent::start(&config).await;
    wait_retained(broker.port, "majortom/queued/relay/state", Duration::from_secs(10)).await;
    let writes_before = agent.get_json("/api/sim/pins")["outputs"]["relay"]["writes"]
        .as_u64()
        .expect("writes");

    // The link drops (the broker sees the connection close) and stays down
    // while a command is sent with QoS 1.
    proxy.refuse.store(true, Ordering::SeqCst);
    wait_for("the agent to lose the broker", Duration::from_secs(10), || {
        (agent.get_json("/api/health")["mqtt"]["connected"] == false).then_some(())
    })
    .await;
    let sender = Observer::connect(broker.port, "nothing/here").await;
    sender.publish("majortom/queued/relay/set", "ON", false).await;
    // The broker has it (and queues it for the agent's session); the
    // agent, cut off, cannot have applied it.
    wait_for("the broker to take the command", Duration::from_secs(10), || {
        broker
            .log()
            .lines()
            .any(|l| l.contains("Received PUBLISH from observer-") && l.contains("'majortom/queued/relay/set'"))
            .then_some(())
    })
    .await;
    assert!(!agent.get_json("/api/sim/pins")["outputs"]["relay"]["high"]
        .as_bool()
        .unwrap_or(true));

    proxy.refuse.store(false, Ordering::SeqCst);
    let pins = wait_for("the queued command to arrive", Duration::from_secs(20), || {
        let pins = agent.get_json("/api/sim/pins");
        (pins["outputs"]["relay"]["high"] == true).then_some(pins)
    })
    .await;
    wait_retained_payload(broker.port, "majortom/queued/relay/state", "ON", Duration::from_secs(5)).await;
    // A command sent after it: once it is applied, a second delivery of the
    // queued one would have been applied too.
    sender.publish("majortom/queued/relay/set", "OFF", false).await;
    wait_for("the command after it", Duration::from_secs(10), || {
        let pins = agent.get_json("/api/sim/pins");
        (pins["outputs"]["relay"]["high"] == false).then_some(())
    })
    .await;
    let writes_after = agent.get_json("/api/sim/pins")["outputs"]["relay"]["writes"]
        .as_u64()
        .expect("writes");
    assert_eq!(
        writes_after,
        writes_before + 2,
        "the queued command applied exactly once: {pins}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_gpio_pin_should_never_take_the_agent_down() {
    let broker = Broker::start();
    let text = test_config(
        "faulty",
        broker.port,
        "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\n\n[[inputs]]\nname = \"door\"\npin = 17\ndebounce_ms = 0\n\n[[outputs]]\nname = \"relay\"\npin = 27\n",
    );
    let config = Config::from_toml(&text, Origin::BuiltIn, &Context::system()).expect("valid config");
    let agent = majortom::app::start(config).await.expect("starts");
    let sim = agent.sim.clone().expect("sim backend");
    wait_retained(broker.port, "majortom/faulty/relay/state", Duration::from_secs(10)).await;
    let observer = Observer::connect(broker.port, "majortom/faulty/+/state").await;

    // The relay's pin fails: the command is refused by the hardware, the
    // agent says so, keeps the real state, and carries on.
    sim.set_failing(27, true);
    observer.clear();
    observer.publish("majortom/faulty/relay/set", "ON", false).await;
    // The echo of the real state (OFF), not the retained copy.
    observer
        .wait_for_message("majortom/faulty/relay/state", Duration::from_secs(5), |m| {
            m.payload == "OFF" && !m.retain
        })
        .await;
    assert_eq!(sim.output(27), Some(false));
    assert!(agent.healthy());

    // The door's pin fails while it changes (it was ON, pulled up): its
    // level cannot be read back, so the edge's level is taken, and the
    // agent carries on.
    sim.set_failing(17, true);
    sim.set_input(17, false).expect("claimed");
    observer
        .wait_for_message("majortom/faulty/door/state", Duration::from_secs(5), |m| {
            m.payload == "OFF" && !m.retain
        })
        .await;
    assert!(agent.healthy());

    // Both recover.
    sim.set_failing(27, false);
    sim.set_failing(17, false);
    observer.clear();
    observer.publish("majortom/faulty/relay/set", "ON", false).await;
    observer
        .wait_for_message("majortom/faulty/relay/state", Duration::from_secs(5), |m| {
            m.payload == "ON"
        })
        .await;
    assert_eq!(sim.output(27), Some(true));
    // The door closes and opens again.
    sim.set_input(17, true).expect("claimed");
    observer
        .wait_for_message("majortom/faulty/door/state", Duration::from_secs(5), |m| {
            m.payload == "ON" && !m.retain
        })
        .await;
    sim.set_input(17, false).expect("claimed");
    observer
        .wait_for_message("majortom/faulty/door/state", Duration::from_secs(5), |m| {
            m.payload == "OFF" && !m.retain
        })
        .await;
    assert!(agent.healthy());
    agent.stop().await;
}

/// Waits until the broker has taken the `crash` agent's subscription to
/// its commands `runs` times (once per run): mosquitto logs each filter of
/// a SUBSCRIBE as it handles it, and handles one packet at a time, so a
/// command sent after that reaches the agent.
async fn subscribed(broker: &Broker, runs: usize) {
    wait_for(
        "the agent to subscribe to its commands",
        Duration::from_secs(10),
        || (broker.log().matches("majortom/crash/+/set (QoS").count() >= runs).then_some(()),
    )
    .await;
}

/// The simulated relay of the `crash` agent (`high`, `writes`).
fn pins(agent: &Agent) -> serde_json::Value {
    agent.get_json("/api/sim/pins")["outputs"]["relay"].clone()
}

/// The state the `crash` agent gave its relay at start. Toggles the broker
/// kept for the agent's session (sent to the killed run) may have been
/// applied since; each wrote the pin once more (claiming it was the first
/// write).
fn restored(agent: &Agent) -> bool {
    let relay = pins(agent);
    let high = relay["high"].as_bool().expect("high");
    let toggles = relay["writes"].as_u64().expect("writes") - 1;
    high ^ (toggles % 2 == 1)
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_state_writes_should_leave_a_whole_state_file_and_no_temporary_piling_up() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("outputs.json");
    let config = test_config(
        "crash",
        broker.port,
        &format!(
            "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\nstate_file = \"{}\"\n\n[[outputs]]\nname = \"relay\"\npin = 27\ninitial = \"restore\"\n",
            state_file.display()
        ),
    );
    let relay = "majortom/crash/relay/state";
    let sender = Observer::connect(broker.port, relay).await;
    let temporary = |name: &String| name.starts_with(".outputs.json.tmp-");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    // What the last kill left: the state in the file, a temporary file.
    let mut saved: Option<bool> = None;
    let mut leftover: Option<String> = None;
    let mut leftovers_seen = 0;
    for round in 0..20 {
        let mut agent = Agent::start(&config).await;
        // The start removed the temporary file the kill left, and restored
        // what the file says.
        if let Some(name) = leftover.take() {
            assert!(!dir.path().join(&name).exists(), "round {round}: {name} is still there");
        }
        if let Some(saved) = saved {
            assert_eq!(
                restored(&agent),
                saved,
                "round {round}: not restored from the state file"
            );
        }
        // Once the broker has this run's subscription to its commands...
        subscribed(&broker, round + 1).await;
        // ...a burst of toggles means a burst of state file writes...
        for _ in 0..40 {
            sender
                .client
                .publish("majortom/crash/relay/set", QoS::AtMostOnce, false, "TOGGLE")
                .await
                .expect("queue publish");
        }
        // ...and the power goes out at a random moment in the middle of it.
        // Kept: the random delay is the fault under test.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(seed % 60)).await;
        agent.signal(libc::SIGKILL);
        agent.wait_exit(Duration::from_secs(5)).await.expect("killed");
        // The rest of the burst has reached the broker (which may keep some
        // of it for the agent's session: `restored` counts them).
        sender.sync().await;

        // The state file is whole: the old one or a new one, never half.
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            let parsed: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("round {round}: corrupt state file ({e}): {text:?}"));
            let on = parsed["outputs"]["relay"].as_bool();
            assert!(on.is_some(), "round {round}: {text}");
            saved = on;
        }
        // Beside it, at most the one write the kill cut short.
        let names = names_in(dir.path());
        let others: Vec<_> = names.iter().filter(|n| *n != "outputs.json" && !temporary(n)).collect();
        assert!(others.is_empty(), "round {round}: unexpected files: {others:?}");
        let temporaries: Vec<_> = names.iter().filter(|n| temporary(n)).collect();
        assert!(temporaries.len() <= 1, "round {round}: {names:?}");
        leftover = temporaries.first().map(|n| (*n).clone());
        leftovers_seen += usize::from(leftover.is_some());
    }
    assert!(state_file.exists(), "at least one write completed in 20 rounds");
    eprintln!("kill -9 left a temporary state file in {leftovers_seen} of 20 rounds");

    // A last run, stopped as a user would stop it: the file and nothing else.
    let mut agent = Agent::start(&config).await;
    if let Some(name) = leftover {
        assert!(!dir.path().join(&name).exists(), "{name} is still there");
    }
    if let Some(saved) = saved {
        assert_eq!(restored(&agent), saved, "not restored from the state file");
    }
    // One more command, the opposite of what the file says, and after it
    // one for an entity that does not exist: once the agent has refused
    // that one, ours was the last to reach the relay (whatever the broker
    // kept for the session came before it).
    subscribed(&broker, 21).await;
    let command = !saved.unwrap_or(false);
    let payload = if command { "ON" } else { "OFF" };
    sender.publish("majortom/crash/relay/set", payload, false).await;
    sender.publish("majortom/crash/nothing/set", "ON", false).await;
    wait_for(
        "the agent to refuse the command after it",
        Duration::from_secs(10),
        || {
            agent
                .log()
                .lines()
                .any(|l| l.contains("ignoring command") && l.contains("majortom/crash/nothing/set"))
                .then_some(())
        },
    )
    .await;
    wait_for("the relay to be set", Duration::from_secs(10), || {
        (pins(&agent)["high"] == command).then_some(())
    })
    .await;
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(5)).await.expect("stops");
    assert!(status.success(), "{}", agent.log());
    // The outputs' state and MQTT's contact record; no temporary file.
    assert_eq!(names_in(dir.path()), ["mqtt.json", "outputs.json"]);
    let text = std::fs::read_to_string(&state_file).expect("the state file");
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        parsed["outputs"]["relay"], command,
        "the last commanded state is saved: {text}"
    );
}
