//! What majortom costs on this machine, beside the agents users run today,
//! in one run (issue 7). Run it through `scripts/bench.sh`, which installs
//! the peers and builds the static binaries first:
//!
//!     scripts/bench.sh            # or: cargo bench --bench footprint
//!
//! Phases, in order, all against one mosquitto on a free loopback port:
//!
//! 1. steady: majortom (static musl and glibc builds, realistic config, one
//!    dashboard client on `/api/events`), collectd with its MQTT plugin,
//!    mqtt-io with mock GPIO and node-exporter (idle), started together;
//!    RSS/PSS every second; steady RSS is the mean from 60 s on, CPU is
//!    taken over 15 s → end;
//! 2. HTTP: `wrk -t2 -c20 -d10s` on majortom's `/api/state` and `/metrics`
//!    and node-exporter's `/metrics`, RSS sampled every 100 ms meanwhile;
//! 3. 50 dashboard clients on majortom at once: RSS and CPU;
//! 4. sim input edge → MQTT, 1000 edges;
//! 5. start → first MQTT message, median of 5, for every agent;
//! 6. instructions per stats cycle under callgrind;
//! 7. sizes of the stripped static binaries from `cross/build.sh`.
//!
//! Writes everything to `target/bench/footprint.json` (with the per-second
//! samples); `scripts/bench_report.py` turns it into tables and a plot.
//!
//! Environment: `MAJORTOM_BENCH_MUSL` (the static x86_64 binary; default
//! `target/arm/x86_64-unknown-linux-musl/release/majortom`),
//! `MAJORTOM_BENCH_VENV` (mqtt-io's virtualenv), `MAJORTOM_BENCH_STEADY_S`
//! (default 75), `MAJORTOM_BENCH_QUICK=1` (short windows, for trying the
//! bench itself; its numbers are not the ones to publish).

#[allow(unused_imports)]
#[path = "../../tests/e2e/support/mod.rs"]
mod support;

mod agents;
mod callgrind;
mod clients;
mod edge;
mod procfs;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use agents::Proc;
use clients::{SseClient, Subscriber};
use procfs::Usage;

const INTERVAL_S: u32 = 1;
const START_RUNS: usize = 5;
const EDGES: usize = 1000;
const SSE_CLIENTS: u8 = 50;

struct Options {
    steady: Duration,
    /// Where the steady window for RSS starts.
    rss_from: Duration,
    /// Where the CPU window starts.
    cpu_from: Duration,
    wrk_seconds: u32,
    sse_window: Duration,
    callgrind_cycles: (usize, usize),
    quick: bool,
}

impl Options {
    fn from_env() -> Options {
        let quick = std::env::var("MAJORTOM_BENCH_QUICK").is_ok_and(|v| v == "1");
        let steady_s: u64 = std::env::var("MAJORTOM_BENCH_STEADY_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 20 } else { 75 });
        Options {
            steady: Duration::from_secs(steady_s),
            rss_from: Duration::from_secs(if steady_s >= 70 { 60 } else { steady_s * 3 / 4 }),
            cpu_from: Duration::from_secs(if steady_s >= 70 { 15 } else { steady_s / 4 }),
            wrk_seconds: if quick { 3 } else { 10 },
            sse_window: Duration::from_secs(if quick { 5 } else { 20 }),
            callgrind_cycles: if quick { (2, 5) } else { (5, 25) },
            quick,
        }
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn musl_binary() -> Option<PathBuf> {
    let path = std::env::var_os("MAJORTOM_BENCH_MUSL")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/arm/x86_64-unknown-linux-musl/release/majortom"));
    path.is_file().then_some(path)
}

fn say(what: &str) {
    eprintln!("==> {what}");
}

/// One program's readings over the steady phase.
struct Series {
    proc: Proc,
    samples: Vec<(Duration, Usage)>,
}

impl Series {
    fn summary(&self, options: &Options) -> Json {
        let steady: Vec<&Usage> = self
            .samples
            .iter()
            .filter(|(t, _)| *t >= options.rss_from)
            .map(|(_, u)| u)
            .collect();
        let mean = |f: fn(&Usage) -> u64| steady.iter().map(|u| f(u) as f64).sum::<f64>() / steady.len().max(1) as f64;
        let first = self.samples.iter().find(|(t, _)| *t >= options.cpu_from);
        let last = self.samples.last();
        let (cpu, cpu_ticks, wakeups) = match (first, last) {
            (Some((t0, u0)), Some((t1, u1))) if t1 > t0 => (
                procfs::cpu_percent(u0, u1, *t1 - *t0),
                procfs::cpu_percent_ticks(u0, u1, *t1 - *t0),
                u1.sleeps.saturating_sub(u0.sleeps) as f64 / (*t1 - *t0).as_secs_f64(),
            ),
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        json!({
            "pid": self.proc.pid(),
            "rss_mib": procfs::mib(mean(|u| u.rss_kib)),
            "pss_mib": procfs::mib(mean(|u| u.pss_kib)),
            "rss_max_mib": procfs::mib(self.samples.iter().map(|(_, u)| u.rss_kib).max().unwrap_or(0) as f64),
            "cpu_percent": cpu,
            "cpu_percent_ticks": cpu_ticks,
            "wakeups_per_s": wakeups,
            "threads": last.map(|(_, u)| u.threads),
            "samples": self.samples.iter().map(|(t, u)| json!([t.as_secs_f64(), u.rss_kib, u.pss_kib, u.cpu_ns])).collect::<Vec<_>>(),
        })
    }
}

fn main() {
    if let Some(threads) = std::env::var_os(agents::SLEEPER) {
        agents::sleep_forever(threads.to_str().and_then(|t| t.parse().ok()).unwrap_or(1));
    }
    bench();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn bench() {
    let options = Options::from_env();
    let out_dir = manifest_dir().join("target/bench");
    std::fs::create_dir_all(&out_dir).expect("target/bench");
    let glibc = PathBuf::from(support::binary());
    let musl = musl_binary();
    if musl.is_none() {
        eprintln!(
            "warning: no static musl binary (run scripts/bench.sh, which builds it); measuring the glibc build only"
        );
    }
    // The binaries under test, the one the targets are for first.
    let mut builds: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(musl) = &musl {
        builds.push(("majortom-musl", musl.clone()));
    }
    builds.push(("majortom-glibc", glibc.clone()));
    let main_build = builds[0].0;

    // Other work on the machine disturbs the CPU and latency figures; the
    // load average says how busy it was.
    let load_at_start = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    // Nagle off on the broker's side too (mosquitto's default is on): else
    // edges back to back wait up to 40 ms in mosquitto for the
    // subscriber's delayed ACK (docs/PERFORMANCE.md › Edge latency).
    let broker = support::Broker::start_with(support::free_port(), "allow_anonymous true\nset_tcp_nodelay true\n");
    let root = agents::sensor_root();
    let mut report = BTreeMap::<&str, Json>::new();
    report.insert("machine", machine());
    report.insert("versions", versions());
    report.insert(
        "options",
        json!({
            "interval_s": INTERVAL_S,
            "steady_s": options.steady.as_secs(),
            "rss_window_from_s": options.rss_from.as_secs(),
            "cpu_window_from_s": options.cpu_from.as_secs(),
            "wrk": format!("wrk -t2 -c20 -d{}s --latency", options.wrk_seconds),
            "quick": options.quick,
            "main_build": main_build,
        }),
    );

    // ---- 1. steady state ------------------------------------------------------------
    say(&format!("steady state: every agent for {} s", options.steady.as_secs()));
    let node_exporter_port = support::free_port();
    let mut state_dirs = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for (name, binary) in &builds {
        let state = tempfile::tempdir().expect("tempdir");
        let node = name.replace('-', "_");
        let config = agents::majortom_config(&node, Some(broker.port), root.path(), state.path(), INTERVAL_S);
        series.push(Series {
            proc: agents::majortom(name, binary, &config, &[]),
            samples: Vec::new(),
        });
        state_dirs.push(state);
    }
    series.push(Series {
        proc: agents::collectd("collectd", broker.port, "collectd_steady", INTERVAL_S),
        samples: Vec::new(),
    });
    series.push(Series {
        proc: agents::mqtt_io("mqtt-io", broker.port, "mqtt_io_steady", INTERVAL_S),
        samples: Vec::new(),
    });
    series.push(Series {
        proc: agents::node_exporter(node_exporter_port),
        samples: Vec::new(),
    });
    for threads in [1, 3] {
        series.push(Series {
            proc: agents::sleeper(threads),
            samples: Vec::new(),
        });
    }
    let phase_start = Instant::now();
    // One dashboard on each majortom, as in issue 7's realistic config.
    let mut web = BTreeMap::new();
    let mut dashboards = Vec::new();
    for s in series.iter_mut().filter(|s| s.proc.name.starts_with("majortom")) {
        let addr = s.proc.web_addr();
        web.insert(s.proc.name.clone(), addr);
        let client = SseClient::open(addr);
        assert_eq!(client.status, 200, "{}: GET /api/events", s.proc.name);
        dashboards.push(client);
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while phase_start.elapsed() <= options.steady {
        ticker.tick().await;
        let t = phase_start.elapsed();
        for s in &mut series {
            let usage = procfs::usage(s.proc.pid());
            match usage {
                Some(u) => s.samples.push((t, u)),
                None => panic!("{} exited during the steady phase:\n{}", s.proc.name, s.proc.log()),
            }
        }
    }
    let mut steady = serde_json::Map::new();
    for s in &series {
        steady.insert(s.proc.name.clone(), s.summary(&options));
    }
    for client in &dashboards {
        assert!(
            client.bytes.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "a dashboard client received nothing"
        );
    }
    report.insert("steady", Json::Object(steady));
    let mut by_name: BTreeMap<String, Series> = series.into_iter().map(|s| (s.proc.name.clone(), s)).collect();
    // collectd and mqtt-io are done; stop them so they do not disturb the
    // load phases.
    for name in ["collectd", "mqtt-io", "sleeper", "sleeper-3"] {
        if let Some(mut s) = by_name.remove(name) {
            s.proc.stop(Duration::from_secs(5));
        }
    }

    // ---- 2. HTTP throughput -----------------------------------------------------------
    let mut http = Vec::new();
    let mut targets: Vec<(String, String)> = Vec::new();
    for (name, addr) in &web {
        targets.push((name.clone(), format!("http://{addr}/api/state")));
        targets.push((name.clone(), format!("http://{addr}/metrics")));
    }
    targets.push((
        "node-exporter".to_owned(),
        format!("http://127.0.0.1:{node_exporter_port}/metrics"),
    ));
    for (name, url) in targets {
        say(&format!("wrk on {name}: {url}"));
        let pid = by_name[&name].proc.pid();
        let seconds = options.wrk_seconds;
        let before = procfs::usage(pid).expect("alive");
        let started = Instant::now();
        let sampler = tokio::task::spawn_blocking(move || {
            let mut max_rss = 0;
            let mut max_pss = 0;
            let end = Instant::now() + Duration::from_secs(u64::from(seconds)) + Duration::from_millis(300);
            while Instant::now() < end {
                if let Some(u) = procfs::usage(pid) {
                    max_rss = max_rss.max(u.rss_kib);
                    max_pss = max_pss.max(u.pss_kib);
                }
                // The sampling period of the peak.
                std::thread::sleep(Duration::from_millis(100));
            }
            (max_rss, max_pss)
        });
        let url_for_wrk = url.clone();
        let result = tokio::task::spawn_blocking(move || clients::wrk(&url_for_wrk, 2, 20, seconds))
            .await
            .expect("wrk thread");
        let elapsed = started.elapsed();
        let after = procfs::usage(pid).expect("alive");
        let (max_rss, max_pss) = sampler.await.expect("sampler");
        // The figure is the RSS 2 s after the load (`rss_after_2s_mib`).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let settled = procfs::usage(pid).expect("alive");
        eprintln!(
            "    {:.0} req/s, p99 {:.2} ms, RSS max {:.2} MiB",
            result.requests_per_s,
            result.p99_ms,
            procfs::mib(max_rss as f64)
        );
        http.push(json!({
            "agent": name,
            "wrk": result,
            "rss_before_mib": procfs::mib(before.rss_kib as f64),
            "rss_max_mib": procfs::mib(max_rss as f64),
            "pss_max_mib": procfs::mib(max_pss as f64),
            "rss_after_2s_mib": procfs::mib(settled.rss_kib as f64),
            "cpu_percent": procfs::cpu_percent(&before, &after, elapsed),
        }));
    }
    report.insert("http", Json::Array(http));
    if let Some(mut s) = by_name.remove("node-exporter") {
        s.proc.stop(Duration::from_secs(5));
    }

    // ---- 3. 50 dashboards -------------------------------------------------------------
    let mut sse = serde_json::Map::new();
    for (name, addr) in &web {
        say(&format!("{SSE_CLIENTS} dashboard clients on {name}"));
        let pid = by_name[name].proc.pid();
        let before = procfs::usage(pid).expect("alive");
        // 50 browsers: each from its own loopback address (127.0.0.2 on),
        // as the agent's per-address caps (8 streams, 16 connections)
        // count clients; from one address all but 8 would be refused.
        let clients: Vec<SseClient> = (0..SSE_CLIENTS)
            .map(|n| SseClient::open_from(Some(Ipv4Addr::new(127, 0, 0, 2 + n)), *addr))
            .collect();
        let served = clients.iter().filter(|c| c.status == 200).count();
        let refused = clients.iter().filter(|c| c.status == 503).count();
        // 3 s of warm-up, then the measured window.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let u1 = procfs::usage(pid).expect("alive");
        let t1 = Instant::now();
        tokio::time::sleep(options.sse_window).await;
        let u2 = procfs::usage(pid).expect("alive");
        let cpu = procfs::cpu_percent(&u1, &u2, t1.elapsed());
        let received: u64 = clients
            .iter()
            .map(|c| c.bytes.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        drop(clients);
        // The RSS 2 s after the clients left.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = procfs::usage(pid).expect("alive");
        eprintln!(
            "    {served} served, {refused} refused; RSS {:.2} MiB, CPU {:.3} %",
            procfs::mib(u2.rss_kib as f64),
            cpu
        );
        sse.insert(
            name.clone(),
            json!({
                "clients": SSE_CLIENTS,
                "served": served,
                "refused_503": refused,
                "rss_before_mib": procfs::mib(before.rss_kib as f64),
                "rss_mib": procfs::mib(u2.rss_kib as f64),
                "pss_mib": procfs::mib(u2.pss_kib as f64),
                "rss_after_close_mib": procfs::mib(after.rss_kib as f64),
                "cpu_percent": cpu,
                "window_s": options.sse_window.as_secs(),
                "bytes_received": received,
            }),
        );
    }
    report.insert("sse", Json::Object(sse));

    // ---- 4. edge → MQTT ---------------------------------------------------------------
    let mut edges = serde_json::Map::new();
    for (name, addr) in &web {
        say(&format!("edge → MQTT on {name}, {EDGES} edges"));
        let node = name.replace('-', "_");
        let result = edge::measure(
            *addr,
            broker.port,
            &node,
            "input_0",
            EDGES,
            Duration::ZERO,
            "PUT /api/sim/inputs (sim backend, debounce 0), from the edge's edge_ns to a loopback mosquitto subscriber; request: from just before the PUT; floor: the bench's own publish to the same subscriber",
        )
        .await;
        eprintln!(
            "    p50 {} µs, p99 {} µs, max {} µs (floor p50 {} µs, p99 {} µs)",
            result.p50_us, result.p99_us, result.max_us, result.floor_p50_us, result.floor_p99_us
        );
        edges.insert(name.clone(), serde_json::to_value(result).expect("json"));
    }
    report.insert("edge", Json::Object(edges));
    drop(dashboards);
    for (_, mut s) in by_name {
        s.proc.stop(Duration::from_secs(5));
    }

    // ---- 5. start → first MQTT message ------------------------------------------------
    let mut start = serde_json::Map::new();
    let kinds: Vec<String> = builds
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .chain(["collectd".to_owned(), "mqtt-io".to_owned()])
        .collect();
    for kind in &kinds {
        say(&format!("start → first MQTT message: {kind}, {START_RUNS} runs"));
        let mut runs = Vec::new();
        for run in 0..START_RUNS {
            let prefix = format!("start_{}_{run}_{}", kind.replace('-', "_"), std::process::id());
            let (filter, spawn): (String, Box<dyn Fn() -> Proc>) = match kind.as_str() {
                "collectd" => (format!("{prefix}/#"), {
                    let (port, prefix) = (broker.port, prefix.clone());
                    Box::new(move || agents::collectd("collectd", port, &prefix, INTERVAL_S))
                }),
                "mqtt-io" => (format!("{prefix}/#"), {
                    let (port, prefix) = (broker.port, prefix.clone());
                    Box::new(move || agents::mqtt_io("mqtt-io", port, &prefix, INTERVAL_S))
                }),
                _ => {
                    let binary = builds
                        .iter()
                        .find(|(n, _)| n == kind)
                        .map(|(_, b)| b.clone())
                        .expect("build");
                    let state = tempfile::tempdir().expect("tempdir");
                    let config =
                        agents::majortom_config(&prefix, Some(broker.port), root.path(), state.path(), INTERVAL_S);
                    let name = kind.clone();
                    state_dirs.push(state);
                    (
                        format!("majortom/{prefix}/#"),
                        Box::new(move || agents::majortom(&name, &binary, &config, &[])),
                    )
                }
            };
            let mut subscriber = Subscriber::connect(broker.port, &filter).await;
            let t0 = Instant::now();
            let mut proc = spawn();
            let (at, topic, _) = subscriber
                .next(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("{kind} published nothing within 30 s:\n{}", proc.log()));
            let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            eprintln!("    {ms:.1} ms ({topic})");
            runs.push(ms);
            proc.stop(Duration::from_secs(5));
        }
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        start.insert(
            kind.clone(),
            json!({ "runs_ms": runs, "median_ms": sorted[sorted.len() / 2] }),
        );
    }
    report.insert("start", Json::Object(start));

    // ---- 6. callgrind -------------------------------------------------------------------
    let (short, long) = options.callgrind_cycles;
    let callgrind_binary = builds[0].1.clone();
    say(&format!(
        "callgrind: {} cycles, then {} cycles ({main_build})",
        short, long
    ));
    let counted = callgrind::measure(&callgrind_binary, broker.port, root.path(), short, long).await;
    eprintln!("    {} instructions per cycle", counted.per_cycle);
    report.insert("callgrind", serde_json::to_value(counted).expect("json"));

    // ---- 7. binary sizes ------------------------------------------------------------------
    let mut sizes = serde_json::Map::new();
    for target in [
        "arm-unknown-linux-musleabihf",
        "armv7-unknown-linux-musleabihf",
        "aarch64-unknown-linux-musl",
        "x86_64-unknown-linux-musl",
    ] {
        let path = manifest_dir().join("target/arm").join(target).join("release/majortom");
        sizes.insert(target.to_owned(), json!(std::fs::metadata(&path).ok().map(|m| m.len())));
    }
    sizes.insert(
        "x86_64-unknown-linux-gnu".to_owned(),
        json!(std::fs::metadata(&glibc).ok().map(|m| m.len())),
    );
    report.insert("sizes_bytes", Json::Object(sizes));

    report.insert(
        "loadavg",
        json!({ "start": load_at_start, "end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim() }),
    );
    let path = out_dir.join("footprint.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("json")).expect("write footprint.json");
    say(&format!("wrote {}", path.display()));
}

/// The machine, as PERFORMANCE.md records it.
fn machine() -> Json {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "os": os,
    })
}

/// The versions of everything measured or measuring.
fn versions() -> Json {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let deb = |package: &str| run("dpkg-query", &["-W", "-f=${Version}", package]);
    let python = agents::venv().join("bin/python");
    json!({
        "majortom": env!("CARGO_PKG_VERSION"),
        "rustc": run("rustc", &["--version"]),
        "collectd": deb("collectd-core"),
        "mqtt-io": run(
            &python.display().to_string(),
            &["-c", "import importlib.metadata as m; print(m.version('mqtt-io'))"],
        ),
        "python": run(&python.display().to_string(), &["--version"]),
        "prometheus-node-exporter": deb("prometheus-node-exporter"),
        "mosquitto": deb("mosquitto"),
        "wrk": deb("wrk"),
        "valgrind": run("valgrind", &["--version"]),
    })
}
