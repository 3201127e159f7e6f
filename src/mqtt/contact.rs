//! When the agent last had the broker, remembered across restarts in
//! `mqtt.json` beside the state files, so that commands the broker kept for
//! us while the agent was stopped can be told stale (`state.rs`).
//!
//! Written on a clean stop; read at start. Measured on the boot's own clock
//! (`CLOCK_BOOTTIME`) under the boot's id, not the wall clock: a Pi has no
//! real-time clock, and after a power cut its clock starts from the last
//! saved time until NTP answers, which would make a long outage look short.
//! A record from another boot, or none, leaves the time unknown, and such
//! commands are dropped; so does a crash (its record is the older one of
//! the last clean stop).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::MQTT_STATE_FILE_NAME;

/// Where the record is kept, and where this boot's id is read.
#[derive(Debug, Clone)]
pub struct ContactFile {
    path: PathBuf,
    /// `<root>/proc/sys/kernel/random/boot_id`: new at every boot.
    boot_id: PathBuf,
}

/// The record's JSON, `{"boot_id":"<uuid>","boottime_ms":<ms>}`, written and
/// read by hand: a UUID needs no escaping, and serde's code for one more
/// type would cost more than these lines.
fn render(boot_id: &str, boottime_ms: u64) -> String {
    format!("{{\"boot_id\":\"{boot_id}\",\"boottime_ms\":{boottime_ms}}}\n")
}

fn parse(text: &str) -> Option<(&str, u64)> {
    let rest = text.trim().strip_prefix("{\"boot_id\":\"")?;
    let (boot_id, rest) = rest.split_once("\",\"boottime_ms\":")?;
    Some((boot_id, rest.strip_suffix('}')?.parse().ok()?))
}

impl ContactFile {
    /// The record beside the outputs' state file; the boot id under the
    /// system root.
    pub fn beside(state_file: &Path, root: &Path) -> ContactFile {
        ContactFile {
            path: state_file.with_file_name(MQTT_STATE_FILE_NAME),
            boot_id: root.join("proc/sys/kernel/random/boot_id"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When we last had the broker, if a record of this boot says; a
    /// blocking read of a small file, done once before the tasks start.
    pub fn load(&self) -> Option<Instant> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let (boot_id, boottime_ms) = parse(&text)?;
        if boot_id != self.read_boot_id()? {
            return None;
        }
        let since = boottime()?.checked_sub(Duration::from_millis(boottime_ms))?;
        Instant::now().checked_sub(since)
    }

    /// The record of a last contact at `at`, or `None` without a boot id
    /// or clock.
    pub fn record(&self, at: Instant) -> Option<Vec<u8>> {
        let boottime = boottime()?.checked_sub(Instant::now().saturating_duration_since(at))?;
        let boot_id = self.read_boot_id()?;
        Some(render(&boot_id, u64::try_from(boottime.as_millis()).ok()?).into_bytes())
    }

    fn read_boot_id(&self) -> Option<String> {
        let id = std::fs::read_to_string(&self.boot_id).ok()?;
        let id = id.trim();
        let uuid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        uuid.then(|| id.to_owned())
    }
}

/// Time since boot, suspend included.
fn boottime() -> Option<Duration> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only the timespec we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(dir: &Path, boot_id: &str) -> ContactFile {
        let proc = dir.join("root/proc/sys/kernel/random");
        std::fs::create_dir_all(&proc).expect("mkdir");
        std::fs::write(proc.join("boot_id"), format!("{boot_id}\n")).expect("write boot id");
        ContactFile::beside(&dir.join("outputs.json"), &dir.join("root"))
    }

    #[test]
    fn a_record_of_this_boot_should_give_back_the_time_of_the_last_contact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = contact(dir.path(), "aaaa");
        assert_eq!(file.load(), None, "no record yet");
        let at = Instant::now() - Duration::from_secs(5);
        std::fs::write(file.path(), file.record(at).expect("record")).expect("write");
        let loaded = file.load().expect("loaded");
        let error = if loaded > at { loaded - at } else { at - loaded };
        assert!(error < Duration::from_millis(50), "{loaded:?} vs {at:?}");
        assert_eq!(file.path().file_name().and_then(|n| n.to_str()), Some("mqtt.json"));
    }

    #[test]
    fn a_record_of_another_boot_or_a_broken_one_should_say_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = contact(dir.path(), "aaaa");
        std::fs::write(file.path(), file.record(Instant::now()).expect("record")).expect("write");
        let rebooted = contact(dir.path(), "bbbb");
        assert_eq!(rebooted.load(), None);
        std::fs::write(file.path(), "{").expect("write");
        assert_eq!(file.load(), None);
        std::fs::write(file.path(), render("aaaa", u64::MAX)).expect("write");
        assert_eq!(file.load(), None, "a time after now");
        // No boot id (a fixture root): nothing to record or load.
        let no_root = ContactFile::beside(&dir.path().join("x.json"), &dir.path().join("nowhere"));
        assert_eq!(no_root.record(Instant::now()), None);
    }
}
