//! The fleet: three real agents on one real mosquitto see each other in
//! `/api/fleet` and `/metrics`; one is SIGKILLed, and the other two show it
//! offline through its Last Will within 1.5 keepalives (at once: the
//! socket closes), where an automation on another node runs because of it;
//! one is frozen (SIGSTOP: a Pi that lost power, its connection silent)
//! and is shown offline within 1.5 keepalives by the broker's check. Then the Fleet tab in
//! a real headless Chromium.

use std::time::{Duration, Instant};

use std::path::Path;

use serde_json::{json, Value as Json};

use crate::browser::ONE_BROWSER;
use crate::support::webdriver::Browser;
use crate::support::{test_config, wait_for, wait_for_async, Agent, Broker, Observer};

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
        wait_for(
            "all three nodes online with their info",
            Duration::from_secs(20),
            || {
                let fleet = agent.get_json("/api/fleet");
                ids.iter()
                    .all(|id| {
                        node(&fleet, id)
                            .is_some_and(|n| n["online"] == true && n["info"]["version"] == env!("CARGO_PKG_VERSION"))
                    })
                    .then_some(())
            },
        )
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

    // Two more nodes, as a neighbour publishes them: one on an older
    // version, one whose dashboard link is a script.
    observer.publish("majortom/fleet-old/status", "online", true).await;
    observer
        .publish(
            "majortom/fleet-old/info",
            r#"{"version":"0.0.1","name":"Old Pi","disk_pct":95.5}"#,
            true,
        )
        .await;
    observer
        .publish(
            "majortom/fleet-evil/info",
            r#"{"version":"9","url":"javascript:alert(1)"}"#,
            true,
        )
        .await;
    let _one = ONE_BROWSER.lock().await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/", a.web.expect("web"))).await;
    let tab = wait_for_async("the Fleet tab", Duration::from_secs(10), async || {
        browser.find("#tabs:not([hidden]) button[data-tab=fleet]").await
    })
    .await;
    browser.click(&tab).await;
    let cards = wait_for_async("a card per node", Duration::from_secs(10), async || {
        let cards = fleet_cards(&browser).await;
        (cards.as_array().map(Vec::len) == Some(5)).then_some(cards)
    })
    .await;
    let card = |id: &str| {
        cards
            .as_array()
            .and_then(|c| c.iter().find(|c| c["node"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no card for {id}: {cards}"))
    };
    for id in ids {
        let shown = card(id);
        assert_eq!(shown["status"], "online", "{shown}");
        assert_eq!(shown["differs"], false, "{shown}");
        assert_eq!(shown["link"], node(&fleet, id).expect("node")["info"]["url"], "{shown}");
    }
    assert_eq!(card("fleet-old")["differs"], true, "{cards}");
    assert!(
        card("fleet-old")["alerts"]
            .as_str()
            .is_some_and(|a| a.contains("disk over 90 %")),
        "{cards}"
    );
    assert_eq!(card("fleet-evil")["link"], Json::Null, "no link to a script: {cards}");

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
    eprintln!(
        "fleet-c seen offline by fleet-a after {:?}, by fleet-b after {:?}",
        seen[0], seen[1]
    );
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
    // The page shows it live: the card says since when, and the alert is
    // on every tab.
    wait_for_async("fleet-c offline on the page", Duration::from_secs(5), async || {
        let cards = fleet_cards(&browser).await;
        let c = cards.as_array()?.iter().find(|c| c["node"] == "fleet-c")?.clone();
        c["status"].as_str()?.starts_with("offline since ").then_some(())
    })
    .await;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fleet.png");
    assert!(browser.save_screenshot(&screenshot).await > 10_000);
    eprintln!("Fleet tab: {}", screenshot.display());
    browser
        .click(&browser.get("#tabs button[data-tab=sections]").await)
        .await;
    let alerts = browser
        .execute(
            "const a = document.querySelector('#alerts'); return a.getClientRects().length > 0 \
         ? [...a.querySelectorAll('li')].map((li) => li.dataset.node + ':' + li.dataset.alert) : null;",
            json!([]),
        )
        .await;
    for alert in ["fleet-c:offline", "fleet-old:disk_full"] {
        assert!(
            alerts.as_array().is_some_and(|a| a.contains(&json!(alert))),
            "{alert} not shown on the node tab: {alerts}"
        );
    }
    drop(browser);
    drop(_one);

    // SIGKILL closes the socket, so the broker sends the Will at once. A
    // Pi that loses power (here: a stopped process, its socket open and
    // silent) is noticed by the broker's keepalive check. MQTT says 1.5
    // keepalives after its last packet; mosquitto 2.0.11 was measured at
    // 11 s for 5 s (its check, not ours: its log says "exceeded timeout"
    // then), so the budget here is 3 keepalives.
    b.signal(libc::SIGSTOP);
    let frozen = Instant::now();
    wait_for("fleet-b offline after it froze", KEEPALIVE * 4, || {
        node(&a.get_json("/api/fleet"), "fleet-b").filter(|n| n["online"] == false)
    })
    .await;
    let silent = frozen.elapsed();
    eprintln!("fleet-b (frozen, silent) seen offline by fleet-a after {silent:?}");
    let silent_budget = KEEPALIVE * 3 + Duration::from_millis(1100);
    assert!(
        silent <= silent_budget,
        "seen offline after {silent:?}, over {silent_budget:?}"
    );
    b.signal(libc::SIGCONT);
}

/// What the Fleet tab shows: per card its node, status text, whether its
/// version is flagged, its link and its alerts.
async fn fleet_cards(browser: &Browser) -> Json {
    browser
        .execute(
            "return [...document.querySelectorAll('#fleet .card.node')].map((c) => ({ \
            node: c.dataset.node, \
            status: c.querySelector('.status').textContent, \
            differs: c.querySelector('.version').classList.contains('differs'), \
            link: c.querySelector('a.open') ? c.querySelector('a.open').getAttribute('href') : null, \
            alerts: c.querySelector('.alerts').textContent }));",
            json!([]),
        )
        .await
}
