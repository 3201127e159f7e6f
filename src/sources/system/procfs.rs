//! Pure parsers for the `/proc` files the system source reads, and the rate
//! arithmetic over two of their samples.
//!
//! Nothing here touches the filesystem: every function takes the file's text
//! so that odd kernels and damaged files are tested as plain strings. Reading
//! the files, and deciding which ones exist, is `mod.rs`'s job.

use std::time::Duration;

/// Why a file's text could not be understood. Every parser returns one of
/// these rather than panicking, whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("the file is empty")]
    Empty,
    #[error("no `{0}` in the file")]
    Missing(&'static str),
    #[error("`{field}` is not a number: {value:?}")]
    NotANumber { field: &'static str, value: String },
    #[error("`{0}` is zero, so no percentage can be computed")]
    Zero(&'static str),
}

fn number<T: std::str::FromStr>(field: &'static str, text: Option<&str>) -> Result<T, ParseError> {
    let text = text.ok_or(ParseError::Missing(field))?;
    text.parse().map_err(|_| ParseError::NotANumber {
        field,
        value: text.to_owned(),
    })
}

fn non_empty(text: &str) -> Result<&str, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        Err(ParseError::Empty)
    } else {
        Ok(trimmed)
    }
}

/// The aggregate CPU time counters of `/proc/stat`, in jiffies since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// Time spent doing anything but idling or waiting for I/O.
    pub busy: u64,
    pub total: u64,
}

/// Reads the `cpu ` aggregate line of `/proc/stat`.
pub(crate) fn parse_stat(text: &str) -> Result<CpuTimes, ParseError> {
    non_empty(text)?;
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("cpu "))
        .ok_or(ParseError::Missing("cpu"))?;
    const NAMES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
    let mut fields = [0u64; 8];
    let mut words = line.split_whitespace();
    for (index, name) in NAMES.iter().enumerate() {
        match words.next() {
            Some(word) => fields[index] = number(name, Some(word))?,
            // Kernels before 2.6 stop after `idle`; what they lack counts as
            // zero. Fewer than four fields is a broken file, not an old one.
            None if index >= 4 => break,
            None => return Err(ParseError::Missing(name)),
        }
    }
    // `guest` and `guest_nice` (fields 9 and 10) are already included in
    // `user` and `nice`; adding them would count that time twice.
    let total = fields.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
    let idle = fields[3].saturating_add(fields[4]);
    Ok(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// The share of CPU time spent busy between two samples, in percent. `None`
/// when a counter went backwards (which only a damaged file can cause).
pub(crate) fn cpu_usage(previous: CpuTimes, current: CpuTimes) -> Option<f64> {
    let total = current.total.checked_sub(previous.total)?;
    let busy = current.busy.checked_sub(previous.busy)?;
    if total == 0 {
        // No time passed in the kernel's eyes (two samples within a jiffy).
        return Some(0.0);
    }
    Some((busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
}

/// `/proc/loadavg`: the run-queue averages over 1, 5 and 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

pub(crate) fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
    let mut words = non_empty(text)?.split_whitespace();
    Ok(LoadAvg {
        one: number("load 1 min", words.next())?,
        five: number("load 5 min", words.next())?,
        fifteen: number("load 15 min", words.next())?,
    })
}

/// What the memory entities show, from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Memory {
    pub used_percent: f64,
    pub swap_used_percent: f64,
}

/// Reads `/proc/meminfo` (values in kB; only ratios are computed, so the
/// unit does not matter).
pub(crate) fn parse_meminfo(text: &str) -> Result<Memory, ParseError> {
    non_empty(text)?;
    let field = |name: &'static str| -> Result<Option<u64>, ParseError> {
        let Some(rest) = text
            .lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        else {
            return Ok(None);
        };
        number(name, rest.split_whitespace().next()).map(Some)
    };
    let total = field("MemTotal")?.ok_or(ParseError::Missing("MemTotal"))?;
    if total == 0 {
        return Err(ParseError::Zero("MemTotal"));
    }
    let available = match field("MemAvailable")? {
        Some(available) => available,
        // Kernels before 3.14 have no MemAvailable; free plus the caches the
        // kernel can drop is the estimate `free` used then.
        None => {
            let free = field("MemFree")?.ok_or(ParseError::Missing("MemFree"))?;
            let buffers = field("Buffers")?.ok_or(ParseError::Missing("Buffers"))?;
            let cached = field("Cached")?.ok_or(ParseError::Missing("Cached"))?;
            free.saturating_add(buffers).saturating_add(cached)
        }
    };
    let used_percent = percent(total.saturating_sub(available), total);

    // A kernel built without swap support may leave the swap lines out; that
    // is "no swap", not a broken file.
    let swap_total = field("SwapTotal")?.unwrap_or(0);
    let swap_used_percent = if swap_total == 0 {
        0.0
    } else {
        let swap_free = field("SwapFree")?.ok_or(ParseError::Missing("SwapFree"))?;
        percent(swap_total.saturating_sub(swap_free), swap_total)
    };
    Ok(Memory {
        used_percent,
        swap_used_percent,
    })
}

/// `part / whole` in percent, clamped to 0..=100; `whole` must not be zero.
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    (part as f64 / whole as f64 * 100.0).clamp(0.0, 100.0)
}

/// The first field of `/proc/uptime`: seconds since boot.
pub(crate) fn parse_uptime(text: &str) -> Result<f64, ParseError> {
    let seconds: f64 = number("uptime", non_empty(text)?.split_whitespace().next())?;
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(seconds)
    } else {
        Err(ParseError::NotANumber {
            field: "uptime",
            value: seconds.to_string(),
        })
    }
}

/// Byte counters of `/proc/net/dev`, summed over every interface but `lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetBytes {
    pub rx: u64,
    pub tx: u64,
}

pub(crate) fn parse_net_dev(text: &str) -> Result<NetBytes, ParseError> {
    non_empty(text)?;
    let mut sum = NetBytes { rx: 0, tx: 0 };
    // The two header lines have no colon; every interface line does. Old
    // kernels print no space after the colon (`eth0:1234`), so split on it
    // rather than on whitespace.
    for (name, counters) in text.lines().filter_map(|line| line.split_once(':')) {
        if name.trim() == "lo" {
            continue;
        }
        let mut words = counters.split_whitespace();
        let rx: u64 = number("receive bytes", words.next())?;
        // Receive has eight columns (bytes packets errs drop fifo frame
        // compressed multicast); transmit bytes is the ninth.
        let tx: u64 = number("transmit bytes", words.nth(7))?;
        sum.rx = sum.rx.saturating_add(rx);
        sum.tx = sum.tx.saturating_add(tx);
    }
    Ok(sum)
}

/// Bytes per second over `elapsed`, in kB/s. `None` when the counter went
/// backwards (an interface was reset or removed) or no time passed.
pub(crate) fn kilobytes_per_second(previous: u64, current: u64, elapsed: Duration) -> Option<f64> {
    let bytes = current.checked_sub(previous)?;
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    Some(bytes as f64 / seconds / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  4705 150 1120 16250 520 0 43 0 0 0
cpu0 1393 38 270 4000 130 0 40 0 0 0
intr 114930 0 0
ctxt 200000
";

    #[test]
    fn stat_should_count_everything_but_idle_and_iowait_as_busy() {
        let times = parse_stat(STAT).expect("valid");
        assert_eq!(times.total, 4705 + 150 + 1120 + 16250 + 520 + 43);
        assert_eq!(times.busy, 4705 + 150 + 1120 + 43);
    }

    #[test]
    fn stat_should_not_count_guest_time_twice() {
        let without = parse_stat("cpu  10 0 0 10 0 0 0 0\n").expect("valid");
        let with = parse_stat("cpu  10 0 0 10 0 0 0 0 7 3\n").expect("valid");
        assert_eq!(without, with);
    }

    #[test]
    fn stat_from_an_old_kernel_should_treat_missing_columns_as_zero() {
        let times = parse_stat("cpu  10 0 5 85\n").expect("valid");
        assert_eq!(times, CpuTimes { busy: 15, total: 100 });
    }

    #[test]
    fn stat_should_reject_odd_input() {
        assert_eq!(parse_stat(""), Err(ParseError::Empty));
        assert_eq!(parse_stat("cpu0 1 2 3 4\n"), Err(ParseError::Missing("cpu")));
        assert_eq!(parse_stat("cpu  1 2 3\n"), Err(ParseError::Missing("idle")));
        assert!(matches!(
            parse_stat("cpu  1 2 x 4\n"),
            Err(ParseError::NotANumber { field: "system", .. })
        ));
        assert!(parse_stat("cpu  -1 2 3 4\n").is_err());
    }

    #[test]
    fn cpu_usage_should_be_the_busy_share_of_elapsed_time() {
        let before = CpuTimes { busy: 100, total: 400 };
        let after = CpuTimes { busy: 175, total: 500 };
        assert_eq!(cpu_usage(before, after), Some(75.0));
        assert_eq!(cpu_usage(before, before), Some(0.0));
        assert_eq!(cpu_usage(after, before), None);
    }

    #[test]
    fn loadavg_should_give_three_averages() {
        let load = parse_loadavg("0.52 0.58 0.59 1/203 1234\n").expect("valid");
        assert_eq!(
            load,
            LoadAvg {
                one: 0.52,
                five: 0.58,
                fifteen: 0.59
            }
        );
    }

    #[test]
    fn loadavg_should_reject_odd_input() {
        assert_eq!(parse_loadavg(" \n"), Err(ParseError::Empty));
        assert_eq!(parse_loadavg("0.52 0.58"), Err(ParseError::Missing("load 15 min")));
        assert!(parse_loadavg("a b c").is_err());
    }

    #[test]
    fn meminfo_should_use_mem_available() {
        let memory = parse_meminfo(
            "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     750 kB\n\
             SwapTotal:        200 kB\nSwapFree:         150 kB\n",
        )
        .expect("valid");
        assert_eq!(memory.used_percent, 25.0);
        assert_eq!(memory.swap_used_percent, 25.0);
    }

    #[test]
    fn meminfo_without_mem_available_should_count_caches_as_free() {
        let memory = parse_meminfo(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n\
             SwapCached: 999 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        )
        .expect("valid");
        assert_eq!(memory.used_percent, 60.0);
        assert_eq!(memory.swap_used_percent, 0.0);
    }

    #[test]
    fn meminfo_should_not_mistake_swap_cached_for_cached() {
        // `SwapCached:` also ends in `Cached:`; only the line that starts
        // with the field name counts.
        let memory = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 0 kB\nSwapCached: 900 kB\n");
        assert_eq!(memory, Err(ParseError::Missing("Cached")));
    }

    #[test]
    fn meminfo_should_reject_odd_input() {
        assert_eq!(parse_meminfo(""), Err(ParseError::Empty));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), Err(ParseError::Missing("MemTotal")));
        assert_eq!(
            parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n"),
            Err(ParseError::Zero("MemTotal"))
        );
        assert!(parse_meminfo("MemTotal: lots\n").is_err());
        assert!(parse_meminfo("MemTotal:\n").is_err());
        assert_eq!(
            parse_meminfo("MemTotal: 10 kB\nMemAvailable: 5 kB\nSwapTotal: 10 kB\n"),
            Err(ParseError::Missing("SwapFree"))
        );
    }

    #[test]
    fn uptime_should_be_the_first_field() {
        assert_eq!(parse_uptime("12345.67 40000.00\n"), Ok(12345.67));
        assert_eq!(parse_uptime(""), Err(ParseError::Empty));
        assert!(parse_uptime("soon").is_err());
        assert!(parse_uptime("NaN 1").is_err());
        assert!(parse_uptime("-5 1").is_err());
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0
  eth0:  1000      10    0    0    0     0          0         0      200       2    0    0    0     0       0          0
wlan0:30 1 0 0 0 0 0 0 4 1 0 0 0 0 0 0
";

    #[test]
    fn net_dev_should_sum_every_interface_but_loopback() {
        assert_eq!(parse_net_dev(NET_DEV), Ok(NetBytes { rx: 1030, tx: 204 }));
    }

    #[test]
    fn net_dev_should_reject_odd_input() {
        assert_eq!(parse_net_dev(""), Err(ParseError::Empty));
        assert_eq!(
            parse_net_dev("eth0: 1 2 3\n"),
            Err(ParseError::Missing("transmit bytes"))
        );
        assert!(parse_net_dev("eth0: x 0 0 0 0 0 0 0 1\n").is_err());
        assert_eq!(parse_net_dev("header only\n"), Ok(NetBytes { rx: 0, tx: 0 }));
    }

    #[test]
    fn rate_should_be_kilobytes_per_second_and_skip_resets() {
        let two = Duration::from_secs(2);
        assert_eq!(kilobytes_per_second(0, 2_000_000, two), Some(1000.0));
        assert_eq!(kilobytes_per_second(500, 100, two), None);
        assert_eq!(kilobytes_per_second(0, 100, Duration::ZERO), None);
    }
}
