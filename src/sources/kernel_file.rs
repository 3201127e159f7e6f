//! A `/proc` or `/sys` file that a source reads every round: opened once,
//! kept open, and read whole from offset 0 with `pread` into a buffer the
//! caller reuses. One round costs one syscall per file and no allocation,
//! where `read_to_string` paid open, statx, read, close and a `String`.
//!
//! This owns keeping the file open and noticing that it went away; what the
//! text means is the caller's. The kernel regenerates a procfs or sysfs
//! file's text on every read from offset 0 (both are `seq_file`s), so a kept
//! file shows fresh values each round.
//!
//! A file can vanish or be replaced while it is held: a thermal zone or a
//! CPU's cpufreq directory is removed on hot-unplug, and the tests rewrite
//! fixture files. On procfs and sysfs the kernel fails a read of a removed
//! file (`ENODEV`); on any other filesystem (a fixture tree, a file sensor's
//! own file) a removed or renamed file stays readable through the old
//! descriptor, so there each read first asks `stat` whether the path still
//! names the file held (the same device and inode): a file unlinked,
//! replaced by a rename, or whose directory was moved away (a 1-wire device
//! unplugged in a fixture tree) is not. Either way the file is then opened
//! again by its path, once: a file that is gone fails the read, as a fresh
//! `read_to_string` would, and one that came back is read.
//!
//! Files are opened with `O_NONBLOCK`, which regular, procfs and sysfs files
//! ignore, so that a path that turns out to be a FIFO cannot hold the
//! caller in `open` (the sensor runner reads file sensors on the runtime
//! thread); its `pread` then fails (`ESPIPE`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The buffer a source starts with: every file the system source reads fits
/// (`/proc/stat` grows with the CPU count and may need one doubling).
pub(crate) const INITIAL_BUFFER: usize = 4096;

/// `statfs.f_type` of procfs and sysfs (`linux/magic.h`).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

#[derive(Debug)]
struct Open {
    file: File,
    /// Not procfs or sysfs: a removed file does not fail its reads, so each
    /// read first checks that the path still names this file.
    plain: bool,
    /// The held file's device and inode, for that check.
    identity: (u64, u64),
}

/// A file read whole at every round, kept open between rounds.
#[derive(Debug)]
pub(crate) struct KernelFile {
    path: PathBuf,
    /// `None` before the first read and after a failed one.
    open: Option<Open>,
}

impl KernelFile {
    /// Opens nothing yet: the first `read` does.
    pub(crate) fn new(path: PathBuf) -> KernelFile {
        KernelFile { path, open: None }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file as text, read into `buffer` (grown when the file does
    /// not fit, and kept grown). A failed read drops the descriptor and
    /// tries once more through the path, so a replaced file is picked up.
    pub(crate) fn read<'b>(&mut self, buffer: &'b mut Vec<u8>) -> io::Result<&'b str> {
        let bytes = self.read_bytes(buffer, usize::MAX)?;
        std::str::from_utf8(bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// As `read`, as bytes, and stopping past `limit`: a result longer than
    /// `limit` means the file is larger (only its start was read).
    pub(crate) fn read_bytes<'b>(&mut self, buffer: &'b mut Vec<u8>, limit: usize) -> io::Result<&'b [u8]> {
        let length = match self.read_held(buffer, limit) {
            Some(Ok(length)) => length,
            // Nothing held, or the held file failed or is gone: open afresh.
            Some(Err(_)) | None => {
                self.open = None;
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&self.path)?;
                let plain = !on_kernel_filesystem(&file);
                let meta = file.metadata()?;
                let length = read_whole(&file, buffer, limit)?;
                self.open = Some(Open {
                    file,
                    plain,
                    identity: (meta.dev(), meta.ino()),
                });
                length
            }
        };
        Ok(&buffer[..length])
    }

    /// Reads the held file; `None` when there is none, or when its path no
    /// longer names it on a plain filesystem (a fixture file removed or
    /// replaced, or its directory moved).
    fn read_held(&mut self, buffer: &mut Vec<u8>, limit: usize) -> Option<io::Result<usize>> {
        let open = self.open.as_ref()?;
        // `stat` of a path this short builds its C string on the stack: no
        // allocation.
        if open.plain && std::fs::metadata(&self.path).map_or(true, |meta| (meta.dev(), meta.ino()) != open.identity) {
            return None;
        }
        Some(read_whole(&open.file, buffer, limit))
    }
}

/// Reads from offset 0 to the end, or to just past `limit`, into `buffer`,
/// doubling it while full; returns the length read. `buffer` is used as
/// scratch space: its length is its capacity, kept between calls.
fn read_whole(file: &File, buffer: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    if buffer.is_empty() {
        buffer.resize(INITIAL_BUFFER, 0);
    }
    let mut filled = 0;
    loop {
        match file.read_at(&mut buffer[filled..], filled as u64) {
            Ok(0) => return Ok(filled),
            Ok(n) => {
                filled += n;
                if filled > limit {
                    return Ok(filled);
                }
                if filled == buffer.len() {
                    buffer.resize(buffer.len() * 2, 0);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Filesystems where a read can sleep for long (`linux/magic.h`): NFS,
/// CIFS/SMB, FUSE.
const NETWORK_MAGICS: [i64; 4] = [0x6969, 0xff53_4d42, 0xfe53_4d42, 0x6573_5546];

/// Whether a read of `path` may sleep: it is on sysfs, whose attributes are
/// driver callbacks (an hwmon chip on I2C, a disk's temperature through
/// SCSI), or on a network or FUSE filesystem. Not so on procfs, tmpfs or a
/// local disk's filesystem (the page cache answers). A path that does not
/// exist yet is judged by the nearest directory above it that does.
pub(crate) fn read_may_sleep(path: &Path) -> bool {
    let Some(kind) = path.ancestors().find_map(filesystem_of) else {
        return true;
    };
    kind == SYSFS_MAGIC || NETWORK_MAGICS.contains(&kind)
}

/// `statfs(path).f_type`, or `None` when `path` cannot be looked up.
fn filesystem_of(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` points to
    // writable memory sized for a `statfs`.
    let rc = unsafe { libc::statfs(path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statfs returned 0, so it filled in the whole struct.
    let stats = unsafe { stats.assume_init() };
    // `f_type` is 32-bit on 32-bit ARM and 64-bit elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Some(stats.f_type as i64)
}

/// Whether `file` is on procfs or sysfs, whose files fail reads once removed.
fn on_kernel_filesystem(file: &File) -> bool {
    let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the descriptor is open for the duration of the call and
    // `stats` points to writable memory sized for a `statfs`.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), stats.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so it filled in the whole struct.
    let stats = unsafe { stats.assume_init() };
    // `f_type` is 32-bit on 32-bit ARM and 64-bit elsewhere.
    #[allow(clippy::unnecessary_cast)]
    let kind = stats.f_type as i64;
    kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_should_show_what_was_written_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("temp");
        std::fs::write(&path, "41000\n").expect("write");
        let mut file = KernelFile::new(path.clone());
        let mut buffer = Vec::new();
        assert_eq!(file.read(&mut buffer).expect("read"), "41000\n");
        // Rewritten in place (truncated), as sysfs regenerates its text.
        std::fs::write(&path, "7\n").expect("write");
        assert_eq!(file.read(&mut buffer).expect("read"), "7\n");
    }

    #[test]
    fn a_removed_file_should_fail_and_a_replaced_one_should_be_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("temp");
        std::fs::write(&path, "1\n").expect("write");
        let mut file = KernelFile::new(path.clone());
        let mut buffer = Vec::new();
        assert_eq!(file.read(&mut buffer).expect("read"), "1\n");

        std::fs::remove_file(&path).expect("remove");
        let error = file.read(&mut buffer).expect_err("the file is gone");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);

        std::fs::write(&path, "2\n").expect("write");
        assert_eq!(file.read(&mut buffer).expect("back"), "2\n");

        // Replaced by a rename, as an atomic writer does.
        let other = dir.path().join("temp.new");
        std::fs::write(&other, "3\n").expect("write");
        std::fs::rename(&other, &path).expect("rename");
        assert_eq!(file.read(&mut buffer).expect("replaced"), "3\n");
    }

    #[test]
    fn a_file_whose_directory_moved_away_should_fail_until_it_is_back() {
        // A 1-wire device unplugged in a fixture tree: the directory goes,
        // the file keeps its link.
        let dir = tempfile::tempdir().expect("tempdir");
        let device = dir.path().join("28-0316a2795cff");
        std::fs::create_dir(&device).expect("mkdir");
        std::fs::write(device.join("w1_slave"), "t=1\n").expect("write");
        let mut file = KernelFile::new(device.join("w1_slave"));
        let mut buffer = Vec::new();
        assert_eq!(file.read(&mut buffer).expect("read"), "t=1\n");
        let away = dir.path().join("away");
        std::fs::rename(&device, &away).expect("unplug");
        let error = file.read(&mut buffer).expect_err("unplugged");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        std::fs::rename(&away, &device).expect("plug back");
        assert_eq!(file.read(&mut buffer).expect("back"), "t=1\n");
    }

    #[test]
    fn a_limited_read_should_stop_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'1'; INITIAL_BUFFER * 4]).expect("write");
        let mut file = KernelFile::new(path);
        let mut buffer = Vec::new();
        let read = file.read_bytes(&mut buffer, 100).expect("read").len();
        assert!(read > 100 && read <= INITIAL_BUFFER, "{read} bytes read");
        assert_eq!(
            file.read_bytes(&mut buffer, INITIAL_BUFFER * 4).expect("read").len(),
            INITIAL_BUFFER * 4
        );
    }

    #[test]
    fn a_file_larger_than_the_buffer_should_be_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        let text = "x".repeat(INITIAL_BUFFER * 2 + 17);
        std::fs::write(&path, &text).expect("write");
        let mut buffer = Vec::new();
        assert_eq!(KernelFile::new(path).read(&mut buffer).expect("read"), text);
        assert!(buffer.len() >= text.len());
    }

    #[test]
    fn proc_files_should_be_fresh_at_every_read() {
        // `/proc/uptime` moves every hundredth of a second: the kept
        // descriptor must see it move.
        let mut file = KernelFile::new(PathBuf::from("/proc/uptime"));
        let mut buffer = Vec::new();
        let first = file.read(&mut buffer).expect("read").to_owned();
        assert!(
            file.open.as_ref().is_some_and(|open| !open.plain),
            "procfs is a kernel filesystem"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let again = file.read(&mut buffer).expect("read");
            if again != first {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "/proc/uptime never changed");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn sysfs_reads_may_sleep_and_proc_and_local_files_do_not() {
        if Path::new("/sys/class").is_dir() {
            assert!(read_may_sleep(Path::new("/sys/class/thermal/thermal_zone0/temp")));
        }
        assert!(!read_may_sleep(Path::new("/proc/uptime")));
        let dir = tempfile::tempdir().expect("tempdir");
        // Judged by its directory while it does not exist.
        assert!(!read_may_sleep(&dir.path().join("not/yet")));
    }

    #[test]
    fn invalid_text_should_be_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bin");
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        let error = KernelFile::new(path).read(&mut Vec::new()).expect_err("not UTF-8");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
