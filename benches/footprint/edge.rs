//! Sim input edge → MQTT message at a subscriber (shared by the `footprint`
//! and `edge_latency` benches).
//!
//! Each edge is a `PUT /api/sim/inputs/<input>` (the simulated pin changes
//! inside that request); the clock starts just before the request is
//! written and stops when a separate MQTT subscriber receives the new
//! state, so the figure includes the HTTP request too. Edges are `spacing`
//! apart: with a debounce, at least the debounce window, as a button
//! pressed by a hand would be (the leading edge goes out at once; a second
//! edge inside the window is a bounce by design).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Latencies over `edges` edges, in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EdgeLatency {
    pub edges: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub method: &'static str,
}

/// Flips `input` of the agent at `web` `edges` times, low/high alternately,
/// and times each new state on `majortom/<node>/<input>/state`.
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
    let mut options = MqttOptions::new(format!("edge-bench-{}", std::process::id()), "127.0.0.1", broker_port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
    let (subscribed, on_subscribed) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(async move {
        let mut subscribed = Some(subscribed);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if !p.retain => {
                    let _ = arrivals.send((Instant::now(), String::from_utf8_lossy(&p.payload).into_owned()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(subscribed) = subscribed.take() {
                        let _ = subscribed.send(());
                    }
                }
                Ok(_) => {}
                // A lost connection shows up as a timeout below.
                Err(_) => return,
            }
        }
    });
    client.subscribe(&topic, QoS::AtMostOnce).await.expect("subscribe");
    tokio::time::timeout(Duration::from_secs(10), on_subscribed)
        .await
        .expect("subscribed within 10 s")
        .expect("subscriber alive");
    while arrived.try_recv().is_ok() {}

    let path = format!("/api/sim/inputs/{input}");
    let mut latencies = Vec::with_capacity(edges);
    for n in 0..edges {
        tokio::time::sleep(spacing).await;
        let high = n % 2 == 0;
        let expected = if high { "ON" } else { "OFF" };
        let body = format!("{{\"high\": {high}}}");
        let path = path.clone();
        let started = Instant::now();
        let (status, _) = tokio::task::spawn_blocking(move || crate::support::http_send(web, "PUT", &path, &body))
            .await
            .expect("request thread");
        assert_eq!(status, 200, "PUT {input}");
        let (at, payload) = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
            .await
            .expect("state within 5 s")
            .expect("subscriber alive");
        assert_eq!(payload, expected, "edge {n}");
        latencies.push(at.duration_since(started));
    }
    listener.abort();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    EdgeLatency {
        edges,
        p50_us: pick(0.50).as_micros() as u64,
        p99_us: pick(0.99).as_micros() as u64,
        max_us: latencies[latencies.len() - 1].as_micros() as u64,
        method,
    }
}
