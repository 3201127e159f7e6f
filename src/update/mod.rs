//! `majortom update FILE|URL`: a new binary (or its release archive)
//! fetched, checked and installed, the service restarted and watched, and
//! rolled back by itself when the new process does not become ready and
//! healthy in time.
//!
//! The order is the point: everything that can refuse (the download, the
//! checksum, the archive, the architecture) runs before anything changes;
//! the binary is then put in place the way `install` does it (atomically,
//! the replaced one kept as `majortom.prev`), and only a restart that
//! reaches READY (`systemctl show`, see `watch.rs`) and a healthy
//! `/api/health` keeps it. Otherwise `rollback`'s swap brings the previous
//! binary back and restarts it.
//!
//! Owns the order and the messages; the installed layout and the binary
//! swap are `install`'s, the bytes on the wire `http.rs`'s.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::atomic_file::Contents;
use crate::config::{Config, Context, SYSTEM_CA_FILE};
use crate::install::{self, InstallError, Layout, UNIT_NAME};

pub mod archive;
pub mod checksum;
pub mod elf;
pub mod http;
pub mod watch;

use checksum::Sha256;
use watch::{Progress, ServiceState};

/// `--timeout`'s default: how long the new process has to become ready
/// and healthy.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest binary or archive taken (ours are about 2 MB).
const MAX_DOWNLOAD: usize = 32 << 20;
/// The largest `SHA256SUMS` file taken.
const MAX_SUMS: usize = 1 << 20;
/// How often the service and its health are asked while waiting.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The longest single `/api/health` request.
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The CA file HTTPS servers are checked against, instead of the system's.
pub const ENV_CA_FILE: &str = "SSL_CERT_FILE";
/// Under `--root`, a stand-in for `systemctl` to restart and watch the
/// service through (the e2e tests'); without it nothing is started.
pub const ENV_ROOT_SYSTEMCTL: &str = "MAJORTOM_ROOT_SYSTEMCTL";

/// Where the new binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An `https://` (or, with `--insecure`, `http://`) URL.
    Url(String),
    File(PathBuf),
}

impl Source {
    /// A URL if it names a scheme, else a file.
    pub fn from_arg(arg: &str) -> Source {
        match arg.contains("://") {
            true => Source::Url(arg.to_owned()),
            false => Source::File(PathBuf::from(arg)),
        }
    }
}

/// What the new binary (or archive) is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Nothing: the architecture is still checked.
    Nothing,
    /// `--sha256 HEX`.
    Sha256(Sha256),
    /// `--sums URL|FILE`: the line of a `SHA256SUMS` file for the source's
    /// file name.
    Sums(Source),
}

/// `majortom update`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub source: Source,
    pub expected: Expected,
    /// How long the new process has to report READY and be healthy.
    pub timeout: Duration,
    /// Plain `http://` allowed.
    pub insecure: bool,
    /// `--root` and `--no-start`, as for `install`.
    pub install: install::Options,
}

/// Why an update did not happen, or was undone; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("cannot download {what}: {source}")]
    Download {
        what: &'static str,
        source: http::HttpError,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is larger than {MAX_DOWNLOAD} bytes: not a majortom binary or release archive", path.display())]
    TooLarge { path: PathBuf },
    #[error("{sums} has no line for `{name}`: give the URL of a file it lists (or --sha256)")]
    NotInSums { sums: String, name: String },
    #[error(
        "refusing {name}: its SHA-256 is {actual}, but {from} says {expected}; \
         the file is damaged or not the one published. Nothing was changed"
    )]
    Checksum {
        name: String,
        actual: Sha256,
        expected: Sha256,
        from: String,
    },
    #[error("refusing {name}: {source}. Nothing was changed")]
    Archive {
        name: String,
        source: archive::ArchiveError,
    },
    #[error("refusing {name}: {source}. Nothing was changed")]
    Architecture { name: String, source: elf::ArchError },
    #[error("cannot ask systemctl about {UNIT_NAME}: {0}")]
    Service(String),
    #[error(
        "rolled back: {why}. {restored} The refused binary is kept as majortom.prev; \
         `journalctl -u majortom` shows what it said"
    )]
    RolledBack { why: String, restored: String },
    #[error("the new binary failed ({why}), and swapping the previous one back failed too: {source}")]
    RollbackFailed { why: String, source: io::Error },
}

/// `majortom update`: see the module doc and `cli::USAGE`.
pub fn update(options: &Options, out: &mut dyn Write) -> Result<(), UpdateError> {
    let started = Instant::now();
    install::check_privileges("update", install::effective_uid(), &options.install)?;
    let root = install::resolve_root(options.install.root.as_deref())?;
    let layout = Layout::new(&root);
    // Under `--root` nothing is started, as for `install` (systemd cannot
    // restart a unit of an SD card image), unless a stand-in is named.
    let systemctl = match (options.install.no_start, &options.install.root) {
        (true, _) => None,
        (false, Some(_)) => std::env::var_os(ENV_ROOT_SYSTEMCTL).map(PathBuf::from),
        (false, None) => Some(install::require_tool("systemctl", "update")?),
    };
    let service = systemctl.map(|systemctl| Service {
        systemctl,
        root_args: install::root_args(&options.install, &root),
    });
    if fs::symlink_metadata(layout.binary()).is_err() {
        return Err(InstallError::NotInstalled { path: layout.binary() }.into());
    }

    let (name, bytes) = acquire(&options.source, options, MAX_DOWNLOAD, "the new binary")?;
    let digest = Sha256::of(&bytes);
    let _ = writeln!(out, "got {name}: {} bytes, SHA-256 {digest}", bytes.len());
    verify_checksum(&name, digest, options, out)?;
    let binary = archive::binary_in(bytes).map_err(|source| UpdateError::Archive {
        name: name.clone(),
        source,
    })?;
    let this = own_identity();
    let machine = uname_machine();
    match elf::check(&binary, &this, &machine) {
        Ok(None) => {
            let _ = writeln!(out, "{name}: built for this machine ({machine})");
        }
        Ok(Some(note)) => {
            let _ = writeln!(out, "{name}: built for this machine ({machine}); note: {note}");
        }
        Err(source) => return Err(UpdateError::Architecture { name, source }),
    }

    install::replace_binary(&layout, Contents::Bytes(&binary), out)?;
    let Some(service) = service else {
        let why = match options.install.no_start {
            true => "--no-start",
            false => "nothing is started under --root",
        };
        let _ = writeln!(
            out,
            "done: installed, not restarted ({why}); `systemctl restart majortom` starts it"
        );
        return Ok(());
    };
    let health = health_address(&layout, out);
    match service.restart_and_watch(health, options.timeout, out) {
        Ok(version) => {
            let _ = writeln!(
                out,
                "done: majortom {version} runs and is healthy ({:.1} s in all); \
                 `majortom rollback` goes back to the previous binary",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(why) => Err(roll_back(&layout, &service, health, options.timeout, why, out)),
    }
}

/// Reads or downloads `source`: its file name and its bytes.
fn acquire(
    source: &Source,
    options: &Options,
    limit: usize,
    what: &'static str,
) -> Result<(String, Vec<u8>), UpdateError> {
    match source {
        Source::Url(text) => {
            let url =
                http::checked_url(text, options.insecure).map_err(|source| UpdateError::Download { what, source })?;
            let ca_file = std::env::var_os(ENV_CA_FILE).map_or_else(|| PathBuf::from(SYSTEM_CA_FILE), PathBuf::from);
            let fetch = http::Fetch {
                insecure: options.insecure,
                ca_file: &ca_file,
                limit,
                timeout: None,
            };
            let bytes = http::get(&url, &fetch).map_err(|source| UpdateError::Download { what, source })?;
            Ok((url.file_name().to_owned(), bytes))
        }
        Source::File(path) => {
            let read_error = |source| UpdateError::Read {
                path: path.clone(),
                source,
            };
            if fs::metadata(path).map_err(read_error)?.len() > limit as u64 {
                return Err(UpdateError::TooLarge { path: path.clone() });
            }
            let bytes = fs::read(path).map_err(read_error)?;
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Ok((name, bytes))
        }
    }
}

fn verify_checksum(name: &str, actual: Sha256, options: &Options, out: &mut dyn Write) -> Result<(), UpdateError> {
    let (expected, from) = match &options.expected {
        Expected::Nothing => {
            let _ = writeln!(
                out,
                "no checksum given (--sha256 or --sums): only the architecture is checked"
            );
            return Ok(());
        }
        Expected::Sha256(expected) => (*expected, "--sha256".to_owned()),
        Expected::Sums(sums) => {
            let (sums_name, text) = acquire(sums, options, MAX_SUMS, "the SHA256SUMS file")?;
            let listed = checksum::find_in_sums(&String::from_utf8_lossy(&text), name);
            let sums_name = match sums {
                Source::Url(url) => url.clone(),
                Source::File(_) => sums_name,
            };
            let expected = listed.ok_or_else(|| UpdateError::NotInSums {
                sums: sums_name.clone(),
                name: name.to_owned(),
            })?;
            (expected, sums_name)
        }
    };
    if expected != actual {
        return Err(UpdateError::Checksum {
            name: name.to_owned(),
            actual,
            expected,
            from,
        });
    }
    let _ = writeln!(out, "{name}: SHA-256 matches {from}");
    Ok(())
}

/// The ELF identity of the running binary (what runs here). A binary that
/// cannot read itself assumes the machine it was compiled for.
fn own_identity() -> elf::Identity {
    let mut header = [0u8; 64];
    let read = fs::File::open("/proc/self/exe").and_then(|mut exe| exe.read_exact(&mut header));
    read.ok()
        .and_then(|()| elf::identify(&header).ok())
        .unwrap_or(elf::Identity {
            bits: if cfg!(target_pointer_width = "64") { 64 } else { 32 },
            big_endian: cfg!(target_endian = "big"),
            machine: compiled_machine(),
            hard_float: cfg!(target_abi = "eabihf"),
        })
}

fn compiled_machine() -> u16 {
    match std::env::consts::ARCH {
        "arm" => 40,
        "aarch64" => 183,
        "x86_64" => 62,
        _ => 0,
    }
}

/// The kernel's machine name (`uname -m`): `armv6l`, `armv7l`, `aarch64`.
fn uname_machine() -> String {
    // SAFETY: utsname is plain data, zeroed is a valid value, and uname
    // only writes into it.
    let mut names: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a utsname we own.
    if unsafe { libc::uname(&mut names) } != 0 {
        return String::new();
    }
    let machine: Vec<u8> = names
        .machine
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&machine).into_owned()
}

/// Where `/api/health` answers, from the installed config; `None` when the
/// web side is off or the config cannot be read (then READY alone counts).
fn health_address(layout: &Layout, out: &mut dyn Write) -> Option<SocketAddr> {
    let path = layout.config();
    let path = fs::symlink_metadata(&path).is_ok().then_some(path);
    match Config::load(path.as_deref(), &Context::system()) {
        Ok(config) => match config.web {
            Some(web) => Some(watch::health_address(web.listen)),
            None => {
                let _ = writeln!(out, "web.enabled is false: READY alone tells that it runs");
                None
            }
        },
        Err(error) => {
            let _ = writeln!(
                out,
                "cannot read the web address from the config ({error}); READY alone tells that it runs"
            );
            None
        }
    }
}

/// `systemctl`, on the live system or a `--root`.
struct Service {
    systemctl: PathBuf,
    root_args: Vec<OsString>,
}

impl Service {
    fn args(&self, args: &[&str]) -> Vec<OsString> {
        let mut all = self.root_args.clone();
        all.extend(args.iter().map(OsString::from));
        all
    }

    fn show(&self) -> Result<ServiceState, String> {
        let output = Command::new(&self.systemctl)
            .args(self.args(&["show", "-p", watch::PROPERTIES, UNIT_NAME]))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.systemctl.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`systemctl show {UNIT_NAME}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(ServiceState::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    /// Restarts the service and waits, up to `timeout`, for a new process
    /// to report READY and (with `health`) to answer healthy. Its version,
    /// or why not.
    fn restart_and_watch(
        &self,
        health: Option<SocketAddr>,
        timeout: Duration,
        out: &mut dyn Write,
    ) -> Result<String, String> {
        let mut before = self.show()?;
        let started = Instant::now();
        let deadline = started + timeout;
        install::run_tool(out, &self.systemctl, &self.args(&["restart", "--no-block", UNIT_NAME]))
            .map_err(|e| e.to_string())?;
        let mut first = true;
        let pid = loop {
            let now = self.show()?;
            if std::mem::take(&mut first) {
                // A manual restart may reset the counter: count from here.
                before.restarts = before.restarts.min(now.restarts);
            }
            match watch::judge(&before, &now) {
                Progress::Ready(pid) => break pid,
                Progress::Failed(why) => return Err(why),
                Progress::Waiting(what) if Instant::now() >= deadline => {
                    return Err(format!(
                        "it did not report READY within {} s: {what}",
                        timeout.as_secs_f64()
                    ))
                }
                Progress::Waiting(_) => std::thread::sleep(POLL_EVERY),
            }
        };
        let _ = writeln!(
            out,
            "READY: pid {pid}, {:.1} s after the restart",
            started.elapsed().as_secs_f64()
        );
        let Some(address) = health else {
            return Ok("(version not asked)".to_owned());
        };
        let ready = ServiceState {
            main_pid: pid,
            ..before
        };
        loop {
            let why = match probe_health(address, deadline) {
                Ok(version) => {
                    let _ = writeln!(
                        out,
                        "healthy: http://{address}/api/health says ok, version {version}, {:.1} s after the restart",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(version);
                }
                Err(why) => why,
            };
            let now = self.show()?;
            if now.main_pid != pid {
                return Err(format!("it stopped after READY: {now}"));
            }
            if let Progress::Failed(why) = watch::judge(&ready, &now) {
                return Err(why);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "http://{address}/api/health was not healthy within {} s: {why}",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
}

fn probe_health(address: SocketAddr, deadline: Instant) -> Result<String, String> {
    let url = http::Url::parse(&format!("http://{address}/api/health")).ok_or("no health URL")?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let fetch = http::Fetch {
        insecure: true,
        ca_file: Path::new(SYSTEM_CA_FILE),
        limit: 64 * 1024,
        timeout: Some(remaining.clamp(Duration::from_millis(100), HEALTH_REQUEST_TIMEOUT)),
    };
    let body = http::get(&url, &fetch).map_err(|e| e.to_string())?;
    watch::healthy(&body)
}

/// Swaps the previous binary back, restarts it and says whether it came
/// back; the error `update` ends with.
fn roll_back(
    layout: &Layout,
    service: &Service,
    health: Option<SocketAddr>,
    timeout: Duration,
    why: String,
    out: &mut dyn Write,
) -> UpdateError {
    let _ = writeln!(out, "the new binary is not ready: {why}; rolling back");
    let (current, previous) = (layout.binary(), layout.previous_binary());
    if let Err(source) = install::swap_files(&current, &previous) {
        return UpdateError::RollbackFailed { why, source };
    }
    install::sync_dir(&current);
    let _ = writeln!(out, "swapped {} and {}", current.display(), previous.display());
    // A unit that failed may be held by its start rate limit.
    let _ = Command::new(&service.systemctl)
        .args(service.args(&["reset-failed", UNIT_NAME]))
        .output();
    let restored = match service.restart_and_watch(health, timeout, out) {
        Ok(version) => format!("The previous binary (majortom {version}) runs again."),
        Err(again) => format!("The previous binary did not come back either ({again})."),
    };
    UpdateError::RolledBack { why, restored }
}
