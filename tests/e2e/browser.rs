//! The dashboard in a real headless Chromium (through chromedriver and
//! `fantoccini`, see `support/webdriver.rs`) against the real agent on simulated GPIO and a
//! real mosquitto: every entity gets a card, changes arrive live, outputs
//! switch from the page once unlocked with the token, a token-less agent is
//! read-only, the page outlives an agent restart, and `/api` documents
//! every path. Saves screenshots to `target/dashboard.png`,
//! `target/dashboard-phone.png` and `target/api.png`.
//!
//! One Chromium at a time (`ONE_BROWSER`): several at once on a small CI
//! machine make the timing checks flaky and cost a lot of memory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use tempfile::TempDir;

use crate::support::webdriver::Browser;
use crate::support::{
    free_port, http_send, merged_root, poll_until, wait_for, wait_for_async, Agent, Broker, Observer, TEST_TOKEN,
};

pub(crate) static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How the agent's web side is set up.
struct Web {
    port: u16,
    token: Option<&'static str>,
}

/// Inputs, outputs and sensors on the simulated backend, system stats from
/// the Pi 4 fixture tree; MQTT only with a broker.
fn config(node: &str, mqtt_port: Option<u16>, web: &Web, root: &Path, state_file: &Path) -> String {
    let mqtt = match mqtt_port {
        Some(port) => format!("host = \"127.0.0.1\"\nport = {port}\nkeepalive_s = 5"),
        None => "enabled = false".to_owned(),
    };
    let token = web.token.map(|t| format!("token = \"{t}\"")).unwrap_or_default();
    format!(
        r#"[node]
id = "{node}"
name = "E2E {node}"

[mqtt]
{mqtt}

[web]
bind = "127.0.0.1"
port = {port}
{token}

[system]
root = "{root}"
interval_s = 1

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
debounce_ms = 0

[[inputs]]
name = "button"
pin = 24
inverted = true
debounce_ms = 10
events = true

[[outputs]]
name = "relay"
pin = 5

[[outputs]]
name = "lamp"
pin = 13
kind = "light"

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
kind = "bme280"
name = "outside"
address = 0x76
interval_s = 1

[[commands]]
name = "hello"
label = "Say hello"
once = ["sh", "-c", "sleep 0.5; echo hello from the card"]

[[automations]]
name = "doorbell"
trigger = {{ press = "button", kind = "single" }}
actions = [{{ publish = "e2e/doorbell", payload = "ring" }}]
"#,
        port = web.port,
        root = root.display(),
        state = state_file.display(),
    )
}

/// The dashboard on a free port, with a token so that controls can be unlocked.
const UNLOCKED: Web = Web {
    port: 0,
    token: Some(TEST_TOKEN),
};

struct Rig {
    broker: Option<Broker>,
    agent: Agent,
    root: TempDir,
    state: TempDir,
    node: String,
}

impl Rig {
    async fn start(node: &str, with_broker: bool, web: Web) -> Rig {
        let broker = with_broker.then(Broker::start);
        let root = merged_root(&["pi4", "w1", "iio"]);
        let state = tempfile::tempdir().expect("tempdir");
        let config = self::config(
            node,
            broker.as_ref().map(|b| b.port),
            &web,
            root.path(),
            &state.path().join("outputs.json"),
        );
        let agent = Agent::start(&config).await;
        let rig = Rig {
            broker,
            agent,
            root,
            state,
            node: node.to_owned(),
        };
        // Every sensor has read once, so no card waits for a first value.
        wait_for("every sensor's first value", Duration::from_secs(10), || {
            let state = rig.agent.get_json("/api/state");
            let entities = state["entities"].as_array()?.clone();
            entities
                .iter()
                .filter(|e| e["component"] != "button")
                .all(|e| !e["available"].as_bool().unwrap_or(false) || !e["state"].is_null())
                .then_some(())
        })
        .await;
        rig
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.agent.web.expect("web address"))
    }

    fn flip(&self, input: &str, high: bool) {
        let (status, body) = self.agent.send(
            "PUT",
            &format!("/api/sim/inputs/{input}"),
            &format!("{{\"high\": {high}}}"),
        );
        assert_eq!(status, 200, "flipping {input}: {body}");
    }

    fn entities(&self) -> Vec<Json> {
        self.agent.get_json("/api/state")["entities"]
            .as_array()
            .expect("entities")
            .clone()
    }
}

/// What a card shows as its value for an entity of `/api/state`.
fn shown(entity: &Json) -> String {
    if entity["component"] == "button" {
        return String::new();
    }
    match (entity["state"].as_str(), entity["unit"].as_str()) {
        (None, _) => "–".to_owned(),
        (Some(state), Some(unit)) => format!("{state} {unit}"),
        (Some(state), None) => state.to_owned(),
    }
}

/// Every card's value text, by entity id.
async fn card_values(browser: &Browser) -> serde_json::Map<String, Json> {
    let values = browser
        .execute(
            "const out = {};
         for (const c of document.querySelectorAll('[data-entity]')) {
           out[c.dataset.entity] = (out[c.dataset.entity] === undefined)
             ? c.querySelector('.value').textContent : 'DUPLICATE';
         }
         return out;",
            json!([]),
        )
        .await;
    values.as_object().cloned().unwrap_or_default()
}

async fn card_value(browser: &Browser, id: &str) -> Option<String> {
    browser
        .execute(
            "const c = document.querySelector(`[data-entity=\"${arguments[0]}\"] .value`);
             return c && c.textContent;",
            json!([id]),
        )
        .await
        .as_str()
        .map(str::to_owned)
}

/// Waits until the card of `id` shows `expected`.
async fn wait_for_card(browser: &Browser, id: &str, expected: &str, timeout: Duration) {
    wait_for_async(&format!("the {id} card to show {expected}"), timeout, async || {
        (card_value(browser, id).await.as_deref() == Some(expected)).then_some(())
    })
    .await;
}

/// True when the element matching `css` is rendered (not `hidden`).
async fn visible(browser: &Browser, css: &str) -> bool {
    browser
        .execute(
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            json!([css]),
        )
        .await
        .as_bool()
        .unwrap_or(false)
}

/// Opens the dashboard and waits for one card per entity.
async fn open_dashboard(rig: &Rig) -> Browser {
    let browser = Browser::start().await;
    browser.goto(&rig.url("/")).await;
    let want = rig.entities().len();
    wait_for_async("a card per entity", Duration::from_secs(10), async || {
        (browser.find_all("[data-entity]").await.len() == want).then_some(())
    })
    .await;
    browser
}

/// Marks the page, to tell later that it was not reloaded.
async fn mark(browser: &Browser) {
    browser.execute("window.e2eMark = 42;", json!([])).await;
}

async fn still_marked(browser: &Browser) -> bool {
    browser.execute("return window.e2eMark === 42;", json!([])).await == json!(true)
}

/// Makes the viewport as tall as the page (at 1280 px wide), so a
/// screenshot shows all of it.
async fn fit_page(browser: &Browser) {
    let height = browser
        .execute("return document.documentElement.scrollHeight;", json!([]))
        .await;
    let height = height.as_u64().unwrap_or(900).clamp(600, 4000);
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
}

/// Waits until the page has drawn two frames since now: what a change of
/// layout or colours asked for is on screen.
async fn painted(browser: &Browser) {
    browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
            json!([]),
        )
        .await;
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_entity_should_have_a_card_showing_its_value() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("cards", true, UNLOCKED).await;
    let browser = open_dashboard(&rig).await;
    let mut last = (Vec::new(), serde_json::Map::new());
    let matched = poll_until(Duration::from_secs(5), async || {
        let entities = rig.entities();
        let cards = card_values(&browser).await;
        if entities
            .iter()
            .all(|e| cards.get(e["id"].as_str().unwrap_or("")) == Some(&json!(shown(e))))
        {
            return Some(entities);
        }
        last = (entities, cards);
        None
    })
    .await;
    let entities = matched.unwrap_or_else(|| panic!("cards differ from /api/state: {last:?}"));
    assert_eq!(card_values(&browser).await.len(), entities.len(), "one card per entity");
    for group in ["system", "inputs", "outputs", "sensors", "automations"] {
        let expected: BTreeSet<&str> = entities
            .iter()
            .filter(|e| e["group"] == group)
            .filter_map(|e| e["id"].as_str())
            .collect();
        let on_page: BTreeSet<String> = browser
            .execute(
                "return [...document.querySelectorAll(`section[data-group=\"${arguments[0]}\"] [data-entity]`)].map(c => c.dataset.entity);",
                json!([group]),
            )
            .await
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            on_page.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            expected,
            "{group}"
        );
    }
    // The header: name, MQTT, GPIO.
    assert_eq!(browser.text_of("#name").await, "E2E cards");
    wait_for_async("the MQTT badge to say connected", Duration::from_secs(10), async || {
        (browser.text_of("#mqtt").await == "MQTT connected").then_some(())
    })
    .await;
    assert_eq!(browser.text_of("#gpio").await, "GPIO sim");
    assert!(visible(&browser, "#sim").await, "the simulated badge");
    // The 1-wire sensor with a CRC failure is marked unavailable.
    let crc = browser.get("[data-entity=\"ds18b20_0416b3b8c1ff\"]").await;
    assert!(browser
        .attribute(&crc, "class")
        .await
        .unwrap_or_default()
        .contains("unavailable"));
    assert!(browser.text(&crc).await.contains("unavailable"));
    // Numbers get sparklines; the age ticks.
    assert!(browser
        .find("[data-entity=\"outside_pressure\"] svg.spark path")
        .await
        .is_some());
    assert!(browser
        .text_of("[data-entity=\"outside_pressure\"] .age")
        .await
        .ends_with("s ago"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sim_input_flipped_over_the_api_should_update_its_card_within_a_second() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("flip", true, UNLOCKED).await;
    let browser = open_dashboard(&rig).await;
    mark(&browser).await;
    assert_eq!(card_value(&browser, "front_door").await.as_deref(), Some("OFF"));
    for (high, expected) in [(false, "ON"), (true, "OFF"), (false, "ON")] {
        let started = Instant::now();
        rig.flip("front_door", high);
        wait_for_card(&browser, "front_door", expected, Duration::from_secs(1)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    assert!(still_marked(&browser).await, "the page was not reloaded");
    let doorbell = "[data-entity=\"automation_doorbell\"] .age";
    assert_eq!(browser.text_of(doorbell).await, "not run yet");
    // A press flashes the card with its kind, and runs the automation on it.
    rig.flip("button", false);
    // A user's short press: held 60 ms (more than its 10 ms debounce, far
    // less than a long press), then let go.
    tokio::time::sleep(Duration::from_millis(60)).await;
    rig.flip("button", true);
    wait_for_async("the press to show on the card", Duration::from_secs(3), async || {
        let card = browser.find("[data-entity=\"button\"].flash").await?;
        browser.text(&card).await.contains("single press").then_some(())
    })
    .await;
    wait_for_async(
        "the automation's card to say it ran",
        Duration::from_secs(3),
        async || browser.text_of(doorbell).await.starts_with("ran ").then_some(()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_and_sim_inputs_should_switch_from_the_page_once_unlocked() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("toggle", true, UNLOCKED).await;
    let port = rig.broker.as_ref().expect("broker").port;
    let topic = format!("majortom/{}/relay/state", rig.node);
    let observer = Observer::connect(port, &topic).await;
    observer
        .wait_for_message(&topic, Duration::from_secs(5), |m| m.payload == "OFF")
        .await;
    let browser = open_dashboard(&rig).await;
    let toggle = browser.get("button.toggle[data-output=\"relay\"]").await;
    assert!(!browser.is_enabled(&toggle).await, "locked until the token is given");
    assert!(!visible(&browser, "#token-form").await);

    browser.click(&browser.get("#unlock").await).await;
    assert!(visible(&browser, "#token-form").await);
    browser.send_keys(&browser.get("#token").await, TEST_TOKEN).await;
    browser.click(&browser.get("#token-save").await).await;
    assert!(!visible(&browser, "#token-form").await);
    assert!(browser.is_enabled(&toggle).await, "unlocked");
    assert_eq!(
        browser.attribute(&toggle, "aria-pressed").await.as_deref(),
        Some("false")
    );

    browser.click(&toggle).await;
    observer
        .wait_for_message(&topic, Duration::from_secs(5), |m| m.payload == "ON")
        .await;
    assert_eq!(rig.agent.get_json("/api/sim/pins")["outputs"]["relay"]["high"], true);
    wait_for_async("the toggle to show on", Duration::from_secs(2), async || {
        (browser.attribute(&toggle, "aria-pressed").await.as_deref() == Some("true")).then_some(())
    })
    .await;

    // The token is kept: after a reload the controls are still unlocked.
    browser.refresh().await;
    let toggle = wait_for_async("the relay card after a reload", Duration::from_secs(5), async || {
        browser.find("button.toggle[data-output=\"relay\"]").await
    })
    .await;
    assert!(browser.is_enabled(&toggle).await, "the token survives a reload");
    browser.click(&toggle).await;
    observer
        .wait_for_message(&topic, Duration::from_secs(5), |m| m.payload == "OFF")
        .await;

    // The flip buttons drive the simulated inputs: a pulled-up input rests
    // high, so the first flip drives it low.
    let flip = browser.get("button.flip[data-input=\"window\"]").await;
    assert_eq!(card_value(&browser, "window").await.as_deref(), Some("ON"));
    for expected in ["OFF", "ON"] {
        browser.click(&flip).await;
        wait_for_card(&browser, "window", expected, Duration::from_secs(2)).await;
    }

    // A wrong token is forgotten and asked for again.
    browser
        .execute("localStorage.setItem('majortom.token', 'not-the-token');", json!([]))
        .await;
    browser.click(&toggle).await;
    wait_for_async("the token form to ask again", Duration::from_secs(3), async || {
        visible(&browser, "#token-form").await.then_some(())
    })
    .await;
    assert!(browser.text_of("#token-msg").await.contains("refused"));
    assert_eq!(
        browser
            .execute("return localStorage.getItem('majortom.token');", json!([]))
            .await,
        Json::Null
    );
    assert!(!browser.is_enabled(&toggle).await);
    assert_eq!(rig.agent.get_json("/api/sim/pins")["outputs"]["relay"]["high"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_card_should_run_it_show_it_running_and_show_its_output() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("cmdcard", false, UNLOCKED).await;
    let browser = open_dashboard(&rig).await;
    assert!(
        visible(&browser, "section[data-group=\"commands\"]").await,
        "a Commands section"
    );
    browser.click(&browser.get("#unlock").await).await;
    browser.send_keys(&browser.get("#token").await, TEST_TOKEN).await;
    browser.click(&browser.get("#token-save").await).await;
    let run = browser.get("[data-entity=\"hello\"] button.press").await;
    assert!(browser.is_enabled(&run).await, "unlocked");
    browser.click(&run).await;
    // The program sleeps half a second: the card shows it running.
    wait_for_async("the card to show the run", Duration::from_secs(5), async || {
        let class = browser.attribute(&run, "class").await.unwrap_or_default();
        class.contains("running").then_some(())
    })
    .await;
    let script =
        "const p = document.querySelector('[data-entity=\"hello\"] details.output pre'); return p && p.textContent;";
    wait_for_async("the last output on the card", Duration::from_secs(5), async || {
        (browser.execute(script, json!([])).await.as_str() == Some("hello from the card\n")).then_some(())
    })
    .await;
    let class = browser.attribute(&run, "class").await.unwrap_or_default();
    assert!(!class.contains("running"), "the spinner stops with the run: {class}");
    assert_eq!(rig.agent.get_json("/api/commands/hello")["last_run"]["exit_code"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_page_should_be_read_only() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("readonly", false, Web { port: 0, token: None }).await;
    assert_eq!(rig.agent.get_json("/api/health")["read_only"], true);
    let browser = open_dashboard(&rig).await;
    wait_for_async("the read-only notice", Duration::from_secs(3), async || {
        visible(&browser, "#readonly").await.then_some(())
    })
    .await;
    assert!(browser
        .text_of("#readonly")
        .await
        .contains("read-only: set web.token in the config to enable controls"));
    let controls = browser.find_all("button.toggle, button.flip").await;
    assert_eq!(controls.len(), 6, "2 outputs' toggles, the automation's and 3 flips");
    for control in &controls {
        assert!(!browser.is_enabled(control).await, "every control is disabled");
    }
    assert!(!visible(&browser, "#unlock").await, "nothing to unlock");
    assert_eq!(browser.text_of("#mqtt").await, "MQTT disabled");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_should_survive_an_agent_restart() {
    let _one = ONE_BROWSER.lock().await;
    let web = Web {
        port: free_port(),
        token: Some(TEST_TOKEN),
    };
    let mut rig = Rig::start("restart", true, web).await;
    let browser = open_dashboard(&rig).await;
    let cards = browser.find_all("[data-entity]").await.len();
    mark(&browser).await;

    rig.agent.signal(libc::SIGTERM);
    rig.agent
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("the agent stops");
    wait_for_async("the reconnecting banner", Duration::from_secs(5), async || {
        visible(&browser, "#banner").await.then_some(())
    })
    .await;
    assert!(browser.text_of("#banner").await.contains("reconnecting"));

    // The same config: the same web port, broker and state file.
    let config = config(
        &rig.node,
        rig.broker.as_ref().map(|b| b.port),
        &Web {
            port: rig.agent.web.expect("web").port(),
            token: Some(TEST_TOKEN),
        },
        rig.root.path(),
        &rig.state.path().join("outputs.json"),
    );
    rig.agent = Agent::start(&config).await;
    wait_for_async("the page to reconnect", Duration::from_secs(15), async || {
        (!visible(&browser, "#banner").await).then_some(())
    })
    .await;
    assert_eq!(browser.find_all("[data-entity]").await.len(), cards, "no card twice");
    assert!(card_values(&browser).await.values().all(|v| v != "DUPLICATE"));
    // Live again: a change on the new agent reaches the page.
    rig.flip("front_door", false);
    wait_for_card(&browser, "front_door", "ON", Duration::from_secs(2)).await;
    assert!(still_marked(&browser).await, "the page was not reloaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_page_should_list_every_path_of_the_openapi_document() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("apipage", false, UNLOCKED).await;
    let document = rig.agent.get_json("/api/openapi.json");
    let paths: BTreeSet<String> = document["paths"].as_object().expect("paths").keys().cloned().collect();
    let browser = Browser::start().await;
    browser.goto(&rig.url("/api")).await;
    let shown: BTreeSet<String> = wait_for_async("the API page to render", Duration::from_secs(5), async || {
        let shown = browser
            .execute(
                "return [...document.querySelectorAll('.op[data-path]')].map(o => o.dataset.path);",
                json!([]),
            )
            .await;
        let shown: BTreeSet<String> = shown
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        (!shown.is_empty()).then_some(shown)
    })
    .await;
    assert_eq!(shown, paths);
    let text = browser.text_of("#api").await;
    assert!(text.contains("Switch an output: ON, OFF or TOGGLE"), "{text}");
    assert!(text.contains("\"state\": \"ON\" | \"OFF\" | \"TOGGLE\""), "{text}");
    fit_page(&browser).await;
    browser.save_screenshot(&target_dir().join("api.png")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_of_the_dashboard_should_be_saved_for_desktop_and_phone() {
    let _one = ONE_BROWSER.lock().await;
    let rig = Rig::start("screens", true, UNLOCKED).await;
    // Something on, something open, and a few sensor values that move.
    let (status, body) = http_send(
        rig.agent.web.expect("web"),
        "POST",
        "/api/outputs/relay",
        r#"{"state":"ON"}"#,
    );
    assert_eq!(status, 200, "{body}");
    rig.flip("front_door", false);
    let w1 = rig.root.path().join("sys/bus/w1/devices/28-0316a2795cff/w1_slave");
    let browser = open_dashboard(&rig).await;
    browser
        .execute(
            "localStorage.setItem('majortom.token', arguments[0]);",
            json!([TEST_TOKEN]),
        )
        .await;
    browser.refresh().await;
    // Each value is written once the sensor has read the one before, so
    // the sparkline gets every one of them.
    for t in [22_500, 22_900, 23_400, 23_100, 23_700] {
        std::fs::write(
            &w1,
            format!("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t={t}\n"),
        )
        .expect("write w1_slave");
        let expected = format!("{:.1}", f64::from(t) / 1000.0);
        wait_for(
            &format!("the garden sensor to read {expected}"),
            Duration::from_secs(5),
            || (rig.agent.get_json("/api/entities/garden")["state"] == expected.as_str()).then_some(()),
        )
        .await;
    }
    wait_for_async("the garden sparkline", Duration::from_secs(5), async || {
        browser
            .find("[data-entity=\"garden\"] svg.spark path")
            .await
            .map(|_| ())
    })
    .await;

    fit_page(&browser).await;
    browser.save_screenshot(&target_dir().join("dashboard.png")).await;

    browser.set_window_size(390, 844).await;
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
        )
        .await;
    browser
        .cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
        )
        .await;
    let dark = browser
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches && innerWidth === 390;",
            json!([]),
        )
        .await;
    assert_eq!(dark, json!(true), "phone width in dark mode");
    // The new layout and colours on screen before the picture.
    painted(&browser).await;
    browser.save_screenshot(&target_dir().join("dashboard-phone.png")).await;
}
