//! What a `status` program's result means: pure, so the rule is one table.
//!
//! Exit 0 means on. Otherwise stdout decides: `on`, `true`, `1` mean on;
//! `off`, `false`, `0` and nothing at all mean off (the way `pgrep`,
//! `test -e`, `grep -q` and `systemctl is-active --quiet` say "no");
//! anything else, a timeout, a kill or a program that did not start means
//! the state is unknown, and the command is unavailable until a check
//! works again.

use super::process::{Ended, Finished};

/// A command's state as its `status` program (or its last run) tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    On,
    Off,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::On => "on",
            Status::Off => "off",
            Status::Unknown => "unknown",
        }
    }
}

/// Reads a finished `status` run (see the module doc).
pub fn read(finished: &Finished) -> Status {
    match finished.ended {
        Ended::Exited(0) => Status::On,
        Ended::Exited(_) => {
            let text = finished.stdout.text();
            let word = text.trim();
            if ["on", "true", "1"].iter().any(|w| word.eq_ignore_ascii_case(w)) {
                Status::On
            } else if word.is_empty() || ["off", "false", "0"].iter().any(|w| word.eq_ignore_ascii_case(w)) {
                Status::Off
            } else {
                Status::Unknown
            }
        }
        Ended::Signaled(_) | Ended::TimedOut | Ended::Stopped | Ended::NotStarted(_) => Status::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::commands::process::Captured;

    fn check(ended: Ended, stdout: &str, expected: Status) {
        let finished = Finished {
            ended: ended.clone(),
            duration: Duration::ZERO,
            stdout: Captured {
                bytes: stdout.as_bytes().to_vec(),
                discarded: 0,
            },
            stderr: Captured::default(),
        };
        assert_eq!(read(&finished), expected, "{ended:?} with stdout {stdout:?}");
    }

    #[test]
    fn exit_zero_should_mean_on_whatever_stdout_says() {
        check(Ended::Exited(0), "", Status::On);
        check(Ended::Exited(0), "off\n", Status::On);
    }

    #[test]
    fn a_failure_should_be_read_from_stdout() {
        for on in ["on", "ON\n", " true ", "1", "True"] {
            check(Ended::Exited(1), on, Status::On);
        }
        for off in ["off", "OFF\n", "false", "0", "", "\n", "  "] {
            check(Ended::Exited(3), off, Status::Off);
        }
        for unknown in ["inactive", "on off", "2", "yes", "o n", "onn", "\u{fffd}"] {
            check(Ended::Exited(1), unknown, Status::Unknown);
        }
    }

    #[test]
    fn a_run_that_did_not_finish_should_be_unknown() {
        check(Ended::TimedOut, "on", Status::Unknown);
        check(Ended::Stopped, "", Status::Unknown);
        check(Ended::Signaled(9), "", Status::Unknown);
        check(Ended::NotStarted("no such program".into()), "", Status::Unknown);
    }
}
