//! How often the agent's threads wake up: on an idle Pi a wake-up costs
//! more than the round's work (docs/PERFORMANCE.md, issue 19), so the
//! runtime thread should wake once per round for the system stats and the
//! sensors on the same grid together, not once for each sensor's answer and
//! once more for tokio's timer wheel. Counted by the kernel: a thread's
//! voluntary context switches are the times it went to sleep.

use std::time::{Duration, Instant};

use crate::support::{merged_root, Agent, Broker, Observer, TEST_TOKEN};

/// The voluntary context switches of each thread of `pid`, by thread name;
/// the runtime thread (the main thread: its id is the pid) as `runtime`.
fn sleeps_by_thread(pid: i32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read the agent's threads") {
        let task = task.expect("thread entry").path();
        let name = if task.ends_with(pid.to_string()) {
            "runtime".to_owned()
        } else {
            std::fs::read_to_string(task.join("comm")).expect("thread name")
        };
        let status = std::fs::read_to_string(task.join("status")).expect("thread status");
        let sleeps = status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse().ok())
            .expect("voluntary_ctxt_switches in the thread's status");
        threads.push((name.trim().to_owned(), sleeps));
    }
    threads.sort();
    threads
}

#[tokio::test]
async fn the_runtime_thread_should_wake_once_a_round_for_the_system_stats_and_the_sensors_together() {
    let broker = Broker::start();
    // The real /proc for the system stats, the DS18B20 and DHT11 fixtures
    // for two sensors on reading threads, all every second (the sensors'
    // shortest interval). The keepalive is the default's 30 s and more, so
    // that its pings do not blur the count.
    let root = merged_root(&["w1", "iio"]);
    std::os::unix::fs::symlink("/proc", root.path().join("proc")).expect("link /proc into the root");
    let period = Duration::from_secs(1);
    let config = format!(
        "[node]\nid = \"wakes\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive_s = 60\n\n\
         [web]\nbind = \"127.0.0.1\"\nport = 0\ntoken = \"{TEST_TOKEN}\"\n\n\
         [system]\ninterval_s = 1\nroot = \"{root}\"\n\n[gpio]\nbackend = \"sim\"\nauto_ds18b20 = false\n\n\
         [[sensors]]\nkind = \"ds18b20\"\nname = \"garden\"\nid = \"28-0316a2795cff\"\ninterval_s = 1\n\n\
         [[sensors]]\nkind = \"iio\"\nname = \"living\"\ndevice = \"dht11\"\ninterval_s = 1\n",
        port = broker.port,
        root = root.path().display()
    );
    let observer = Observer::connect(broker.port, "majortom/wakes/#").await;
    let agent = Agent::start(&config).await;
    // Running: both sensors have been read and published.
    for topic in ["majortom/wakes/garden/state", "majortom/wakes/living_humidity/state"] {
        observer
            .wait_for_message(topic, Duration::from_secs(10), |_| true)
            .await;
    }

    let window = Duration::from_secs(8);
    let before = sleeps_by_thread(agent.pid());
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = sleeps_by_thread(agent.pid());
    // At most this many rounds fit in the window (fewer if the machine is
    // loaded and a round comes late): per round, the counts err high.
    let rounds = started.elapsed().as_secs_f64() / period.as_secs_f64();
    let per_round = |name: &str| {
        let total = |threads: &[(String, u64)]| -> u64 {
            threads
                .iter()
                .filter(|(thread, _)| thread == name)
                .map(|(_, n)| n)
                .sum()
        };
        (total(&after) - total(&before)) as f64 / rounds
    };
    let (runtime, readers) = (per_round("runtime"), per_round("sensor"));
    eprintln!("sleeps per round: runtime thread {runtime:.2}, the two reading threads {readers:.2}");
    // Once a round, plus what may come late on a loaded machine. Before,
    // 2.75 (`d4e3ad5`): tokio's timer wheel woke it at the start of the
    // 64 ms slot holding each tick, and the sensors' answers once more.
    assert!(
        runtime < 1.7,
        "the runtime thread slept {runtime:.2} times a round (threads before: {before:?}, after: {after:?})"
    );
    // Each reading thread once a round: woken by its own read-ahead timer.
    assert!(
        readers < 2.0 * 1.5,
        "the reading threads slept {readers:.2} times a round"
    );
    assert!(readers > 0.0, "the sensors were not read on their threads");
}
