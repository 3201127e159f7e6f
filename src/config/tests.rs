//! The config's tests: every key, default and error message as a user
//! meets them, through `Config::from_toml`.

use super::*;

fn ctx_with(vars: &'static [(&'static str, &'static str)]) -> Context<'static> {
    Context {
        hostname: "Kitchen.Pi",
        env: Box::leak(Box::new(move |name: &str| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        })),
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Origin::File("test.toml".into()), &ctx_with(&[]))
}

/// `text` as `majortom.toml` on a host named `pi`, with no environment:
/// what the tests of the config's section modules parse.
pub(super) fn parse_on_pi(text: &str) -> Result<Config, ConfigError> {
    let ctx = Context {
        hostname: "pi",
        env: &|_| None,
    };
    Config::from_toml(text, Origin::File("majortom.toml".into()), &ctx)
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_config_should_give_the_documented_defaults() {
    let config = parse("").expect("valid");
    assert_eq!(config.node.id, "kitchen_pi");
    assert_eq!(config.node.name, "Kitchen.Pi");
    assert!(!config.uses_gpio());
    let mqtt = config.mqtt.expect("mqtt on by default");
    assert_eq!((mqtt.host.as_str(), mqtt.port), ("localhost", 1883));
    assert_eq!(mqtt.client_id, "majortom-kitchen_pi");
    assert_eq!(mqtt.keepalive, Duration::from_secs(30));
    assert_eq!(mqtt.discovery_prefix, "homeassistant");
    assert_eq!(mqtt.base_topic, "majortom");
    assert_eq!(mqtt.credentials, None);
    assert_eq!(mqtt.protocol, Protocol::V5);
    assert_eq!(mqtt.command_max_age, Duration::from_secs(30));
    assert_eq!(
        config.web.expect("web on").listen,
        "0.0.0.0:8080".parse().expect("addr")
    );
    let system = config.system.expect("system on");
    assert_eq!(system.interval, Duration::from_secs(10));
    assert_eq!(config.root, PathBuf::from("/"));
    assert_eq!(config.gpio.backend, Backend::Auto);
    assert!(config.inputs.is_empty() && config.outputs.is_empty() && config.sensors.is_empty());
}

#[test]
fn annotated_default_config_should_match_the_built_in_defaults() {
    let from_file = parse(DEFAULT_CONFIG_TOML).expect("default.toml is valid");
    let built_in = parse("").expect("valid");
    assert_eq!(
        Config {
            origin: built_in.origin.clone(),
            ..from_file
        },
        built_in
    );
}

#[test]
fn unknown_key_should_be_named_with_its_line_and_column() {
    let message = error_of("[mqtt]\nhost = \"broker\"\nbogus = 1\n");
    assert!(
        message.starts_with("test.toml: line 3, column 1: key `mqtt.bogus`: unknown field `bogus`"),
        "{message}"
    );
    assert!(message.contains("bogus = 1"), "{message}");
}

#[test]
fn unknown_top_level_section_should_be_named() {
    let message = error_of("[mqt]\nhost = \"x\"\n");
    assert!(message.contains("key `mqt`"), "{message}");
    assert!(message.starts_with("test.toml: line 1,"), "{message}");
}

#[test]
fn wrong_type_should_name_key_line_and_column() {
    let message = error_of("[mqtt]\nport = \"abc\"\n");
    assert!(
        message.starts_with("test.toml: line 2, column 8: key `mqtt.port`: invalid type: string \"abc\""),
        "{message}"
    );
}

#[test]
fn wrong_type_on_a_validated_key_should_name_the_key_alone() {
    let message = error_of("[system]\ninterval_s = \"fast\"\n");
    assert!(
        message.starts_with("test.toml: line 2, column 14: key `system.interval_s`: invalid type"),
        "{message}"
    );
}

#[test]
fn port_zero_should_be_rejected() {
    let message = error_of("[mqtt]\nport = 0\n");
    assert!(
        message.contains("key `mqtt.port`") && message.contains("test.toml: line 2,"),
        "{message}"
    );
}

#[test]
fn syntax_error_should_point_at_the_line() {
    let message = error_of("[web]\nport = = 3\n");
    assert!(message.starts_with("test.toml: line 2,"), "{message}");
}

#[test]
fn out_of_range_values_should_name_the_key_and_line() {
    let message = error_of("[system]\ninterval_s = 0\n");
    assert!(
        message.starts_with("test.toml: line 2, column 14: key `system.interval_s`: must be between"),
        "{message}"
    );
    let message = error_of("[mqtt]\nkeepalive_s = 1\n");
    assert!(
        message.starts_with("test.toml: line 2, column 15: key `mqtt.keepalive_s`"),
        "{message}"
    );
}

#[test]
fn the_mqtt_protocol_and_the_command_age_should_be_checked() {
    let config = parse("[mqtt]\nprotocol = \"3.1.1\"\ncommand_max_age_s = 5\n").expect("valid");
    let mqtt = config.mqtt.expect("mqtt");
    assert_eq!(
        (mqtt.protocol, mqtt.command_max_age),
        (Protocol::V311, Duration::from_secs(5))
    );
    let message = error_of("[mqtt]\nprotocol = \"3\"\n");
    assert_eq!(
        message.lines().next(),
        Some("test.toml: line 2, column 12: key `mqtt.protocol`: must be \"5\" or \"3.1.1\"")
    );
    let message = error_of("[mqtt]\ncommand_max_age_s = 0\n");
    assert!(
        message.starts_with("test.toml: line 2, column 21: key `mqtt.command_max_age_s`: must be between 1 and 86400"),
        "{message}"
    );
}

/// `text` with `[system] root` set to `root`, parsed on a host called
/// `hostname`.
fn parse_on(hostname: &'static str, root: &Path, text: &str) -> Config {
    let ctx = Context {
        hostname,
        env: &|_| None,
    };
    let text = format!("{text}\n[system]\nroot = \"{}\"\n", root.display());
    Config::from_toml(&text, Origin::BuiltIn, &ctx).expect("valid")
}

#[test]
fn a_factory_hostname_should_get_a_suffix_from_the_board_serial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("proc/device-tree")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("proc/device-tree/serial-number"), "10000000a1b2c3d4\0").expect("write");
    std::fs::write(root.join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n").expect("write");

    let config = parse_on("raspberrypi", root, "");
    assert_eq!(config.node.id, "raspberrypi-b2c3d4");
    assert_eq!(config.node.name, "raspberrypi-b2c3d4");
    assert_eq!(config.mqtt.expect("mqtt").client_id, "majortom-raspberrypi-b2c3d4");
    assert_eq!(
        config.node.id_origin,
        NodeIdOrigin::Suffixed {
            hostname: "raspberrypi".into(),
            source: SuffixSource::DeviceTreeSerial
        }
    );
    // Without a serial (a PC, a board without one), the machine id.
    std::fs::remove_file(root.join("proc/device-tree/serial-number")).expect("rm");
    assert_eq!(parse_on("ubuntu", root, "").node.id, "ubuntu-abcdef");
    // Without either, the bare name, and a warning says why.
    std::fs::remove_file(root.join("etc/machine-id")).expect("rm");
    let config = parse_on("raspberrypi", root, "");
    assert_eq!(config.node.id, "raspberrypi");
    let why = config.node.id_origin.describe(&config.node.id).expect("a warning");
    assert!(why.contains("set node.id"), "{why}");
    // An ordinary host name, or an id in the config, is kept as it is.
    std::fs::write(root.join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n").expect("write");
    let config = parse_on("kitchen-pi", root, "");
    assert_eq!(
        (config.node.id.as_str(), config.node.id_origin),
        ("kitchen-pi", NodeIdOrigin::HostName)
    );
    let config = parse_on("raspberrypi", root, "[node]\nid = \"garage\"\n");
    assert_eq!(
        (config.node.id.as_str(), config.node.id_origin),
        ("garage", NodeIdOrigin::Configured)
    );
}

#[test]
fn node_id_with_topic_characters_should_be_rejected() {
    for bad in ["a/b", "A", "x+y", "", "x#"] {
        let message = error_of(&format!("[node]\nid = \"{bad}\"\n"));
        assert!(message.contains("key `node.id`"), "{bad}: {message}");
    }
}

#[test]
fn topic_prefixes_with_wildcards_or_empty_levels_should_be_rejected() {
    for bad in ["", "a/+", "#", "/lead", "trail/", "a//b"] {
        let message = error_of(&format!("[mqtt]\nbase_topic = \"{bad}\"\n"));
        assert!(message.contains("key `mqtt.base_topic`"), "{bad}: {message}");
    }
    assert!(parse("[mqtt]\nbase_topic = \"home/agents\"\n").is_ok());
}

const HARDWARE: &str = r#"
[gpio]
backend = "sim"
state_file = "/tmp/state.json"

[[inputs]]
name = "front_door"
pin = 17
inverted = true
device_class = "door"

[[inputs]]
name = "doorbell"
label = "Door bell"
pin = 22
pull = "down"
debounce_ms = 20
events = true
long_press_ms = 1000

[[outputs]]
name = "relay"
pin = 27
initial = "restore"
auto_off_s = 2.5
kind = "light"

[[sensors]]
kind = "ds18b20"
name = "garden"
id = "28-0316a2795cff"
offset = -0.5

[[sensors]]
kind = "iio"
name = "living"
device = "bme280"
interval_s = 60
scale = { pressure = 1.01 }

[[sensors]]
kind = "bme280"
name = "outside"
address = 0x77
"#;

#[test]
fn hardware_sections_should_become_typed_config_with_defaults_filled_in() {
    let config = parse(HARDWARE).expect("valid");
    assert_eq!(config.gpio.backend, Backend::Sim);
    assert_eq!(config.gpio.state_file, PathBuf::from("/tmp/state.json"));
    let door = &config.inputs[0];
    assert_eq!(
        (door.name.as_str(), door.label.as_str(), door.pin.clone()),
        ("front_door", "Front door", crate::vocab::Pin::Bcm(17))
    );
    assert_eq!(door.pull, crate::vocab::Pull::Up);
    assert!(door.inverted);
    assert_eq!(door.debounce, Duration::from_millis(50));
    assert_eq!(door.device_class, Some("door"));
    assert_eq!(door.presses, None);
    let bell = &config.inputs[1];
    assert_eq!(bell.label, "Door bell");
    assert_eq!(
        bell.presses,
        Some(PressTiming {
            long: Duration::from_millis(1000),
            double: Duration::from_millis(350)
        })
    );
    let relay = &config.outputs[0];
    assert_eq!(relay.initial, Initial::Restore);
    assert_eq!(relay.safe_state, OnOff::Off);
    assert_eq!(relay.auto_off, Some(Duration::from_millis(2500)));
    assert_eq!(relay.kind, OutputKind::Light);
    assert_eq!(
        config.sensors[0].source,
        SensorSource::Ds18b20 {
            id: "28-0316a2795cff".into()
        }
    );
    assert_eq!(config.sensors[0].offset, vec![(None, -0.5)]);
    assert_eq!(config.sensors[0].interval, Duration::from_secs(30));
    assert_eq!(
        config.sensors[1].source,
        SensorSource::Iio {
            device: "bme280".into()
        }
    );
    assert_eq!(
        config.sensors[1].scale,
        vec![(Some(crate::vocab::Quantity::Pressure), 1.01)]
    );
    assert_eq!(config.sensors[2].source, SensorSource::Bme280 { bus: 1, address: 0x77 });
    assert!(config.uses_gpio());
}

#[test]
fn filters_as_the_readme_shows_them_should_parse_and_bad_ones_should_name_the_key() {
    let text = "[system.filters]\ncpu_temperature = [{ sliding_window = { size = 5 } }, { delta = 0.5 }, { heartbeat = 60 }]\n\
                [[sensors]]\nkind = \"ds18b20\"\nname = \"garden\"\nid = \"28-0316a2795cff\"\n\
                filters = [{ offset = -0.5 }, { round = 1 }, { delta = \"5%\" }, { heartbeat = 300 }]\n";
    let config = parse(text).expect("valid");
    assert_eq!(config.sensors[0].filters.len(), 4);
    assert_eq!(config.system.expect("system").filters[0].0, "cpu_temperature");
    let message = error_of("[system.filters]\nthrottled = [{ delta = 1 }]\n");
    assert!(
        message.contains("key `system.filters.throttled`") && message.contains("not a numeric"),
        "{message}"
    );
    let message =
        error_of("[[sensors]]\nkind = \"ds18b20\"\nname = \"g\"\nid = \"28-1\"\nfilters = [{ round = 20 }]\n");
    assert!(
        message.contains("key `sensors[0].filters`") && message.contains("at most 10"),
        "{message}"
    );
    let message =
        error_of("[[sensors]]\nkind = \"ds18b20\"\nname = \"g\"\nid = \"28-1\"\nfilters = [{ smooth = 2 }]\n");
    assert!(
        message.contains("sensors[0].filters") && message.contains("smooth"),
        "{message}"
    );
}

#[test]
fn automation_references_should_be_checked_naming_the_automation_and_key() {
    let base = "[[inputs]]\nname = \"door\"\npin = 4\n[[inputs]]\nname = \"bell\"\npin = 5\nevents = true\n\
                [[outputs]]\nname = \"relay\"\npin = 6\n";
    let check = |automation: &str, key: &str, words: &str| {
        let text = format!("{base}[[automations]]\nname = \"a\"\n{automation}");
        let message = error_of(&text);
        assert!(
            message.contains(&format!("key `{key}`")) && message.contains(words),
            "{key}: {message}"
        );
    };
    check(
        "trigger = { input = \"window\" }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
        "automations[0].trigger",
        "not an input",
    );
    check(
        "trigger = { press = \"door\", kind = \"long\" }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
        "automations[0].trigger",
        "events = true",
    );
    check(
        "trigger = { entity = \"relay\", above = 1 }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
        "automations[0].trigger",
        "not a numeric",
    );
    check(
        "trigger = { at = \"7:30\" }\nactions = [{ output = \"relay\", set = \"on\" }]\n",
        "automations[0].trigger",
        "HH:MM",
    );
    check(
        "trigger = { input = \"door\" }\nactions = [{ output = \"lamp\", set = \"on\" }]\n",
        "automations[0].actions[0]",
        "not an output",
    );
    check(
        "trigger = { input = \"door\" }\nactions = [{ output = \"relay\", set = \"dim\" }]\n",
        "automations[0].actions[0]",
        "on, off or toggle",
    );
    check("trigger = { input = \"door\" }\nconditions = [{ entity = \"nope\", state = \"on\" }]\nactions = [{ delay_s = 1 }]\n", "automations[0].conditions[0]", "not an on/off");
    check(
        "trigger = { input = \"door\" }\nactions = [{ delay_s = 1 }]\nactions_below = [{ delay_s = 1 }]\n",
        "automations[0].actions_below",
        "only a threshold",
    );
    check(
        "trigger = { entity = \"cpu_temperature\", above = 50, below = 60 }\nactions = [{ delay_s = 1 }]\n",
        "automations[0].trigger",
        "lower than",
    );
    let valid = format!("{base}[[automations]]\nname = \"a\"\ntrigger = {{ press = \"bell\", kind = \"double\" }}\nconditions = [{{ entity = \"relay\", state = \"off\" }}]\nactions = [{{ output = \"relay\", pulse_s = 2 }}, {{ publish = \"x/y\", payload = \"z\" }}]\n");
    let config = parse(&valid).expect("valid");
    assert_eq!(config.automations.len(), 1);
}

#[test]
fn a_pin_used_twice_should_name_both_keys() {
    let message = error_of("[[inputs]]\nname = \"a\"\npin = 5\n[[outputs]]\nname = \"b\"\npin = 5\n");
    assert!(
        message.starts_with(
            "test.toml: line 6, column 7: key `outputs[0].pin`: GPIO 5 is already used by `inputs[0].pin`"
        ),
        "{message}"
    );
}

#[test]
fn a_name_used_twice_or_taken_by_the_system_should_be_rejected() {
    let message = error_of("[[inputs]]\nname = \"a\"\npin = 5\n[[inputs]]\nname = \"a\"\npin = 6\n");
    assert!(
        message.contains("key `inputs[1].name`: `a` is already used by `inputs[0].name`"),
        "{message}"
    );
    let message = error_of("[[outputs]]\nname = \"cpu_usage\"\npin = 5\n");
    assert!(
        message.contains("`cpu_usage` is already used by the system source"),
        "{message}"
    );
}

#[test]
fn hardware_mistakes_should_name_the_key() {
    let check = |text: &str, key: &str| {
        let message = error_of(text);
        assert!(message.contains(&format!("key `{key}`")), "{key}: {message}");
    };
    check("[[inputs]]\nname = \"a\"\npin = 28\n", "inputs[0].pin");
    check("[[inputs]]\nname = \"Door\"\npin = 2\n", "inputs[0].name");
    check(
        "[[inputs]]\nname = \"a\"\npin = 2\ndevice_class = \"doorbell\"\n",
        "inputs[0].device_class",
    );
    check(
        "[[inputs]]\nname = \"a\"\npin = 2\npull = \"sideways\"\n",
        "inputs[0].pull",
    );
    check("[[inputs]]\nname = \"a\"\n", "inputs[0]");
    check(
        "[[outputs]]\nname = \"a\"\npin = 2\nauto_off_s = 0\n",
        "outputs[0].auto_off_s",
    );
    check(
        "[[outputs]]\nname = \"a\"\npin = 2\ninitial = \"maybe\"\n",
        "outputs[0].initial",
    );
    check("[[sensors]]\nkind = \"ds18b20\"\nname = \"a\"\n", "sensors[0].id");
    check(
        "[[sensors]]\nkind = \"ds18b20\"\nname = \"a\"\nid = \"28-1\"\ndevice = \"x\"\n",
        "sensors[0].device",
    );
    check(
        "[[sensors]]\nkind = \"bme280\"\nname = \"a\"\naddress = 0x40\n",
        "sensors[0].address",
    );
    check("[[sensors]]\nkind = \"sht31\"\nname = \"a\"\n", "sensors[0].kind");
    check("[gpio]\nbackend = \"pigpio\"\n", "gpio.backend");
    check(
        "[[sensors]]\nkind = \"iio\"\nname = \"a\"\ndevice = \"x\"\noffset = nan\n",
        "sensors[0].offset",
    );
    check(
        "[[sensors]]\nkind = \"iio\"\nname = \"a\"\ndevice = \"x\"\nscale = { humidity = inf }\n",
        "sensors[0].scale",
    );
}

#[test]
fn hostnames_should_be_sanitised_into_node_ids() {
    assert_eq!(sanitise_node_id("raspberrypi"), "raspberrypi");
    assert_eq!(sanitise_node_id("Living Room.local"), "living_room_local");
    assert_eq!(sanitise_node_id(""), "majortom");
}

#[test]
fn disabled_sections_should_be_absent() {
    let config = parse("[mqtt]\nenabled = false\n[web]\nenabled = false\n[system]\nenabled = false\n").expect("valid");
    assert!(config.mqtt.is_none() && config.web.is_none() && config.system.is_none());
}

#[test]
fn password_should_come_from_the_environment_first() {
    let ctx = ctx_with(&[(ENV_MQTT_PASSWORD, "from-env"), (ENV_MQTT_USERNAME, "envuser")]);
    let config = Config::from_toml(
        "[mqtt]\nusername = \"fileuser\"\npassword = \"inline\"\n",
        Origin::BuiltIn,
        &ctx,
    )
    .expect("valid");
    let credentials = config.mqtt.and_then(|m| m.credentials).expect("credentials");
    assert_eq!(credentials.username, "envuser");
    assert_eq!(credentials.password.as_deref(), Some("from-env"));
}

#[test]
fn password_file_should_be_read_without_its_trailing_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cret\n").expect("write");
    let text = format!("[mqtt]\nusername = \"u\"\npassword_file = \"{}\"\n", file.display());
    let config = parse(&text).expect("valid");
    let credentials = config.mqtt.and_then(|m| m.credentials).expect("credentials");
    assert_eq!(credentials.password.as_deref(), Some("s3cret"));
    assert!(
        !format!("{credentials:?}").contains("s3cret"),
        "debug output must not show the password"
    );
}

#[test]
fn missing_password_file_should_name_the_key_and_file() {
    let message = error_of("[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent/secret\"\n");
    assert!(
        message.starts_with("test.toml: line 3, column 17: key `mqtt.password_file`: cannot read /nonexistent/secret"),
        "{message}"
    );
}

#[test]
fn tls_section_should_switch_the_default_port_and_default_to_the_system_cas() {
    let mqtt = parse("[mqtt.tls]\n").expect("valid").mqtt.expect("mqtt");
    assert_eq!(mqtt.port, 8883);
    let tls = mqtt.tls.expect("tls");
    assert_eq!(tls.ca_file, PathBuf::from(SYSTEM_CA_FILE));
    assert_eq!(tls.client_auth, None);
    let mqtt = parse("[mqtt]\nport = 9999\n[mqtt.tls]\n")
        .expect("valid")
        .mqtt
        .expect("mqtt");
    assert_eq!(mqtt.port, 9999);
}

#[test]
fn tls_files_should_be_checked_and_named_by_key() {
    let message = error_of("[mqtt.tls]\nca_file = \"/nonexistent/ca.pem\"\n");
    assert!(
        message.starts_with("test.toml: line 2, column 11: key `mqtt.tls.ca_file`: cannot read"),
        "{message}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, "x").expect("write");
    let message = error_of(&format!("[mqtt.tls]\ncert_file = \"{}\"\n", cert.display()));
    assert!(message.contains("key `mqtt.tls.key_file`"), "{message}");
}

#[test]
fn web_token_should_come_from_env_file_or_inline_and_be_long_enough() {
    let config = parse("[web]\ntoken = \"correct horse\"\n").expect("valid");
    let token = config.web.and_then(|w| w.token).expect("token");
    assert_eq!(token.expose(), "correct horse");
    assert_eq!(format!("{token:?}"), "<redacted>");
    let message = error_of("[web]\ntoken = \"short\"\n");
    assert!(
        message.starts_with("test.toml: line 2, column 9: key `web.token`: must be at least 8"),
        "{message}"
    );
    let ctx = ctx_with(&[(ENV_WEB_TOKEN, "from-the-environment")]);
    let config = Config::from_toml("[web]\ntoken = \"inline-token\"\n", Origin::BuiltIn, &ctx).expect("valid");
    assert_eq!(
        config.web.and_then(|w| w.token).expect("token").expose(),
        "from-the-environment"
    );
    assert!(
        parse("").expect("valid").web.expect("web").token.is_none(),
        "no token: read-only"
    );
}

#[test]
fn secret_files_should_be_small_regular_files() {
    let message = error_of("[web]\ntoken_file = \"/dev/zero\"\n");
    assert!(
        message.contains("key `web.token_file`: /dev/zero is not a regular file"),
        "{message}"
    );
    let message = error_of("[mqtt.tls]\nca_file = \"/dev/null\"\n");
    assert!(message.contains("key `mqtt.tls.ca_file`"), "{message}");
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    std::fs::write(&big, "x".repeat(5000)).expect("write");
    let message = error_of(&format!("[mqtt]\npassword_file = \"{}\"\n", big.display()));
    assert!(message.contains("larger than 4096 bytes"), "{message}");
}

#[test]
fn strings_too_long_for_mqtt_should_be_rejected() {
    let long = "x".repeat(70_000);
    for (text, key) in [
        (format!("[mqtt]\nclient_id = \"{long}\"\n"), "mqtt.client_id"),
        (format!("[mqtt]\nusername = \"{long}\"\n"), "mqtt.username"),
        (format!("[mqtt]\npassword = \"{long}\"\n"), "mqtt.password"),
        (format!("[mqtt]\nbase_topic = \"{long}\"\n"), "mqtt.base_topic"),
    ] {
        let message = error_of(&text);
        assert!(
            message.contains("line 2, column") && message.contains(&format!("key `{key}`")),
            "{message}"
        );
    }
}

#[test]
fn password_and_password_file_together_should_be_rejected() {
    let message = error_of("[mqtt]\npassword = \"a\"\npassword_file = \"/x\"\n");
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn config_file_lookup_should_prefer_flag_then_env_then_system_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = dir.path().join("majortom.toml");
    let flag = Path::new("/flag.toml");
    assert_eq!(
        locate_file(Some(flag), Some("/env.toml".into()), &system),
        Some(flag.to_owned())
    );
    assert_eq!(
        locate_file(None, Some("/env.toml".into()), &system),
        Some(PathBuf::from("/env.toml"))
    );
    assert_eq!(locate_file(None, None, &system), None);
    std::fs::write(&system, "").expect("write");
    assert_eq!(locate_file(None, None, &system), Some(system.clone()));
}

#[test]
fn secrets_should_be_masked_in_every_error_that_shows_their_line() {
    for (text, secret) in [
        // An error elsewhere on the secret's line (an inline table).
        (
            "mqtt = { host = \"b\", port = \"x\", password = \"hunter2-pw\" }\n",
            "hunter2-pw",
        ),
        // The secret's own value is wrong, and serde repeats it.
        ("[mqtt]\npassword = 20240607\n", "20240607"),
        // A syntax error: an unclosed string.
        ("[mqtt]\npassword = \"hunter2-pw\n", "hunter2-pw"),
        // A syntax error after the value, a token, a literal string.
        ("[web]\ntoken = 'tok-3n-s3cret' oops\n", "tok-3n-s3cret"),
        // A misspelt key is still a password's.
        ("[mqtt]\npasswd = \"hunter2-pw\"\n", "hunter2-pw"),
        ("[mqtt]\n\"password\" = [\"hunter2-pw\", 1]\nport = 0\n", "hunter2-pw"),
        ("[web]\ntoken = \"\"\"tok-3n-s3cret\n", "tok-3n-s3cret"),
    ] {
        let error = error_of(text);
        assert!(!error.contains(secret), "{text:?} → {error}");
        let debug = format!("{:?}", parse(text).expect_err("error"));
        assert!(!debug.contains(secret), "{debug}");
    }
    // The caret still points at the value in error, after a masked one.
    let error = error_of("mqtt = { password = \"a-long-password\", port = 0 }\n");
    let lines: Vec<&str> = error.lines().collect();
    let (shown, caret) = (lines[1], lines[2]);
    assert!(shown.contains("password = ***, port = 0"), "{error}");
    assert_eq!(
        shown.find("0 }").map(|at| at - shown.find('|').unwrap_or(0)),
        caret.find('^').map(|at| at - caret.find('|').unwrap_or(0)),
        "{error}"
    );
    // Paths of secret files and other keys are shown as they are.
    let error = error_of("[mqtt]\npassword_file = \"/nonexistent/pw\"\n");
    assert!(error.contains("/nonexistent/pw"), "{error}");
    // A short token that is part of the error's own words leaves them
    // whole (it was `web.***en_file or web.***en`).
    let error = error_of("[web]\ntoken = \"tok\"\n");
    assert!(error.contains("web.token_file or web.token"), "{error}");
    assert!(error.contains("token = ***"), "{error}");
}

#[test]
fn the_secret_scanner_should_find_values_of_secret_keys_only() {
    let text = "[mqtt]\nhost = \"pass\" # token = \"c\"\npassword = \"p\\\"w\" # x\n[web]\ntoken=abc\nweb.secret = { a = \"x\" }\n";
    let found: Vec<&str> = error::secret_values(text).into_iter().map(|r| &text[r]).collect();
    assert_eq!(found, ["\"p\\\"w\"", "abc", "{ a = \"x\" }"]);
}

/// A context whose environment holds `vars` (owned, for paths made at run time).
fn ctx_owned(vars: Vec<(&'static str, String)>) -> Context<'static> {
    Context {
        hostname: "Kitchen.Pi",
        env: Box::leak(Box::new(move |name: &str| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        })),
    }
}

#[test]
fn systemd_credentials_should_give_the_password_and_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mqtt_password"), "from-credential\n").expect("write");
    std::fs::write(dir.path().join("web_token"), "token-from-credential").expect("write");
    let text = "[mqtt]\nusername = \"u\"\npassword = \"inline\"\n[web]\ntoken = \"inline-token\"\n";
    let dir_env = dir.path().display().to_string();
    let config = Config::from_toml(
        text,
        Origin::BuiltIn,
        &ctx_owned(vec![("CREDENTIALS_DIRECTORY", dir_env.clone())]),
    )
    .expect("valid");
    let credentials = config.mqtt.and_then(|m| m.credentials).expect("credentials");
    assert_eq!(credentials.password.as_deref(), Some("from-credential"));
    let token = config.web.and_then(|w| w.token).expect("token");
    assert_eq!(token.expose(), "token-from-credential");
    // The environment variable still wins; a credential that is absent
    // leaves the config's own value.
    std::fs::remove_file(dir.path().join("web_token")).expect("rm");
    let config = Config::from_toml(
        text,
        Origin::BuiltIn,
        &ctx_owned(vec![
            ("CREDENTIALS_DIRECTORY", dir_env),
            ("MAJORTOM_MQTT_PASSWORD", "from-env".into()),
        ]),
    )
    .expect("valid");
    let password = config.mqtt.and_then(|m| m.credentials).and_then(|c| c.password);
    assert_eq!(password.as_deref(), Some("from-env"));
    assert_eq!(
        config.web.and_then(|w| w.token).expect("token").expose(),
        "inline-token"
    );
}

#[test]
fn secret_files_that_others_can_read_should_be_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "a-long-token\n").expect("write");
    let text = format!("[web]\ntoken_file = \"{}\"\n", token.display());
    for (mode, warned) in [(0o600, None), (0o640, Some("its group")), (0o644, Some("other users"))] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let config = parse(&text).expect("valid");
        match warned {
            None => assert!(config.warnings.is_empty(), "{:?}", config.warnings),
            Some(who) => {
                assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
                let warning = &config.warnings[0];
                assert!(warning.contains(&token.display().to_string()), "{warning}");
                assert!(
                    warning.contains(who) && warning.contains("LoadCredential="),
                    "{warning}"
                );
            }
        }
    }
    // A config holding the token inline may be read by its group (root:majortom
    // 0640 when installed), not by every user.
    let config_file = dir.path().join("majortom.toml");
    let text = "[web]\ntoken = \"a-long-token\"\n";
    for (mode, warnings) in [(0o640, 0), (0o644, 1)] {
        std::fs::write(&config_file, text).expect("write");
        std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let config = Config::load(Some(&config_file), &ctx_with(&[])).expect("valid");
        assert_eq!(config.warnings.len(), warnings, "{:?}", config.warnings);
    }
}

#[test]
fn allowed_hosts_should_hold_the_host_names_and_what_the_config_adds() {
    let web = parse("").expect("valid").web.expect("web");
    assert_eq!(web.allowed_hosts, ["localhost", "kitchen.pi.local", "kitchen.pi"]);
    let web = parse("[web]\nallowed_hosts = [\"Pi.Example.org.\", \"192.168.1.9\", \"[fd00::9]\"]\n")
        .expect("valid")
        .web
        .expect("web");
    assert_eq!(
        web.allowed_hosts[3..],
        ["pi.example.org".to_owned(), "192.168.1.9".into(), "fd00::9".into()]
    );
    for bad in ["http://pi", "pi:8080", "", "a b"] {
        let message = error_of(&format!("[web]\nallowed_hosts = [\"{bad}\"]\n"));
        assert!(
            message.contains("key `web.allowed_hosts`") && message.contains("line 2"),
            "{message}"
        );
    }
}

#[test]
fn random_tokens_should_be_32_hex_digits_and_differ() {
    let (a, b) = (random_token().expect("token"), random_token().expect("token"));
    assert_ne!(a, b);
    for token in [a, b] {
        assert_eq!(token.len(), 32, "{token}");
        assert!(token.bytes().all(|c| c.is_ascii_hexdigit()), "{token}");
    }
}

#[test]
fn a_fresh_config_should_carry_its_token() {
    let text = fresh_config("0123456789abcdef0123456789abcdef");
    assert_ne!(text, DEFAULT_CONFIG_TOML);
    let config = parse(&text).expect("valid");
    let token = config.web.and_then(|w| w.token).expect("a token");
    assert_eq!(token.expose(), "0123456789abcdef0123456789abcdef");
}

#[test]
fn an_automation_mode_should_default_to_single_and_take_max_only_when_queued_or_parallel() {
    let automation = |extra: &str| {
        format!(
            "[[inputs]]\nname = \"door\"\npin = 17\n\n[[automations]]\nname = \"a\"\ntrigger = {{ input = \"door\" }}\nactions = [{{ delay_s = 1 }}]\n{extra}"
        )
    };
    let mode = |extra: &str| parse(&automation(extra)).expect("valid").automations[0].mode;
    assert_eq!(mode(""), Mode::Single);
    assert_eq!(mode("mode = \"restart\"\n"), Mode::Restart);
    assert_eq!(mode("mode = \"queued\"\n"), Mode::Queued { max: 10 });
    assert_eq!(mode("mode = \"parallel\"\nmax = 3\n"), Mode::Parallel { max: 3 });
    for (extra, needle) in [
        (
            "mode = \"all\"\n",
            "key `automations[0].mode`: `all`: use single, restart, queued or parallel",
        ),
        (
            "max = 3\n",
            "key `automations[0].max`: only a queued or parallel automation has a max (this one is single)",
        ),
        (
            "mode = \"queued\"\nmax = 0\n",
            "key `automations[0].max`: must be 1 to 1000",
        ),
    ] {
        let message = error_of(&automation(extra));
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn min_switch_interval_should_default_to_zero_and_be_at_most_ten_minutes() {
    let output = |extra: &str| format!("[[outputs]]\nname = \"relay\"\npin = 27\n{extra}");
    let interval = |extra: &str| parse(&output(extra)).expect("valid").outputs[0].min_switch_interval;
    assert_eq!(interval(""), std::time::Duration::ZERO);
    assert_eq!(
        interval("min_switch_interval_ms = 1000\n"),
        std::time::Duration::from_secs(1)
    );
    let message = error_of(&output("min_switch_interval_ms = 600001\n"));
    assert!(
        message.contains("key `outputs[0].min_switch_interval_ms`: must be at most 600000"),
        "{message}"
    );
    let message = error_of(&output("min_switch_interval_ms = -1\n"));
    assert!(message.contains("outputs[0].min_switch_interval_ms"), "{message}");
}

#[test]
fn automations_should_run_commands_and_watch_a_command_switch() {
    let base = "[[commands]]\nname = \"kodi\"\nunit = \"kodi.service\"\n\n[[commands]]\nname = \"backup\"\nonce = [\"backup\"]\n\n";
    let config = parse(&format!(
        "{base}[[automations]]\nname = \"a\"\ntrigger = {{ command = \"kodi\", to = \"off\" }}\nconditions = [{{ entity = \"kodi\", state = \"off\" }}]\nactions = [{{ command = \"backup\", action = \"once\" }}, {{ command = \"kodi\", action = \"on\" }}]\n"
    ))
    .expect("valid");
    let automation = &config.automations[0];
    assert_eq!(
        automation.trigger,
        Trigger::Command {
            command: "kodi".into(),
            to: Change::Off
        }
    );
    assert_eq!(
        automation.actions,
        [
            Step::Command {
                command: "backup".into(),
                action: crate::vocab::Action::Press
            },
            Step::Command {
                command: "kodi".into(),
                action: crate::vocab::Action::On
            }
        ]
    );
    for (automation, message) in [
        (
            "trigger = { command = \"backup\" }\nactions = [{ delay_s = 1 }]",
            "`backup` is not a switch in [[commands]]",
        ),
        (
            "trigger = { interval_s = 5 }\nactions = [{ command = \"backup\", action = \"on\" }]",
            "command `backup` is a button: use \"once\"",
        ),
        (
            "trigger = { interval_s = 5 }\nactions = [{ command = \"kodi\", action = \"once\" }]",
            "command `kodi` is a switch: use \"on\" or \"off\"",
        ),
        (
            "trigger = { interval_s = 5 }\nactions = [{ command = \"nope\", action = \"on\" }]",
            "`nope` is not a command in [[commands]]",
        ),
        (
            "trigger = { interval_s = 5 }\nactions = [{ delay_s = 1, action = \"on\" }]",
            "`action` goes with `command`",
        ),
    ] {
        let error = error_of(&format!("{base}[[automations]]\nname = \"a\"\n{automation}\n"));
        assert!(error.contains(message), "{automation}: {error}");
    }
}

#[test]
fn fleet_should_be_on_with_mqtt_and_off_without_it() {
    let config = parse("").expect("valid");
    assert_eq!(
        config.fleet,
        Some(FleetConfig {
            info_interval: Duration::from_secs(60)
        })
    );
    let config = parse("[fleet]\ninfo_interval_s = 5\n").expect("valid");
    assert_eq!(config.fleet.map(|f| f.info_interval), Some(Duration::from_secs(5)));
    assert_eq!(parse("[fleet]\nenabled = false\n").expect("valid").fleet, None);
    assert_eq!(parse("[mqtt]\nenabled = false\n").expect("valid").fleet, None);
    let message = error_of("[fleet]\ninfo_interval_s = 0\n");
    assert!(
        message.contains("line 2")
            && message.contains("fleet.info_interval_s")
            && message.contains("between 1 and 86400"),
        "{message}"
    );
}

#[test]
fn node_triggers_should_need_the_fleet_a_node_id_and_a_status() {
    let automation = |trigger: &str| {
        format!(
            "[[automations]]\nname = \"a\"\ntrigger = {trigger}\nactions = [{{ publish = \"x\", payload = \"y\" }}]\n"
        )
    };
    let config = parse(&automation(r#"{ node = "garage", status = "offline" }"#)).expect("valid");
    assert_eq!(
        config.automations[0].trigger,
        Trigger::Node {
            node: "garage".into(),
            online: false
        }
    );
    assert_eq!(config.automations[0].trigger.to_string(), "node `garage` goes offline");
    assert!(parse(&automation(r#"{ node = "*", status = "online" }"#)).is_ok());
    let message = error_of(&automation(r#"{ node = "Garage", status = "offline" }"#));
    assert!(message.contains("a node id ([a-z0-9_-])"), "{message}");
    let message = error_of(&automation(r#"{ node = "garage", status = "gone" }"#));
    assert!(message.contains("use online or offline"), "{message}");
    let config = parse(&automation(r#"{ node = "*", alert = "under_voltage" }"#)).expect("valid");
    assert_eq!(
        config.automations[0].trigger,
        Trigger::NodeAlert {
            node: "*".into(),
            alert: "under_voltage"
        }
    );
    let message = error_of(&automation(r#"{ node = "*", alert = "hot" }"#));
    assert!(
        message.contains("use one of under_voltage, throttled, disk_full"),
        "{message}"
    );
    let message = error_of(&automation(r#"{ node = "a", alert = "throttled", status = "online" }"#));
    assert!(message.contains("not both"), "{message}");
    let message = error_of(&automation(r#"{ node = "garage" }"#));
    assert!(message.contains("needs `status"), "{message}");
    let message = error_of(&format!(
        "[fleet]\nenabled = false\n{}",
        automation(r#"{ node = "garage", status = "offline" }"#)
    ));
    assert!(
        message.contains("needs the fleet") && message.contains("automations[0].trigger"),
        "{message}"
    );
}
