//! The installed layout: which file goes where below a root (`/` on a
//! real install, `--root DIR` otherwise), and the files embedded from
//! `systemd/`.

use std::path::PathBuf;

use crate::config::SYSTEM_CONFIG_PATH;

/// The systemd unit, installed as [`UNIT_PATH`].
pub const UNIT_FILE: &str = include_str!("../../systemd/majortom.service");
/// The sysusers.d file creating the service's user and groups.
pub const SYSUSERS_FILE: &str = include_str!("../../systemd/majortom.sysusers");

pub const UNIT_NAME: &str = "majortom.service";
pub const BINARY_PATH: &str = "/usr/local/bin/majortom";
pub const PREVIOUS_BINARY_PATH: &str = "/usr/local/bin/majortom.prev";
pub const UNIT_PATH: &str = "/etc/systemd/system/majortom.service";
pub const SYSUSERS_PATH: &str = "/etc/sysusers.d/majortom.conf";
pub const CONFIG_DIR: &str = "/etc/majortom";
/// The unit's `StateDirectory=`; only `uninstall --purge` touches it.
pub const STATE_DIR: &str = "/var/lib/majortom";
/// The group the service runs as (`Group=` in the unit); the config is
/// readable by it because the config may hold the MQTT password.
pub const SERVICE_GROUP: &str = "majortom";

/// Where each installed file lives below a root (`/` on a real install).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// `absolute` (a path on the installed system) below the root.
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    pub fn binary(&self) -> PathBuf {
        self.path(BINARY_PATH)
    }

    pub fn previous_binary(&self) -> PathBuf {
        self.path(PREVIOUS_BINARY_PATH)
    }

    pub fn unit(&self) -> PathBuf {
        self.path(UNIT_PATH)
    }

    pub fn sysusers(&self) -> PathBuf {
        self.path(SYSUSERS_PATH)
    }

    /// The polkit rule for `unit = …` commands.
    pub fn polkit_rule(&self) -> PathBuf {
        self.path(crate::commands::polkit::RULE_PATH)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.path(CONFIG_DIR)
    }

    pub fn config(&self) -> PathBuf {
        self.path(SYSTEM_CONFIG_PATH)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path(STATE_DIR)
    }

    pub fn group_file(&self) -> PathBuf {
        self.path("/etc/group")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn layout_should_put_every_file_below_the_root() {
        let layout = Layout::new("/tmp/image");
        assert_eq!(layout.binary(), Path::new("/tmp/image/usr/local/bin/majortom"));
        assert_eq!(
            layout.previous_binary(),
            Path::new("/tmp/image/usr/local/bin/majortom.prev")
        );
        assert_eq!(
            layout.unit(),
            Path::new("/tmp/image/etc/systemd/system/majortom.service")
        );
        assert_eq!(layout.sysusers(), Path::new("/tmp/image/etc/sysusers.d/majortom.conf"));
        assert_eq!(layout.config(), Path::new("/tmp/image/etc/majortom/majortom.toml"));
        assert_eq!(layout.config_dir(), Path::new("/tmp/image/etc/majortom"));
        assert_eq!(layout.state_dir(), Path::new("/tmp/image/var/lib/majortom"));
    }

    #[test]
    fn layout_of_the_real_root_should_be_the_system_paths() {
        let layout = Layout::new("/");
        assert_eq!(layout.binary(), Path::new(BINARY_PATH));
        assert_eq!(layout.config(), Path::new(SYSTEM_CONFIG_PATH));
        assert_eq!(layout.unit(), Path::new(UNIT_PATH));
    }

    #[test]
    fn unit_should_bound_the_journal_memory_and_tasks() {
        for line in [
            "LogRateLimitIntervalSec=30s",
            "LogRateLimitBurst=1000",
            "MemoryHigh=64M",
            "MemoryMax=128M",
            "TasksMax=64",
        ] {
            assert!(UNIT_FILE.lines().any(|l| l == line), "no `{line}` in the unit");
        }
    }

    #[test]
    fn unit_should_run_the_installed_binary_on_the_system_config_as_the_sysusers_user() {
        let exec = format!("ExecStart={BINARY_PATH} run --config {SYSTEM_CONFIG_PATH}\n");
        assert!(UNIT_FILE.contains(&exec), "{exec}");
        assert!(UNIT_FILE.contains(&format!("\nUser={SERVICE_GROUP}\n")));
        assert!(UNIT_FILE.contains(&format!("\nGroup={SERVICE_GROUP}\n")));
        assert!(SYSUSERS_FILE.contains(&format!("\nu {SERVICE_GROUP} ")));
        // Every supplementary group of the unit is created by sysusers, or
        // the unit would fail to start where the group is missing.
        let groups = UNIT_FILE
            .lines()
            .find_map(|l| l.strip_prefix("SupplementaryGroups="))
            .expect("SupplementaryGroups= line");
        for group in groups.split_whitespace() {
            assert!(SYSUSERS_FILE.contains(&format!("\ng {group} -\n")), "group {group}");
            assert!(
                SYSUSERS_FILE.contains(&format!("\nm {SERVICE_GROUP} {group}\n")),
                "membership {group}"
            );
        }
    }
}
