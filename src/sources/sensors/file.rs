//! `kind = "file"`: a number read from any file (Ground Control's
//! temperature from a file; any sysfs value), the whole content or the part
//! that `regex` finds (its capture group, or the whole match). `scale` and
//! `offset` are the runner's calibration, as for every sensor.
//!
//! The path is read as written, not below `system.root`: it is the user's
//! choice of file. Files larger than [`MAX_SIZE`] are refused: this reads
//! small values, not logs.
//!
//! The file stays open and is read with `pread` into a buffer the reader
//! keeps (`KernelFile`), parsed in place; a file removed or replaced (an
//! atomic rename) is opened again by its path. Without `regex` a round
//! allocates nothing; the regex matcher allocates its thread lists per
//! match. A file on procfs, tmpfs or a local disk is read on the runtime
//! thread; one on sysfs or a network filesystem on a reading thread (see
//! "Where reads run" in `sensors`).

use std::path::PathBuf;

use super::{Placement, Quantity, Reading, SensorError, SensorReader};
use crate::pattern::Pattern;
use crate::sources::kernel_file::{self, KernelFile};

/// The largest file read.
pub const MAX_SIZE: u64 = 64 * 1024;

pub struct FileReader {
    file: KernelFile,
    regex: Option<Pattern>,
    quantity: Quantity,
    /// The file's content; kept between rounds.
    buffer: Vec<u8>,
    placement: Placement,
}

impl FileReader {
    pub fn new(path: PathBuf, regex: Option<Pattern>, quantity: Quantity) -> FileReader {
        // Decided once, from where the path is when the agent starts.
        let placement = if kernel_file::read_may_sleep(&path) {
            Placement::Thread
        } else {
            Placement::Inline
        };
        FileReader {
            placement,
            file: KernelFile::new(path),
            regex,
            quantity,
            buffer: Vec::new(),
        }
    }

    fn read_value(&mut self) -> Result<f64, SensorError> {
        let FileReader {
            file, regex, buffer, ..
        } = self;
        // The path is shown only in an error: a good round builds no text.
        let content = match file.read_bytes(buffer, MAX_SIZE as usize) {
            Ok(content) => content,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SensorError::Missing(file.path().display().to_string()))
            }
            Err(source) => {
                return Err(SensorError::Io {
                    path: file.path().display().to_string(),
                    source,
                })
            }
        };
        let parse_error = |detail: String| SensorError::Parse {
            path: file.path().display().to_string(),
            detail,
        };
        // One byte more than allowed tells a file that is too large.
        if content.len() as u64 > MAX_SIZE {
            return Err(parse_error(format!("larger than {} KiB", MAX_SIZE / 1024)));
        }
        let found = match regex {
            None => content,
            Some(regex) => regex
                .extract(content)
                .ok_or_else(|| parse_error(format!("the regex `{}` does not match", regex.as_str())))?,
        };
        let text = String::from_utf8_lossy(found);
        let trimmed = text.trim();
        trimmed
            .parse::<f64>()
            .map_err(|_| parse_error(format!("{trimmed:?} is not a number")))
    }
}

impl SensorReader for FileReader {
    fn describe(&self) -> String {
        format!("file {}", self.file.path().display())
    }

    fn quantities(&self) -> Vec<Quantity> {
        vec![self.quantity]
    }

    fn read(&mut self) -> Vec<Reading> {
        vec![(self.quantity, self.read_value())]
    }

    fn read_into(&mut self, results: &mut Vec<Reading>) {
        results.push((self.quantity, self.read_value()));
    }

    /// The runtime thread for a file on procfs, tmpfs or a local disk: the
    /// kernel or the page cache answers at once, and the open is
    /// non-blocking, so a FIFO cannot hold it either. A reading thread for
    /// a sysfs attribute (a driver callback: an hwmon chip on I2C, a disk's
    /// temperature through SCSI) or a file on a network filesystem.
    fn placement(&self) -> Placement {
        self.placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    fn read(path: &Path, regex: Option<&str>) -> Result<f64, SensorError> {
        let regex = regex.map(|r| Pattern::new(r).expect("a valid regex"));
        let mut reader = FileReader::new(path.to_owned(), regex, Quantity::Humidity);
        assert_eq!(reader.quantities(), vec![Quantity::Humidity]);
        let mut results = reader.read();
        assert_eq!(results.len(), 1);
        results.remove(0).1
    }

    fn file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        path
    }

    #[test]
    fn files_that_may_sleep_should_read_on_a_thread_and_others_inline() {
        let local = FileReader::new(crate::fixtures::sysroot("pi4"), None, Quantity::Temperature);
        assert_eq!(local.placement(), Placement::Inline);
        let proc = FileReader::new(PathBuf::from("/proc/loadavg"), None, Quantity::Temperature);
        assert_eq!(proc.placement(), Placement::Inline);
        if Path::new("/sys/class").is_dir() {
            let sysfs = FileReader::new(
                PathBuf::from("/sys/class/hwmon/hwmon9/temp1_input"),
                None,
                Quantity::Temperature,
            );
            assert_eq!(sysfs.placement(), Placement::Thread);
        }
    }

    #[test]
    fn a_sysfs_value_should_read_whole() {
        let root = crate::fixtures::sysroot("pi4");
        let path = root.join("sys/class/thermal/thermal_zone0/temp");
        let expected: f64 = std::fs::read_to_string(&path)
            .expect("fixture")
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(read(&path, None).expect("a reading"), expected);
    }

    #[test]
    fn a_regex_should_find_the_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(
            &dir,
            "w1_slave",
            b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
        );
        assert_eq!(read(&path, Some(r"t=(-?\d+)")).expect("a reading"), 23125.0);
        let path = file(&dir, "vcgencmd", b"temp=48.3'C\n");
        assert_eq!(read(&path, Some(r"[\d.]+")).expect("the whole match"), 48.3);
    }

    #[test]
    fn problems_should_be_errors_that_say_which() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            read(&dir.path().join("absent"), None),
            Err(SensorError::Missing(_))
        ));
        let words = file(&dir, "words", b"warm\n");
        let message = read(&words, None).expect_err("not a number").to_string();
        assert!(message.contains("\"warm\" is not a number"), "{message}");
        let message = read(&words, Some(r"(\d+)")).expect_err("no match").to_string();
        assert!(message.contains(r"the regex `(\d+)` does not match"), "{message}");
        let big = file(&dir, "big", &vec![b'1'; MAX_SIZE as usize + 1]);
        let message = read(&big, None).expect_err("too big").to_string();
        assert!(message.contains("larger than 64 KiB"), "{message}");
        let exact = file(&dir, "exact", &[b'1'; 20]);
        assert_eq!(read(&exact, None).expect("fits"), 11_111_111_111_111_111_111.0);
        assert!(matches!(read(dir.path(), None), Err(SensorError::Io { .. })));
    }
}
