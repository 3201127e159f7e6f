//! Command-line parsing and the `check` and `init` commands.
//!
//! Hand-written: a handful of commands and options do not pay for an
//! argument parsing crate in a binary with a 2 MB budget.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::{Config, ENV_MQTT_PASSWORD};
use crate::install;
use crate::sources::system::SystemSource;

pub const USAGE: &str = "\
majortom: a home-automation agent for the Raspberry Pi

Usage:
  majortom [run] [--config PATH]     run the agent
  majortom check [--config PATH]     validate a config and print what it would do
  majortom init [--output PATH]      print an annotated default config (or write it)
  majortom install [--root DIR] [--no-start]
        install this binary as the systemd service `majortom` (with sudo):
        /usr/local/bin/majortom (the replaced one kept as majortom.prev),
        /etc/majortom/majortom.toml (only if absent), the unit and its user;
        then enable and (re)start it
  majortom uninstall [--root DIR] [--purge] [--no-start]
        stop, disable and remove the service and binaries; the config in
        /etc/majortom stays unless --purge, the user `majortom` stays
  majortom rollback [--root DIR] [--no-start]
        swap in the previous binary (majortom.prev) and restart; again to undo
  majortom --version                 print the version

  --root DIR    work on a directory (an SD card image, a test) instead of /:
                nothing is started or stopped, and root is not needed
  --no-start    leave the running service alone (no reload, restart or stop)

The config is read from --config, else $MAJORTOM_CONFIG, else
/etc/majortom/majortom.toml, else the built-in defaults are used.
Logging: MAJORTOM_LOG=debug (or e.g. \"info,majortom::mqtt=debug\").
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run { config: Option<PathBuf> },
    Check { config: Option<PathBuf> },
    Init { output: Option<PathBuf> },
    Install(install::Options),
    Uninstall(install::Options),
    Rollback(install::Options),
    Version,
    Help,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}\n\nRun `majortom --help` for usage.")]
pub struct UsageError(String);

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().peekable();
    let subcommand = match args.peek().and_then(|a| a.to_str()) {
        Some(name @ ("run" | "check" | "init" | "install" | "uninstall" | "rollback" | "help")) => {
            let name = name.to_owned();
            args.next();
            name
        }
        _ => "run".to_owned(),
    };
    match subcommand.as_str() {
        "help" => return Ok(Command::Help),
        "install" | "uninstall" | "rollback" => return parse_install(&subcommand, args),
        _ => {}
    }
    let mut path: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg)?;
        match flag.as_str() {
            "-V" | "--version" => return Ok(Command::Version),
            "-h" | "--help" => return Ok(Command::Help),
            "-c" | "--config" if subcommand != "init" => {}
            "-o" | "--output" if subcommand == "init" => {}
            other => {
                return Err(UsageError(format!(
                    "unexpected argument `{other}` for `majortom {subcommand}`"
                )))
            }
        }
        let value = flag_value(&flag, inline, &mut args)?;
        if path.replace(value).is_some() {
            return Err(UsageError(format!("`{flag}` given twice")));
        }
    }
    Ok(match subcommand.as_str() {
        "check" => Command::Check { config: path },
        "init" => Command::Init { output: path },
        _ => Command::Run { config: path },
    })
}

/// The options of `install`, `uninstall` and `rollback`.
fn parse_install(subcommand: &str, mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut options = install::Options::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg)?;
        match flag.as_str() {
            "-V" | "--version" => return Ok(Command::Version),
            "-h" | "--help" => return Ok(Command::Help),
            "--root" => {
                let value = flag_value(&flag, inline, &mut args)?;
                if options.root.replace(value).is_some() {
                    return Err(UsageError(format!("`{flag}` given twice")));
                }
            }
            "--no-start" | "--purge" if inline.is_some() => {
                return Err(UsageError(format!("`{flag}` takes no value")));
            }
            "--no-start" => options.no_start = true,
            "--purge" if subcommand == "uninstall" => options.purge = true,
            other => {
                return Err(UsageError(format!(
                    "unexpected argument `{other}` for `majortom {subcommand}`"
                )))
            }
        }
    }
    Ok(match subcommand {
        "install" => Command::Install(options),
        "uninstall" => Command::Uninstall(options),
        _ => Command::Rollback(options),
    })
}

/// `--flag=value` → (`--flag`, `Some(value)`); anything else → (arg, `None`).
fn split_flag(arg: OsString) -> Result<(String, Option<String>), UsageError> {
    let arg = arg
        .into_string()
        .map_err(|a| UsageError(format!("argument is not valid UTF-8: {a:?}")))?;
    Ok(match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
        _ => (arg, None),
    })
}

/// The path after a flag: inline (`--flag=value`) or the next argument.
fn flag_value(
    flag: &str,
    inline: Option<String>,
    args: &mut impl Iterator<Item = OsString>,
) -> Result<PathBuf, UsageError> {
    let value = match inline {
        Some(value) => value,
        None => args
            .next()
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| UsageError(format!("`{flag}` needs a path")))?,
    };
    if value.is_empty() {
        return Err(UsageError(format!("`{flag}` needs a path")));
    }
    Ok(PathBuf::from(value))
}

/// What `majortom check` prints for a valid config: what the agent would do.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let node = &config.node;
    let _ = writeln!(out, "config: {}", config.origin);
    let _ = writeln!(out, "node: id `{}`, name \"{}\"", node.id, node.name);
    match &config.mqtt {
        Some(mqtt) => {
            let base = format!("{}/{}", mqtt.base_topic, node.id);
            let _ = writeln!(
                out,
                "mqtt: connect to {}:{} as `{}`, keepalive {} s",
                mqtt.host,
                mqtt.port,
                mqtt.client_id,
                mqtt.keepalive.as_secs()
            );
            match &mqtt.credentials {
                Some(c) => {
                    let password = if c.password.is_some() { "set" } else { "none" };
                    let _ = writeln!(
                        out,
                        "  credentials: user `{}`, password {password} (${ENV_MQTT_PASSWORD} overrides)",
                        c.username
                    );
                }
                None => {
                    let _ = writeln!(out, "  credentials: none (anonymous)");
                }
            }
            let _ = writeln!(out, "  availability: {base}/status (Last Will `offline`)");
            let _ = writeln!(out, "  states:       {base}/<entity>/state (retained)");
            let _ = writeln!(
                out,
                "  discovery:    {}/<component>/{}/<entity>/config (retained)",
                mqtt.discovery_prefix, node.id
            );
        }
        None => {
            let _ = writeln!(out, "mqtt: disabled");
        }
    }
    match &config.web {
        Some(web) => {
            let _ = writeln!(out, "web: dashboard and API on http://{}/", web.listen);
        }
        None => {
            let _ = writeln!(out, "web: disabled");
        }
    }
    match &config.system {
        Some(system) => {
            let source = SystemSource::probe(&config.root, system.interval);
            let ids: Vec<String> = source.entities().into_iter().map(|e| e.id).collect();
            let _ = writeln!(
                out,
                "system: sample every {} s from {}: {} entities: {}",
                system.interval.as_secs_f64(),
                config.root.display(),
                ids.len(),
                ids.join(", ")
            );
        }
        None => {
            let _ = writeln!(out, "system: disabled");
        }
    }
    describe_hardware(config, &mut out);
    out.push_str("config is valid\n");
    out
}

fn describe_hardware(config: &Config, out: &mut String) {
    if config.uses_gpio() {
        let backend = format!("{:?}", config.gpio.backend).to_lowercase();
        let _ = writeln!(out, "gpio: backend {backend}");
    }
    for input in &config.inputs {
        let mut traits = vec![format!("pull {:?}", input.pull).to_lowercase()];
        if input.inverted {
            traits.push("inverted".into());
        }
        traits.push(format!("debounce {} ms", input.debounce.as_millis()));
        if let Some(class) = input.device_class {
            traits.push(class.into());
        }
        if input.presses.is_some() {
            traits.push("press events".into());
        }
        let _ = writeln!(
            out,
            "  input `{}`: GPIO {}, {}",
            input.name,
            input.pin,
            traits.join(", ")
        );
    }
    for output in &config.outputs {
        let mut traits = vec![
            format!("{:?}", output.kind).to_lowercase(),
            format!("initial {:?}", output.initial).to_lowercase(),
            format!("safe state {:?}", output.safe_state).to_lowercase(),
        ];
        if output.inverted {
            traits.push("inverted".into());
        }
        if let Some(after) = output.auto_off {
            traits.push(format!("auto-off {} s", after.as_secs_f64()));
        }
        let _ = writeln!(
            out,
            "  output `{}`: GPIO {}, {}",
            output.name,
            output.pin,
            traits.join(", ")
        );
    }
    if config
        .outputs
        .iter()
        .any(|o| o.initial == crate::config::Initial::Restore)
    {
        let _ = writeln!(out, "  output state file: {}", config.gpio.state_file.display());
    }
    for sensor in &config.sensors {
        let source = match &sensor.source {
            crate::config::SensorSource::Ds18b20 { id } => format!("DS18B20 {id}"),
            crate::config::SensorSource::Iio { device } => format!("IIO {device}"),
            crate::config::SensorSource::Bme280 { bus, address } => {
                format!("BME280 on I2C bus {bus} at 0x{address:02x}")
            }
            crate::config::SensorSource::Command { command, .. } => format!("the output of `{command}`"),
            crate::config::SensorSource::File { path, .. } => format!("the file {}", path.display()),
        };
        let _ = writeln!(
            out,
            "sensor `{}`: {source}, every {} s",
            sensor.name,
            sensor.interval.as_secs_f64()
        );
    }
    for automation in &config.automations {
        let state = if automation.enabled { "on" } else { "off" };
        let _ = writeln!(
            out,
            "automation `{}` ({state}): when {}, {} action(s)",
            automation.name,
            automation.trigger,
            automation.actions.len() + automation.actions_below.len()
        );
    }
    let mut buttons = Vec::new();
    if config.buttons.restart {
        buttons.push("restart".to_owned());
    }
    if let Some(command) = &config.buttons.reboot {
        buttons.push(format!("reboot (runs `{}`)", command.join(" ")));
    }
    if !buttons.is_empty() {
        let _ = writeln!(out, "buttons: {}", buttons.join(", "));
    }
    if config.auto_ds18b20 {
        let found = crate::sources::sensors::ds18b20::discover(&config.root);
        if !found.is_empty() {
            let _ = writeln!(out, "1-wire DS18B20 found: {}", found.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_should_run_on_the_looked_up_config() {
        assert_eq!(parse_str(&[]), Ok(Command::Run { config: None }));
    }

    #[test]
    fn config_flag_should_work_in_both_spellings_and_for_run_and_check() {
        let expected = Some(PathBuf::from("/x.toml"));
        assert_eq!(
            parse_str(&["--config", "/x.toml"]),
            Ok(Command::Run {
                config: expected.clone()
            })
        );
        assert_eq!(
            parse_str(&["run", "--config=/x.toml"]),
            Ok(Command::Run {
                config: expected.clone()
            })
        );
        assert_eq!(
            parse_str(&["check", "-c", "/x.toml"]),
            Ok(Command::Check { config: expected })
        );
    }

    #[test]
    fn init_should_take_an_output_path_but_not_a_config() {
        assert_eq!(parse_str(&["init"]), Ok(Command::Init { output: None }));
        assert_eq!(
            parse_str(&["init", "--output", "a.toml"]),
            Ok(Command::Init {
                output: Some("a.toml".into())
            })
        );
        assert!(parse_str(&["init", "--config", "a.toml"]).is_err());
    }

    #[test]
    fn version_and_help_should_win_anywhere() {
        assert_eq!(parse_str(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_str(&["check", "-V"]), Ok(Command::Version));
        assert_eq!(parse_str(&["help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["run", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn describe_should_list_every_input_output_and_sensor() {
        let ctx = crate::config::Context {
            hostname: "pi",
            env: &|_| None,
        };
        let text = "[gpio]\nbackend = \"sim\"\n[[inputs]]\nname = \"door\"\npin = 17\ndevice_class = \"door\"\n\
                    [[outputs]]\nname = \"relay\"\npin = 27\nauto_off_s = 2\n\
                    [[sensors]]\nkind = \"bme280\"\nname = \"outside\"\n";
        let config = Config::from_toml(text, crate::config::Origin::BuiltIn, &ctx).expect("valid");
        let described = describe(&config);
        for line in [
            "gpio: backend sim",
            "  input `door`: GPIO 17, pull up, debounce 50 ms, door",
            "  output `relay`: GPIO 27, switch, initial off, safe state off, auto-off 2 s",
            "sensor `outside`: BME280 on I2C bus 1 at 0x76, every 30 s",
        ] {
            assert!(
                described.lines().any(|l| l == line),
                "missing {line:?} in:\n{described}"
            );
        }
    }

    #[test]
    fn describe_should_say_what_starts_each_automation() {
        let ctx = crate::config::Context {
            hostname: "pi",
            env: &|_| None,
        };
        let text = include_str!("../tests/props/full.toml");
        let config = Config::from_toml(text, crate::config::Origin::BuiltIn, &ctx).expect("valid");
        let described = describe(&config);
        for line in [
            "automation `wall_button_toggles_relay` (on): when a long press of `wall_button`, 1 action(s)",
            "automation `door_light` (on): when `front_door` turns on, 3 action(s)",
            "automation `cool_the_pi` (on): when `cpu_temperature` rises above 60 (again below 55), 2 action(s)",
            "automation `morning_watering` (off): when daily at 07:00, 1 action(s)",
            "automation `tick` (on): when every 600 s, 1 action(s)",
            "buttons: restart, reboot (runs `systemctl reboot`)",
        ] {
            assert!(
                described.lines().any(|l| l == line),
                "missing {line:?} in:\n{described}"
            );
        }
    }

    #[test]
    fn bad_arguments_should_be_usage_errors_naming_the_argument() {
        let error = parse_str(&["--bogus"]).expect_err("bogus flag");
        assert!(error.to_string().contains("`--bogus`"), "{error}");
        assert!(parse_str(&["--config"]).is_err());
        assert!(parse_str(&["--config", "a", "--config", "b"]).is_err());
        assert!(parse_str(&["frobnicate"]).is_err());
    }

    #[test]
    fn install_commands_should_take_root_and_no_start() {
        assert_eq!(
            parse_str(&["install"]),
            Ok(Command::Install(install::Options::default()))
        );
        assert_eq!(
            parse_str(&["install", "--root", "/img", "--no-start"]),
            Ok(Command::Install(install::Options {
                root: Some("/img".into()),
                no_start: true,
                purge: false,
            }))
        );
        assert_eq!(
            parse_str(&["rollback", "--root=/img"]),
            Ok(Command::Rollback(install::Options {
                root: Some("/img".into()),
                ..install::Options::default()
            }))
        );
    }

    #[test]
    fn purge_should_belong_to_uninstall_only() {
        assert_eq!(
            parse_str(&["uninstall", "--purge"]),
            Ok(Command::Uninstall(install::Options {
                purge: true,
                ..install::Options::default()
            }))
        );
        let error = parse_str(&["install", "--purge"]).expect_err("purge on install");
        assert!(error.to_string().contains("`--purge`"), "{error}");
        assert!(parse_str(&["rollback", "--purge"]).is_err());
    }

    #[test]
    fn install_commands_should_refuse_a_config_flag_a_valueless_root_and_flag_values() {
        assert!(parse_str(&["install", "--config", "a.toml"]).is_err());
        assert!(parse_str(&["install", "--root"]).is_err());
        assert!(parse_str(&["install", "--root", "a", "--root", "b"]).is_err());
        assert!(parse_str(&["install", "--no-start=yes"]).is_err());
    }
}
