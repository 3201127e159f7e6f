//! `majortom install`, `uninstall` and `rollback`: the binary, the default
//! config, the systemd unit and the sysusers file put in place (or taken
//! away), and `systemd-sysusers` and `systemctl` run on them.
//!
//! Owns the installed layout (which file goes where, with which mode), the
//! rule that an upgrade keeps the replaced binary as `majortom.prev`, and the
//! swap that rolls back to it. It does not own what the unit says
//! (`systemd/majortom.service`, embedded here) nor the default config
//! ([`crate::config::DEFAULT_CONFIG_TOML`]).
//!
//! Everything can be pointed at another root (`--root DIR`): systemd's tools
//! edit such a directory offline, nothing is started, and root is not needed.
//! That is how the tests run it, and how an SD card image can be prepared.

use std::ffi::{OsStr, OsString};
use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use crate::atomic_file::{self, Contents};
use crate::config::DEFAULT_CONFIG_TOML;

mod layout;
mod systemd;

pub use layout::{
    Layout, BINARY_PATH, CONFIG_DIR, PREVIOUS_BINARY_PATH, SERVICE_GROUP, STATE_DIR, SYSUSERS_FILE, SYSUSERS_PATH,
    UNIT_FILE, UNIT_NAME, UNIT_PATH,
};
pub use systemd::find_tool;
use systemd::{require_tool, root_args, run_tool};

const BINARY_MODE: u32 = 0o755;
const CONFIG_MODE: u32 = 0o640;
const CONFIG_DIR_MODE: u32 = 0o755;
const SYSTEM_FILE_MODE: u32 = 0o644;

/// The options shared by `install`, `uninstall` and `rollback`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Work on this directory instead of `/`: files go below it, systemd's
    /// tools edit it offline, and no service is started or stopped.
    pub root: Option<PathBuf>,
    /// Leave the running service alone: no reload, restart or stop.
    pub no_start: bool,
    /// `uninstall` only: also remove the config and state directories.
    pub purge: bool,
}

impl Options {
    /// Whether the live service manager is to be told (reload, restart, stop).
    fn touches_live_service(&self) -> bool {
        self.root.is_none() && !self.no_start
    }
}

/// What can stop an install, uninstall or rollback; each message says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "`majortom {command}` changes /usr/local/bin, /etc and the system's services, which only root may: \
         run it with sudo (`sudo ./majortom {command}`), or give `--root DIR` to work on a directory instead"
    )]
    NotRoot { command: &'static str },
    #[error("--root {}: {source}; give an existing directory", path.display())]
    Root { path: PathBuf, source: io::Error },
    #[error(
        "`{tool}` was not found in $PATH: `majortom {command}` needs systemd's tools \
         (on Debian or Raspberry Pi OS: `sudo apt-get install systemd`)"
    )]
    ToolMissing { tool: &'static str, command: &'static str },
    #[error("cannot run {}: {source}; check that it is a working executable", tool.display())]
    ToolSpawn { tool: PathBuf, source: io::Error },
    #[error("`{command_line}` failed ({status}); its messages are above")]
    ToolFailed { command_line: String, status: ExitStatus },
    #[error(
        "cannot find the running executable to install ({source}); run `install` from the majortom binary file itself"
    )]
    CurrentExe { source: io::Error },
    #[error("cannot {action} {}: {source}; check the permissions and the free space there", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "there is no previous binary {}, so there is nothing to roll back to: \
         it is kept when `majortom install` replaces an installed binary",
        path.display()
    )]
    NoPrevious { path: PathBuf },
    #[error("there is no installed binary {}: install one first with `sudo ./majortom install`", path.display())]
    NotInstalled { path: PathBuf },
}

impl InstallError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
        move |source| InstallError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Without `--root`, the three commands change the system: only root may.
/// Pure, so that the refusal is testable while the tests run as root.
pub fn check_privileges(command: &'static str, euid: u32, options: &Options) -> Result<(), InstallError> {
    if options.root.is_none() && euid != 0 {
        return Err(InstallError::NotRoot { command });
    }
    Ok(())
}

/// The gid of `name` in the text of an `/etc/group` file.
pub fn group_id(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.trim().parse().ok()
    })
}

/// Exchanges the names of two files in the same directory. Three renames
/// through a temporary name; a failing step undoes the earlier ones, so both
/// files keep existing under one of the two names.
pub fn swap_files(a: &Path, b: &Path) -> io::Result<()> {
    let parked = temporary_name(a);
    fs::rename(a, &parked)?;
    if let Err(error) = fs::rename(b, a) {
        let _ = fs::rename(&parked, a);
        return Err(error);
    }
    if let Err(error) = fs::rename(&parked, b) {
        let _ = fs::rename(a, b);
        let _ = fs::rename(&parked, a);
        return Err(error);
    }
    Ok(())
}

/// `majortom install`: see the module doc and `cli::USAGE`.
pub fn install(options: &Options, out: &mut dyn Write) -> Result<(), InstallError> {
    check_privileges("install", effective_uid(), options)?;
    let root = resolve_root(options.root.as_deref())?;
    let layout = Layout::new(&root);
    // Both tools are found before anything changes, so that a machine
    // without systemd is left as it was.
    let sysusers = require_tool("systemd-sysusers", "install")?;
    let systemctl = require_tool("systemctl", "install")?;
    let exe = std::env::current_exe().map_err(|source| InstallError::CurrentExe { source })?;
    let _ = writeln!(
        out,
        "installing majortom {} into {}",
        env!("CARGO_PKG_VERSION"),
        root.display()
    );

    install_binary(&exe, &layout, out)?;

    write_atomic(
        &layout.sysusers(),
        Contents::Bytes(SYSUSERS_FILE.as_bytes()),
        SYSTEM_FILE_MODE,
        None,
    )?;
    say_wrote(out, &layout.sysusers(), SYSTEM_FILE_MODE);
    let mut args = root_args(options, &root);
    args.push(layout.sysusers().into_os_string());
    run_tool(out, &sysusers, &args)?;

    install_config(&layout, out)?;

    write_atomic(
        &layout.unit(),
        Contents::Bytes(UNIT_FILE.as_bytes()),
        SYSTEM_FILE_MODE,
        None,
    )?;
    say_wrote(out, &layout.unit(), SYSTEM_FILE_MODE);
    let mut args = root_args(options, &root);
    args.extend(["enable".into(), UNIT_NAME.into()]);
    run_tool(out, &systemctl, &args)?;

    if options.touches_live_service() {
        run_tool(out, &systemctl, &["daemon-reload".into()])?;
        run_tool(out, &systemctl, &["restart".into(), UNIT_NAME.into()])?;
        let _ = writeln!(
            out,
            "done: majortom runs as a service; `systemctl status majortom` shows it, `journalctl -u majortom -f` its logs"
        );
    } else {
        let _ = writeln!(
            out,
            "done: not started ({}); it starts at the next boot, or now with `systemctl restart majortom`",
            why_not_live(options)
        );
    }
    Ok(())
}

/// `majortom uninstall`: stops and disables the service and removes what
/// `install` put in place, but the config (unless `--purge`) and the user.
pub fn uninstall(options: &Options, out: &mut dyn Write) -> Result<(), InstallError> {
    check_privileges("uninstall", effective_uid(), options)?;
    let root = resolve_root(options.root.as_deref())?;
    let layout = Layout::new(&root);
    let systemctl = require_tool("systemctl", "uninstall")?;
    let _ = writeln!(out, "uninstalling majortom from {}", root.display());

    // `systemctl disable` fails on a unit it cannot find, and there is
    // nothing to disable once the unit file is gone (a second uninstall).
    if layout.unit().exists() {
        let mut args = root_args(options, &root);
        args.push("disable".into());
        if options.touches_live_service() {
            args.push("--now".into());
        }
        args.push(UNIT_NAME.into());
        run_tool(out, &systemctl, &args)?;
    }
    for path in [
        layout.unit(),
        layout.sysusers(),
        layout.binary(),
        layout.previous_binary(),
    ] {
        match fs::remove_file(&path) {
            Ok(()) => {
                let _ = writeln!(out, "removed {}", path.display());
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let _ = writeln!(out, "{}: not there", path.display());
            }
            Err(source) => {
                return Err(InstallError::Io {
                    action: "remove",
                    path,
                    source,
                })
            }
        }
    }
    if options.touches_live_service() {
        run_tool(out, &systemctl, &["daemon-reload".into()])?;
    }

    if options.purge {
        for dir in [layout.config_dir(), layout.state_dir()] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {
                    let _ = writeln!(out, "removed {} (--purge)", dir.display());
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(InstallError::Io {
                        action: "remove",
                        path: dir,
                        source,
                    })
                }
            }
        }
    } else {
        let _ = writeln!(
            out,
            "kept {} (your config); `majortom uninstall --purge` removes it",
            layout.config_dir().display()
        );
    }
    let _ = writeln!(
        out,
        "kept the system user and group `{SERVICE_GROUP}`: system users are not removed, so that files they \
         own never pass to a later user with the same id (`sudo userdel {SERVICE_GROUP}` removes it)"
    );
    Ok(())
}

/// `majortom rollback`: swaps `majortom` and `majortom.prev`, so that a
/// second rollback undoes the first, and restarts the service.
pub fn rollback(options: &Options, out: &mut dyn Write) -> Result<(), InstallError> {
    check_privileges("rollback", effective_uid(), options)?;
    let root = resolve_root(options.root.as_deref())?;
    let layout = Layout::new(&root);
    let systemctl = match options.touches_live_service() {
        true => Some(require_tool("systemctl", "rollback")?),
        false => None,
    };
    let (current, previous) = (layout.binary(), layout.previous_binary());
    if fs::symlink_metadata(&previous).is_err() {
        return Err(InstallError::NoPrevious { path: previous });
    }
    if fs::symlink_metadata(&current).is_err() {
        return Err(InstallError::NotInstalled { path: current });
    }
    swap_files(&current, &previous).map_err(InstallError::io("swap majortom.prev with", &current))?;
    sync_dir(&current);
    let _ = writeln!(
        out,
        "swapped {} and {}: the previous binary is the current one again (`majortom rollback` again undoes this)",
        current.display(),
        previous.display()
    );
    match systemctl {
        Some(systemctl) => {
            run_tool(out, &systemctl, &["restart".into(), UNIT_NAME.into()])?;
            let _ = writeln!(out, "done: majortom restarted on the previous binary");
        }
        None => {
            let _ = writeln!(out, "done: not restarted ({})", why_not_live(options));
        }
    }
    Ok(())
}

fn why_not_live(options: &Options) -> &'static str {
    match options.root {
        Some(_) => "--root",
        None => "--no-start",
    }
}

/// The effective user id of this process.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

fn resolve_root(root: Option<&Path>) -> Result<PathBuf, InstallError> {
    let Some(dir) = root else {
        return Ok(PathBuf::from("/"));
    };
    // systemd's tools want an absolute root, and systemd-sysusers reads its
    // file arguments from the host, so every path handed on is absolute.
    let resolved = fs::canonicalize(dir).map_err(|source| InstallError::Root {
        path: dir.to_owned(),
        source,
    })?;
    if !resolved.is_dir() {
        return Err(InstallError::Root {
            path: dir.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    Ok(resolved)
}

fn install_binary(exe: &Path, layout: &Layout, out: &mut dyn Write) -> Result<(), InstallError> {
    let target = layout.binary();
    // `sudo majortom install` run from the installed binary itself would
    // otherwise replace the kept previous binary with a copy of the current.
    if same_file(exe, &target) {
        let _ = writeln!(out, "{}: is the running binary; left as it is", target.display());
        return Ok(());
    }
    if fs::symlink_metadata(&target).is_ok() {
        let previous = layout.previous_binary();
        write_atomic(&previous, Contents::CopyOf(&target), BINARY_MODE, None)?;
        let _ = writeln!(
            out,
            "kept the replaced {} as {} (`majortom rollback` goes back to it)",
            target.display(),
            previous.display()
        );
    }
    write_atomic(&target, Contents::CopyOf(exe), BINARY_MODE, None)?;
    say_wrote(out, &target, BINARY_MODE);
    Ok(())
}

fn install_config(layout: &Layout, out: &mut dyn Write) -> Result<(), InstallError> {
    let dir = layout.config_dir();
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(InstallError::io("create", &dir))?;
        // create_dir_all's mode is cut by the umask, and the service user
        // must be able to enter the directory.
        fs::set_permissions(&dir, Permissions::from_mode(CONFIG_DIR_MODE))
            .map_err(InstallError::io("set the mode of", &dir))?;
    }
    let path = layout.config();
    if fs::symlink_metadata(&path).is_ok() {
        let _ = writeln!(out, "kept the existing config {}", path.display());
        return Ok(());
    }
    // Best effort: root:majortom lets the service read a password in the
    // config while other users cannot. Without root, or before the group
    // exists, the file stays with whoever runs this.
    let group = match effective_uid() {
        0 => fs::read_to_string(layout.group_file())
            .ok()
            .and_then(|text| group_id(&text, SERVICE_GROUP)),
        _ => None,
    };
    write_atomic(
        &path,
        Contents::Bytes(DEFAULT_CONFIG_TOML.as_bytes()),
        CONFIG_MODE,
        group,
    )?;
    match group {
        Some(_) => {
            let _ = writeln!(
                out,
                "wrote {} (mode 0640, root:{SERVICE_GROUP}; edit it, then `systemctl restart majortom`)",
                path.display()
            );
        }
        None => say_wrote(out, &path, CONFIG_MODE),
    }
    Ok(())
}

fn say_wrote(out: &mut dyn Write, path: &Path, mode: u32) {
    let _ = writeln!(out, "wrote {} (mode {mode:04o})", path.display());
}

/// Replaces `path` atomically (`crate::atomic_file`), creating its
/// directory first. What an install killed while writing `path` left
/// beside it (`.name.tmp-*`, up to a whole binary) goes first: only
/// `majortom install` writes these paths.
fn write_atomic(path: &Path, contents: Contents<'_>, mode: u32, group: Option<u32>) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(InstallError::io("create", dir))?;
    atomic_file::remove_leftovers(path);
    let options = atomic_file::Options {
        mode: Some(mode),
        group,
    };
    atomic_file::replace(path, contents, options).map_err(|e| InstallError::Io {
        action: e.action,
        path: e.path,
        source: e.source,
    })
}

/// Best effort: the swap is done; only its durability is at stake.
fn sync_dir(path: &Path) {
    let _ = atomic_file::sync_dir(path);
}

/// `.name.swap-<pid>` beside `path`, where `swap_files` parks a file: same
/// directory (so renames are atomic), hidden, and distinct per process.
/// Not `.name.tmp-*`: a rollback killed mid-swap leaves a whole binary
/// parked there, which `install`'s removal of killed writes must not take.
fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or(OsStr::new("majortom"));
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".swap-{}", std::process::id()));
    path.with_file_name(temporary)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_root(root: &str) -> Options {
        Options {
            root: Some(root.into()),
            ..Options::default()
        }
    }

    #[test]
    fn non_root_should_be_told_to_use_sudo_unless_a_root_directory_is_given() {
        let error = check_privileges("install", 1000, &Options::default()).expect_err("non-root refused");
        let message = error.to_string();
        assert!(message.contains("sudo ./majortom install"), "{message}");
        assert!(check_privileges("install", 0, &Options::default()).is_ok());
        assert!(check_privileges("rollback", 1000, &with_root("/tmp/x")).is_ok());
    }

    #[test]
    fn live_service_should_be_touched_only_without_root_and_without_no_start() {
        assert!(Options::default().touches_live_service());
        assert!(!with_root("/x").touches_live_service());
        let no_start = Options {
            no_start: true,
            ..Options::default()
        };
        assert!(!no_start.touches_live_service());
    }

    #[test]
    fn group_id_should_find_the_group_by_exact_name() {
        let text = "root:x:0:\ngpio:x:997:pi,majortom\nmajortomx:x:5:\nmajortom:x:996:\nbroken\n";
        assert_eq!(group_id(text, "majortom"), Some(996));
        assert_eq!(group_id(text, "gpio"), Some(997));
        assert_eq!(group_id(text, "i2c"), None);
        assert_eq!(group_id("majortom:x:notanumber:\n", "majortom"), None);
    }

    #[test]
    fn swap_should_exchange_two_files_and_a_second_swap_should_undo_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("majortom"), dir.path().join("majortom.prev"));
        fs::write(&a, "new").expect("write");
        fs::write(&b, "old").expect("write");
        swap_files(&a, &b).expect("swap");
        assert_eq!(fs::read_to_string(&a).expect("read"), "old");
        assert_eq!(fs::read_to_string(&b).expect("read"), "new");
        swap_files(&a, &b).expect("swap back");
        assert_eq!(fs::read_to_string(&a).expect("read"), "new");
        assert_eq!(fs::read_to_string(&b).expect("read"), "old");
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(names.len(), 2, "no temporary file left behind");
    }

    #[test]
    fn swap_with_a_missing_file_should_fail_and_leave_the_other_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("majortom"), dir.path().join("majortom.prev"));
        fs::write(&a, "only").expect("write");
        assert!(swap_files(&a, &b).is_err());
        assert_eq!(fs::read_to_string(&a).expect("read"), "only");
        assert!(!b.exists());
    }

    #[test]
    fn write_atomic_should_create_the_directory_and_set_the_exact_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/majortom.service");
        write_atomic(&path, Contents::Bytes(b"one"), 0o644, None).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "one");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(fs::read_dir(path.parent().expect("dir")).expect("list").count(), 1);
    }

    #[test]
    fn write_atomic_should_remove_what_a_killed_write_of_the_same_file_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("majortom");
        // Two killed installs' temporaries, a killed rollback's parked
        // binary, and another file's temporary.
        for name in [
            ".majortom.tmp-0123456789abcdef",
            ".majortom.tmp-fedcba9876543210",
            ".majortom.swap-4242",
            ".majortom.prev.tmp-0123456789abcdef",
        ] {
            fs::write(dir.path().join(name), "partial").expect("write");
        }
        write_atomic(&path, Contents::Bytes(b"binary"), 0o755, None).expect("write");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".majortom.prev.tmp-0123456789abcdef", ".majortom.swap-4242", "majortom"]
        );
        assert_eq!(fs::read_to_string(&path).expect("read"), "binary");
    }

    #[test]
    fn a_relative_or_missing_root_should_be_resolved_or_refused_naming_it() {
        assert_eq!(resolve_root(None).expect("none"), Path::new("/"));
        let error = resolve_root(Some(Path::new("/nonexistent/root"))).expect_err("missing root");
        assert!(error.to_string().contains("/nonexistent/root"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        let resolved = resolve_root(Some(dir.path())).expect("existing root");
        assert!(resolved.is_absolute());
    }
}
