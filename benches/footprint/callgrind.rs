//! Instructions per stats cycle, counted by `valgrind --tool=callgrind`.
//!
//! Instruction counts do not depend on what else the machine is doing, so
//! two builds can be compared on a noisy machine. The agent runs the
//! realistic config (MQTT on, the dashboard on with no client) under
//! callgrind; a subscriber counts the `uptime` states it publishes (one per
//! system stats round) and the agent gets SIGTERM right after the N-th. The
//! total for N1 rounds is subtracted from the total for N2 rounds, so
//! start-up and shutdown cancel out:
//!
//!     per cycle = (I(N2) − I(N1)) / (N2 − N1)
//!
//! A cycle so counted holds everything the agent does in one second: the
//! system round, the two sensors (also at 1 s, so one round each, give or
//! take one over the window), the hub, and the MQTT publishes.

use std::path::Path;
use std::time::Duration;

use crate::agents;
use crate::clients::Subscriber;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Callgrind {
    pub cycles_short: usize,
    pub cycles_long: usize,
    pub instructions_short: u64,
    pub instructions_long: u64,
    pub per_cycle: u64,
    pub binary: String,
    pub method: &'static str,
}

/// Total instructions of one run of `binary` stopped after `cycles` rounds.
async fn run(binary: &Path, broker_port: u16, root: &Path, cycles: usize) -> u64 {
    let node = format!("callgrind_{cycles}_{}", std::process::id());
    let state = tempfile::tempdir().expect("tempdir");
    let config = agents::majortom_config(&node, Some(broker_port), root, state.path(), 1);
    let out = tempfile::tempdir().expect("tempdir");
    let out_file = out.path().join("callgrind.out");
    let mut subscriber = Subscriber::connect(broker_port, &format!("majortom/{node}/uptime/state")).await;
    let out_arg = format!("--callgrind-out-file={}", out_file.display());
    let mut agent = agents::majortom(
        "callgrind",
        binary,
        &config,
        &["valgrind", "--tool=callgrind", "--quiet", &out_arg],
    );
    subscriber
        .nth_on(
            &format!("majortom/{node}/uptime/state"),
            cycles,
            Duration::from_secs(60 + 3 * cycles as u64),
        )
        .await;
    agent.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while agent.running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent under callgrind did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text =
        std::fs::read_to_string(&out_file).unwrap_or_else(|e| panic!("no callgrind output ({e}):\n{}", agent.log()));
    text.lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no totals in callgrind output:\n{}", agent.log()))
}

pub async fn measure(binary: &Path, broker_port: u16, root: &Path, short: usize, long: usize) -> Callgrind {
    let instructions_short = run(binary, broker_port, root, short).await;
    let instructions_long = run(binary, broker_port, root, long).await;
    Callgrind {
        cycles_short: short,
        cycles_long: long,
        instructions_short,
        instructions_long,
        per_cycle: instructions_long.saturating_sub(instructions_short) / (long - short) as u64,
        binary: binary.display().to_string(),
        method: "valgrind --tool=callgrind; realistic config with MQTT on, system and sensors at 1 s, no HTTP client; SIGTERM after the N-th uptime state at a subscriber; (I(N2)-I(N1))/(N2-N1)",
    }
}
