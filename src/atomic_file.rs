//! The one routine that replaces a file so that a crash or a power cut
//! leaves the old file or the new one, never half of one: a temporary file
//! beside it (created with `create_new`, under a random name), written,
//! given its mode, flushed to disk, renamed over the target, and the
//! directory flushed so that the rename is on disk too. A target that is a
//! symbolic link is refused: replacing the link would silently cut it.
//!
//! Used by `install` and by every state file. It blocks (fsync on an SD
//! card takes milliseconds to seconds): callers on the runtime's thread go
//! through `spawn_blocking` (see `state_file`).

use std::ffi::OsString;
use std::fs::{self, OpenOptions, Permissions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the new file holds.
pub enum Contents<'a> {
    Bytes(&'a [u8]),
    /// A copy of another file (a binary being installed).
    CopyOf(&'a Path),
}

/// How the new file is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Exactly this mode (the umask does not apply); `None`: 0666 less the
    /// umask, as a plain `File::create` would.
    pub mode: Option<u32>,
    /// Owned by root and this group.
    pub group: Option<u32>,
}

/// A step of the write that failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct WriteError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn failed<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Replaces `path` atomically with `contents`. The directory must exist.
pub fn replace(path: &Path, contents: Contents<'_>, options: Options) -> Result<(), WriteError> {
    if fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        let why = io::Error::other("it is a symbolic link; give the path of the file itself");
        return Err(failed("replace", path)(why));
    }
    let (temporary, mut file) = create_temporary(path, options.mode)?;
    let written = (|| {
        match contents {
            Contents::Bytes(bytes) => file.write_all(bytes).map_err(failed("write", &temporary))?,
            Contents::CopyOf(from) => {
                let mut input = fs::File::open(from).map_err(failed("read", from))?;
                io::copy(&mut input, &mut file).map_err(failed("write", &temporary))?;
            }
        }
        if let Some(gid) = options.group {
            std::os::unix::fs::fchown(&file, Some(0), Some(gid)).map_err(failed("set the owner of", path))?;
        }
        if let Some(mode) = options.mode {
            // The mode given to open() was cut by the umask; set it exactly.
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(failed("set the mode of", &temporary))?;
        }
        file.sync_all().map_err(failed("flush", &temporary))?;
        fs::rename(&temporary, path).map_err(failed("replace", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    sync_dir(path).map_err(failed("flush the directory of", path))
}

/// `.name.tmp-<random>` beside `path`, created new (never an existing file
/// or a link planted under that name).
fn create_temporary(path: &Path, mode: Option<u32>) -> Result<(PathBuf, fs::File), WriteError> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    let mut last_error = None;
    for _ in 0..8 {
        let mut temporary = OsString::from(".");
        temporary.push(name);
        temporary.push(format!(".tmp-{:016x}", random()));
        let temporary = path.with_file_name(temporary);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.unwrap_or(0o666))
            .open(&temporary)
        {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last_error = Some(error),
            Err(error) => return Err(failed("create", &temporary)(error)),
        }
    }
    let error = last_error.unwrap_or_else(|| io::Error::other("no free temporary name"));
    Err(failed("create a temporary file beside", path)(error))
}

/// Removes the temporary files a writer of `path` killed mid-write left
/// beside it (`.name.tmp-*`). Only for a path this process alone writes,
/// before it writes: another writer's temporary file would go too.
pub fn remove_leftovers(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// 64 random bits: std's hasher keys are seeded from the OS and change with
/// every `RandomState`; the process id keeps two processes apart.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Flushes the directory holding `path`, so that a rename in it survives a
/// power cut. File systems that cannot sync a directory are let be.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match fs::File::open(dir).and_then(|dir| dir.sync_all()) {
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_should_be_replaced_with_the_exact_mode_and_nothing_left_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("majortom.service");
        let mode = Options {
            mode: Some(0o644),
            group: None,
        };
        replace(&path, Contents::Bytes(b"one"), mode).expect("write");
        fs::set_permissions(&path, Permissions::from_mode(0o600)).expect("chmod");
        replace(&path, Contents::Bytes(b"two"), mode).expect("rewrite");
        assert_eq!(fs::read_to_string(&path).expect("read"), "two");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(files_in(dir.path()), ["majortom.service"]);
    }

    #[test]
    fn a_copy_of_another_file_should_be_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&from, "binary").expect("write");
        replace(&to, Contents::CopyOf(&from), Options::default()).expect("copy");
        assert_eq!(fs::read_to_string(&to).expect("read"), "binary");
    }

    #[test]
    fn a_symbolic_link_should_be_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (real, link) = (dir.path().join("real.json"), dir.path().join("link.json"));
        fs::write(&real, "old").expect("write");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let error = replace(&link, Contents::Bytes(b"new"), Options::default()).expect_err("refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(fs::read_to_string(&real).expect("read"), "old");
        assert!(fs::symlink_metadata(&link).expect("stat").file_type().is_symlink());
        assert_eq!(files_in(dir.path()), ["link.json", "real.json"]);
    }

    #[test]
    fn a_failed_write_should_name_the_path_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let missing = dir.path().join("missing");
        let error = replace(&path, Contents::CopyOf(&missing), Options::default()).expect_err("no source");
        assert!(error.to_string().contains("missing"), "{error}");
        assert!(files_in(dir.path()).is_empty());
        let error = replace(
            Path::new("/nonexistent/dir/x.json"),
            Contents::Bytes(b""),
            Options::default(),
        )
        .expect_err("no directory");
        assert!(error.to_string().contains("/nonexistent/dir"), "{error}");
    }

    #[test]
    fn leftovers_of_a_killed_write_should_be_removable_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outputs.json");
        for name in [
            ".outputs.json.tmp-0123",
            ".outputs.json.tmp-abcd",
            ".other.json.tmp-1",
            "outputs.json",
        ] {
            fs::write(dir.path().join(name), "x").expect("write");
        }
        remove_leftovers(&path);
        assert_eq!(files_in(dir.path()), [".other.json.tmp-1", "outputs.json"]);
    }

    #[test]
    fn temporary_names_should_differ_every_time() {
        let names: std::collections::HashSet<u64> = (0..100).map(|_| random()).collect();
        assert_eq!(names.len(), 100);
    }
}
