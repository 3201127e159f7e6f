//! The release archives from `cross/dist.sh`, met the way a user meets them:
//! `sha256sum -c` on SHA256SUMS, `tar` listing and unpacking them, and the
//! unpacked x86_64 binary run and installed into a temporary root. Each
//! archive's own reproducible form is checked here (sorted entries, owner
//! 0/0, one fixed mtime, fixed modes, no name or time in the gzip header);
//! that a second build gives the same bytes is `scripts/reproducible.sh`'s
//! job.
//!
//! These need `dist/`, which `scripts/test.sh` writes first; plain `cargo
//! test` lists them as ignored, and they fail loudly when run without it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{binary, find_program};

const TARGETS: [&str; 4] = [
    "arm-unknown-linux-musleabihf",
    "armv7-unknown-linux-musleabihf",
    "aarch64-unknown-linux-musl",
    "x86_64-unknown-linux-musl",
];

/// What every archive holds under its top directory, and where each file
/// comes from in the repository (`None`: the built binary).
const CONTENTS: [(&str, Option<&str>); 9] = [
    ("CHANGELOG.md", Some("CHANGELOG.md")),
    ("INSTALL", Some("cross/INSTALL")),
    ("LICENSE-APACHE", Some("LICENSE-APACHE")),
    ("LICENSE-MIT", Some("LICENSE-MIT")),
    ("README.md", Some("README.md")),
    ("majortom", None),
    ("majortom.service", Some("systemd/majortom.service")),
    ("majortom.sysusers", Some("systemd/majortom.sysusers")),
    ("majortom.toml", Some("src/config/default.toml")),
];

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn dist() -> PathBuf {
    let dir = repo("dist");
    assert!(
        dir.join("SHA256SUMS").is_file(),
        "{} has no SHA256SUMS: build it with cross/dist.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

fn top_dir(target: &str) -> String {
    format!("majortom-{}-{target}", env!("CARGO_PKG_VERSION"))
}

fn archive(target: &str) -> PathBuf {
    let path = dist().join(format!("{}.tar.gz", top_dir(target)));
    assert!(path.is_file(), "{} is missing: run cross/dist.sh", path.display());
    path
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn tar() -> Command {
    let mut command = Command::new(find_program("tar", "tar", &[]));
    command.env("LC_ALL", "C").env("TZ", "UTC");
    command
}

/// The timestamp `cross/dist.sh` gives every entry: SOURCE_DATE_EPOCH, else
/// the last commit's time.
fn source_date_epoch() -> u64 {
    let text = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value,
        Err(_) => {
            let output = run(Command::new("git")
                .args(["log", "-1", "--format=%ct"])
                .current_dir(env!("CARGO_MANIFEST_DIR")));
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
    };
    text.parse()
        .unwrap_or_else(|e| panic!("SOURCE_DATE_EPOCH {text:?}: {e}"))
}

/// One line of `tar --list --verbose --numeric-owner --full-time`.
#[derive(Debug)]
struct Entry {
    mode: String,
    owner: String,
    time: String,
    name: String,
}

fn list(archive: &Path) -> Vec<Entry> {
    let output = run(tar()
        .args([
            "--list",
            "--verbose",
            "--numeric-owner",
            "--full-time",
            "--gzip",
            "--file",
        ])
        .arg(archive));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            // -rw-r--r-- 0/0  1234 2026-11-23 17:46:46 dir/name
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() == 6, "unexpected tar listing line: {line}");
            Entry {
                mode: fields[0].to_owned(),
                owner: fields[1].to_owned(),
                time: format!("{} {}", fields[3], fields[4]),
                name: fields[5].to_owned(),
            }
        })
        .collect()
}

fn unpack(archive: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    run(tar()
        .arg("--extract")
        .arg("--gzip")
        .arg("--file")
        .arg(archive)
        .arg("--directory")
        .arg(dir.path()));
    dir
}

#[test]
#[ignore = "needs cross/dist.sh; run by scripts/test.sh"]
fn sha256sums_should_check_every_archive_with_sha256sum() {
    let dist = dist();
    let output = run(Command::new(find_program("sha256sum", "coreutils", &[]))
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dist));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut checked: Vec<&str> = stdout.lines().collect();
    checked.sort_unstable();
    let mut expected: Vec<String> = TARGETS
        .iter()
        .map(|target| format!("{}.tar.gz: OK", top_dir(target)))
        .collect();
    expected.sort_unstable();
    assert_eq!(checked, expected, "SHA256SUMS should list exactly the four archives");
}

#[test]
#[ignore = "needs cross/dist.sh; run by scripts/test.sh"]
fn every_archive_should_list_sorted_root_owned_entries_with_one_fixed_time() {
    let epoch = source_date_epoch();
    let date = run(Command::new("date")
        .env("TZ", "UTC")
        .args(["--date", &format!("@{epoch}"), "+%Y-%m-%d %H:%M:%S"]));
    let time = String::from_utf8_lossy(&date.stdout).trim().to_owned();
    for target in TARGETS {
        let entries = list(&archive(target));
        let top = top_dir(target);
        let mut expected = vec![format!("{top}/")];
        expected.extend(CONTENTS.iter().map(|(name, _)| format!("{top}/{name}")));
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, expected, "{target}: entries, in sorted order");
        for entry in &entries {
            let mode = if entry.name.ends_with('/') {
                "drwxr-xr-x"
            } else if entry.name.ends_with("/majortom") {
                "-rwxr-xr-x"
            } else {
                "-rw-r--r--"
            };
            assert_eq!(entry.mode, mode, "{target}: {}", entry.name);
            assert_eq!(entry.owner, "0/0", "{target}: {}", entry.name);
            assert_eq!(entry.time, time, "{target}: {} (SOURCE_DATE_EPOCH {epoch})", entry.name);
        }

        // gzip -n: no file name (FLG.FNAME) and no time stamp (MTIME = 0).
        let bytes = fs::read(archive(target)).expect("read archive");
        assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8], "{target}: not gzip");
        assert_eq!(bytes[3] & 0x08, 0, "{target}: the gzip header names a file");
        assert_eq!(
            &bytes[4..8],
            &[0, 0, 0, 0],
            "{target}: the gzip header has a time stamp"
        );
    }
}

#[test]
#[ignore = "needs cross/dist.sh; run by scripts/test.sh"]
fn every_archive_should_unpack_to_its_built_binary_and_the_repository_files() {
    let init = run(Command::new(binary()).arg("init").env_remove("MAJORTOM_CONFIG"));
    for target in TARGETS {
        let unpacked = unpack(&archive(target));
        let dir = unpacked.path().join(top_dir(target));
        for (name, source) in CONTENTS {
            let source = match source {
                Some(relative) => repo(relative),
                None => repo(&format!("target/arm/{target}/release/majortom")),
            };
            let packed = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{target}: {name}: {e}"));
            let original = fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
            assert!(
                packed == original,
                "{target}: {name} differs from {} (dist/ is stale? run cross/dist.sh)",
                source.display()
            );
        }
        let packed = fs::read_to_string(dir.join("majortom.toml")).expect("read config");
        assert!(
            !packed.lines().any(|l| l.starts_with("token = ")),
            "{target}: a release archive must carry no token"
        );
        assert_eq!(
            packed,
            without_token(&init.stdout),
            "{target}: the packed config is not what `majortom init` prints (but for its fresh token)"
        );
    }
}

/// The README's path on a PC: unpack, run, install (into a temporary root
/// instead of this machine).
#[test]
#[ignore = "needs cross/dist.sh; run by scripts/test.sh"]
fn the_x86_64_archive_should_run_and_install_from_where_it_was_unpacked() {
    for tool in ["systemctl", "systemd-sysusers"] {
        find_program(tool, "systemd", &[]);
    }
    let target = "x86_64-unknown-linux-musl";
    let unpacked = unpack(&archive(target));
    let dir = unpacked.path().join(top_dir(target));

    let version = run(Command::new("./majortom").arg("--version").current_dir(&dir));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("majortom {}", env!("CARGO_PKG_VERSION"))
    );

    let root = tempfile::tempdir().expect("tempdir");
    run(Command::new("./majortom")
        .args(["install", "--no-start", "--root"])
        .arg(root.path())
        .env_remove("MAJORTOM_CONFIG")
        .current_dir(&dir));
    let installed = |path: &str| fs::read(root.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(installed("usr/local/bin/majortom") == fs::read(dir.join("majortom")).expect("read binary"));
    // The packed config, with a fresh token of its own.
    assert_eq!(
        without_token(&installed("etc/majortom/majortom.toml")),
        fs::read_to_string(dir.join("majortom.toml")).expect("read config")
    );
    assert_eq!(
        installed("etc/systemd/system/majortom.service"),
        fs::read(dir.join("majortom.service")).expect("read unit")
    );
}

/// A fresh config (`init`, `install`) with its random `web.token` line put
/// back to the commented placeholder of the annotated default; panics when
/// it has no token, which a fresh config always has.
fn without_token(config: &[u8]) -> String {
    let text = String::from_utf8_lossy(config);
    let mut tokens = 0;
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let is_token = line
            .strip_prefix("token = \"")
            .and_then(|rest| rest.strip_suffix("\"\n"))
            .is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_token {
            tokens += 1;
            out.push_str("# token = \"<a long random string>\"\n");
        } else {
            out.push_str(line);
        }
    }
    assert_eq!(tokens, 1, "a fresh config holds one random token:\n{text}");
    out
}
