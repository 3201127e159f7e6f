//! Sim input edge → MQTT message at a subscriber (shared by the `footprint`
//! and `edge_latency` benches).
//!
//! Each edge is a `PUT /api/sim/inputs/<input>`: the simulated pin changes
//! inside that request, and the answer carries the edge's time on
//! CLOCK_MONOTONIC (`edge_ns`). A separate MQTT subscriber takes the same
//! clock when the new state arrives. Three figures per run:
//!
//! - **edge → MQTT**: from the edge's own time to the subscriber: what the
//!   agent adds, plus two loopback hops (agent → mosquitto → subscriber).
//! - **request → MQTT**: from just before the request is written, so the
//!   HTTP request is in it too (the figure before `edge_ns` existed).
//! - **floor**: the same two hops without the agent: after the same pause,
//!   the bench publishes one message to the same broker and its subscriber
//!   takes it. This is what the machine costs for any message; on a VM
//!   whose idle vCPUs are descheduled it is most of the figure (see
//!   docs/PERFORMANCE.md › Edge latency).
//!
//! The requests go over one kept-alive connection, as a browser's would.
//! Edges are `spacing` apart: with a debounce, at least the debounce
//! window, as a button pressed by a hand would be (the leading edge goes
//! out at once; a second edge inside the window is a bounce by design).

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

// The clock of the agent's `edge_ns`: the same function the agent uses.
use majortom::hal::monotonic_ns;

/// Latencies over `edges` edges, in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EdgeLatency {
    pub edges: usize,
    /// Edge (the agent's `edge_ns`) → the subscriber.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Just before the HTTP request → the subscriber.
    pub request_p50_us: u64,
    pub request_p99_us: u64,
    /// The bench's own publish → the subscriber, after the same pause.
    pub floor_p50_us: u64,
    pub floor_p99_us: u64,
    pub floor_max_us: u64,
    pub method: &'static str,
}

/// Flips `input` of the agent at `web` `edges` times, low/high alternately,
/// and times each new state on `majortom/<node>/<input>/state`; between
/// edges, times one message of the bench's own (the floor).
pub async fn measure(
    web: SocketAddr,
    broker_port: u16,
    node: &str,
    input: &str,
    edges: usize,
    spacing: Duration,
    method: &'static str,
) -> EdgeLatency {
    let topic = format!("majortom/{node}/{input}/state");
    let floor_topic = format!("majortom-bench/floor/{}", std::process::id());
    let mut options = MqttOptions::new(format!("edge-bench-{}", std::process::id()), "127.0.0.1", broker_port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    // (arrival on CLOCK_MONOTONIC, topic, payload)
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(u64, String, String)>();
    let (subscribed, mut on_subscribed) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if !p.retain => {
                    let at = monotonic_ns();
                    let _ = arrivals.send((at, p.topic, String::from_utf8_lossy(&p.payload).into_owned()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subscribed.send(());
                }
                Ok(_) => {}
                // A lost connection shows up as a timeout below.
                Err(_) => return,
            }
        }
    });
    for topic in [&topic, &floor_topic] {
        client.subscribe(topic, QoS::AtMostOnce).await.expect("subscribe");
        tokio::time::timeout(Duration::from_secs(10), on_subscribed.recv())
            .await
            .expect("subscribed within 10 s")
            .expect("subscriber alive");
    }
    while arrived.try_recv().is_ok() {}

    let mut http = KeptAlive::connect(web).await;
    let (mut from_edge, mut from_request, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..edges {
        tokio::time::sleep(spacing).await;
        let high = n % 2 == 0;
        let expected = if high { "ON" } else { "OFF" };
        let body = format!("{{\"high\": {high}}}");
        let request = format!(
            "PUT /api/sim/inputs/{input} HTTP/1.1\r\nHost: {web}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{body}",
            token = crate::support::TEST_TOKEN,
            length = body.len(),
        );
        let started = monotonic_ns();
        let (status, answer) = http.send(request.as_bytes()).await;
        assert_eq!(status, 200, "PUT {input}: {answer}");
        let edge_ns = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|a| a["edge_ns"].as_u64())
            .unwrap_or_else(|| panic!("an edge_ns in {answer}"));
        let at = next_arrival(&mut arrived, &topic, expected, n).await;
        from_edge.push(at.saturating_sub(edge_ns));
        from_request.push(at.saturating_sub(started));

        tokio::time::sleep(spacing).await;
        let payload = n.to_string();
        let sent = monotonic_ns();
        client
            .publish(floor_topic.as_str(), QoS::AtMostOnce, false, payload.clone())
            .await
            .expect("publish the floor message");
        let at = next_arrival(&mut arrived, &floor_topic, &payload, n).await;
        floor.push(at.saturating_sub(sent));
    }
    listener.abort();
    let (edge, request, floor) = (
        Percentiles::of(from_edge),
        Percentiles::of(from_request),
        Percentiles::of(floor),
    );
    EdgeLatency {
        edges,
        p50_us: edge.p50,
        p99_us: edge.p99,
        max_us: edge.max,
        request_p50_us: request.p50,
        request_p99_us: request.p99,
        floor_p50_us: floor.p50,
        floor_p99_us: floor.p99,
        floor_max_us: floor.max,
        method,
    }
}

/// The next message's arrival time, which must be `expected` on `topic`.
async fn next_arrival(
    arrived: &mut UnboundedReceiver<(u64, String, String)>,
    topic: &str,
    expected: &str,
    n: usize,
) -> u64 {
    let (at, got_topic, payload) = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
        .await
        .unwrap_or_else(|_| panic!("{topic} within 5 s (round {n})"))
        .expect("subscriber alive");
    assert_eq!((got_topic.as_str(), payload.as_str()), (topic, expected), "round {n}");
    at
}

/// p50, p99 and max of nanosecond figures, in microseconds.
struct Percentiles {
    p50: u64,
    p99: u64,
    max: u64,
}

impl Percentiles {
    fn of(mut nanos: Vec<u64>) -> Percentiles {
        nanos.sort_unstable();
        let pick = |q: f64| nanos[((nanos.len() as f64 - 1.0) * q).round() as usize] / 1000;
        Percentiles {
            p50: pick(0.50),
            p99: pick(0.99),
            max: pick(1.0),
        }
    }
}

/// One HTTP/1.1 connection, kept alive across requests.
struct KeptAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeptAlive {
    async fn connect(web: SocketAddr) -> KeptAlive {
        let stream = TcpStream::connect(web).await.expect("connect to the agent");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        KeptAlive {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends one request and reads its whole answer: status and body.
    async fn send(&mut self, request: &[u8]) -> (u16, String) {
        self.stream.write_all(request).await.expect("send the request");
        let (head_end, content_length) = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a Content-Length in the answer");
                break (end + 4, length);
            }
            self.read_more().await;
        };
        while self.buffer.len() < head_end + content_length {
            self.read_more().await;
        }
        let status = std::str::from_utf8(&self.buffer[..head_end])
            .ok()
            .and_then(|head| head.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let body = String::from_utf8_lossy(&self.buffer[head_end..head_end + content_length]).into_owned();
        self.buffer.drain(..head_end + content_length);
        (status, body)
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let read = self.stream.read(&mut chunk).await.expect("read the answer");
        assert!(read > 0, "the agent closed the kept-alive connection");
        self.buffer.extend_from_slice(&chunk[..read]);
    }
}
