//! Command-line parsing and the `check` and `init` commands.
//!
//! Hand-written: a handful of commands and options do not pay for an
//! argument parsing crate in a binary with a 2 MB budget.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::install;

mod describe;

pub use describe::describe;

pub const USAGE: &str = "\
majortom: a home-automation agent for the Raspberry Pi

Usage:
  majortom [run] [--config PATH] [--ready-file PATH]
                                     run the agent; once it runs, write
                                     PATH: JSON with its pid, web address,
                                     node and version (for scripts and tests)
  majortom check [--config PATH]     validate a config and print what it would do
  majortom init [--output PATH]      print an annotated default config (or write it)
  majortom doctor [--config PATH] [--json]
        check this machine for the config: board, GPIO backend and access,
        pins, PWM, I2C, 1-wire, IIO, broker, clock, power; each problem
        with its fix; exit 0 when all is well, 1 otherwise
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
    Run {
        config: Option<PathBuf>,
        /// Written (JSON) once the agent runs: pid, web address, node.
        ready_file: Option<PathBuf>,
    },
    Check {
        config: Option<PathBuf>,
    },
    Init {
        output: Option<PathBuf>,
    },
    Doctor {
        config: Option<PathBuf>,
        json: bool,
    },
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
        Some(name @ ("run" | "check" | "init" | "doctor" | "install" | "uninstall" | "rollback" | "help")) => {
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
    let mut ready_file: Option<PathBuf> = None;
    let mut json = false;
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg)?;
        let slot = match flag.as_str() {
            "-V" | "--version" => return Ok(Command::Version),
            "-h" | "--help" => return Ok(Command::Help),
            "--json" if subcommand == "doctor" && inline.is_none() => {
                json = true;
                continue;
            }
            "-c" | "--config" if subcommand != "init" => &mut path,
            "-o" | "--output" if subcommand == "init" => &mut path,
            "--ready-file" if subcommand == "run" => &mut ready_file,
            other => {
                return Err(UsageError(format!(
                    "unexpected argument `{other}` for `majortom {subcommand}`"
                )))
            }
        };
        let value = flag_value(&flag, inline, &mut args)?;
        if slot.replace(value).is_some() {
            return Err(UsageError(format!("`{flag}` given twice")));
        }
    }
    Ok(match subcommand.as_str() {
        "check" => Command::Check { config: path },
        "init" => Command::Init { output: path },
        "doctor" => Command::Doctor { config: path, json },
        _ => Command::Run {
            config: path,
            ready_file,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_should_run_on_the_looked_up_config() {
        assert_eq!(
            parse_str(&[]),
            Ok(Command::Run {
                config: None,
                ready_file: None
            })
        );
    }

    #[test]
    fn config_flag_should_work_in_both_spellings_and_for_run_and_check() {
        let expected = Some(PathBuf::from("/x.toml"));
        assert_eq!(
            parse_str(&["--config", "/x.toml"]),
            Ok(Command::Run {
                config: expected.clone(),
                ready_file: None
            })
        );
        assert_eq!(
            parse_str(&["run", "--config=/x.toml", "--ready-file", "/run/r.json"]),
            Ok(Command::Run {
                config: expected.clone(),
                ready_file: Some(PathBuf::from("/run/r.json"))
            })
        );
        assert!(
            parse_str(&["check", "--ready-file", "/r"]).is_err(),
            "only `run` becomes ready"
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
    fn doctor_should_take_a_config_and_json() {
        assert_eq!(
            parse_str(&["doctor"]),
            Ok(Command::Doctor {
                config: None,
                json: false
            })
        );
        assert_eq!(
            parse_str(&["doctor", "--json", "--config", "/x.toml"]),
            Ok(Command::Doctor {
                config: Some("/x.toml".into()),
                json: true
            })
        );
        assert!(parse_str(&["check", "--json"]).is_err());
    }

    #[test]
    fn version_and_help_should_win_anywhere() {
        assert_eq!(parse_str(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_str(&["check", "-V"]), Ok(Command::Version));
        assert_eq!(parse_str(&["help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["run", "--help"]), Ok(Command::Help));
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
