//! A time-compressed soak: the agent sampling every 10 ms, a simulated
//! input flipping 20 times a second, dashboards (SSE clients) coming and
//! going, and the broker killed and restarted every `RESTART_EVERY`, for
//! `MAJORTOM_SOAK_MINUTES` (default 30). RSS is recorded every second;
//! file descriptors, threads and runtime tasks are compared before and
//! after.
//!
//!     cargo bench --bench soak                       # 30 minutes
//!     MAJORTOM_SOAK_MINUTES=5 cargo bench --bench soak
//!
//! Prints the figures and writes target/bench/soak.json.

#[allow(unused_imports)]
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{http_send, test_config, wait_for, wait_retained, Agent, Broker};

const RESTART_EVERY: Duration = Duration::from_secs(18);
/// RSS growth is measured from here on: allocators and buffers settle first.
const WARM_UP: Duration = Duration::from_secs(120);

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn count_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `name value` from the agent's /metrics.
fn metric(agent: &Agent, name: &str) -> f64 {
    let (_, text) = agent.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes: f64 = std::env::var("MAJORTOM_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30.0);
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let mut broker = Broker::start();
    let config = test_config(
        "soak",
        broker.port,
        "[system]\ninterval_s = 0.01\n\n[gpio]\nbackend = \"sim\"\n\n[[inputs]]\nname = \"door\"\npin = 17\ndebounce_ms = 0\n\n[[outputs]]\nname = \"relay\"\npin = 27\n",
    );
    let agent = Agent::start(&config).await;
    wait_retained(broker.port, "majortom/soak/status", Duration::from_secs(10)).await;
    let pid = agent.pid();
    let addr = agent.web.expect("web");
    // Kept: a warm-up (the first samples, the broker session) before the
    // baseline of descriptors, threads and tasks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = (
        count_fds(pid),
        metric(&agent, "process_threads"),
        metric(&agent, "majortom_tasks"),
    );

    let stop = Arc::new(AtomicBool::new(false));
    // An input flipping 20 times a second.
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut high = false;
            while !stop.load(Ordering::Relaxed) {
                high = !high;
                let _ = http_send(addr, "PUT", "/api/sim/inputs/door", &format!("{{\"high\": {high}}}"));
                // The load: 20 flips a second.
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Five dashboards, each connecting, reading a few seconds, leaving.
    let sse_sessions = Arc::new(AtomicUsize::new(0));
    let dashboards: Vec<_> = (0..5u64)
        .map(|n| {
            let (stop, sessions) = (stop.clone(), sse_sessions.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(addr) else {
                        continue;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    let _ = write!(stream, "GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                    let until = Instant::now() + Duration::from_millis(1000 + 700 * n);
                    while Instant::now() < until {
                        let _ = stream.read(&mut buf);
                    }
                    sessions.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut restarts = 0;
    let mut next_restart = started + RESTART_EVERY;
    while started.elapsed() < duration {
        // One RSS sample a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)));
        if Instant::now() >= next_restart {
            broker.stop();
            // The fault: the broker away for 300 ms.
            tokio::time::sleep(Duration::from_millis(300)).await;
            broker.restart();
            restarts += 1;
            next_restart = Instant::now() + RESTART_EVERY;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    for d in dashboards {
        let _ = d.join();
    }
    // The agent is back on the broker, and the last dashboards' streams
    // are closed.
    wait_retained(broker.port, "majortom/soak/status", Duration::from_secs(40)).await;
    wait_for("the last event streams to close", Duration::from_secs(10), || {
        (metric(&agent, "majortom_sse_clients") == 0.0).then_some(())
    })
    .await;
    let after = (
        count_fds(pid),
        metric(&agent, "process_threads"),
        metric(&agent, "majortom_tasks"),
    );
    let connects = metric(&agent, "majortom_mqtt_reconnects_total");

    let warm: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= WARM_UP.as_secs_f64())
        .map(|s| s.1)
        .collect();
    let (first, last) = (warm.first().copied().unwrap_or(0), warm.last().copied().unwrap_or(0));
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "soak: {minutes} min at a 10 ms interval, {restarts} broker restarts, {} dashboard sessions",
        sse_sessions.load(Ordering::Relaxed)
    );
    println!(
        "RSS after warm-up: {first} KiB → {last} KiB at the end (growth {} KiB), peak {peak} KiB",
        last as i64 - first as i64
    );
    println!(
        "fds {} → {}, threads {} → {}, runtime tasks {} → {}",
        before.0, after.0, before.1, after.1, before.2, after.2
    );
    println!("MQTT reconnects counted by the agent: {connects}");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let json = serde_json::json!({
        "minutes": minutes,
        "interval_ms": 10,
        "broker_restarts": restarts,
        "mqtt_reconnects": connects,
        "dashboard_sessions": sse_sessions.load(Ordering::Relaxed),
        "rss_kib_after_warm_up": first,
        "rss_kib_end": last,
        "rss_kib_peak": peak,
        "fds": [before.0, after.0],
        "threads": [before.1, after.1],
        "tasks": [before.2, after.2],
        "rss_kib_per_second": samples.iter().map(|s| s.1).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("soak.json"), serde_json::to_vec_pretty(&json).expect("json")).expect("write");
}
