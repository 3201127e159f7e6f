//! Issue 15's reproductions on the agent's side of the LAN: what a careless
//! or hostile neighbour sends must not lock the dashboard out, forge or
//! flood the log, flip a simulated input without the token, read the API
//! through DNS rebinding, or pile up automation runs and relay switches.
//! Each test prints the figure it measures ("before" is main at `9ab1648`,
//! measured with the same test; docs/PERFORMANCE.md has both).

use std::time::{Duration, Instant};

use crate::support::{free_port, test_config, Agent, Broker, Observer};

/// A simulated relay and a door input.
const SIM: &str = "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\nstate_file = \"/dev/null/unused\"\n\n[[inputs]]\nname = \"door\"\npin = 17\ndebounce_ms = 0\n\n[[outputs]]\nname = \"relay\"\npin = 27\n";

/// Reproduction 5: 2,000 rejected payloads of 60 KB, each with a newline
/// and a forged log line in it. Main logged each whole and raw (118 MB in
/// 2 s, and the forged lines looked real).
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_bad_payloads_should_neither_forge_nor_flood_the_log() {
    // Mosquitto drops what it queues for a subscriber beyond 1,000
    // messages; all 2,000 must reach the agent for the count to add up.
    let broker = Broker::start_with(free_port(), "allow_anonymous true\nmax_queued_messages 5000\n");
    let mut agent = Agent::start(&test_config("flood", broker.port, SIM)).await;
    let observer = Observer::connect(broker.port, "majortom/flood/relay/state").await;
    observer
        .wait_for_message("majortom/flood/relay/state", Duration::from_secs(10), |m| {
            m.payload == "OFF"
        })
        .await;
    let forged = "2026-01-01T00:00:00.000Z  WARN majortom::app: FORGED";
    let payload = format!("ON\n{forged}\n{}", "x".repeat(60 * 1024 - 100));
    let before = agent.log().len();
    let started = Instant::now();
    for _ in 0..2_000 {
        observer.publish("majortom/flood/relay/set", &payload, false).await;
    }
    // Messages from one client arrive in order: once this one is echoed,
    // every bad one before it has been dealt with.
    observer.publish("majortom/flood/relay/set", "ON", false).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !observer
        .messages()
        .iter()
        .any(|m| m.topic.ends_with("/state") && m.payload == "ON" && !m.retain)
    {
        let log = agent.log();
        assert!(
            Instant::now() < deadline,
            "no echo of ON; the log's end:\n{}",
            &log[log.len().saturating_sub(3000)..]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flood_bytes = agent.log().len() - before;
    println!(
        "reproduction 5: 2,000 payloads of 60 KB wrote {flood_bytes} bytes of log in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    agent.signal(libc::SIGTERM);
    agent.wait_exit(Duration::from_secs(5)).await.expect("stops");
    let log = agent.log();
    assert!(
        !log.lines().any(|line| line.starts_with(forged)),
        "a payload forged a log line"
    );
    assert!(flood_bytes < 64 * 1024, "{flood_bytes} bytes of log for the flood");
    let rejected: Vec<&str> = log.lines().filter(|l| l.contains("ignoring command")).collect();
    assert!(
        rejected.len() >= 2 && rejected[0].contains("payload=ON\\n2026-01-01") && rejected[0].contains("…(+"),
        "the first rejections are logged, escaped and cut: {:?}",
        rejected.first()
    );
    // Every rejection is either a line or counted in a summary.
    let suppressed: u64 = log
        .lines()
        .filter(|l| l.contains("similar lines suppressed") && l.contains("mqtt"))
        .map(|l| {
            l.split(": ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .sum();
    assert_eq!(suppressed as usize + rejected.len(), 2_000, "{} lines", rejected.len());
}
