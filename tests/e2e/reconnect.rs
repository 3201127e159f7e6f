//! The broker goes away: the agent keeps running, backs off, and restores
//! everything when the broker returns.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{free_port, poll_until, retained, test_config, wait_for, wait_retained, Agent, Broker, Observer};

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_should_bring_back_availability_discovery_and_states() {
    let mut broker = Broker::start();
    let mut agent = Agent::start(&test_config("restart", broker.port, "[system]\ninterval_s = 3600\n")).await;
    wait_retained(broker.port, "majortom/restart/status", Duration::from_secs(10)).await;
    let before = retained(broker.port, "#", Duration::ZERO).await;
    let before_topics: BTreeSet<String> = before.iter().map(|m| m.topic.clone()).collect();
    assert!(before_topics.len() > 10, "{before_topics:?}");

    // The broker dies and comes back empty (no persistence): only the agent
    // can restore what was retained. With a one-hour sampling interval, only
    // the reconnect logic can republish the states.
    broker.stop();
    wait_for(
        "the agent to notice the broker is gone",
        Duration::from_secs(10),
        || (agent.get_json("/api/health")["mqtt"]["connected"] == false).then_some(()),
    )
    .await;
    broker.restart();

    let mut topics = BTreeSet::new();
    let after = poll_until(Duration::from_secs(20), async || {
        let messages = retained(broker.port, "#", Duration::ZERO).await;
        topics = messages.iter().map(|m| m.topic.clone()).collect();
        (topics == before_topics).then_some(messages)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "not all republished after the restart: {topics:?}\nlog: {}",
            agent.log()
        )
    });
    let status = after
        .iter()
        .find(|m| m.topic == "majortom/restart/status")
        .expect("status");
    assert_eq!(status.payload, "online");
    assert!(agent.is_running());
    assert!(
        agent.log().contains("lost connection to MQTT broker"),
        "{}",
        agent.log()
    );
    assert_eq!(agent.get_json("/api/health")["mqtt"]["connects"], 2);

    // The subscriptions are back too: Home Assistant's birth is answered.
    // (Everything the reconnect republished is retained by now, so nothing
    // of it is still on its way to this new subscriber.)
    let observer = Observer::connect(broker.port, "homeassistant/+/restart/+/config").await;
    observer.sync().await;
    observer.clear();
    observer.publish("homeassistant/status", "online", false).await;
    observer
        .wait_for_message(
            "homeassistant/sensor/restart/memory_used/config",
            Duration::from_secs(10),
            |m| !m.retain,
        )
        .await;
}

/// A TCP listener that accepts and at once closes every connection, like a
/// broker that refuses us; counts the attempts.
fn refusing_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, attempts)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_broker_should_see_backed_off_attempts_while_the_api_keeps_serving() {
    let (port, attempts) = refusing_listener();
    let mut agent = Agent::start(&test_config("refused", port, "[system]\ninterval_s = 1\n")).await;
    let window = Duration::from_secs(10);
    let cpu_before = agent.cpu_time();
    // Kept: the behaviour under test is what the agent does over a span of
    // time (how often it retries, how much CPU it spends).
    tokio::time::sleep(window).await;
    let cpu_used = agent.cpu_time() - cpu_before;
    let attempts = attempts.load(Ordering::SeqCst);

    assert!(agent.is_running(), "log: {}", agent.log());
    // Backoff from 0.5 s doubling to 30 s, each delay jittered down to half:
    // five or six delays fit in 10 s. A hang-up before CONNACK may be a
    // broker that refuses MQTT 5, so each step is an MQTT 5 attempt and a
    // 3.1.1 one right after it (link.rs): at most 12 attempts. A retry loop
    // without backoff makes thousands.
    assert!(
        (2..=12).contains(&attempts),
        "{attempts} connection attempts in {window:?}"
    );
    assert!(
        cpu_used < Duration::from_secs(1),
        "used {cpu_used:?} of CPU in {window:?}: spinning?"
    );
    let state = agent.get_json("/api/state");
    let entities = state["entities"].as_array().expect("entities");
    assert!(
        entities
            .iter()
            .any(|e| e["id"] == "memory_used" && e["value"].is_number()),
        "{state}"
    );
    let health = agent.get_json("/api/health");
    assert_eq!(health["mqtt"]["connected"], false);
    let warnings = agent.log().matches("cannot connect to MQTT broker").count();
    assert_eq!(warnings, 1, "one warning, then quiet retries: {}", agent.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_broker_at_all_should_not_spin_and_should_connect_once_one_appears() {
    let port = free_port();
    let mut agent = Agent::start(&test_config("late", port, "[system]\ninterval_s = 1\n")).await;
    let cpu_before = agent.cpu_time();
    // Kept: the CPU spent over a span of time is what is under test.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        agent.cpu_time() - cpu_before < Duration::from_millis(500),
        "spinning without a broker"
    );
    assert!(agent.is_running());

    let broker = Broker::start_on(port);
    assert_eq!(
        wait_retained(broker.port, "majortom/late/status", Duration::from_secs(15)).await,
        "online"
    );
    wait_retained(broker.port, "majortom/late/memory_used/state", Duration::from_secs(5)).await;
}
