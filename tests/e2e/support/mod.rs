//! Test fixtures: a real mosquitto on a free loopback port, the real
//! `majortom` binary as a child process (its address read from its
//! `--ready-file`), an MQTT observer, and HTTP through `ureq`. Nothing here
//! is mocked. `webdriver` drives a real headless Chromium (through
//! `fantoccini`) for the browser tests.
//!
//! Tests wait on events, never for a fixed time: `wait_for` and
//! `wait_for_async` poll a condition until it holds (or fail after a
//! timeout), `Observer::wait_for_message` waits for a message, and
//! `Observer::sync` for everything the broker had queued for an observer
//! (which is also how `retained` knows it has the whole retained store). To
//! show that something did not happen, a test makes something happen that
//! must come after it and waits for that.

#![allow(dead_code)] // Each test module uses a different part.

pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use tempfile::TempDir;

/// How often `wait_for` and `wait_for_async` look again.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `check` returns `Some`, polling every 50 ms; panics with
/// `what` after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `wait_for` with an asynchronous check (a browser, a broker's retained
/// store).
pub async fn wait_for_async<T>(what: &str, timeout: Duration, check: impl AsyncFnMut() -> Option<T>) -> T {
    match poll_until(timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `timeout`;
/// `None` when it never did (for a caller that says more than
/// `wait_for_async` would).
pub async fn poll_until<T>(timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A program on `$PATH` (or at one of `fallbacks`); panics saying to run
/// scripts/test.sh, which installs `package`, when it is missing.
pub fn find_program(name: &str, package: &str, fallbacks: &[&str]) -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    for fallback in fallbacks {
        if Path::new(fallback).is_file() {
            return PathBuf::from(fallback);
        }
    }
    panic!("`{name}` is not installed; run the test suite with ./scripts/test.sh, which installs it (apt-get install {package})");
}

// ---- mosquitto ---------------------------------------------------------------

/// A mosquitto broker on 127.0.0.1, killed on drop.
pub struct Broker {
    pub port: u16,
    dir: TempDir,
    /// Listener settings after the `listener` line (TLS, authentication).
    settings: String,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Broker {
        Broker::start_with(port, "allow_anonymous true\n")
    }

    /// A broker whose listener takes `settings` (mosquitto.conf lines).
    pub fn start_with(port: u16, settings: &str) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut broker = Broker {
            port,
            dir,
            settings: settings.to_owned(),
            child: None,
        };
        broker.launch();
        broker
    }

    /// A directory that lives as long as the broker (for its certificates,
    /// password file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn launch(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let log = self.dir.path().join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                // `user root`: run as root (CI), mosquitto would otherwise
                // switch to its own user and lose access to our temp files.
                "user root\nper_listener_settings true\npersistence false\nlog_dest file {}\nlog_type all\nlistener {} 127.0.0.1\n{}",
                log.display(),
                self.port,
                self.settings
            ),
        )
        .expect("write mosquitto.conf");
        let program = find_program("mosquitto", "mosquitto", &["/usr/sbin/mosquitto"]);
        let child = Command::new(program)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (as a crash or a restart would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with no retained messages (no
    /// persistence): everything must be republished by the agent.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- the agent ---------------------------------------------------------------

/// The real `majortom` binary, started with a config file, killed on drop.
pub struct Agent {
    child: Child,
    dir: TempDir,
    log: Arc<Mutex<String>>,
    /// Collects stderr into `log`; joined once the process has exited, so
    /// the log is complete when a test reads it after `wait_exit`.
    log_reader: Option<std::thread::JoinHandle<()>>,
    pub web: Option<SocketAddr>,
}

/// A config for tests: a node id, the given broker port, the web server on a
/// free loopback port, fast sampling. `extra` is appended.
pub fn test_config(node: &str, mqtt_port: u16, extra: &str) -> String {
    format!(
        "[node]\nid = \"{node}\"\nname = \"E2E {node}\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {mqtt_port}\nkeepalive_s = 5\n\n[web]\nbind = \"127.0.0.1\"\nport = 0\ntoken = \"{TEST_TOKEN}\"\n\n{extra}\n"
    )
}

/// The `web.token` of `test_config`; `Agent::send` sends it.
pub const TEST_TOKEN: &str = "e2e-test-token";

/// The binary under test: this build's, or `$MAJORTOM_E2E_BINARY` (another
/// build, to show a test fails without the fix it tests).
pub fn binary() -> String {
    std::env::var("MAJORTOM_E2E_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_majortom").to_owned())
}

impl Agent {
    /// Starts the agent and waits until its web server listens.
    pub async fn start(config: &str) -> Agent {
        Agent::spawn(config, &[]).until_listening().await
    }

    /// Waits for the agent's `--ready-file`, and takes the web server's
    /// address from it (for an agent from `spawn`).
    pub async fn until_listening(mut self) -> Agent {
        let deadline = Instant::now() + Duration::from_secs(15);
        let ready = loop {
            if let Some(ready) = self.ready() {
                break ready;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("the agent exited ({status}) before it was ready:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the agent was not ready within 15 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let web = ready["web"]
            .as_str()
            .unwrap_or_else(|| panic!("no web address in {ready}"));
        self.web = Some(web.parse().unwrap_or_else(|e| panic!("web address {web}: {e}")));
        self
    }

    /// Where the agent writes that it runs (`--ready-file`).
    pub fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready.json")
    }

    /// The ready file's content, once the agent has written it.
    pub fn ready(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.ready_file()).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("the ready file is not JSON ({e}): {text}")))
    }

    /// Spawns the binary with `args` after `--config <file>`; does not wait.
    pub fn spawn(config: &str, args: &[&str]) -> Agent {
        Agent::spawn_with_env(config, args, &[])
    }

    /// `spawn` with extra environment variables.
    pub fn spawn_with_env(config: &str, args: &[&str], envs: &[(&str, &str)]) -> Agent {
        Agent::spawn_program(Command::new(binary()), config, args, envs)
    }

    /// Starts `program` (the binary, or an emulator with the binary as its
    /// first arguments) and waits until its web server listens.
    pub async fn start_program(program: Command, config: &str) -> Agent {
        let agent = Agent::spawn_program(program, config, &[], &[]);
        agent.until_listening().await
    }

    fn spawn_program(mut program: Command, config: &str, args: &[&str], envs: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("majortom.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = program
            .arg("run")
            .arg("--config")
            .arg(&path)
            .arg("--ready-file")
            .arg(dir.path().join("ready.json"))
            .args(args)
            .env("MAJORTOM_LOG", "debug")
            .env_remove("MAJORTOM_MQTT_PASSWORD")
            .env_remove("MAJORTOM_MQTT_USERNAME")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start majortom");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Agent {
            child,
            dir,
            log,
            log_reader: Some(log_reader),
            web: None,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Waits for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(reader) = self.log_reader.take() {
                    // stderr reaches its end with the process.
                    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
                }
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// User + system CPU time the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/<pid>/stat");
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).expect("stat format");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Duration::from_millis(ticks * 1000 / u64::try_from(hz).expect("positive CLK_TCK"))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.web.expect("web server address"), path)
    }

    pub fn send(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_send(self.web.expect("web server address"), method, path, body)
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.1 GET; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_send(addr, "GET", path, "")
}

// ---- MQTT observer -------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    /// True when the broker delivered it from its retained store.
    pub retain: bool,
    /// The QoS it was delivered at: the lower of the sender's and the
    /// observer's (1).
    pub qos: QoS,
    /// When the observer received it.
    pub at: Instant,
}

/// Where each observer's own sync markers go (`Observer::sync`); never
/// recorded as messages.
const MARKER_PREFIX: &str = "e2e-sync/";

/// An MQTT client that subscribes to a filter and records everything it
/// receives; it resubscribes after a broker restart. `sync` tells when it
/// has received everything the broker had for it.
pub struct Observer {
    pub client: AsyncClient,
    messages: Arc<Mutex<Vec<Message>>>,
    connected: Arc<Mutex<bool>>,
    /// Its own marker topic, and the markers that came back.
    marker: String,
    markers: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    pub async fn connect(port: u16, filter: &str) -> Observer {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("observer-{}-{n}", std::process::id());
        let marker = format!("{MARKER_PREFIX}{id}");
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(Mutex::new(false));
        let markers = Arc::new(Mutex::new(Vec::new()));
        let (sink, flag, sub_client) = (messages.clone(), connected.clone(), client.clone());
        let (back, own) = (markers.clone(), marker.clone());
        let filters = [filter.to_owned(), marker.clone()];
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let filters = filters
                            .iter()
                            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                        let _ = sub_client.subscribe_many(filters).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => *flag.lock().expect("lock") = true,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = String::from_utf8_lossy(&p.payload).into_owned();
                        if p.topic == own {
                            back.lock().expect("lock").push(payload);
                        } else if !p.topic.starts_with(MARKER_PREFIX) {
                            sink.lock().expect("lock").push(Message {
                                topic: p.topic,
                                payload,
                                retain: p.retain,
                                qos: p.qos,
                                at: Instant::now(),
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        *flag.lock().expect("lock") = false;
                        // rumqttc reconnects on the next poll: not at once,
                        // or a broker that is down spins this loop.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let observer = Observer {
            client,
            messages,
            connected,
            marker,
            markers,
            task,
        };
        let flag = observer.connected.clone();
        wait_for("the observer to subscribe", Duration::from_secs(10), || {
            (*flag.lock().expect("lock")).then_some(())
        })
        .await;
        observer
    }

    /// Returns once this observer has received everything the broker had
    /// queued for it before now: the retained messages its subscription
    /// brought, and whatever others published before. It publishes a marker
    /// to itself and waits for it; mosquitto delivers to a subscriber in the
    /// order it handled the messages, and it queues a subscription's
    /// retained messages while it handles the SUBSCRIBE.
    pub async fn sync(&self) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string();
        self.client
            .publish(&self.marker, QoS::AtLeastOnce, false, token.clone().into_bytes())
            .await
            .expect("queue the marker");
        let markers = self.markers.clone();
        wait_for("the observer's marker to come back", Duration::from_secs(10), || {
            markers.lock().expect("lock").contains(&token).then_some(())
        })
        .await;
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("lock").clone()
    }

    pub fn clear(&self) {
        self.messages.lock().expect("lock").clear();
    }

    /// The last payload seen on `topic`.
    pub fn last(&self, topic: &str) -> Option<String> {
        self.messages
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|m| m.topic == topic)
            .map(|m| m.payload.clone())
    }

    /// Waits until a message on `topic` satisfies `check`.
    pub async fn wait_for_message(&self, topic: &str, timeout: Duration, check: impl Fn(&Message) -> bool) -> Message {
        let messages = self.messages.clone();
        wait_for(&format!("a matching message on {topic}"), timeout, || {
            messages
                .lock()
                .expect("lock")
                .iter()
                .find(|m| m.topic == topic && check(m))
                .cloned()
        })
        .await
    }

    pub async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .expect("queue publish");
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the broker holds retained under `filter`: everything a fresh
/// subscriber gets, collected up to its `sync` marker. (`_settle` is no
/// longer used: the marker says when the broker has sent all of it.)
pub async fn retained(port: u16, filter: &str, _settle: Duration) -> Vec<Message> {
    let observer = Observer::connect(port, filter).await;
    observer.sync().await;
    observer.messages().into_iter().filter(|m| m.retain).collect()
}

/// The retained payload of one topic, if any.
pub async fn retained_payload(port: u16, topic: &str) -> Option<String> {
    retained(port, topic, Duration::ZERO).await.pop().map(|m| m.payload)
}

/// Waits until the broker holds a retained message on `topic`; returns it.
pub async fn wait_retained(port: u16, topic: &str, timeout: Duration) -> String {
    wait_for_async(&format!("a retained message on {topic}"), timeout, async || {
        retained_payload(port, topic).await
    })
    .await
}

/// Waits until the broker's retained payload on `topic` is `expected`.
pub async fn wait_retained_payload(port: u16, topic: &str, expected: &str, timeout: Duration) {
    wait_for_async(&format!("{expected} retained on {topic}"), timeout, async || {
        (retained_payload(port, topic).await.as_deref() == Some(expected)).then_some(())
    })
    .await
}

/// A temporary sysfs/procfs root holding the union of fixture trees from
/// `tests/fixtures/sysroot/` (later trees win on a clash).
pub fn merged_root(trees: &[&str]) -> TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read fixture dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy fixture file");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for tree in trees {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysroot")
            .join(tree);
        copy(&from, dir.path());
    }
    dir
}

/// A one-shot HTTP/1.1 request with a JSON body and the test token;
/// returns status and body.
pub fn http_send(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    http_request(
        addr,
        method,
        path,
        &[("Authorization", &format!("Bearer {TEST_TOKEN}"))],
        body,
    )
}

/// A one-shot HTTP/1.1 request with extra headers; returns status and body.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    http_request_timeout(addr, method, path, headers, body, Duration::from_secs(5))
}

/// `http_request` waiting up to `timeout` for the answer (a WebDriver call
/// that starts a browser takes seconds). Any status is an answer, not an
/// error; a JSON content type is sent with every request.
pub fn http_request_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        // Methods that usually carry none may carry a body here (a fuzzed
        // GET, a WebDriver DELETE).
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let sent = if body.is_empty() {
        let (parts, _) = request.into_parts();
        agent.run(ureq::http::Request::from_parts(parts, ()))
    } else {
        agent.run(request)
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: reading the body: {e}"));
    (status, body)
}

// ---- a TCP proxy that can fail like a network -------------------------------

/// Sits between the agent and the broker. `blackhole` keeps every
/// connection open but drops all bytes (a Wi-Fi drop); `refuse` closes every
/// connection and turns new ones away (a cable pulled and plugged back).
pub struct Proxy {
    pub port: u16,
    pub blackhole: Arc<std::sync::atomic::AtomicBool>,
    pub refuse: Arc<std::sync::atomic::AtomicBool>,
    /// When each connection was accepted.
    pub accepted: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let refuse = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (hole, refusing, log) = (blackhole.clone(), refuse.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                log.lock().expect("lock").push(Instant::now());
                if refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (
                        Box::new(server_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(client_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                ] {
                    let (hole, refusing) = (hole.clone(), refusing.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let read = tokio::select! {
                                read = from.read(&mut buf) => read,
                                () = tokio::time::sleep(Duration::from_millis(50)) => {
                                    if refusing.load(Ordering::SeqCst) { return; }
                                    continue;
                                }
                            };
                            let n = match read {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if refusing.load(Ordering::SeqCst) {
                                return;
                            }
                            if hole.load(Ordering::SeqCst) {
                                continue;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Proxy {
            port,
            blackhole,
            refuse,
            accepted,
            task,
        }
    }

    pub fn connections(&self) -> Vec<Instant> {
        self.accepted.lock().expect("lock").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
