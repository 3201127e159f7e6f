//! The small file that remembers the last commanded state of outputs with
//! `initial = "restore"`, across restarts.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash or power cut mid-write leaves either the old or
//! the new file, never a torn one. A missing or unreadable file means "no
//! memory", never a failed start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

#[derive(Debug, thiserror::Error)]
#[error("cannot write the output state file {}: {source} (set gpio.state_file to a writable path)", path.display())]
pub struct StateFileError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Last commanded on/off per output name. (A PWM output comes back on at
/// its configured `level`.)
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct OutputStates {
    pub outputs: BTreeMap<String, bool>,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: PathBuf) -> StateFile {
        StateFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The remembered states; empty when there is no (valid) file.
    pub fn load(&self) -> OutputStates {
        self.load_as().unwrap_or_default()
    }

    /// The file's content as `T`; `None` when there is no (valid) file.
    pub fn load_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                warn!(path = %self.path.display(), %error, "cannot read the state file; starting without it");
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(error) => {
                warn!(path = %self.path.display(), %error, "the state file is not valid; starting without it");
                None
            }
        }
    }

    /// Replaces the file atomically.
    pub fn save(&self, states: &OutputStates) -> Result<(), StateFileError> {
        self.save_as(states)
    }

    /// Replaces the file atomically with `value` as JSON.
    pub fn save_as<T: serde::Serialize>(&self, value: &T) -> Result<(), StateFileError> {
        let states = value;
        let error = |source| StateFileError {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.tmp"));
        let json = serde_json::to_vec_pretty(states).map_err(|e| error(e.into()))?;
        let mut file = std::fs::File::create(&tmp).map_err(error)?;
        file.write_all(&json).map_err(error)?;
        file.sync_all().map_err(error)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(error)?;
        // The rename itself must reach the disk too.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_states_should_load_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StateFile::new(dir.path().join("outputs.json"));
        assert_eq!(file.load(), OutputStates::default(), "no file: no memory");
        let mut states = OutputStates::default();
        states.outputs.insert("relay".into(), true);
        states.outputs.insert("lamp".into(), false);
        file.save(&states).expect("save");
        assert_eq!(file.load(), states);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_corrupt_file_should_load_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outputs.json");
        std::fs::write(&path, "{\"outputs\": {\"relay\": tr").expect("write");
        assert_eq!(StateFile::new(path).load(), OutputStates::default());
    }

    #[test]
    fn an_unwritable_place_should_be_an_error_naming_the_file_and_key() {
        let file = StateFile::new(PathBuf::from("/nonexistent/dir/outputs.json"));
        let message = file.save(&OutputStates::default()).expect_err("unwritable").to_string();
        assert!(
            message.contains("/nonexistent/dir/outputs.json") && message.contains("gpio.state_file"),
            "{message}"
        );
    }
}
