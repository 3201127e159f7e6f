//! `kind = "command"`: a number that a program prints, or one inside the
//! JSON it prints (`value_path`). The program runs through
//! `commands::process` (cleared environment but `PATH`, its own process
//! group, killed with its children at `timeout_s`), on the sensor runner's
//! blocking thread like every other read.
//!
//! This file owns turning one run into a reading or an error that says what
//! went wrong. Scheduling, calibration, filters and availability are the
//! runner's (`mod.rs`).

use std::ffi::OsString;
use std::time::Duration;

use super::{Quantity, SensorError, SensorReader};
use crate::commands::process::{self, Ended, Invocation};
use crate::config::Program;
use crate::json_path::JsonPath;

/// Output kept for parsing: more is an error rather than a number read
/// from a cut document.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Characters of stderr quoted in an error.
const STDERR_QUOTED: usize = 200;

pub struct CommandReader {
    invocation: Invocation,
    /// For logs and errors.
    shown: String,
    value_path: Option<JsonPath>,
    quantity: Quantity,
}

impl CommandReader {
    /// `env` gives the agent's `PATH` (the program's only variable).
    pub fn new(
        program: &Program,
        timeout: Duration,
        value_path: Option<JsonPath>,
        quantity: Quantity,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> CommandReader {
        CommandReader {
            invocation: Invocation::new(program.argv(), timeout, env).output_limit(OUTPUT_LIMIT),
            shown: program.to_string(),
            value_path,
            quantity,
        }
    }

    fn read_value(&self) -> Result<f64, SensorError> {
        let finished = process::run(&self.invocation, None);
        let shown = &self.shown;
        if finished.ended != Ended::Exited(0) || finished.stdout.discarded > 0 {
            let stderr = finished.stderr.text();
            let said: String = stderr
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .chars()
                .take(STDERR_QUOTED)
                .collect();
            let problem = if finished.ended == Ended::Exited(0) {
                format!("printed more than {} KiB", OUTPUT_LIMIT / 1024)
            } else {
                finished.ended.to_string()
            };
            return Err(SensorError::Device(format!("`{shown}`: {problem}; stderr: {said:?}")));
        }
        let number = match &self.value_path {
            Some(path) => path.number(&finished.stdout.bytes),
            None => {
                let text = finished.stdout.text();
                let trimmed = text.trim();
                trimmed
                    .parse::<f64>()
                    .map_err(|_| format!("{trimmed:?} is not a number"))
            }
        };
        number.map_err(|detail| SensorError::Parse {
            path: format!("the output of `{shown}`"),
            detail,
        })
    }
}

impl SensorReader for CommandReader {
    fn describe(&self) -> String {
        format!("command `{}`", self.shown)
    }

    fn quantities(&self) -> Vec<Quantity> {
        vec![self.quantity]
    }

    fn read(&mut self) -> Vec<(Quantity, Result<f64, SensorError>)> {
        vec![(self.quantity, self.read_value())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::Instant;

    use tokio_util::sync::CancellationToken;

    use crate::filters::FilterSpec;
    use crate::hub::{Hub, HubEvent};
    use crate::sources::sensors::{Calibration, Sensor};

    fn env(name: &str) -> Option<OsString> {
        (name == "PATH").then(|| std::env::var_os("PATH")).flatten()
    }

    fn reader(script: &str, value_path: Option<&str>) -> CommandReader {
        CommandReader::new(
            &Program::Shell(script.to_owned()),
            Duration::from_secs(10),
            value_path.map(|p| JsonPath::parse(p).expect("a path")),
            Quantity::Temperature,
            &env,
        )
    }

    fn read(reader: &mut CommandReader) -> Result<f64, SensorError> {
        let mut results = reader.read();
        assert_eq!(results.len(), 1);
        let (quantity, result) = results.remove(0);
        assert_eq!(quantity, Quantity::Temperature);
        result
    }

    fn message(result: Result<f64, SensorError>) -> String {
        match result {
            Ok(value) => panic!("read {value}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_number_on_stdout_should_be_the_reading() {
        assert_eq!(read(&mut reader("echo ' 21.5 '", None)).expect("a number"), 21.5);
        assert_eq!(read(&mut reader("printf -- -3e1", None)).expect("a number"), -30.0);
        assert_eq!(reader("echo 1", None).describe(), "command `sh -c 'echo 1'`");
        assert_eq!(reader("echo 1", None).quantities(), vec![Quantity::Temperature]);
    }

    #[test]
    fn json_should_be_read_at_the_value_path() {
        let script = r#"echo '{"sensors": [{"name": "cpu", "temp": 47.2}]}'"#;
        assert_eq!(
            read(&mut reader(script, Some("sensors[0].temp"))).expect("a number"),
            47.2
        );
        let missing = message(read(&mut reader(script, Some("sensors[1].temp"))));
        assert!(missing.contains("`sensors[1]` is not in the output"), "{missing}");
    }

    #[test]
    fn a_failure_should_say_how_the_program_ended_and_what_it_said() {
        let failed = message(read(&mut reader("echo 20; echo 'no sensor found' >&2; exit 2", None)));
        assert!(failed.contains("exit code 2; stderr: \"no sensor found\""), "{failed}");
        let garbage = message(read(&mut reader("echo warm", None)));
        assert!(garbage.contains("\"warm\" is not a number"), "{garbage}");
        let missing = message(read(&mut CommandReader::new(
            &Program::Argv(vec!["no-such-sensor-tool".into()]),
            Duration::from_secs(10),
            None,
            Quantity::Temperature,
            &env,
        )));
        assert!(
            missing.contains("`no-such-sensor-tool` was not found on PATH"),
            "{missing}"
        );
        let flood = message(read(&mut reader("head -c 100000 /dev/zero | tr '\\0' 1", None)));
        assert!(flood.contains("printed more than 64 KiB"), "{flood}");
    }

    #[test]
    fn a_hung_program_should_be_killed_at_the_timeout() {
        let mut hung = CommandReader::new(
            &Program::Shell("sleep 1000".into()),
            Duration::from_millis(200),
            None,
            Quantity::Temperature,
            &env,
        );
        let started = Instant::now();
        let timed_out = message(read(&mut hung));
        assert!(timed_out.contains("timed out"), "{timed_out}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn readings_should_reach_the_hub_calibrated_and_filtered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let value = dir.path().join("value");
        std::fs::write(&value, "20.04\n").expect("write");
        let sensor = Sensor {
            name: "pool".into(),
            label: "Pool".into(),
            interval: Duration::from_millis(100),
            calibration: Calibration::uniform(1.0, 2.0),
            filters: vec![FilterSpec::Round(1)],
            reader: Box::new(CommandReader::new(
                &Program::Argv(vec!["cat".into(), value.display().to_string()]),
                Duration::from_secs(10),
                None,
                Quantity::Temperature,
                &env,
            )),
        };
        let hub = Hub::new(8);
        for spec in sensor.entities() {
            hub.register(spec);
        }
        let mut events = hub.subscribe();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sensor.run(Arc::clone(&hub), cancel.clone()));
        let number = |hub: &Hub| hub.get("pool").and_then(|e| e.value).and_then(|v| v.as_number());
        tokio::time::timeout(Duration::from_secs(10), async {
            while number(&hub) != Some(41.1) {
                let _: Result<HubEvent, _> = events.recv().await;
            }
        })
        .await
        .expect("20.04 × 2 + 1, rounded to 41.1, on the hub");
        // The program fails: the entity turns unavailable.
        std::fs::remove_file(&value).expect("rm");
        tokio::time::timeout(Duration::from_secs(10), async {
            while hub.get("pool").is_some_and(|e| e.available) {
                let _: Result<HubEvent, _> = events.recv().await;
            }
        })
        .await
        .expect("unavailable after a failed run");
        cancel.cancel();
        task.await.expect("no panic");
    }
}
