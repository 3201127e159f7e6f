//! The text of `majortom check`: what the agent would do with a valid
//! config, in words.

use std::fmt::Write as _;

use crate::config::{Config, Protocol, ENV_MQTT_PASSWORD};
use crate::sources::system::SystemSource;
use crate::vocab::Button;

/// What `majortom check` prints for a valid config: what the agent would do.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let node = &config.node;
    let _ = writeln!(out, "config: {}", config.origin);
    let _ = writeln!(out, "node: id `{}`, name \"{}\"", node.id, node.name);
    if let Some(why) = node.id_origin.describe(&node.id) {
        let _ = writeln!(out, "  {why}");
    }
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
            let protocol = match mqtt.protocol {
                Protocol::V5 => "MQTT 5 (3.1.1 if the broker refuses 5)",
                Protocol::V311 => "MQTT 3.1.1",
            };
            let _ = writeln!(
                out,
                "  protocol: {protocol}; commands older than {} s are refused",
                mqtt.command_max_age.as_secs()
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
        let chip = config
            .gpio
            .chip
            .as_ref()
            .map(|c| format!(", chip {c}"))
            .unwrap_or_default();
        let _ = writeln!(out, "gpio: backend {backend}{chip}");
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
        let _ = writeln!(out, "  input `{}`: {}, {}", input.name, input.pin, traits.join(", "));
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
        let drive = match &output.drive {
            crate::config::Drive::Gpio(pin) => pin.to_string(),
            crate::config::Drive::Pwm(pwm) => format!(
                "PWM pwmchip{} channel {} at {} Hz, on at {} %",
                pwm.chip, pwm.channel, pwm.frequency_hz, output.level
            ),
        };
        let _ = writeln!(out, "  output `{}`: {drive}, {}", output.name, traits.join(", "));
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
        buttons.push(Button::Restart.id().to_owned());
    }
    if let Some(command) = &config.buttons.reboot {
        buttons.push(format!("{} (runs `{}`)", Button::Reboot.id(), command.join(" ")));
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
        let text = include_str!("../../tests/props/full.toml");
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
}
