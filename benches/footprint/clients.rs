//! The load on the agents: dashboard clients holding `GET /api/events`
//! open, an MQTT subscriber that times messages, and `wrk` for HTTP.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

// ---- Server-Sent Events -----------------------------------------------------------

/// A dashboard: one connection holding `GET /api/events` open and reading
/// everything, on its own thread, until dropped.
pub struct SseClient {
    /// The HTTP status the agent answered with.
    pub status: u16,
    stop: Arc<AtomicBool>,
    pub bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SseClient {
    pub fn open(addr: SocketAddr) -> SseClient {
        SseClient::open_from(None, addr)
    }

    /// A dashboard connecting from `source`, a loopback address of its own
    /// (Linux routes all of 127.0.0.0/8 to lo): one of many browsers, each
    /// on its own machine, as the agent's per-address caps count them.
    pub fn open_from(source: Option<Ipv4Addr>, addr: SocketAddr) -> SseClient {
        let connect = || -> std::io::Result<TcpStream> {
            let Some(source) = source else {
                return TcpStream::connect(addr);
            };
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.bind(&SocketAddr::from((source, 0)).into())?;
            socket.connect(&addr.into())?;
            Ok(socket.into())
        };
        let mut stream = connect().unwrap_or_else(|e| panic!("connect to {addr} from {source:?}: {e}"));
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("send request");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        // The status line arrives with the headers, at once.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !head.ends_with(b"\r\n") {
            assert!(Instant::now() < deadline, "no status line from {addr}");
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                Ok(_) => break,
                Err(_) => continue,
            }
        }
        let status = String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let (flag, counter) = (stop.clone(), bytes.clone());
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while !flag.load(Ordering::Relaxed) {
                match stream.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(n) => {
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        });
        SseClient {
            status,
            stop,
            bytes,
            thread: Some(thread),
        }
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---- MQTT ---------------------------------------------------------------------------

/// A subscriber to `filter` that timestamps every message it receives.
pub struct Subscriber {
    pub arrivals: tokio::sync::mpsc::UnboundedReceiver<(Instant, String, String)>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects and returns once the broker acknowledged the subscription.
    pub async fn connect(port: u16, filter: &str) -> Subscriber {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "bench-sub-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), QoS::AtMostOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(done) = subscribed_tx.take() {
                            let _ = done.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = String::from_utf8_lossy(&p.payload).into_owned();
                        let _ = tx.send((Instant::now(), p.topic, payload));
                    }
                    Ok(_) => {}
                    // rumqttc reconnects on the next poll: not at once.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("subscribed within 10 s")
            .expect("subscriber task alive");
        Subscriber { arrivals, task }
    }

    /// Waits for the next message; `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(Instant, String, String)> {
        tokio::time::timeout(timeout, self.arrivals.recv()).await.ok().flatten()
    }

    /// Waits for the `count`-th message on `topic` (counting from now).
    pub async fn nth_on(&mut self, topic: &str, count: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, t, _) = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("only {seen} of {count} messages on {topic} within {timeout:?}"));
            if t == topic {
                seen += 1;
                if seen == count {
                    return at;
                }
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- wrk ------------------------------------------------------------------------------

/// What wrk reports for one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrkResult {
    pub url: String,
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub errors: String,
}

/// Runs `wrk --latency` and parses its report.
pub fn wrk(url: &str, threads: u32, connections: u32, seconds: u32) -> WrkResult {
    let output = Command::new("wrk")
        .args([
            "--latency",
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            url,
        ])
        .output()
        .expect("run wrk (scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let percentile = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .map(|v| duration_ms(v.trim()))
            .unwrap_or(f64::NAN)
    };
    WrkResult {
        url: url.to_owned(),
        threads,
        connections,
        seconds,
        requests_per_s: text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN),
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        non_2xx: text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        errors: text
            .lines()
            .find(|l| l.contains("Socket errors"))
            .unwrap_or("")
            .trim()
            .to_owned(),
    }
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn duration_ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}
