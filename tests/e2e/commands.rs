//! `[[commands]]` through the whole agent, with real processes and a real
//! broker: a switch turned on over MQTT runs its program and its state
//! follows the file that program wrote; a button; a runaway program killed
//! with its children at `timeout_s`; an automation triggered by a
//! command's status that runs another; payloads full of shell metacharacters
//! that never reach a shell; the HTTP API.

use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{retained, test_config, wait_for, wait_retained, Agent, Broker, Observer};

/// A switch `heater` whose state is a file, a button `backup`, a runaway
/// button (1 s timeout), a shell-line switch `echoer`, and a command sensor
/// and a file sensor, all working in `dir`.
fn config(node: &str, port: u16, dir: &Path) -> String {
    let dir = dir.display();
    test_config(
        node,
        port,
        &format!(
            r#"[system]
enabled = false

[[commands]]
name = "heater"
label = "Heater"
on = ["touch", "{dir}/heater.on"]
off = ["rm", "-f", "{dir}/heater.on"]
status = ["test", "-e", "{dir}/heater.on"]
status_interval_s = 1

[[commands]]
name = "backup"
once = ["sh", "-c", "echo backed up; echo ran >> {dir}/backup.log"]

[[commands]]
name = "runaway"
once = ["sh", "-c", "sleep 300 & echo $! > {dir}/child.pid; sleep 300"]
timeout_s = 1

[[commands]]
name = "echoer"
shell = true
on = "echo on >> {dir}/echoer.log"
off = "echo off >> {dir}/echoer.log"

[[commands]]
name = "flaky"
on = ["true"]
off = ["true"]
status = ["sh", "-c", "echo maybe; exit 3"]

[[commands]]
name = "notify"
once = ["sh", "-c", "echo heater on >> {dir}/notify.log"]

[[automations]]
name = "tell_when_warm"
trigger = {{ command = "heater", to = "on" }}
actions = [{{ command = "notify", action = "once" }}]

[[sensors]]
kind = "command"
name = "answer"
quantity = "pressure"
command = ["echo", "42"]
interval_s = 1

[[sensors]]
kind = "file"
name = "level"
quantity = "temperature"
path = "{dir}/level"
interval_s = 1
"#
        ),
    )
}

struct Rig {
    broker: Broker,
    agent: Agent,
    dir: tempfile::TempDir,
}

async fn start(node: &str) -> Rig {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("level"), "17.5\n").expect("level file");
    let agent = Agent::start(&config(node, broker.port, dir.path())).await;
    wait_retained(broker.port, &format!("majortom/{node}/status"), Duration::from_secs(10)).await;
    Rig { broker, agent, dir }
}

impl Rig {
    fn command(&self, name: &str) -> Json {
        self.agent.get_json(&format!("/api/commands/{name}"))
    }

    fn post(&self, name: &str, action: &str) -> (u16, String) {
        self.agent.send(
            "POST",
            &format!("/api/commands/{name}"),
            &serde_json::json!({ "action": action }).to_string(),
        )
    }

    /// Waits until `name`'s last run is the `n`-th or later (counted by the
    /// `at` changing) and returns it.
    async fn last_run(&self, name: &str, what: &str, check: impl Fn(&Json) -> bool) -> Json {
        wait_for(what, Duration::from_secs(10), || {
            let command = self.command(name);
            check(&command["last_run"]).then(|| command["last_run"].clone())
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_turned_on_over_mqtt_should_run_its_command_and_follow_its_status_file() {
    let rig = start("cmd1").await;
    let port = rig.broker.port;
    let configs = retained(port, "homeassistant/+/cmd1/+/config", Duration::from_millis(500)).await;
    let config = |component: &str, id: &str| -> Json {
        let topic = format!("homeassistant/{component}/cmd1/{id}/config");
        let message = configs.iter().find(|m| m.topic == topic).unwrap_or_else(|| {
            panic!(
                "{topic} not discovered: {:?}",
                configs.iter().map(|m| &m.topic).collect::<Vec<_>>()
            )
        });
        serde_json::from_str(&message.payload).expect("json")
    };
    assert_eq!(config("switch", "heater")["command_topic"], "majortom/cmd1/heater/set");
    assert_eq!(config("switch", "heater")["name"], "Heater");
    assert_eq!(config("button", "backup")["command_topic"], "majortom/cmd1/backup/set");
    config("button", "runaway");
    // Both belong to the node's device and have their own availability,
    // which follows the status check.
    let heater = config("switch", "heater");
    assert_eq!(
        heater["device"]["identifiers"],
        config("sensor", "level")["device"]["identifiers"]
    );
    let availability = heater["availability"].to_string();
    assert!(
        availability.contains("majortom/cmd1/heater/availability"),
        "{availability}"
    );
    assert_eq!(
        wait_retained(port, "majortom/cmd1/heater/availability", Duration::from_secs(10)).await,
        "online"
    );
    assert_eq!(
        wait_retained(port, "majortom/cmd1/flaky/availability", Duration::from_secs(10)).await,
        "offline",
        "a status that says neither on nor off"
    );
    config("switch", "echoer");
    config("sensor", "answer");
    config("sensor", "level");
    // The status program said off: there is no file yet.
    let state = "majortom/cmd1/heater/state";
    assert_eq!(wait_retained(port, state, Duration::from_secs(10)).await, "OFF");

    let observer = Observer::connect(port, "majortom/cmd1/#").await;
    observer.publish("majortom/cmd1/heater/set", "ON", false).await;
    observer
        .wait_for_message(state, Duration::from_secs(10), |m| m.payload == "ON")
        .await;
    assert!(rig.dir.path().join("heater.on").exists(), "`on` ran");
    // The automation watching the heater's status ran `notify`.
    let notified = |lines: usize| {
        let path = rig.dir.path().join("notify.log");
        move || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (text.lines().count() == lines).then_some(())
        }
    };
    wait_for("the automation to run notify", Duration::from_secs(10), notified(1)).await;
    // The state follows the file, whoever removes it.
    std::fs::remove_file(rig.dir.path().join("heater.on")).expect("remove");
    observer.clear();
    observer
        .wait_for_message(state, Duration::from_secs(10), |m| m.payload == "OFF")
        .await;
    // And back on, then off, over MQTT.
    observer.publish("majortom/cmd1/heater/set", "on", false).await;
    observer
        .wait_for_message(state, Duration::from_secs(10), |m| m.payload == "ON")
        .await;
    observer.clear();
    observer.publish("majortom/cmd1/heater/set", "OFF", false).await;
    observer
        .wait_for_message(state, Duration::from_secs(10), |m| m.payload == "OFF")
        .await;
    assert!(!rig.dir.path().join("heater.on").exists(), "`off` ran");
    // Turned on twice: notified twice (not when it turned off).
    wait_for(
        "the automation to run notify again",
        Duration::from_secs(10),
        notified(2),
    )
    .await;

    // A button pressed over MQTT runs `once`; its output is in the API.
    observer.publish("majortom/cmd1/backup/set", "PRESS", false).await;
    let run = rig
        .last_run("backup", "the backup to run", |run| run["action"] == "once")
        .await;
    assert_eq!(run["exit_code"], 0, "{run}");
    assert_eq!(run["stdout"], "backed up\n", "{run}");
    let log = std::fs::read_to_string(rig.dir.path().join("backup.log")).expect("backup ran");
    assert_eq!(log, "ran\n");

    // The two sensors read their numbers.
    observer
        .wait_for_message("majortom/cmd1/answer/state", Duration::from_secs(10), |m| {
            m.payload.starts_with("42")
        })
        .await;
    observer
        .wait_for_message("majortom/cmd1/level/state", Duration::from_secs(10), |m| {
            m.payload.starts_with("17.5")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_command_and_its_children_should_be_killed_at_its_timeout() {
    let rig = start("cmd2").await;
    let (status, body) = rig.post("runaway", "once");
    assert_eq!(status, 202, "{body}");
    // One run at a time: a second request while it runs is refused.
    let (status, body) = rig.post("runaway", "once");
    assert_eq!(status, 409, "{body}");
    wait_for("the run to start", Duration::from_secs(5), || {
        (rig.command("runaway")["running"]["action"] == "once").then_some(())
    })
    .await;
    let child: i32 = wait_for("the runaway's child pid", Duration::from_secs(10), || {
        std::fs::read_to_string(rig.dir.path().join("child.pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    })
    .await;
    let run = rig
        .last_run("runaway", "the runaway to be killed", |run| run["action"] == "once")
        .await;
    assert!(run["ended"].as_str().is_some_and(|e| e.contains("timed out")), "{run}");
    let duration = run["duration_ms"].as_u64().expect("duration");
    assert!((1000..5000).contains(&duration), "killed after {duration} ms");
    // The background child went with the group (it may linger as a zombie
    // until its new parent reaps it, but it does not run).
    wait_for("the child to be gone", Duration::from_secs(5), || {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        matches!(state, None | Some(Some('Z' | 'X'))).then_some(())
    })
    .await;
    // And the command takes requests again.
    let (status, body) = rig.post("runaway", "once");
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_full_of_shell_metacharacters_should_never_reach_a_shell() {
    let rig = start("cmd3").await;
    let dir = rig.dir.path();
    let pwned = dir.join("pwned");
    let observer = Observer::connect(rig.broker.port, "majortom/cmd3/#").await;
    let payloads = [
        format!("ON; touch {}", pwned.display()),
        format!("ON && touch {}", pwned.display()),
        format!("$(touch {})", pwned.display()),
        format!("`touch {}`", pwned.display()),
        format!("ON\ntouch {}", pwned.display()),
        format!("ON | touch {}", pwned.display()),
    ];
    for payload in &payloads {
        observer.publish("majortom/cmd3/echoer/set", payload, false).await;
        let (status, body) = rig.post("echoer", payload);
        assert_eq!(status, 422, "{payload:?}: {body}");
    }
    // Sent after all of them: once it has run, the others were handled.
    observer.publish("majortom/cmd3/echoer/set", "ON", false).await;
    let run = rig
        .last_run("echoer", "the valid ON to run", |run| run["action"] == "on")
        .await;
    assert_eq!(run["exit_code"], 0, "{run}");
    assert!(!pwned.exists(), "a payload reached a shell");
    let log = std::fs::read_to_string(dir.join("echoer.log")).expect("echoer ran");
    assert_eq!(log, "on\n", "only the valid request ran, with the configured line");
    let unknown = rig.post("nosuch", "on");
    assert_eq!(unknown.0, 404, "{}", unknown.1);
    let list = rig.agent.get_json("/api/commands");
    let names: Vec<&str> = list["commands"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["heater", "backup", "runaway", "echoer", "flaky", "notify"]);
    // Writing needs the token.
    let (status, _) = crate::support::http_request(
        rig.agent.web.expect("web"),
        "POST",
        "/api/commands/echoer",
        &[],
        r#"{"action": "on"}"#,
    );
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_agent_should_kill_a_running_command_and_its_children() {
    let mut rig = start("cmd4").await;
    let (status, body) = rig.post("runaway", "once");
    assert_eq!(status, 202, "{body}");
    let child: i32 = wait_for("the runaway's child pid", Duration::from_secs(10), || {
        std::fs::read_to_string(rig.dir.path().join("child.pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    })
    .await;
    rig.agent.signal(libc::SIGTERM);
    let exit = rig
        .agent
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("the agent stops");
    assert!(exit.success(), "{exit}: {}", rig.agent.log());
    wait_for("the child to be gone", Duration::from_secs(5), || {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        matches!(state, None | Some(Some('Z' | 'X'))).then_some(())
    })
    .await;
}
