//! Pure parsers for the `/proc` files the system source reads, and the rate
//! arithmetic over two of their samples.
//!
//! Nothing here touches the filesystem: every function takes the file's
//! bytes so that odd kernels and damaged files are tested as plain strings.
//! Reading the files, and deciding which ones exist, is `mod.rs`'s job.
//!
//! The parsers scan bytes, not chars (issue 19: they run every round, and
//! UTF-8 decoding was most of their cost). The kernel writes these files in
//! ASCII; words are separated by ASCII whitespace (space, tab, the line
//! ends, vertical tab, form feed: what `char::is_whitespace` accepts below
//! 128), and any other byte, UTF-8 or not, is part of a word. A word that
//! must be a number and is not is an error naming it.

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

impl ParseError {
    fn not_a_number(field: &'static str, word: &[u8]) -> ParseError {
        ParseError::NotANumber {
            field,
            value: String::from_utf8_lossy(word).into_owned(),
        }
    }
}

/// The bytes `char::is_whitespace` accepts below 128.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The words of `text`: runs of bytes that are not whitespace.
struct Words<'a> {
    rest: &'a [u8],
}

fn words(text: &[u8]) -> Words<'_> {
    Words { rest: text }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| !is_space(b))?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| is_space(b)).unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// The index of the first `needle` in `haystack`, a machine word a step:
/// a byte of `x` is zero where `haystack` has `needle`, and the lowest bit
/// of `(x - 0x01…) & !x & 0x80…` is in the first such byte ("Bit Twiddling
/// Hacks", "Determine if a word has a zero byte"; a borrow only sets bits
/// above a zero byte, never below). A `usize`, so that 32-bit ARM works in
/// its own registers.
fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const WORD: usize = std::mem::size_of::<usize>();
    const ONES: usize = usize::MAX / 0xff;
    const HIGHS: usize = ONES << 7;
    let pattern = ONES * usize::from(needle);
    let mut offset = 0;
    // A range of constant length converts to an array without a check or
    // a copy: one load a step.
    while let Some(Ok(word)) = haystack.get(offset..offset + WORD).map(<[u8; WORD]>::try_from) {
        let x = usize::from_le_bytes(word) ^ pattern;
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += WORD;
    }
    let rest = haystack.get(offset..).unwrap_or_default();
    rest.iter().position(|&b| b == needle).map(|at| offset + at)
}

/// The lines of `text`, split at `\n` (a `\r` before it is whitespace and
/// so ends the line's last word anyway).
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

fn lines(text: &[u8]) -> Lines<'_> {
    Lines { rest: Some(text) }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match find_byte(rest, b'\n') {
            Some(end) => {
                self.rest = Some(&rest[end + 1..]);
                Some(&rest[..end])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// An unsigned decimal, as `str::parse::<u64>` reads it: an optional `+`,
/// then at least one digit, and no overflow.
fn unsigned(field: &'static str, word: Option<&[u8]>) -> Result<u64, ParseError> {
    let word = word.ok_or(ParseError::Missing(field))?;
    decimal(word).ok_or_else(|| ParseError::not_a_number(field, word))
}

fn decimal(word: &[u8]) -> Option<u64> {
    let digits = match word {
        [b'+', digits @ ..] => digits,
        digits => digits,
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// A float, as `str::parse::<f64>` reads it (these are a few short words a
/// round, so the standard parser's exact rounding is kept).
fn float(field: &'static str, word: Option<&[u8]>) -> Result<f64, ParseError> {
    let word = word.ok_or(ParseError::Missing(field))?;
    std::str::from_utf8(word)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ParseError::not_a_number(field, word))
}

/// `Empty` when `text` is nothing but whitespace.
fn non_empty(text: &[u8]) -> Result<(), ParseError> {
    if text.iter().all(|&b| is_space(b)) {
        Err(ParseError::Empty)
    } else {
        Ok(())
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
pub(crate) fn parse_stat(text: &[u8]) -> Result<CpuTimes, ParseError> {
    non_empty(text)?;
    let line = lines(text)
        .find_map(|line| line.strip_prefix(b"cpu "))
        .ok_or(ParseError::Missing("cpu"))?;
    const NAMES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
    let mut fields = [0u64; 8];
    let mut words = words(line);
    for (index, name) in NAMES.iter().enumerate() {
        match words.next() {
            Some(word) => fields[index] = unsigned(name, Some(word))?,
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

pub(crate) fn parse_loadavg(text: &[u8]) -> Result<LoadAvg, ParseError> {
    non_empty(text)?;
    let mut words = words(text);
    Ok(LoadAvg {
        one: float("load 1 min", words.next())?,
        five: float("load 5 min", words.next())?,
        fifteen: float("load 15 min", words.next())?,
    })
}

/// What the memory entities show, from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Memory {
    pub used_percent: f64,
    pub swap_used_percent: f64,
}

/// The `/proc/meminfo` keys `parse_meminfo` may use, in the order of
/// `MemInfoFields::values` (the indices below).
const MEMINFO_KEYS: [&str; 7] = [
    "MemTotal",
    "MemAvailable",
    "SwapTotal",
    "SwapFree",
    "MemFree",
    "Buffers",
    "Cached",
];
const MEM_TOTAL: usize = 0;
const MEM_AVAILABLE: usize = 1;
const SWAP_TOTAL: usize = 2;
const SWAP_FREE: usize = 3;
const MEM_FREE: usize = 4;
const BUFFERS: usize = 5;
const CACHED: usize = 6;

/// The text after `Key:` on the first line of each of `MEMINFO_KEYS`, not
/// yet parsed: a field is only an error if it is used.
struct MemInfoFields<'a> {
    values: [Option<&'a [u8]>; 7],
}

impl<'a> MemInfoFields<'a> {
    /// One pass over the lines, stopping once the keys that a modern
    /// kernel's file answers with (the first four) are all found.
    fn scan(text: &'a [u8]) -> MemInfoFields<'a> {
        let mut fields = MemInfoFields { values: [None; 7] };
        for line in lines(text) {
            let Some(colon) = find_byte(line, b':') else {
                continue;
            };
            let (key, rest) = (&line[..colon], &line[colon + 1..]);
            if let Some(index) = MEMINFO_KEYS.iter().position(|name| name.as_bytes() == key) {
                // The first line with a key counts, as a reader from the
                // top would see it.
                fields.values[index].get_or_insert(rest);
                if fields.values[..=SWAP_FREE].iter().all(Option::is_some) {
                    break;
                }
            }
        }
        fields
    }

    /// The first number after key `index`'s colon, `None` when no line has
    /// the key.
    fn get(&self, index: usize) -> Result<Option<u64>, ParseError> {
        match self.values[index] {
            Some(rest) => unsigned(MEMINFO_KEYS[index], words(rest).next()).map(Some),
            None => Ok(None),
        }
    }

    /// As `get`, and `Missing` when no line has the key.
    fn required(&self, index: usize) -> Result<u64, ParseError> {
        self.get(index)?.ok_or(ParseError::Missing(MEMINFO_KEYS[index]))
    }
}

/// Reads `/proc/meminfo` (values in kB; only ratios are computed, so the
/// unit does not matter).
pub(crate) fn parse_meminfo(text: &[u8]) -> Result<Memory, ParseError> {
    non_empty(text)?;
    let fields = MemInfoFields::scan(text);
    let total = fields.required(MEM_TOTAL)?;
    if total == 0 {
        return Err(ParseError::Zero("MemTotal"));
    }
    let available = match fields.get(MEM_AVAILABLE)? {
        Some(available) => available,
        // Kernels before 3.14 have no MemAvailable; free plus the caches the
        // kernel can drop is the estimate `free` used then.
        None => {
            let free = fields.required(MEM_FREE)?;
            let buffers = fields.required(BUFFERS)?;
            let cached = fields.required(CACHED)?;
            free.saturating_add(buffers).saturating_add(cached)
        }
    };
    let used_percent = percent(total.saturating_sub(available), total);

    // A kernel built without swap support may leave the swap lines out; that
    // is "no swap", not a broken file.
    let swap_total = fields.get(SWAP_TOTAL)?.unwrap_or(0);
    let swap_used_percent = if swap_total == 0 {
        0.0
    } else {
        let swap_free = fields.required(SWAP_FREE)?;
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
pub(crate) fn parse_uptime(text: &[u8]) -> Result<f64, ParseError> {
    non_empty(text)?;
    let seconds = float("uptime", words(text).next())?;
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

pub(crate) fn parse_net_dev(text: &[u8]) -> Result<NetBytes, ParseError> {
    non_empty(text)?;
    let mut sum = NetBytes { rx: 0, tx: 0 };
    // The two header lines have no colon; every interface line does. Old
    // kernels print no space after the colon (`eth0:1234`), so split on it
    // rather than on whitespace.
    for line in lines(text) {
        let Some(colon) = find_byte(line, b':') else {
            continue;
        };
        let (name, counters) = (&line[..colon], &line[colon + 1..]);
        if words(name).eq([b"lo".as_slice()]) {
            continue;
        }
        let mut words = words(counters);
        let rx = unsigned("receive bytes", words.next())?;
        // Receive has eight columns (bytes packets errs drop fifo frame
        // compressed multicast); transmit bytes is the ninth.
        let tx = unsigned("transmit bytes", words.nth(7))?;
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

    const STAT: &[u8] = b"\
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
        let without = parse_stat(b"cpu  10 0 0 10 0 0 0 0\n").expect("valid");
        let with = parse_stat(b"cpu  10 0 0 10 0 0 0 0 7 3\n").expect("valid");
        assert_eq!(without, with);
    }

    #[test]
    fn stat_from_an_old_kernel_should_treat_missing_columns_as_zero() {
        let times = parse_stat(b"cpu  10 0 5 85\n").expect("valid");
        assert_eq!(times, CpuTimes { busy: 15, total: 100 });
    }

    #[test]
    fn stat_should_reject_odd_input() {
        assert_eq!(parse_stat(b""), Err(ParseError::Empty));
        assert_eq!(parse_stat(b"cpu0 1 2 3 4\n"), Err(ParseError::Missing("cpu")));
        assert_eq!(parse_stat(b"cpu  1 2 3\n"), Err(ParseError::Missing("idle")));
        assert!(matches!(
            parse_stat(b"cpu  1 2 x 4\n"),
            Err(ParseError::NotANumber { field: "system", .. })
        ));
        assert!(parse_stat(b"cpu  -1 2 3 4\n").is_err());
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
        let load = parse_loadavg(b"0.52 0.58 0.59 1/203 1234\n").expect("valid");
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
        assert_eq!(parse_loadavg(b" \n"), Err(ParseError::Empty));
        assert_eq!(parse_loadavg(b"0.52 0.58"), Err(ParseError::Missing("load 15 min")));
        assert!(parse_loadavg(b"a b c").is_err());
    }

    #[test]
    fn meminfo_should_use_mem_available() {
        let memory = parse_meminfo(
            b"MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     750 kB\n\
             SwapTotal:        200 kB\nSwapFree:         150 kB\n",
        )
        .expect("valid");
        assert_eq!(memory.used_percent, 25.0);
        assert_eq!(memory.swap_used_percent, 25.0);
    }

    #[test]
    fn meminfo_without_mem_available_should_count_caches_as_free() {
        let memory = parse_meminfo(
            b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n\
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
        let memory = parse_meminfo(b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 0 kB\nSwapCached: 900 kB\n");
        assert_eq!(memory, Err(ParseError::Missing("Cached")));
    }

    #[test]
    fn meminfo_should_reject_odd_input() {
        assert_eq!(parse_meminfo(b""), Err(ParseError::Empty));
        assert_eq!(parse_meminfo(b"MemFree: 1 kB\n"), Err(ParseError::Missing("MemTotal")));
        assert_eq!(
            parse_meminfo(b"MemTotal: 0 kB\nMemAvailable: 0 kB\n"),
            Err(ParseError::Zero("MemTotal"))
        );
        assert!(parse_meminfo(b"MemTotal: lots\n").is_err());
        assert!(parse_meminfo(b"MemTotal:\n").is_err());
        assert_eq!(
            parse_meminfo(b"MemTotal: 10 kB\nMemAvailable: 5 kB\nSwapTotal: 10 kB\n"),
            Err(ParseError::Missing("SwapFree"))
        );
    }

    #[test]
    fn uptime_should_be_the_first_field() {
        assert_eq!(parse_uptime(b"12345.67 40000.00\n"), Ok(12345.67));
        assert_eq!(parse_uptime(b""), Err(ParseError::Empty));
        assert!(parse_uptime(b"soon").is_err());
        assert!(parse_uptime(b"NaN 1").is_err());
        assert!(parse_uptime(b"-5 1").is_err());
    }

    const NET_DEV: &[u8] = b"\
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
        assert_eq!(parse_net_dev(b""), Err(ParseError::Empty));
        assert_eq!(
            parse_net_dev(b"eth0: 1 2 3\n"),
            Err(ParseError::Missing("transmit bytes"))
        );
        assert!(parse_net_dev(b"eth0: x 0 0 0 0 0 0 0 1\n").is_err());
        assert_eq!(parse_net_dev(b"header only\n"), Ok(NetBytes { rx: 0, tx: 0 }));
    }

    #[test]
    fn rate_should_be_kilobytes_per_second_and_skip_resets() {
        let two = Duration::from_secs(2);
        assert_eq!(kilobytes_per_second(0, 2_000_000, two), Some(1000.0));
        assert_eq!(kilobytes_per_second(500, 100, two), None);
        assert_eq!(kilobytes_per_second(0, 100, Duration::ZERO), None);
    }

    #[test]
    fn find_byte_should_find_the_first_as_position_does() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        });
        // Few distinct bytes, so that needles are found at every offset,
        // next to each other and next to bytes one below and one above.
        let bytes = proptest::collection::vec(
            proptest::sample::select(vec![b'\n', b':', b'9', b';', 0, 0x80, 0xff]),
            0..40,
        );
        let needle = proptest::sample::select(vec![b'\n', b':', b';', 0, 0x80, 0xff, 0x01]);
        runner
            .run(&(bytes, needle), |(bytes, needle)| {
                proptest::prop_assert_eq!(find_byte(&bytes, needle), bytes.iter().position(|&b| b == needle));
                Ok(())
            })
            .expect("find_byte is position");
    }

    #[test]
    fn words_should_split_on_ascii_whitespace_only() {
        // U+00A0 (no-break space) is whitespace to `char::is_whitespace` but
        // not here: the kernel never writes it, and inside a number it makes
        // that number an error rather than two numbers.
        assert_eq!(
            parse_loadavg("0.5\u{a0}1 2 3".as_bytes()),
            Err(ParseError::NotANumber {
                field: "load 1 min",
                value: "0.5\u{a0}1".to_owned()
            })
        );
        assert_eq!(
            parse_stat(b"cpu \x0b1\x0c2\r3\t4\n"),
            Ok(CpuTimes { busy: 6, total: 10 })
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_should_be_errors_naming_them_or_ignored() {
        assert_eq!(
            parse_stat(b"cpu  1 2 \xff 4\n"),
            Err(ParseError::NotANumber {
                field: "system",
                value: "\u{fffd}".to_owned()
            })
        );
        assert_eq!(
            parse_uptime(b"\xc3\x28 1"),
            Err(ParseError::not_a_number("uptime", b"\xc3\x28"))
        );
        // A line the parser does not read may hold anything.
        assert_eq!(
            parse_meminfo(b"MemTotal: 100 kB\nMemAvailable: 25 kB\n\xfe\xff: 1\n"),
            Ok(Memory {
                used_percent: 75.0,
                swap_used_percent: 0.0
            })
        );
    }

    #[test]
    fn numbers_should_be_read_as_str_parse_reads_them() {
        let max = b"cpu  18446744073709551615 0 0 0\n";
        assert_eq!(parse_stat(max).map(|t| t.total), Ok(u64::MAX));
        for odd in ["18446744073709551616", "+", "-0", "++1", "1+", " +", "0x1"] {
            let text = format!("cpu  1 {odd} 0 0\n");
            assert!(
                matches!(
                    parse_stat(text.as_bytes()),
                    Err(ParseError::NotANumber { field: "nice", .. })
                ),
                "{odd:?}"
            );
        }
        assert_eq!(parse_stat(b"cpu  +7 0 0 3\n"), Ok(CpuTimes { busy: 7, total: 10 }));
    }

    #[test]
    fn meminfo_should_stop_at_the_keys_it_needs_and_take_each_first_line() {
        // Past SwapFree nothing is read, so a damaged tail does not matter;
        // a second MemTotal line does not replace the first.
        let text = b"MemTotal: 200 kB\nMemAvailable: 50 kB\nSwapTotal: 10 kB\nSwapFree: 5 kB\n\
                     MemTotal: 0 kB\nCached: lots\n";
        assert_eq!(
            parse_meminfo(text),
            Ok(Memory {
                used_percent: 75.0,
                swap_used_percent: 50.0
            })
        );
        // Without MemAvailable a bad Cached is used, and so an error.
        assert!(matches!(
            parse_meminfo(b"MemTotal: 200 kB\nMemFree: 1 kB\nBuffers: 1 kB\nCached: lots\n"),
            Err(ParseError::NotANumber { field: "Cached", .. })
        ));
    }

    /// The parsers as they were when they read `&str` (before issue 19):
    /// on ASCII text the byte parsers must agree with them exactly.
    mod oracle {
        use super::super::{percent, CpuTimes, LoadAvg, Memory, NetBytes, ParseError};

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

        pub(super) fn parse_stat(text: &str) -> Result<CpuTimes, ParseError> {
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

        pub(super) fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
            let mut words = non_empty(text)?.split_whitespace();
            Ok(LoadAvg {
                one: number("load 1 min", words.next())?,
                five: number("load 5 min", words.next())?,
                fifteen: number("load 15 min", words.next())?,
            })
        }

        pub(super) fn parse_meminfo(text: &str) -> Result<Memory, ParseError> {
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

        pub(super) fn parse_uptime(text: &str) -> Result<f64, ParseError> {
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

        pub(super) fn parse_net_dev(text: &str) -> Result<NetBytes, ParseError> {
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
    }

    /// Text shaped like these files: lines of a key, a separator and words
    /// that are numbers, odd numbers or not numbers, joined by every kind
    /// of ASCII whitespace; or a soup of the same pieces.
    fn procfs_like_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        use proptest::sample::select;
        let key = select(vec![
            "cpu",
            "cpu0",
            "MemTotal",
            "MemAvailable",
            "MemFree",
            "Buffers",
            "Cached",
            "SwapCached",
            "SwapTotal",
            "SwapFree",
            "lo",
            "  lo",
            "lo ",
            "eth0",
            " face |bytes",
            "",
        ]);
        let separator = select(vec![" ", "  ", ":", ": ", ":\t", "\x0b", ":\x0c", ""]);
        let word = select(vec![
            "0",
            "1",
            "42",
            "1000",
            "007",
            "+7",
            "-1",
            "-0",
            "+",
            "5.25",
            "0.52",
            ".5",
            "1e3",
            "inf",
            "NaN",
            "x",
            "kB",
            "|",
            "18446744073709551615",
            "18446744073709551616",
        ]);
        let space = select(vec![" ", "  ", "\t", "\r", "\x0b", "\x0c"]);
        let end = select(vec!["\n", "\r\n", "", " \n"]);
        let line = (
            key,
            separator,
            proptest::collection::vec((word.clone(), space.clone()), 0..12),
            end,
        )
            .prop_map(|(key, separator, words, end)| {
                let words: String = words.into_iter().flat_map(|(word, space)| [word, space]).collect();
                format!("{key}{separator}{words}{end}")
            });
        let lines = proptest::collection::vec(line, 0..8).prop_map(|lines| lines.concat());
        let piece = prop_oneof![word, space, select(vec!["cpu ", "MemTotal", "lo", ":", "\n"])];
        let soup = proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat());
        prop_oneof![3 => lines, 1 => soup]
    }

    #[test]
    fn byte_parsers_should_agree_with_the_str_parsers_on_ascii_text() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&procfs_like_text(), |text| {
                let bytes = text.as_bytes();
                // Debug text, so that two NaNs compare equal.
                let same = |ours: String, theirs: String| {
                    proptest::prop_assert_eq!(ours, theirs, "{:?}", text);
                    Ok(())
                };
                same(
                    format!("{:?}", parse_stat(bytes)),
                    format!("{:?}", oracle::parse_stat(&text)),
                )?;
                same(
                    format!("{:?}", parse_loadavg(bytes)),
                    format!("{:?}", oracle::parse_loadavg(&text)),
                )?;
                same(
                    format!("{:?}", parse_meminfo(bytes)),
                    format!("{:?}", oracle::parse_meminfo(&text)),
                )?;
                same(
                    format!("{:?}", parse_uptime(bytes)),
                    format!("{:?}", oracle::parse_uptime(&text)),
                )?;
                same(
                    format!("{:?}", parse_net_dev(bytes)),
                    format!("{:?}", oracle::parse_net_dev(&text)),
                )
            })
            .expect("the byte parsers agree with the str parsers");
    }

    #[test]
    fn parsers_should_return_rather_than_panic_on_any_bytes() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&proptest::collection::vec(proptest::num::u8::ANY, 0..200), |bytes| {
                let _ = parse_stat(&bytes);
                let _ = parse_loadavg(&bytes);
                let _ = parse_meminfo(&bytes);
                let _ = parse_uptime(&bytes);
                let _ = parse_net_dev(&bytes);
                Ok(())
            })
            .expect("no parser panics");
    }
}
