//! What a process costs, read from `/proc/<pid>`: resident and proportional
//! set size from `smaps_rollup`, and CPU time both from the scheduler's
//! nanosecond counters (`task/*/schedstat`) and from `stat`'s clock ticks.
//!
//! The tick counters include threads that have exited but move in 10 ms
//! steps, which is 0.017 % of a core over a minute: too coarse for an agent
//! that should use 0.03 %. The scheduler's counters are exact but cover only
//! the threads alive at the time of reading; both are kept, and the report
//! uses the nanoseconds.

use std::time::Duration;

/// One reading of one process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Usage {
    pub rss_kib: u64,
    pub pss_kib: u64,
    /// On-CPU time of the live threads, from `task/*/schedstat`.
    pub cpu_ns: u64,
    /// utime + stime from `stat`, in nanoseconds (10 ms resolution).
    pub cpu_ticks_ns: u64,
    pub threads: u64,
    /// How many times the live threads went to sleep (voluntary context
    /// switches, `task/*/status`): each is a wake-up later.
    pub sleeps: u64,
}

/// `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (rss_kib, pss_kib) = (field("Rss:"), field("Pss:"));
    let mut cpu_ns = 0;
    let mut threads = 0;
    let mut sleeps = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("status")) {
            sleeps += text
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|count| count.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            cpu_ns += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
            threads += 1;
        }
    }
    Some(Usage {
        rss_kib,
        pss_kib,
        cpu_ns,
        cpu_ticks_ns: cpu_ticks_ns(pid)?,
        threads,
        sleeps,
    })
}

fn cpu_ticks_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime are fields 14 and 15; the command name in parentheses
    // may hold spaces, so count from after it.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some(ticks * 1_000_000_000 / hz)
}

/// CPU use between two readings, in percent of one core.
pub fn cpu_percent(before: &Usage, after: &Usage, elapsed: Duration) -> f64 {
    let ns = after.cpu_ns.saturating_sub(before.cpu_ns) as f64;
    100.0 * ns / elapsed.as_nanos() as f64
}

/// The same from the tick counters.
pub fn cpu_percent_ticks(before: &Usage, after: &Usage, elapsed: Duration) -> f64 {
    let ns = after.cpu_ticks_ns.saturating_sub(before.cpu_ticks_ns) as f64;
    100.0 * ns / elapsed.as_nanos() as f64
}

pub fn mib(kib: f64) -> f64 {
    kib / 1024.0
}
