//! Test helpers shared by unit tests: the sysfs fixture
//! trees under `tests/fixtures/sysroot/` (and writable copies), and a web
//! state over a hub.

use std::path::{Path, PathBuf};

/// `tests/fixtures/sysroot/<name>`.
pub fn sysroot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysroot")
        .join(name)
}

/// A writable copy of a fixture tree, for tests that change files.
pub fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&sysroot(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("readable fixture") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A node identity for tests that do not care which.
pub fn node() -> crate::node::NodeInfo {
    crate::node::NodeInfo {
        id: "pi".into(),
        name: "Pi".into(),
        model: "m".into(),
        manufacturer: "x".into(),
        sw_version: "1.2.3".into(),
        configuration_url: None,
    }
}

/// The web side's state over `hub`: read-only (no commands, no token), no
/// broker, no GPIO.
pub fn web_state(hub: std::sync::Arc<crate::hub::Hub>) -> crate::web::AppState {
    let status = crate::status::AgentStatus::new(node(), None, None);
    crate::web::AppState::new(hub, std::sync::Arc::new(status), None, None, None)
}

/// `web_state` over a hub holding one sensor, `temp` = 20.5 °C.
pub fn web_state_with_one_sensor() -> crate::web::AppState {
    use crate::hub::{EntitySpec, Group, Hub, Value};
    let hub = Hub::new(8);
    hub.register(EntitySpec::sensor("temp", "Temp", Group::Sensors).unit("°C"));
    hub.set("temp", Value::Number(20.5));
    web_state(hub)
}
