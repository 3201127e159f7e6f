//! Availability through the agent's life: online after connect, offline on a
//! clean stop and, through the Last Will, after a crash.

use std::time::{Duration, Instant};

use crate::support::{binary, retained_payload, test_config, wait_for, wait_retained, Agent, Broker, Observer};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_should_publish_offline_retained_and_exit_zero_within_two_seconds() {
    let broker = Broker::start();
    let mut agent = Agent::start(&test_config("term", broker.port, "")).await;
    assert_eq!(
        wait_retained(broker.port, "majortom/term/status", Duration::from_secs(10)).await,
        "online"
    );
    // The web server answers while running, where the ready file says.
    assert_eq!(agent.get("/api/health").0, 200);
    let ready = agent.ready().expect("ready file");
    assert_eq!(ready["pid"], agent.pid());
    assert_eq!(ready["node"], "term");
    assert_eq!(ready["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(ready["web"].as_str(), agent.web.map(|a| a.to_string()).as_deref());

    let stopping = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(2)).await;
    let status = status.unwrap_or_else(|| panic!("still running 2 s after SIGTERM; log: {}", agent.log()));
    assert!(status.success(), "exit status {status:?}; log: {}", agent.log());
    assert_eq!(
        retained_payload(broker.port, "majortom/term/status").await.as_deref(),
        Some("offline")
    );
    assert!(agent.log().contains("published offline"), "{}", agent.log());
    eprintln!("stopped in {:?}", stopping.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_should_stop_cleanly_too() {
    let broker = Broker::start();
    let mut agent = Agent::start(&test_config("int", broker.port, "")).await;
    wait_retained(broker.port, "majortom/int/status", Duration::from_secs(10)).await;
    agent.signal(libc::SIGINT);
    let status = agent.wait_exit(Duration::from_secs(2)).await.expect("exited");
    assert!(status.success());
    assert_eq!(
        retained_payload(broker.port, "majortom/int/status").await.as_deref(),
        Some("offline")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_should_leave_offline_through_the_last_will() {
    let broker = Broker::start();
    let mut agent = Agent::start(&test_config("kill", broker.port, "")).await;
    let observer = Observer::connect(broker.port, "majortom/kill/status").await;
    observer
        .wait_for_message("majortom/kill/status", Duration::from_secs(10), |m| {
            m.payload == "online"
        })
        .await;

    agent.signal(libc::SIGKILL);
    agent.wait_exit(Duration::from_secs(5)).await.expect("killed");
    observer
        .wait_for_message("majortom/kill/status", Duration::from_secs(10), |m| {
            m.payload == "offline"
        })
        .await;
    assert_eq!(
        retained_payload(broker.port, "majortom/kill/status").await.as_deref(),
        Some("offline"),
        "the will is retained"
    );
}

/// The agent's resident pages of files (its own code and read-only data,
/// mostly), in KiB: `Pss_File` of /proc/PID/smaps_rollup.
fn resident_file_kib(pid: i32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss_File:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("Pss_File")
}

/// Once start-up is over, the code pages only start-up ran (config
/// parsing, TLS, discovery) are given back; the rounds map back what they
/// use, and the resident code stays well below what start-up left (about
/// a fifth less in release builds, a quarter in debug ones; without the
/// release it stays the same or grows).
#[tokio::test(flavor = "multi_thread")]
async fn code_pages_only_start_up_used_should_be_given_back() {
    let broker = Broker::start();
    // Its own copy of the binary, written to disk: the kernel pages out
    // only pages no other process maps (the other tests' agents run the
    // same file) and only clean ones.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("majortom");
    std::fs::copy(binary(), &copy).expect("copy the binary");
    std::fs::File::open(&copy)
        .and_then(|file| file.sync_all())
        .expect("sync the copy");
    let config = test_config("resident", broker.port, "[system]\ninterval_s = 1\n");
    let agent = Agent::start_program(std::process::Command::new(&copy), &config).await;
    wait_retained(broker.port, "majortom/resident/uptime/state", Duration::from_secs(10)).await;
    let after_start_up = resident_file_kib(agent.pid());
    // The release comes 15 s after readiness (resident::STARTUP_SETTLES).
    wait_for("the resident code to shrink", Duration::from_secs(40), || {
        (resident_file_kib(agent.pid()) * 10 < after_start_up * 9).then_some(())
    })
    .await;
    // Two more rounds, mapping back what a round runs.
    let observer = Observer::connect(broker.port, "majortom/resident/uptime/state").await;
    observer.sync().await;
    observer.clear();
    observer
        .wait_for_message("majortom/resident/uptime/state", Duration::from_secs(5), |_| true)
        .await;
    observer.clear();
    observer
        .wait_for_message("majortom/resident/uptime/state", Duration::from_secs(5), |_| true)
        .await;
    let steady = resident_file_kib(agent.pid());
    assert!(
        steady * 10 < after_start_up * 9,
        "resident file pages: {after_start_up} KiB after start-up, {steady} KiB after the release and two rounds\n{}",
        agent.log()
    );
}
