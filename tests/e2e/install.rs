//! `majortom install | uninstall | rollback`, run for real into a temporary
//! root with systemd's own tools working offline on it, and the installed
//! unit checked with `systemd-analyze verify` and `security`.
//!
//! Every run here passes `--root`: the tests run as root, and without it the
//! binary would install itself into this machine.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use crate::support::{binary, find_program};

/// The systemd tools `install` drives; a missing one fails the test with a
/// message saying to run scripts/test.sh, which installs them.
fn require_systemd_tools() {
    for tool in ["systemctl", "systemd-sysusers", "systemd-analyze"] {
        find_program(tool, "systemd", &[]);
    }
}

/// A temporary directory standing for `/` of the machine installed to.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Root {
        require_systemd_tools();
        Root {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.dir.path().join(absolute.trim_start_matches('/'))
    }

    fn arg(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    /// Runs `majortom <command> --root <root> <extra>` from `program`.
    fn run(&self, program: &Path, command: &str, extra: &[&str]) -> Output {
        let mut args = vec![command, "--root", self.arg()];
        args.extend_from_slice(extra);
        run(program, &args)
    }

    /// Like `run`, asserting success; returns stdout.
    fn run_ok(&self, program: &Path, command: &str, extra: &[&str]) -> String {
        let output = self.run(program, command, extra);
        assert!(
            output.status.success(),
            "majortom {command} failed: {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn install(&self, program: &Path) -> String {
        self.run_ok(program, "install", &["--no-start"])
    }

    fn read(&self, absolute: &str) -> Vec<u8> {
        fs::read(self.path(absolute)).unwrap_or_else(|e| panic!("read {absolute} in the root: {e}"))
    }

    fn mode(&self, absolute: &str) -> u32 {
        let meta = fs::metadata(self.path(absolute)).unwrap_or_else(|e| panic!("stat {absolute}: {e}"));
        meta.permissions().mode() & 0o7777
    }

    fn exists(&self, absolute: &str) -> bool {
        fs::symlink_metadata(self.path(absolute)).is_ok()
    }
}

/// Runs a program, retrying while the kernel says it is busy: a copy this
/// test just wrote can still be open for writing in a child that another
/// test thread forked at that moment (ETXTBSY), until that child execs.
fn run(program: &Path, args: &[&str]) -> Output {
    let mut tries = 0;
    loop {
        match Command::new(program).args(args).env_remove("MAJORTOM_CONFIG").output() {
            Ok(output) => return output,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("run {}: {e}", program.display()),
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn built() -> PathBuf {
    PathBuf::from(binary())
}

/// A copy of the built binary with bytes appended: it runs the same, but
/// its contents tell it apart from the built one.
fn newer_binary(dir: &Path) -> PathBuf {
    let path = dir.join("majortom-newer");
    let mut bytes = fs::read(built()).expect("read the built binary");
    bytes.extend_from_slice(b"\0majortom e2e: a newer build\0");
    fs::write(&path, bytes).expect("write the newer binary");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn repo_file(relative: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).expect("read a repository file")
}

/// The gid of a group in the root's /etc/group.
fn group_id(root: &Root, name: &str) -> Option<u32> {
    let text = String::from_utf8(root.read("/etc/group")).expect("utf-8 group file");
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name)).then(|| fields.get(2)?.parse().ok())?
    })
}

#[test]
fn install_should_place_every_file_with_its_mode_create_the_user_and_enable_the_unit() {
    let root = Root::new();
    let stdout = root.install(&built());

    assert_eq!(
        root.read("/usr/local/bin/majortom"),
        fs::read(built()).expect("read built")
    );
    assert_eq!(root.mode("/usr/local/bin/majortom"), 0o755);
    assert!(
        !root.exists("/usr/local/bin/majortom.prev"),
        "nothing to keep on a first install"
    );

    let init = run(&built(), &["init"]);
    assert!(init.status.success());
    assert_eq!(root.read("/etc/majortom/majortom.toml"), init.stdout);
    assert_eq!(root.mode("/etc/majortom/majortom.toml"), 0o640);
    assert_eq!(root.mode("/etc/majortom"), 0o755);

    assert_eq!(
        text(&root.read("/etc/systemd/system/majortom.service")),
        repo_file("systemd/majortom.service")
    );
    assert_eq!(root.mode("/etc/systemd/system/majortom.service"), 0o644);
    assert_eq!(
        text(&root.read("/etc/sysusers.d/majortom.conf")),
        repo_file("systemd/majortom.sysusers")
    );
    assert_eq!(root.mode("/etc/sysusers.d/majortom.conf"), 0o644);

    // systemd-sysusers created the user (no home, no login) and the groups.
    let passwd = text(&root.read("/etc/passwd"));
    let user = passwd
        .lines()
        .find(|l| l.starts_with("majortom:"))
        .unwrap_or_else(|| panic!("no majortom user in: {passwd}"));
    assert!(user.ends_with(":/:/usr/sbin/nologin"), "{user}");
    let group = text(&root.read("/etc/group"));
    for name in ["gpio", "i2c"] {
        let line = group
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} group in: {group}"));
        assert!(line.ends_with(":majortom"), "majortom is not in {name}: {line}");
    }
    // Running as root, the config goes to root:majortom (the root's gid).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let meta = fs::metadata(root.path("/etc/majortom/majortom.toml")).expect("stat config");
        assert_eq!((meta.uid(), Some(meta.gid())), (0, group_id(&root, "majortom")));
    }

    // systemctl enable made the boot-time link.
    let link = root.path("/etc/systemd/system/multi-user.target.wants/majortom.service");
    let target = fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    assert_eq!(target, Path::new("/etc/systemd/system/majortom.service"));

    for step in [
        "systemd-sysusers --root=",
        "systemctl --root=",
        "enable majortom.service",
        "not started (--root)",
    ] {
        assert!(stdout.contains(step), "`{step}` not printed in:\n{stdout}");
    }
}

#[test]
fn second_install_should_keep_the_older_binary_as_prev() {
    let root = Root::new();
    root.install(&built());
    let newer = newer_binary(root.dir.path());
    let stdout = root.install(&newer);

    assert_eq!(
        root.read("/usr/local/bin/majortom"),
        fs::read(&newer).expect("read newer")
    );
    assert_eq!(
        root.read("/usr/local/bin/majortom.prev"),
        fs::read(built()).expect("read built")
    );
    assert_eq!(root.mode("/usr/local/bin/majortom.prev"), 0o755);
    assert!(stdout.contains("majortom.prev"), "{stdout}");
}

/// The temporary files (`.name.tmp-*`) anywhere below `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(temporaries(&path));
        } else if entry.file_name().to_string_lossy().contains(".tmp-") {
            found.push(path);
        }
    }
    found
}

#[test]
fn an_install_killed_while_writing_should_leave_nothing_corrupt_and_the_next_one_should_clean_up() {
    let root = Root::new();
    let built_bytes = fs::read(built()).expect("read built");
    let bin = root.path("/usr/local/bin");
    let mut killed_mid_write = 0;
    for round in 0..3 {
        // The power goes out as soon as the install has begun to write a
        // binary (its temporary file is there): in the middle of the copy.
        let mut child = loop {
            let spawned = Command::new(built())
                .args(["install", "--root", root.arg(), "--no-start"])
                .env_remove("MAJORTOM_CONFIG")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            match spawned {
                Ok(child) => break child,
                // A copy this test wrote may still be open in a child
                // another test thread forked (see `run`).
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("run majortom install: {e}"),
            }
        };
        loop {
            if !temporaries(&bin).is_empty() {
                let _ = child.kill();
                break;
            }
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            // Polls for the temporary file (a copy of 80 MB takes far longer).
            std::thread::sleep(Duration::from_millis(1));
        }
        child.wait().expect("wait");

        // Nothing half-written under its name: each binary is whole or absent.
        for name in ["/usr/local/bin/majortom", "/usr/local/bin/majortom.prev"] {
            if root.exists(name) {
                assert!(root.read(name) == built_bytes, "round {round}: {name} is not whole");
            }
        }
        // At most the one write that was cut short is left beside it.
        let left = temporaries(root.dir.path());
        assert!(left.len() <= 1, "round {round}: {left:?}");
        killed_mid_write += left.len();

        // The next install removes it, and puts everything in place.
        root.install(&built());
        assert_eq!(temporaries(root.dir.path()), Vec::<PathBuf>::new(), "round {round}");
        assert!(root.read("/usr/local/bin/majortom") == built_bytes, "round {round}");
        assert_eq!(root.mode("/usr/local/bin/majortom"), 0o755);
    }
    assert!(
        killed_mid_write > 0,
        "no install was killed while writing: nothing was tested"
    );
}

#[test]
fn install_should_never_overwrite_an_existing_config() {
    let root = Root::new();
    fs::create_dir_all(root.path("/etc/majortom")).expect("mkdir");
    fs::write(root.path("/etc/majortom/majortom.toml"), "# mine\n").expect("write");
    let stdout = root.install(&built());
    assert_eq!(text(&root.read("/etc/majortom/majortom.toml")), "# mine\n");
    assert!(stdout.contains("kept the existing config"), "{stdout}");
    root.install(&built());
    assert_eq!(text(&root.read("/etc/majortom/majortom.toml")), "# mine\n");
}

#[test]
fn rollback_should_swap_in_the_previous_binary_and_a_second_rollback_should_swap_back() {
    let root = Root::new();
    root.install(&built());
    let newer = newer_binary(root.dir.path());
    root.install(&newer);
    let (old, new) = (fs::read(built()).expect("read"), fs::read(&newer).expect("read"));

    let stdout = root.run_ok(&built(), "rollback", &[]);
    assert!(stdout.contains("not restarted (--root)"), "{stdout}");
    assert_eq!(root.read("/usr/local/bin/majortom"), old);
    assert_eq!(root.read("/usr/local/bin/majortom.prev"), new);
    assert_eq!(root.mode("/usr/local/bin/majortom"), 0o755);

    root.run_ok(&built(), "rollback", &[]);
    assert_eq!(root.read("/usr/local/bin/majortom"), new);
    assert_eq!(root.read("/usr/local/bin/majortom.prev"), old);
}

#[test]
fn rollback_without_a_previous_binary_should_fail_saying_there_is_none() {
    let root = Root::new();
    root.install(&built());
    let output = root.run(&built(), "rollback", &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no previous binary") && stderr.contains("/usr/local/bin/majortom.prev"),
        "{stderr}"
    );
    assert_eq!(
        root.read("/usr/local/bin/majortom"),
        fs::read(built()).expect("read"),
        "left as it was"
    );
}

#[test]
fn uninstall_should_remove_everything_but_the_config_and_the_user_and_purge_the_config_too() {
    let root = Root::new();
    root.install(&built());
    root.install(&newer_binary(root.dir.path()));
    let stdout = root.run_ok(&built(), "uninstall", &[]);

    for gone in [
        "/usr/local/bin/majortom",
        "/usr/local/bin/majortom.prev",
        "/etc/systemd/system/majortom.service",
        "/etc/systemd/system/multi-user.target.wants/majortom.service",
        "/etc/sysusers.d/majortom.conf",
    ] {
        assert!(!root.exists(gone), "{gone} is still there");
    }
    assert!(root.exists("/etc/majortom/majortom.toml"), "the config must stay");
    assert!(text(&root.read("/etc/passwd")).contains("majortom:"), "the user stays");
    assert!(stdout.contains("kept the system user"), "{stdout}");

    // A second uninstall finds nothing to disable and still succeeds.
    root.run_ok(&built(), "uninstall", &[]);
    let stdout = root.run_ok(&built(), "uninstall", &["--purge"]);
    assert!(!root.exists("/etc/majortom"), "--purge removes the config: {stdout}");
}

#[test]
fn install_without_systemd_tools_should_fail_naming_the_tool_and_change_nothing() {
    let root = Root::new();
    let empty = tempfile::tempdir().expect("tempdir");
    let output = Command::new(binary())
        .args(["install", "--root", root.arg(), "--no-start"])
        .env("PATH", empty.path())
        .output()
        .expect("run majortom");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("`systemd-sysusers` was not found"), "{stderr}");
    assert!(stderr.contains("apt-get install systemd"), "{stderr}");
    assert_eq!(
        fs::read_dir(root.dir.path()).expect("list").count(),
        0,
        "the root must stay empty"
    );
}

#[test]
fn install_by_a_user_other_than_root_should_refuse_and_say_sudo() {
    // The tests run as root here: the refusal is then seen by running the
    // binary as `nobody`. Without `--root` this is the real system, so a
    // broken check would still change nothing: nobody may not write there.
    use std::os::unix::process::CommandExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    // SAFETY: geteuid has no preconditions.
    let mut command = match unsafe { libc::geteuid() } {
        0 => {
            // `nobody` must be able to reach and run a copy of the binary.
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
            let copy = dir.path().join("majortom");
            fs::copy(built(), &copy).expect("copy the binary");
            let mut command = Command::new(copy);
            command.uid(65534).gid(65534);
            command
        }
        _ => Command::new(built()),
    };
    let output = (0..50)
        .find_map(|_| match command.args(["install", "--no-start"]).output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
                None
            }
            result => Some(result.expect("run majortom as another user")),
        })
        .expect("the binary copy stayed busy");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("run it with sudo (`sudo ./majortom install`)"),
        "{stderr}"
    );
    assert!(
        text(&output.stdout).is_empty(),
        "nothing may be done: {}",
        text(&output.stdout)
    );
}

/// PWM writes to sysfs, which ProtectKernelTunables= makes read-only: the
/// unit keeps that protection and opens the PWM chips alone again, and the
/// GPIO character devices stay allowed.
#[test]
fn unit_should_open_only_the_pwm_chips_in_a_read_only_sys() {
    let unit = repo_file("systemd/majortom.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    assert!(lines.contains(&"ProtectKernelTunables=yes"), "{unit}");
    assert!(lines.contains(&"DeviceAllow=char-gpiochip rw"), "{unit}");
    let writable: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ReadWritePaths="))
        .flat_map(str::split_whitespace)
        .collect();
    for chip in 0..4 {
        let path = format!("-/sys/class/pwm/pwmchip{chip}");
        assert!(writable.contains(&path.as_str()), "{path} missing from {writable:?}");
    }
    assert!(
        writable.iter().all(|p| p.starts_with("-/sys/class/pwm/pwmchip")),
        "nothing else in /sys: {writable:?}"
    );
}

#[test]
fn installed_unit_should_pass_systemd_analyze_verify_and_security_at_most_2() {
    let root = Root::new();
    root.install(&built());

    // Offline on the root: the unit, its ExecStart and its user are found
    // there. `--recursive-errors=no` judges only our unit, as the root has no
    // sysinit.target or other units for its default dependencies.
    let analyze = find_program("systemd-analyze", "systemd", &[]);
    let verify = run(
        &analyze,
        &[
            "verify",
            "--recursive-errors=no",
            &format!("--root={}", root.arg()),
            "majortom.service",
        ],
    );
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );

    let security = run(
        &analyze,
        &[
            "security",
            "--offline=true",
            "--no-pager",
            &format!("--root={}", root.arg()),
            "majortom.service",
        ],
    );
    let report = text(&security.stdout) + &text(&security.stderr);
    assert!(security.status.success(), "systemd-analyze security: {report}");
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for majortom.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in: {report}"));
    println!("systemd-analyze security: overall exposure level for majortom.service: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{report}");
}
