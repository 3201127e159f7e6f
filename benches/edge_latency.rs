//! Sim input edge → MQTT message at a subscriber, over 1000 edges, with the
//! default debounce (50 ms; edges 60 ms apart), on its own (`cargo bench
//! --bench footprint` measures it too, with debounce 0, among the rest).
//!
//! Runs the release binary on the simulated GPIO backend against a real
//! mosquitto on loopback; see `footprint/edge.rs` for the method.
//!
//!     cargo bench --bench edge_latency
//!     EDGE_BENCH_EDGES=100 cargo bench --bench edge_latency   # a quick look
//!
//! Prints p50/p99/max, with the same two loopback hops without the agent
//! (the floor), and writes target/bench/edge_latency.json.

#[allow(unused_imports)]
#[path = "../tests/e2e/support/mod.rs"]
mod support;

#[path = "footprint/edge.rs"]
mod edge;

use std::time::Duration;

use support::{test_config, wait_retained, Agent, Broker};

const EDGES: usize = 1000;
/// More than the default debounce window (50 ms).
const SPACING: Duration = Duration::from_millis(60);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Nagle off on the broker's side too (mosquitto's default is on): else
    // a state that follows the bench's floor message within the
    // subscriber's delayed ACK waits up to 40 ms in mosquitto, whatever
    // the agent does (docs/PERFORMANCE.md › Edge latency).
    let broker = Broker::start_with(support::free_port(), "allow_anonymous true\nset_tcp_nodelay true\n");
    let config = test_config(
        "bench",
        broker.port,
        "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\n\n[[inputs]]\nname = \"door\"\npin = 17\npull = \"down\"\n",
    );
    let edges = std::env::var("EDGE_BENCH_EDGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(EDGES);
    // At the log level a user runs (the e2e helpers ask for debug).
    let agent = Agent::spawn_with_env(&config, &[], &[("MAJORTOM_LOG", "info")])
        .until_listening()
        .await;
    wait_retained(broker.port, "majortom/bench/door/state", Duration::from_secs(10)).await;

    let result = edge::measure(
        agent.web.expect("web address"),
        broker.port,
        "bench",
        "door",
        edges,
        SPACING,
        "PUT /api/sim/inputs (sim backend, default debounce 50 ms, edges 60 ms apart), from the edge's edge_ns to a loopback mosquitto subscriber; request: from just before the PUT; floor: the bench's own publish to the same subscriber after the same pause",
    )
    .await;
    println!(
        "edge → MQTT over {edges} edges: p50 {} µs, p99 {} µs, max {} µs",
        result.p50_us, result.p99_us, result.max_us
    );
    println!(
        "request → MQTT: p50 {} µs, p99 {} µs; floor (the bench's own publish → subscriber): p50 {} µs, p99 {} µs, max {} µs",
        result.request_p50_us, result.request_p99_us, result.floor_p50_us, result.floor_p99_us, result.floor_max_us
    );

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(
        dir.join("edge_latency.json"),
        serde_json::to_vec_pretty(&result).expect("json"),
    )
    .expect("write");
}
