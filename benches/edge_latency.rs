//! Sim input edge → MQTT message at a subscriber, over 1000 edges.
//!
//! Runs the release binary on the simulated GPIO backend against a real
//! mosquitto on loopback. Each edge is a `PUT /api/sim/inputs/door` (the
//! simulated pin changes inside that request); the clock starts just before
//! the request is written and stops when a separate MQTT subscriber
//! receives the new state, so the figure includes the HTTP request too.
//! The input has `debounce_ms = 0`: a debounce delays every edge by design.
//!
//!     cargo bench --bench edge_latency
//!
//! Prints p50/p99/max and writes target/bench/edge_latency.json.

#[allow(unused_imports)]
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{test_config, wait_retained, Agent, Broker};

const EDGES: usize = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = Broker::start();
    let config = test_config(
        "bench",
        broker.port,
        "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\n\n[[inputs]]\nname = \"door\"\npin = 17\npull = \"down\"\ndebounce_ms = 0\n",
    );
    let agent = Agent::start(&config).await;
    wait_retained(broker.port, "majortom/bench/door/state", Duration::from_secs(10)).await;

    // A subscriber that timestamps each state as it arrives.
    let mut options = MqttOptions::new("edge-bench", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if !p.retain => {
                    let _ = arrivals.send((Instant::now(), String::from_utf8_lossy(&p.payload).into_owned()));
                }
                Ok(_) => {}
                // The broker goes away at the end; a lost connection during
                // the run shows up as a timeout below.
                Err(_) => return,
            }
        }
    });
    client
        .subscribe("majortom/bench/door/state", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(500)).await;
    while arrived.try_recv().is_ok() {}

    let addr = agent.web.expect("web address");
    let mut latencies = Vec::with_capacity(EDGES);
    for n in 0..EDGES {
        let high = n % 2 == 0;
        let expected = if high { "ON" } else { "OFF" };
        let body = format!("{{\"high\": {high}}}");
        let started = Instant::now();
        let (status, _) =
            tokio::task::spawn_blocking(move || support::http_send(addr, "PUT", "/api/sim/inputs/door", &body))
                .await
                .expect("request thread");
        assert_eq!(status, 200);
        let (at, payload) = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
            .await
            .expect("state within 5 s")
            .expect("subscriber alive");
        assert_eq!(payload, expected, "edge {n}");
        latencies.push(at.duration_since(started));
    }
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p99, max) = (pick(0.50), pick(0.99), latencies[latencies.len() - 1]);
    println!("edge → MQTT over {EDGES} edges: p50 {p50:?}, p99 {p99:?}, max {max:?}");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let json = serde_json::json!({
        "edges": EDGES,
        "p50_us": p50.as_micros() as u64,
        "p99_us": p99.as_micros() as u64,
        "max_us": max.as_micros() as u64,
        "method": "PUT /api/sim/inputs (sim backend, debounce 0) to a loopback mosquitto subscriber; includes the HTTP request",
    });
    std::fs::write(
        dir.join("edge_latency.json"),
        serde_json::to_vec_pretty(&json).expect("json"),
    )
    .expect("write");
}
