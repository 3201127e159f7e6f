//! The programs under test, each started the same way: a config file in a
//! temporary directory, a child process with its output captured, and a
//! bounded stop (a polite signal, then SIGKILL).
//!
//! majortom runs the realistic config of issue 7 (system stats, 8 simulated
//! inputs, 4 simulated outputs, 2 fixture sensors, MQTT, the dashboard);
//! collectd and mqtt-io get the closest equivalents they support.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running program under test, stopped on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    log: Arc<Mutex<String>>,
    /// SIGTERM for most; mqtt-io only stops on SIGINT.
    stop_signal: i32,
    /// majortom's `--ready-file` (in the temporary directory).
    ready_file: Option<PathBuf>,
    /// Holds the config file until the process is gone.
    _dir: TempDir,
}

impl Proc {
    /// Spawns `command` (whose config the caller wrote into `dir`).
    pub fn spawn(name: &str, mut command: Command, dir: TempDir, stop_signal: i32) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut log = sink.lock().expect("log lock");
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        Proc {
            name: name.to_owned(),
            child,
            log,
            stop_signal,
            ready_file: None,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// The address majortom's dashboard listens on, from its
    /// `--ready-file`, which it writes once it runs (polled every 20 ms).
    pub fn web_addr(&mut self) -> SocketAddr {
        let path = self.ready_file.clone().expect("a majortom started by `majortom`");
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                break text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before it was ready:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let ready: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("the ready file is not JSON ({e}): {text}"));
        ready["web"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no web address in the ready file: {text}"))
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// The polite signal, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        self.signal(self.stop_signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- majortom -----------------------------------------------------------------

/// A sysfs/procfs root for the realistic config: the real `/proc` (so the
/// system stats are this machine's, changing every second) plus the
/// DS18B20 and IIO fixture trees for the two sensors.
pub fn sensor_root() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/proc", dir.path().join("proc")).expect("symlink /proc");
    for tree in ["w1", "iio"] {
        copy_tree(&manifest_dir().join("tests/fixtures/sysroot").join(tree), dir.path());
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

pub const INPUTS: usize = 8;
pub const OUTPUTS: usize = 4;

/// Issue 7's realistic config: system stats every `interval_s`, 8 simulated
/// inputs, 4 simulated outputs, a DS18B20 and a DHT11 (IIO) read from
/// fixture files every `interval_s`, MQTT to the broker, the dashboard on a
/// free loopback port. Everything else is at its default (keepalive 30 s,
/// Home Assistant discovery on).
pub fn majortom_config(node: &str, mqtt_port: Option<u16>, root: &Path, state_dir: &Path, interval_s: u32) -> String {
    let mqtt = match mqtt_port {
        Some(port) => format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\n"),
        None => "[mqtt]\nenabled = false\n".to_owned(),
    };
    let mut config = format!(
        "[node]\nid = \"{node}\"\nname = \"Bench {node}\"\n\n{mqtt}\n[web]\nbind = \"127.0.0.1\"\nport = 0\ntoken = \"{token}\"\n\n\
         [system]\ninterval_s = {interval_s}\nroot = \"{root}\"\n\n\
         [gpio]\nbackend = \"sim\"\nstate_file = \"{state}\"\nauto_ds18b20 = false\n",
        token = super::support::TEST_TOKEN,
        root = root.display(),
        state = state_dir.join("outputs.json").display(),
    );
    let input_pins = [17, 18, 22, 23, 24, 25, 26, 27];
    for (n, pin) in input_pins.iter().enumerate().take(INPUTS) {
        config.push_str(&format!(
            "\n[[inputs]]\nname = \"input_{n}\"\npin = {pin}\npull = \"down\"\ndebounce_ms = 0\n"
        ));
    }
    for (n, pin) in [5, 6, 13, 19].iter().enumerate().take(OUTPUTS) {
        config.push_str(&format!("\n[[outputs]]\nname = \"output_{n}\"\npin = {pin}\n"));
    }
    config.push_str(&format!(
        "\n[[sensors]]\nkind = \"ds18b20\"\nname = \"garden\"\nid = \"28-0316a2795cff\"\ninterval_s = {interval_s}\n\
         \n[[sensors]]\nkind = \"iio\"\nname = \"living\"\ndevice = \"dht11\"\ninterval_s = {interval_s}\n"
    ));
    config
}

/// Starts majortom (`binary`) with `config`, logging at `info` as a user
/// would run it.
pub fn majortom(name: &str, binary: &Path, config: &str, wrapper: &[&str]) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("majortom.toml");
    std::fs::write(&path, config).expect("write config");
    let ready_file = dir.path().join("ready.json");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--ready-file")
        .arg(&ready_file)
        .env("MAJORTOM_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("MAJORTOM_MQTT_PASSWORD")
        .env_remove("MAJORTOM_MQTT_USERNAME");
    let mut proc = Proc::spawn(name, command, dir, libc::SIGTERM);
    proc.ready_file = Some(ready_file);
    proc
}

// ---- collectd -----------------------------------------------------------------

/// collectd with the cpu, memory, load, df and interface plugins, publishing
/// every `interval_s` through its mqtt plugin under `prefix`; one read and
/// one write thread (its defaults are 5 + 5).
pub fn collectd(name: &str, mqtt_port: u16, prefix: &str, interval_s: u32) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().display().to_string();
    let config = format!(
        r#"Interval {interval_s}
Hostname "bench"
FQDNLookup false
BaseDir "{base}"
PIDFile "{base}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
ReadThreads 1
WriteThreads 1
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin df
LoadPlugin interface
LoadPlugin mqtt
<Plugin df>
  MountPoint "/"
</Plugin>
<Plugin interface>
  Interface "lo"
  IgnoreSelected true
</Plugin>
<Plugin mqtt>
  <Publish "bench">
    Host "127.0.0.1"
    Port {mqtt_port}
    ClientId "{prefix}"
    Prefix "{prefix}"
  </Publish>
</Plugin>
"#
    );
    let path = dir.path().join("collectd.conf");
    std::fs::write(&path, config).expect("write collectd.conf");
    let program = super::support::find_program("collectd", "collectd-core", &["/usr/sbin/collectd"]);
    let mut command = Command::new(program);
    command.arg("-f").arg("-C").arg(&path);
    Proc::spawn(name, command, dir, libc::SIGTERM)
}

// ---- mqtt-io ------------------------------------------------------------------

/// The virtualenv holding mqtt-io (scripts/bench.sh makes it).
pub fn venv() -> PathBuf {
    std::env::var_os("MAJORTOM_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/majortom/bench-venv"))
}

/// mqtt-io with its `mock` GPIO module (the module its own tests use; it
/// needs no hardware and supports software-callback interrupts): 8 inputs
/// on interrupts (so, like majortom, not polled), 4 outputs, 2 `mock`
/// sensors read every `interval_s`, Home Assistant discovery on. It has no
/// system statistics.
pub fn mqtt_io(name: &str, mqtt_port: u16, prefix: &str, interval_s: u32) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = format!(
        "mqtt:\n  host: 127.0.0.1\n  port: {mqtt_port}\n  topic_prefix: {prefix}\n  client_id: {prefix}\n  ha_discovery:\n    enabled: yes\n\
         gpio_modules:\n  - name: mock\n    module: mock\n\
         sensor_modules:\n  - name: mock\n    module: mock\n\
         digital_inputs:\n"
    );
    for n in 0..INPUTS {
        config.push_str(&format!(
            "  - name: input_{n}\n    module: mock\n    pin: {n}\n    interrupt: both\n"
        ));
    }
    config.push_str("digital_outputs:\n");
    for n in 0..OUTPUTS {
        config.push_str(&format!(
            "  - name: output_{n}\n    module: mock\n    pin: {}\n",
            10 + n
        ));
    }
    config.push_str("sensor_inputs:\n");
    for n in 0..2 {
        config.push_str(&format!(
            "  - name: sensor_{n}\n    module: mock\n    interval: {interval_s}\n"
        ));
    }
    let path = dir.path().join("mqtt-io.yml");
    std::fs::write(&path, config).expect("write mqtt-io.yml");
    let python = venv().join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/bench.sh, which creates the virtualenv with mqtt-io",
        python.display()
    );
    let mut command = Command::new(python);
    command.arg("-m").arg("mqtt_io").arg(&path);
    Proc::spawn(name, command, dir, libc::SIGINT)
}

// ---- the sleepers -----------------------------------------------------------------

/// Set in the environment of the bench's own binary started as a sleeper:
/// how many threads sleep.
pub const SLEEPER: &str = "MAJORTOM_BENCH_SLEEPER";

/// The floors of the CPU figures: this bench's own binary doing nothing but
/// wake up once a second, in each of `threads` threads (`sleep_forever`).
/// One thread costs the machine's price of one wake-up a second, which an
/// agent at a 1 s interval pays at least once; three cost what the
/// agent's bench config cannot do without (its runtime thread and the two
/// sensors' reading threads, each woken once a round).
pub fn sleeper(threads: usize) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(std::env::current_exe().expect("the bench's own path"));
    command.env(SLEEPER, threads.to_string());
    let name = if threads == 1 {
        "sleeper".to_owned()
    } else {
        format!("sleeper-{threads}")
    };
    Proc::spawn(&name, command, dir, libc::SIGTERM)
}

/// A sleeper's life: one wake-up a second in each of `threads` threads.
pub fn sleep_forever(threads: usize) -> ! {
    for _ in 1..threads {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

// ---- prometheus-node-exporter ---------------------------------------------------

/// node-exporter with its default collectors on `port`; waits until it
/// answers.
pub fn node_exporter(port: u16) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = super::support::find_program(
        "prometheus-node-exporter",
        "prometheus-node-exporter",
        &["/usr/bin/prometheus-node-exporter"],
    );
    let mut command = Command::new(program);
    command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let proc = Proc::spawn("node-exporter", command, dir, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node-exporter did not listen:\n{}",
            proc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proc
}
