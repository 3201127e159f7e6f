//! The command line as a user meets it.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{binary, retained, Agent, Broker};

fn majortom(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("MAJORTOM_CONFIG")
        .output()
        .expect("run majortom")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_should_print_the_crate_version() {
    let output = majortom(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("majortom {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_should_accept_what_init_prints_and_describe_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("majortom.toml");
    let init = majortom(&["init"]);
    assert!(init.status.success());
    std::fs::write(&path, &init.stdout).expect("write");
    let check = majortom(&["check", "--config", path.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "check failed: {}", stderr(&check));
    assert!(stdout.contains("mqtt: connect to localhost:1883"), "{stdout}");
    assert!(stdout.contains("homeassistant/<component>/"), "{stdout}");
    assert!(
        stdout.contains("web: dashboard and API on http://0.0.0.0:8080/"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cpu_usage") && stdout.contains("config is valid"),
        "{stdout}"
    );
}

#[test]
fn init_output_should_refuse_to_overwrite_an_existing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("majortom.toml");
    let path_str = path.to_str().expect("utf-8");
    assert!(majortom(&["init", "--output", path_str]).status.success());
    std::fs::write(&path, "# mine\n").expect("write");
    let second = majortom(&["init", "--output", path_str]);
    assert!(!second.status.success());
    assert!(stderr(&second).contains("already exists"), "{}", stderr(&second));
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "# mine\n",
        "the file must be untouched"
    );
}

#[test]
fn check_should_fail_on_a_missing_config_file() {
    let output = majortom(&["check", "--config", "/nonexistent/majortom.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/nonexistent/majortom.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_from_the_environment_should_be_used_when_no_flag_is_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.toml");
    std::fs::write(&path, "[node]\nid = \"from-env\"\n").expect("write");
    let output = Command::new(binary())
        .arg("check")
        .env("MAJORTOM_CONFIG", &path)
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("node: id `from-env`"));
}

#[test]
fn unknown_command_line_arguments_should_exit_2_with_usage_hint() {
    let output = majortom(&["--frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("`--frobnicate`") && stderr(&output).contains("--help"));
}

/// A broken config must stop the agent before it touches anything: no MQTT
/// connection, no listening port.
async fn assert_run_rejects(config: &str, expected: &[&str]) {
    let broker = Broker::start();
    let mut agent = Agent::spawn(&config.replace("MQTT_PORT", &broker.port.to_string()), &[]);
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the agent must exit on a bad config");
    assert_eq!(status.code(), Some(2), "log: {}", agent.log());
    let log = agent.log();
    for needle in expected {
        assert!(log.contains(needle), "expected `{needle}` in: {log}");
    }
    assert!(
        !log.contains("dashboard listening") && !log.contains("connected to MQTT"),
        "{log}"
    );
    assert!(agent.ready().is_none(), "a rejected config never makes the agent ready");
    assert!(retained(broker.port, "#", Duration::from_millis(300)).await.is_empty());
    assert!(
        // The test's own observer connects; the agent (majortom-…) must not.
        !broker.log().contains(" as majortom-"),
        "the agent connected: {}",
        broker.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_an_unknown_key_should_exit_non_zero_naming_file_line_and_key() {
    assert_run_rejects(
        "[mqtt]\nport = MQTT_PORT\nhots = \"127.0.0.1\"\n",
        &[
            "majortom.toml: line 3, column 1: key `mqtt.hots`",
            "unknown field `hots`",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_a_wrong_type_should_exit_non_zero_naming_file_line_and_key() {
    assert_run_rejects(
        "[mqtt]\nport = MQTT_PORT\n\n[system]\ninterval_s = \"fast\"\n",
        &[
            "majortom.toml: line 5, column 14: key `system.interval_s`",
            "invalid type: string \"fast\"",
        ],
    )
    .await;
}

/// `doctor` against a real broker on a machine with no GPIO chip: all is
/// well (exit 0); a broker that is not there is a problem with its fix
/// (exit 1), in text and in JSON.
#[test]
fn doctor_should_exit_0_when_all_is_well_and_1_with_a_fix_when_not() {
    let broker = Broker::start();
    let root = crate::support::merged_root(&["minimal"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, port: u16| {
        let path = dir.path().join(name);
        let text = format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\n[system]\nroot = \"{}\"\n",
            root.path().display()
        );
        std::fs::write(&path, text).expect("write config");
        path.to_str().expect("utf-8").to_owned()
    };
    let good = write("good.toml", broker.port);
    let output = majortom(&["doctor", "--config", &good]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    assert!(
        stdout.contains(&format!("ok    broker: 127.0.0.1:{}: CONNACK in", broker.port))
            && stdout.contains("ms (MQTT 5)"),
        "{stdout}"
    );
    assert!(stdout.contains("gpio backend: sim: no GPIO chip"), "{stdout}");
    assert!(stdout.trim_end().ends_with("all is well"), "{stdout}");

    let bad = write("bad.toml", crate::support::free_port());
    let output = majortom(&["doctor", "--config", &bad]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  broker:") && stdout.contains("Connection refused"),
        "{stdout}"
    );
    assert!(stdout.contains("      fix: is the broker running"), "{stdout}");

    let output = majortom(&["doctor", "--json", "--config", &bad]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["ok"], false);
    let broker_check = json["checks"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["check"] == "broker"))
        .cloned()
        .expect("a broker check");
    assert_eq!(broker_check["status"], "problem");
    assert!(broker_check["fix"].as_str().is_some_and(|f| !f.is_empty()));
}
