//! The small files that remember state across restarts: the last commanded
//! state of `restore` outputs (`outputs.json`) and the automations' on/off
//! (`automations.json`).
//!
//! Saving never blocks the runtime's thread: [`StateFile::save_as`] hands
//! the serialized bytes to a [`StateWriter`] task, which writes them on the
//! blocking pool through `atomic_file` (so a crash or power cut leaves the
//! old file or the new, never a torn one). Saves that arrive while a write
//! is in flight are merged: only the newest is written next, so a flood of
//! commands costs a few fsyncs, not one each. The writer ends once its
//! `StateFile` is dropped, after writing what is still pending.
//!
//! Loading (and removing what a killed write left) happens once, at
//! start, before the tasks run. A missing or
//! unreadable file means "no memory", never a failed start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::atomic_file::{self, Contents, WriteError};

#[derive(Debug, thiserror::Error)]
#[error("cannot write the state file {}: {source} (set gpio.state_file to a writable path; automations.json is kept beside it)", path.display())]
pub struct StateFileError {
    path: PathBuf,
    #[source]
    source: WriteError,
}

/// Last commanded on/off per output name. (A PWM output comes back on at
/// its configured `level`.)
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct OutputStates {
    pub outputs: BTreeMap<String, bool>,
}

/// The bytes waiting to be written; `None` until the first save.
type Pending = Option<Arc<Vec<u8>>>;

pub struct StateFile {
    path: PathBuf,
    /// To the writer task: a watch channel holds only the newest value,
    /// which is what merges saves.
    pending: watch::Sender<Pending>,
}

/// The task that writes a [`StateFile`]'s saves; spawn [`StateWriter::run`].
pub struct StateWriter {
    path: PathBuf,
    pending: watch::Receiver<Pending>,
}

impl StateFile {
    /// The state file at `path`, and the task that writes it. A temporary
    /// file left by a run killed mid-write is removed (the agent is the
    /// file's only writer, and this one has not written yet).
    pub fn new(path: PathBuf) -> (StateFile, StateWriter) {
        atomic_file::remove_leftovers(&path);
        let (sender, receiver) = watch::channel(None);
        let writer = StateWriter {
            path: path.clone(),
            pending: receiver,
        };
        (StateFile { path, pending: sender }, writer)
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

    /// Saves the output states (see `save_as`).
    pub fn save(&self, states: &OutputStates) {
        self.save_as(states);
    }

    /// Hands `value`, as JSON, to the writer; returns at once. The writer
    /// logs a failure.
    pub fn save_as<T: serde::Serialize>(&self, value: &T) {
        match serde_json::to_vec_pretty(value) {
            // No receiver: the writer was never spawned (a test of
            // something else); there is nobody to write it.
            Ok(json) => {
                let _ = self.pending.send(Some(Arc::new(json)));
            }
            Err(error) => warn!(path = %self.path.display(), %error, "cannot serialize the state"),
        }
    }
}

impl StateWriter {
    /// Writes each save, the newest of those pending at a time, until the
    /// `StateFile` is dropped and nothing is pending.
    pub async fn run(mut self) {
        let mut failing = false;
        while self.pending.changed().await.is_ok() {
            let Some(bytes) = self.pending.borrow_and_update().clone() else {
                continue;
            };
            match write_off_thread(self.path.clone(), bytes).await {
                Ok(()) if failing => {
                    failing = false;
                    info!(path = %self.path.display(), "the state file is written again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    let error = StateFileError {
                        path: self.path.clone(),
                        source: error,
                    };
                    warn!(%error, "this state will not survive a restart");
                }
                Err(_) => {}
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically, on the blocking pool: for
/// callers on the runtime's thread (the writer task, `--ready-file`). One
/// function, so one blocking task type in the binary.
pub async fn write_off_thread(path: PathBuf, bytes: Arc<Vec<u8>>) -> Result<(), WriteError> {
    let at = path.clone();
    let write = move || atomic_file::replace(&path, Contents::Bytes(&bytes), atomic_file::Options::default());
    match tokio::task::spawn_blocking(write).await {
        Ok(written) => written,
        // Only a panic in `replace` (there is none) or a runtime shutting
        // down gets here; a fixed message spares formatting a JoinError.
        Err(_) => Err(WriteError {
            action: "finish writing",
            path: at,
            source: std::io::Error::other("the write was cut short"),
        }),
    }
}

/// Replaces the file at `path` with `bytes`, atomically. Blocks.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    atomic_file::replace(path, Contents::Bytes(bytes), atomic_file::Options::default()).map_err(|source| {
        StateFileError {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saved_states_should_load_back_once_the_writer_is_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, writer) = StateFile::new(dir.path().join("outputs.json"));
        let writer = tokio::spawn(writer.run());
        assert_eq!(file.load(), OutputStates::default(), "no file: no memory");
        let mut states = OutputStates::default();
        states.outputs.insert("relay".into(), true);
        states.outputs.insert("lamp".into(), false);
        file.save(&states);
        let (reader, _) = StateFile::new(file.path().to_owned());
        drop(file);
        writer.await.expect("the writer ends with its file, after writing");
        assert_eq!(reader.load(), states);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn saves_in_a_burst_should_be_merged_into_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outputs.json");
        let (file, writer) = StateFile::new(path.clone());
        // Saved before the writer runs at all: one write, of the last.
        for n in 0..5000 {
            let mut states = OutputStates::default();
            states.outputs.insert("relay".into(), n % 2 == 1);
            file.save(&states);
        }
        let pending = writer.pending.clone();
        assert!(pending.has_changed().expect("open"), "one value waits");
        drop(file);
        writer.run().await;
        let (reader, _) = StateFile::new(path);
        assert_eq!(reader.load().outputs.get("relay"), Some(&true), "the 5000th save");
    }

    #[test]
    fn a_corrupt_file_should_load_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outputs.json");
        std::fs::write(&path, "{\"outputs\": {\"relay\": tr").expect("write");
        assert_eq!(StateFile::new(path).0.load(), OutputStates::default());
    }

    #[test]
    fn an_unwritable_place_should_be_an_error_naming_the_file_and_key() {
        let path = Path::new("/nonexistent/dir/outputs.json");
        let message = write(path, b"{}").expect_err("unwritable").to_string();
        assert!(
            message.contains("/nonexistent/dir/outputs.json") && message.contains("gpio.state_file"),
            "{message}"
        );
    }
}
