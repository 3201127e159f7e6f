//! The `majortom` binary: parses the command line, sets up logging, loads the
//! config and runs the agent on a single-threaded runtime until SIGINT or
//! SIGTERM; or runs one of the other commands (`check`, `init`, and
//! `install`/`uninstall`/`rollback` from `majortom::install`). Errors become
//! a message on stderr and a non-zero exit code.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use majortom::app::Outcome;
use majortom::cli::{self, Command};
use majortom::config::{self, Config, Context, SYSTEM_CONFIG_PATH};
use majortom::install;
use majortom::logging::{self, Filter};
use majortom::update;

/// Exit code for a bad command line or config (nothing was started).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("majortom {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Init { output } => init(output.as_deref()),
        Command::Install(options) => finish(install::install(&options, &mut std::io::stdout())),
        Command::Uninstall(options) => finish(install::uninstall(&options, &mut std::io::stdout())),
        Command::Rollback(options) => finish(install::rollback(&options, &mut std::io::stdout())),
        Command::Update(options) => finish(update::update(&options, &mut std::io::stdout())),
        Command::Doctor { config, json } => match load_config(config.as_deref()) {
            Ok(config) => doctor(&config, json),
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Check { config } => match load_config(config.as_deref()) {
            Ok(config) => {
                print!("{}", cli::describe(&config));
                for warning in &config.warnings {
                    eprintln!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Run { config, ready_file } => {
            init_logging();
            let config = match load_config(config.as_deref()) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match run(config, ready_file) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `majortom doctor`: 0 when all is well, 1 when something is a problem.
fn doctor(config: &Config, json: bool) -> ExitCode {
    let report = majortom::doctor::run(config);
    if json {
        println!("{}", report.json());
    } else {
        println!("majortom doctor ({}):", config.origin);
        print!("{}", report.text());
    }
    if report.all_well() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load_config(cli_path: Option<&Path>) -> Result<Config, config::ConfigError> {
    let path = config::locate_file(
        cli_path,
        std::env::var("MAJORTOM_CONFIG").ok(),
        Path::new(SYSTEM_CONFIG_PATH),
    );
    Config::load(path.as_deref(), &Context::system())
}

/// `init`: the default config with a new random web token, so the
/// dashboard's controls work at once and are never open; the token is
/// shown once, with where it is kept.
fn init(output: Option<&Path>) -> ExitCode {
    let token = match config::random_token() {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: cannot make a random web token: {error}");
            return ExitCode::FAILURE;
        }
    };
    let text = config::fresh_config(&token);
    let Some(path) = output else {
        print!("{text}");
        eprintln!("web.token in this config is a new random token: the dashboard's controls and the API ask for it");
        return ExitCode::SUCCESS;
    };
    // `create_new` refuses to overwrite, atomically; 0600, as it holds the
    // token.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    match written {
        Ok(()) => {
            eprintln!(
                "wrote {} (mode 0600); its web.token, which the dashboard's controls and the API ask for, is {token}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("error: {} already exists; not overwriting it", path.display());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: cannot write {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// The end of `install`, `uninstall`, `rollback` or `update`: the error,
/// if any, on stderr (the steps already done were printed on stdout).
fn finish<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Human-readable logs on stderr; `MAJORTOM_LOG` takes a level or a
/// comma-separated list of `target=level`.
fn init_logging() {
    let spec = std::env::var("MAJORTOM_LOG").unwrap_or_default();
    let filter = Filter::parse(&spec);
    logging::init(filter.clone().unwrap_or_else(|| Filter::new(tracing::Level::INFO)));
    if filter.is_none() {
        tracing::warn!(MAJORTOM_LOG = %spec, "ignoring unparsable log filter; using `info`");
    }
}

fn run(config: Config, ready_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    // One thread is plenty for this workload and keeps memory small.
    // Blocking work (sensor reads, state files, commands) queues beyond
    // 16 threads, well inside the unit's TasksMax=64: tokio's default of
    // 512 would panic when systemd refuses a thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        // A handful of sockets and files: tokio's default of 1024 events a
        // turn is a 12 KB buffer.
        .max_io_events_per_tick(64)
        .build()
        .context("cannot start the async runtime")?;
    // Its I/O driver is on, and its clock is the real one.
    majortom::time::use_timerfds();
    let outcome = runtime.block_on(majortom::app::run(config, ready_file, shutdown_signal()))?;
    // Blocking threads (a 1-wire read in flight) may not hold up the exec.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // What the log's rate limit held back is said before the exit or exec.
    logging::flush();
    match outcome {
        Outcome::Stopped => Ok(()),
        Outcome::Restart { kept_outputs } => restart(&kept_outputs),
        Outcome::Reboot(command) => reboot(&command),
    }
}

/// Replaces this process with a fresh copy of the same binary and
/// arguments (same pid, so systemd keeps tracking it), handing over the
/// outputs' states so that they stay as they are.
fn restart(kept_outputs: &str) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the running binary to restart it")?;
    tracing::info!(exe = %exe.display(), "restarting");
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(majortom::outputs::KEPT_ENV, kept_outputs)
        .exec();
    Err(error).with_context(|| format!("cannot restart {}", exe.display()))
}

/// Runs the configured reboot command.
fn reboot(command: &[String]) -> anyhow::Result<()> {
    let (program, args) = command.split_first().context("buttons.reboot_command is empty")?;
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot run the reboot command `{}`", command.join(" ")))?;
    anyhow::ensure!(
        status.success(),
        "the reboot command `{}` failed: {status}",
        command.join(" ")
    );
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("stop signal received");
}
