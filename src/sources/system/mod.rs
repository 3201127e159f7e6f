//! The system source: host statistics (CPU, load, memory, disk, uptime,
//! network, temperature, frequency, Raspberry Pi throttling) as diagnostic
//! entities of the `System` group.
//!
//! It reads `/proc` and `/sys` itself, below an injectable root, so that all
//! of it is tested against fixture trees (`tests/fixtures/sysroot/`). This
//! file owns probing (which entities exist), the periodic loop, the previous
//! counters rates are computed from and the "is this read failing" state that
//! keeps logs to one line per failure. Parsing lives in `procfs.rs` (the
//! `/proc` files) and `pi.rs` (board files); registering the entities on the
//! hub is the caller's job.
//!
//! A round allocates nothing once the source has warmed up: the files stay
//! open and are read with `pread` into one buffer (`KernelFile`), the
//! parsers borrow that text, the values go into a vector kept between
//! rounds, and the disk's path is a C string made once.
//! `tests/alloc_per_cycle.rs` counts allocations to hold this.

mod pi;
mod procfs;

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::filters::{Chain, FilterSpec};
use crate::hub::{EntitySpec, Group, Hub, Value};
use crate::sources::kernel_file::KernelFile;
use procfs::ParseError;

pub use pi::board_model;
pub(crate) use pi::{parse_throttled, THROTTLED_PATH};

/// Consumers treat an entity as gone after this long at least, even with a
/// short interval, so that one slow round does not flap it to unavailable.
const MIN_EXPIRE_AFTER: Duration = Duration::from_secs(10);

/// Bounds on the sampling interval. tokio's `interval` panics on zero and on
/// a deadline that overflows `Instant`; config validation should already
/// reject such values, this keeps the source panic-free regardless.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// A numeric entity of the system source and the read that feeds it.
struct Numeric {
    read: Read,
    id: &'static str,
    name: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    icon: Option<&'static str>,
    /// Decimals published.
    precision: u8,
}

/// Every numeric entity, in the order they are declared. A table rather
/// than a builder chain per entity: the same specs in less code on armv6.
const NUMERIC_ENTITIES: [Numeric; 12] = {
    const fn numeric(read: Read, id: &'static str, name: &'static str, precision: u8) -> Numeric {
        Numeric {
            read,
            id,
            name,
            unit: None,
            device_class: None,
            icon: None,
            precision,
        }
    }
    const PERCENT: Option<&str> = Some("%");
    [
        Numeric {
            unit: PERCENT,
            icon: Some("mdi:cpu-64-bit"),
            ..numeric(Read::Stat, "cpu_usage", "CPU usage", 1)
        },
        Numeric {
            icon: Some("mdi:gauge"),
            ..numeric(Read::LoadAvg, "load_1m", "Load (1 min)", 2)
        },
        Numeric {
            icon: Some("mdi:gauge"),
            ..numeric(Read::LoadAvg, "load_5m", "Load (5 min)", 2)
        },
        Numeric {
            icon: Some("mdi:gauge"),
            ..numeric(Read::LoadAvg, "load_15m", "Load (15 min)", 2)
        },
        Numeric {
            unit: PERCENT,
            icon: Some("mdi:memory"),
            ..numeric(Read::MemInfo, "memory_used", "Memory used", 1)
        },
        Numeric {
            unit: PERCENT,
            icon: Some("mdi:swap-horizontal"),
            ..numeric(Read::MemInfo, "swap_used", "Swap used", 1)
        },
        Numeric {
            unit: PERCENT,
            icon: Some("mdi:harddisk"),
            ..numeric(Read::Disk, "disk_used", "Disk used", 1)
        },
        Numeric {
            unit: Some("s"),
            device_class: Some("duration"),
            icon: Some("mdi:timer-outline"),
            ..numeric(Read::Uptime, "uptime", "Uptime", 0)
        },
        Numeric {
            unit: Some("kB/s"),
            device_class: Some("data_rate"),
            ..numeric(Read::NetDev, "network_rx", "Network receive", 1)
        },
        Numeric {
            unit: Some("kB/s"),
            device_class: Some("data_rate"),
            ..numeric(Read::NetDev, "network_tx", "Network transmit", 1)
        },
        Numeric {
            unit: Some("°C"),
            device_class: Some("temperature"),
            ..numeric(Read::Temperature, "cpu_temperature", "CPU temperature", 1)
        },
        Numeric {
            unit: Some("MHz"),
            device_class: Some("frequency"),
            ..numeric(Read::Frequency, "cpu_frequency", "CPU frequency", 0)
        },
    ]
};

/// One file (or syscall) the source reads each round. Each read feeds one or
/// more entities and fails or succeeds as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Stat,
    LoadAvg,
    MemInfo,
    Disk,
    Uptime,
    NetDev,
    Temperature,
    Frequency,
    Throttled,
}

impl Read {
    fn name(self) -> &'static str {
        match self {
            Read::Stat => "cpu usage",
            Read::LoadAvg => "load",
            Read::MemInfo => "memory",
            Read::Disk => "disk",
            Read::Uptime => "uptime",
            Read::NetDev => "network",
            Read::Temperature => "cpu temperature",
            Read::Frequency => "cpu frequency",
            Read::Throttled => "throttling",
        }
    }
}

/// What a read reads.
#[derive(Debug)]
enum Target {
    /// A file, kept open between rounds.
    File(KernelFile),
    /// The filesystem holding this path (`statvfs`), with the path as the C
    /// string the call takes, made once. `None` when the path has a NUL
    /// byte, which no `statvfs` can take.
    Filesystem(PathBuf, Option<CString>),
}

impl Target {
    fn path(&self) -> &Path {
        match self {
            Target::File(file) => file.path(),
            Target::Filesystem(path, _) => path,
        }
    }
}

/// A read that was available at probe time.
#[derive(Debug)]
struct Probe {
    read: Read,
    target: Target,
    /// Whether the last attempt failed, so that a failure is logged when it
    /// starts and when it ends rather than every interval.
    failing: bool,
}

/// Counters from the previous round, for the values that are rates.
#[derive(Debug, Default)]
struct Previous {
    cpu: Option<procfs::CpuTimes>,
    net: Option<(Instant, procfs::NetBytes)>,
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Host statistics read from `/proc` and `/sys` below a root directory.
#[derive(Debug)]
pub struct SystemSource {
    interval: Duration,
    /// What exists on this machine, in entity order.
    probes: Vec<Probe>,
    previous: Previous,
    /// Filters for some entities, by id (`system.filters`).
    filters: HashMap<String, Chain>,
    /// The text of the file being parsed; every file is read into it.
    buffer: Vec<u8>,
    /// One round's values, kept so that a round does not allocate.
    values: Vec<(&'static str, Value)>,
    /// The hub's slot of each id set so far (a dozen, found by the address
    /// of their static text): no hashing of ids every round.
    slots: Vec<(&'static str, usize)>,
}

impl SystemSource {
    /// Looks at what `root` exposes ("/" in production; a fixture dir in
    /// tests) and decides which entities exist.
    pub fn probe(root: &Path, interval: Duration) -> SystemSource {
        // What each read reads, relative to the root; the disk is the
        // root itself and the temperature file is looked for.
        const READS: [(Read, &str); 9] = [
            (Read::Stat, "proc/stat"),
            (Read::LoadAvg, "proc/loadavg"),
            (Read::MemInfo, "proc/meminfo"),
            (Read::Disk, ""),
            (Read::Uptime, "proc/uptime"),
            (Read::NetDev, "proc/net/dev"),
            (Read::Temperature, ""),
            (Read::Frequency, pi::CPUFREQ_PATH),
            (Read::Throttled, pi::THROTTLED_PATH),
        ];
        let probes: Vec<Probe> = READS
            .iter()
            .filter_map(|&(read, relative)| {
                let target = match read {
                    // Disk is a syscall on the root itself, which always
                    // exists for the agent; the rest are files that may not.
                    Read::Disk => {
                        let path = root.to_path_buf();
                        let c_path = CString::new(path.as_os_str().as_bytes()).ok();
                        Target::Filesystem(path, c_path)
                    }
                    _ => {
                        let path = match read {
                            Read::Temperature => pi::find_temperature_file(root)?,
                            _ => root.join(relative),
                        };
                        if !path.exists() {
                            return None;
                        }
                        Target::File(KernelFile::new(path))
                    }
                };
                Some(Probe {
                    read,
                    target,
                    failing: false,
                })
            })
            .collect();
        let found: Vec<&str> = probes.iter().map(|probe| probe.read.name()).collect();
        debug!(root = %root.display(), ?found, "system source probed");
        SystemSource {
            interval: interval.clamp(MIN_INTERVAL, MAX_INTERVAL),
            probes,
            previous: Previous::default(),
            filters: HashMap::new(),
            buffer: Vec::new(),
            values: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// How long consumers may wait for a value before treating the entity
    /// as unavailable: three missed rounds, but never less than 10 s.
    fn expire_after(&self) -> Duration {
        self.interval
            .checked_mul(3)
            .unwrap_or(Duration::MAX)
            .max(MIN_EXPIRE_AFTER)
    }

    /// The entities this source will publish (only those whose files exist),
    /// in a stable order.
    pub fn entities(&self) -> Vec<EntitySpec> {
        let expire = self.expire_after();
        let mut specs = Vec::new();
        for probe in &self.probes {
            if probe.read == Read::Throttled {
                for (id, name) in pi::THROTTLE_ENTITIES {
                    specs.push(
                        EntitySpec::binary_sensor(id, name, Group::System)
                            .device_class("problem")
                            .diagnostic()
                            .expire_after(expire),
                    );
                }
            }
            for numeric in NUMERIC_ENTITIES.iter().filter(|numeric| numeric.read == probe.read) {
                let mut spec = EntitySpec::sensor(numeric.id, numeric.name, Group::System)
                    .diagnostic()
                    .expire_after(expire);
                spec.unit = numeric.unit;
                spec.device_class = numeric.device_class;
                spec.icon = numeric.icon;
                spec.precision = numeric.precision;
                specs.push(spec);
            }
        }
        for spec in &mut specs {
            if let (Some(chain), Some(expire)) = (self.filters.get(&spec.id), spec.expire_after) {
                spec.expire_after = chain.expiry(expire);
            }
        }
        specs
    }

    /// Filters values of these entities before they reach the hub. Specs
    /// the config has checked; one that does not build is ignored.
    pub fn with_filters(mut self, filters: &[(String, Vec<FilterSpec>)]) -> SystemSource {
        for (id, specs) in filters {
            if let Ok(chain) = Chain::new(specs) {
                self.filters.insert(id.clone(), chain);
            }
        }
        self
    }

    /// Reads every probed value once at time `now`. Rates (cpu_usage,
    /// network_rx, network_tx) need a previous sample, so the first call
    /// does not include them. (The task uses `round`; this is for tests.)
    #[cfg(test)]
    fn sample(&mut self, now: Instant) -> Vec<(&'static str, Value)> {
        self.sample_into_values(now);
        self.values.clone()
    }

    /// `sample` into `self.values`, which keeps its capacity between rounds.
    fn sample_into_values(&mut self, now: Instant) {
        self.values.clear();
        for probe in &mut self.probes {
            let result = read(
                probe.read,
                &mut probe.target,
                &mut self.buffer,
                now,
                &mut self.previous,
                &mut self.values,
            );
            match result {
                Ok(()) if probe.failing => {
                    probe.failing = false;
                    info!(read = probe.read.name(), path = %probe.target.path().display(), "system read recovered");
                }
                Err(error) if !probe.failing => {
                    probe.failing = true;
                    warn!(
                        read = probe.read.name(),
                        path = %probe.target.path().display(),
                        %error,
                        "system read failed; its entities get no value until it recovers"
                    );
                }
                Ok(()) | Err(_) => {}
            }
        }
    }

    /// One round at `now`: reads every value, filters it and sets it on the
    /// hub. After the first rounds (the values vector, the read buffer and
    /// the hub's history rings grown) it allocates nothing.
    pub fn round(&mut self, now: tokio::time::Instant, hub: &Hub) {
        self.sample_into_values(now.into_std());
        for (id, value) in &self.values {
            let value = match (value.clone(), self.filters.get_mut(*id)) {
                (Value::Number(n), Some(chain)) => match chain.apply(n, now) {
                    Some(filtered) => Value::Number(filtered),
                    None => continue,
                },
                (value, _) => value,
            };
            let known = self
                .slots
                .iter()
                .find(|(known, _)| std::ptr::eq(*known, *id))
                .map(|&(_, slot)| slot);
            // Not registered (a test's hub): nothing to set.
            let Some(slot) = known.or_else(|| hub.slot(id)) else {
                continue;
            };
            if known.is_none() {
                self.slots.push((id, slot));
            }
            hub.set_slot(slot, value);
        }
    }

    /// Registers nothing (the caller registers `entities()` on the hub
    /// before); samples immediately, then every `interval`, and sets each
    /// value on the hub until `cancel` fires.
    pub async fn run(mut self, hub: Arc<Hub>, cancel: CancellationToken) {
        // On the shared grid, so the sensors with the same interval come due
        // in the same wake-up. After a stall (a suspended Pi, a slow SD
        // card) one late round is enough; a burst of catch-up rounds would
        // only produce noisy rates.
        let mut ticker = crate::time::aligned_interval(self.interval);
        loop {
            tokio::select! {
                // Cancellation first, so a stop is never delayed by a round.
                biased;
                () = cancel.cancelled() => break,
                tick = ticker.tick() => self.round(tick, &hub),
            }
        }
        debug!("system source stopped");
    }
}

/// Performs one read and appends the values it yields. A file is read into
/// `buffer` and parsed where it lies: the `/proc` parsers scan its bytes;
/// the board files, a few bytes each, are checked to be UTF-8 text. (One
/// read for all: a read and its error conversion at each arm cost about
/// 800 B on armv6.)
fn read(
    read: Read,
    target: &mut Target,
    buffer: &mut Vec<u8>,
    now: Instant,
    previous: &mut Previous,
    values: &mut Vec<(&'static str, Value)>,
) -> Result<(), ReadError> {
    let mut push = |id: &'static str, value: f64| values.push((id, Value::Number(value)));
    let bytes = match target {
        Target::File(file) => file.read_bytes(buffer, usize::MAX)?,
        Target::Filesystem(_, Some(c_path)) => {
            push("disk_used", disk_used_percent(c_path)?);
            return Ok(());
        }
        Target::Filesystem(..) => {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte").into())
        }
    };
    match read {
        Read::Stat => {
            let current = procfs::parse_stat(bytes)?;
            let usage = previous
                .cpu
                .replace(current)
                .and_then(|before| procfs::cpu_usage(before, current));
            if let Some(usage) = usage {
                push("cpu_usage", usage);
            }
        }
        Read::LoadAvg => {
            let load = procfs::parse_loadavg(bytes)?;
            push("load_1m", load.one);
            push("load_5m", load.five);
            push("load_15m", load.fifteen);
        }
        Read::MemInfo => {
            let memory = procfs::parse_meminfo(bytes)?;
            push("memory_used", memory.used_percent);
            push("swap_used", memory.swap_used_percent);
        }
        // Answered above, without a file.
        Read::Disk => {}
        Read::Uptime => push("uptime", procfs::parse_uptime(bytes)?),
        Read::NetDev => {
            let current = procfs::parse_net_dev(bytes)?;
            if let Some((at, before)) = previous.net.replace((now, current)) {
                // A `now` earlier than the last one (a caller's mistake) gives
                // no elapsed time and so no rate, rather than a panic.
                let elapsed = now.checked_duration_since(at).unwrap_or_default();
                if let Some(rate) = procfs::kilobytes_per_second(before.rx, current.rx, elapsed) {
                    push("network_rx", rate);
                }
                if let Some(rate) = procfs::kilobytes_per_second(before.tx, current.tx, elapsed) {
                    push("network_tx", rate);
                }
            }
        }
        Read::Temperature => push("cpu_temperature", pi::parse_millidegrees(text(bytes)?)?),
        Read::Frequency => push("cpu_frequency", pi::parse_khz(text(bytes)?)?),
        Read::Throttled => {
            let throttled = pi::parse_throttled(text(bytes)?)?;
            values.extend(throttled.flags().into_iter().map(|(id, on)| (id, Value::Bool(on))));
        }
    }
    Ok(())
}

/// `bytes` as text, or the error `KernelFile::read` gives for a file that
/// is not UTF-8.
fn text(bytes: &[u8]) -> Result<&str, ReadError> {
    std::str::from_utf8(bytes).map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error).into())
}

/// The share of the filesystem holding `c_path` that is used, as `df` shows it.
fn disk_used_percent(c_path: &CStr) -> Result<f64, ReadError> {
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call and
    // `stats` points to writable memory sized for a `statvfs`, which is all
    // the call requires.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: statvfs returned 0, so it filled in the whole struct.
    let stats = unsafe { stats.assume_init() };
    // The block counts are 32-bit on 32-bit ARM and 64-bit elsewhere; `from`
    // widens the former and is a no-op for the latter.
    #[allow(clippy::useless_conversion)]
    let (blocks, free, available) = (
        u64::from(stats.f_blocks),
        u64::from(stats.f_bfree),
        u64::from(stats.f_bavail),
    );
    Ok(disk_used_from(blocks, free, available))
}

/// `df`'s "Use%": blocks reserved for root count neither as used nor as
/// available, so a full disk reads 100 % even though root can still write.
fn disk_used_from(blocks: u64, free: u64, available: u64) -> f64 {
    let used = blocks.saturating_sub(free);
    let usable = used.saturating_add(available);
    if usable == 0 {
        // A filesystem without blocks (a pseudo filesystem) is not full.
        0.0
    } else {
        procfs::percent(used, usable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{copy_of, sysroot as fixture};
    use crate::hub::HubEvent;
    use crate::vocab::system::{entity_ids, FLAG_ENTITY_IDS, NUMERIC_ENTITY_IDS};

    fn ids(source: &SystemSource) -> Vec<String> {
        source.entities().into_iter().map(|spec| spec.id).collect()
    }

    fn value<'a>(values: &'a [(&str, Value)], id: &str) -> Option<&'a Value> {
        values.iter().find(|(key, _)| *key == id).map(|(_, v)| v)
    }

    fn number(values: &[(&str, Value)], id: &str) -> f64 {
        value(values, id)
            .and_then(Value::as_number)
            .unwrap_or_else(|| panic!("no number for {id} in {values:?}"))
    }

    /// The entities every Linux machine has, in declaration order.
    const PROC_IDS: &[&str] = NUMERIC_ENTITY_IDS.split_at(10).0;

    /// `entities` as it was written before the table (a builder chain per
    /// entity), to hold the table to the same specs.
    fn entities_as_built_before(source: &SystemSource) -> Vec<EntitySpec> {
        let expire = source.expire_after();
        let sensor = |id: &str, name: &str| {
            EntitySpec::sensor(id, name, Group::System)
                .diagnostic()
                .expire_after(expire)
        };
        let mut specs = Vec::new();
        for probe in &source.probes {
            match probe.read {
                Read::Stat => specs.push(
                    sensor("cpu_usage", "CPU usage")
                        .unit("%")
                        .icon("mdi:cpu-64-bit")
                        .precision(1),
                ),
                Read::LoadAvg => {
                    for (id, name) in [
                        ("load_1m", "Load (1 min)"),
                        ("load_5m", "Load (5 min)"),
                        ("load_15m", "Load (15 min)"),
                    ] {
                        specs.push(sensor(id, name).icon("mdi:gauge").precision(2));
                    }
                }
                Read::MemInfo => {
                    specs.push(sensor("memory_used", "Memory used").unit("%").icon("mdi:memory"));
                    specs.push(sensor("swap_used", "Swap used").unit("%").icon("mdi:swap-horizontal"));
                }
                Read::Disk => specs.push(sensor("disk_used", "Disk used").unit("%").icon("mdi:harddisk")),
                Read::Uptime => specs.push(
                    sensor("uptime", "Uptime")
                        .unit("s")
                        .device_class("duration")
                        .icon("mdi:timer-outline")
                        .precision(0),
                ),
                Read::NetDev => {
                    for (id, name) in [("network_rx", "Network receive"), ("network_tx", "Network transmit")] {
                        specs.push(sensor(id, name).unit("kB/s").device_class("data_rate").precision(1));
                    }
                }
                Read::Temperature => specs.push(
                    sensor("cpu_temperature", "CPU temperature")
                        .unit("°C")
                        .device_class("temperature")
                        .precision(1),
                ),
                Read::Frequency => specs.push(
                    sensor("cpu_frequency", "CPU frequency")
                        .unit("MHz")
                        .device_class("frequency")
                        .precision(0),
                ),
                Read::Throttled => {
                    for (id, name) in pi::THROTTLE_ENTITIES {
                        specs.push(
                            EntitySpec::binary_sensor(id, name, Group::System)
                                .device_class("problem")
                                .diagnostic()
                                .expire_after(expire),
                        );
                    }
                }
            }
        }
        for spec in &mut specs {
            if let (Some(chain), Some(expire)) = (source.filters.get(&spec.id), spec.expire_after) {
                spec.expire_after = chain.expiry(expire);
            }
        }
        specs
    }

    #[test]
    fn the_entity_table_should_give_the_specs_the_builders_gave() {
        // A heartbeat changes an entity's expiry, after the table.
        let filters = vec![("cpu_usage".to_owned(), vec![FilterSpec::Heartbeat(60.0)])];
        for root in ["pi4", "minimal"] {
            let source = SystemSource::probe(&fixture(root), Duration::from_secs(5)).with_filters(&filters);
            assert_eq!(source.entities(), entities_as_built_before(&source), "{root}");
        }
    }

    #[test]
    fn every_id_the_pi4_fixture_creates_should_be_listed_as_reserved() {
        let source = SystemSource::probe(&fixture("pi4"), Duration::from_secs(5));
        let ids = ids(&source);
        assert_eq!(
            ids.len(),
            entity_ids().count(),
            "the Pi 4 fixture has every kind of entity"
        );
        for spec in source.entities() {
            let list: &[&str] = match spec.component {
                crate::vocab::Component::Sensor => &NUMERIC_ENTITY_IDS,
                _ => &FLAG_ENTITY_IDS,
            };
            assert!(list.contains(&spec.id.as_str()), "{} is missing from its list", spec.id);
        }
    }

    #[test]
    fn pi4_fixture_should_expose_board_entities_in_a_stable_order() {
        let source = SystemSource::probe(&fixture("pi4"), Duration::from_secs(5));
        let mut expected: Vec<&str> = PROC_IDS.to_vec();
        expected.extend(["cpu_temperature", "cpu_frequency"]);
        expected.extend(pi::THROTTLE_ENTITIES.iter().map(|(id, _)| *id));
        assert_eq!(ids(&source), expected);
    }

    #[test]
    fn pi4_fixture_should_read_temperature_frequency_and_throttling() {
        let root = fixture("pi4");
        let mut source = SystemSource::probe(&root, Duration::from_secs(5));
        let specs = source.entities();
        let values = source.sample(Instant::now());
        let shown = |id: &str| {
            let spec = specs.iter().find(|s| s.id == id).expect("entity exists");
            value(&values, id).expect("has a value").render(spec.precision)
        };
        assert_eq!(shown("cpu_temperature"), "48.7");
        assert_eq!(shown("cpu_frequency"), "1500");
        for (id, expected) in [
            ("under_voltage", "ON"),
            ("frequency_capped", "OFF"),
            ("throttled", "ON"),
            ("soft_temp_limit", "OFF"),
            ("under_voltage_occurred", "ON"),
            ("frequency_capped_occurred", "OFF"),
            ("throttled_occurred", "ON"),
            ("soft_temp_limit_occurred", "OFF"),
        ] {
            assert_eq!(shown(id), expected, "{id}");
        }
        assert_eq!(shown("load_1m"), "0.52");
        assert_eq!(shown("load_15m"), "0.59");
        assert_eq!(shown("uptime"), "86512");
        // MemTotal 3884396, MemAvailable 3104232; SwapTotal 102396, SwapFree 76796.
        assert_eq!(shown("memory_used"), "20.1");
        assert_eq!(shown("swap_used"), "25.0");
        let disk = number(&values, "disk_used");
        assert!((0.0..=100.0).contains(&disk), "disk {disk}");
        assert_eq!(board_model(&root).as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
    }

    #[test]
    fn minimal_fixture_should_expose_only_the_proc_entities() {
        let root = fixture("minimal");
        let mut source = SystemSource::probe(&root, Duration::from_secs(5));
        assert_eq!(ids(&source), PROC_IDS.to_vec());
        let values = source.sample(Instant::now());
        for id in ["load_1m", "memory_used", "swap_used", "disk_used", "uptime"] {
            assert!(value(&values, id).is_some(), "{id} missing from {values:?}");
        }
        assert_eq!(board_model(&root), None);
    }

    #[test]
    fn every_entity_should_be_a_diagnostic_of_the_system_group_that_expires() {
        let fast = SystemSource::probe(&fixture("pi4"), Duration::from_secs(1));
        let slow = SystemSource::probe(&fixture("pi4"), Duration::from_secs(60));
        for (source, expire) in [(fast, 10), (slow, 180)] {
            for spec in source.entities() {
                assert!(spec.diagnostic, "{}", spec.id);
                assert_eq!(spec.group, Group::System);
                assert_eq!(spec.expire_after, Some(Duration::from_secs(expire)), "{}", spec.id);
            }
        }
    }

    #[test]
    fn rates_should_come_from_the_second_sample() {
        let dir = copy_of("minimal");
        let root = dir.path();
        let write = |relative: &str, text: &str| std::fs::write(root.join(relative), text).expect("rewrite fixture");
        let net = |rx: u64, tx: u64| {
            format!(
                "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n\
                 lo: 999999 1 0 0 0 0 0 0 999999 1 0 0 0 0 0 0\n\
                 eth0: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0\n"
            )
        };
        write("proc/stat", "cpu  100 0 100 700 100 0 0 0 0 0\n");
        write("proc/net/dev", &net(1_000_000, 5_000));
        let mut source = SystemSource::probe(root, Duration::from_secs(2));

        let start = Instant::now();
        let first = source.sample(start);
        for id in ["cpu_usage", "network_rx", "network_tx"] {
            assert!(value(&first, id).is_none(), "{id} in the first sample");
        }

        // 100 more jiffies, 25 of them idle; 2 MB received in 2 s.
        write("proc/stat", "cpu  150 0 125 725 100 0 0 0 0 0\n");
        write("proc/net/dev", &net(3_000_000, 7_000));
        let second = source.sample(start + Duration::from_secs(2));
        assert_eq!(number(&second, "cpu_usage"), 75.0);
        assert_eq!(number(&second, "network_rx"), 1000.0);
        assert_eq!(number(&second, "network_tx"), 1.0);
    }

    #[test]
    fn a_network_counter_going_backwards_should_skip_that_round_only() {
        let dir = copy_of("minimal");
        let root = dir.path();
        let net = |rx: u64, tx: u64| format!("h\nh\neth0: {rx} 0 0 0 0 0 0 0 {tx} 0 0 0 0 0 0 0\n");
        let write = |text: String| std::fs::write(root.join("proc/net/dev"), text).expect("write");
        let mut source = SystemSource::probe(root, Duration::from_secs(1));
        let start = Instant::now();
        let second = Duration::from_secs(1);

        write(net(50_000, 50_000));
        source.sample(start);
        write(net(10_000, 60_000));
        let reset = source.sample(start + second);
        assert!(value(&reset, "network_rx").is_none());
        assert_eq!(number(&reset, "network_tx"), 10.0);

        write(net(12_000, 61_000));
        let after = source.sample(start + second * 2);
        assert_eq!(number(&after, "network_rx"), 2.0);
        assert_eq!(number(&after, "network_tx"), 1.0);
    }

    #[test]
    fn a_file_that_disappears_after_probe_should_not_hide_the_others() {
        let dir = copy_of("pi4");
        let root = dir.path();
        let mut source = SystemSource::probe(root, Duration::from_secs(5));
        let loadavg = root.join("proc/loadavg");
        let saved = std::fs::read(&loadavg).expect("fixture has loadavg");
        std::fs::remove_file(&loadavg).expect("remove");
        std::fs::write(root.join(pi::THROTTLED_PATH), "garbage\n").expect("write");

        let values = source.sample(Instant::now());
        for id in ["load_1m", "load_5m", "load_15m", "under_voltage", "throttled"] {
            assert!(value(&values, id).is_none(), "{id} despite a failed read");
        }
        for id in ["memory_used", "uptime", "cpu_temperature", "cpu_frequency"] {
            assert!(value(&values, id).is_some(), "{id} missing from {values:?}");
        }
        let failing = |source: &SystemSource| -> Vec<Read> {
            source.probes.iter().filter(|p| p.failing).map(|p| p.read).collect()
        };
        assert_eq!(failing(&source), vec![Read::LoadAvg, Read::Throttled]);
        // The entities stay declared: the file may come back.
        assert!(ids(&source).iter().any(|id| id == "load_1m"));

        std::fs::write(&loadavg, saved).expect("restore");
        let values = source.sample(Instant::now());
        assert!(value(&values, "load_1m").is_some());
        assert_eq!(failing(&source), vec![Read::Throttled]);
    }

    #[test]
    fn odd_file_contents_should_yield_no_value_rather_than_panic() {
        let dir = copy_of("pi4");
        let root = dir.path();
        let mut source = SystemSource::probe(root, Duration::from_secs(5));
        for (relative, text) in [
            ("proc/stat", ""),
            ("proc/meminfo", "MemTotal:"),
            ("proc/uptime", "\0\0\0"),
            ("proc/net/dev", "eth0: 1 2"),
            (pi::CPUFREQ_PATH, "fast"),
            ("sys/class/thermal/thermal_zone0/temp", ""),
        ] {
            std::fs::write(root.join(relative), text).expect("write");
        }
        let values = source.sample(Instant::now());
        let ids: Vec<&str> = values.iter().map(|(id, _)| *id).collect();
        assert!(ids.contains(&"load_1m") && ids.contains(&"disk_used"));
        for id in ["memory_used", "uptime", "cpu_frequency", "cpu_temperature"] {
            assert!(!ids.contains(&id), "{id} from a broken file");
        }
    }

    #[test]
    fn disk_usage_should_follow_df_and_leave_reserved_blocks_out() {
        // 1000 blocks, 400 free of which 350 are available to users.
        assert_eq!(disk_used_from(1000, 400, 350), 600.0 / 950.0 * 100.0);
        assert_eq!(disk_used_from(1000, 50, 0), 100.0);
        assert_eq!(disk_used_from(0, 0, 0), 0.0);
        assert!(disk_used_percent(c"/definitely/not/here").is_err());
    }

    #[test]
    fn a_zero_interval_should_not_reach_tokio() {
        let source = SystemSource::probe(&fixture("minimal"), Duration::ZERO);
        assert_eq!(source.interval, MIN_INTERVAL);
    }

    #[tokio::test]
    async fn run_should_publish_until_cancelled() {
        let hub = Hub::new(8);
        let source = SystemSource::probe(&fixture("pi4"), MIN_INTERVAL);
        for spec in source.entities() {
            hub.register(spec);
        }
        let cancel = CancellationToken::new();
        let mut events = hub.subscribe();
        let task = tokio::spawn(source.run(hub.clone(), cancel.clone()));

        // The first round is immediate; the second brings the CPU rate.
        let got = |id: &str| hub.get(id).and_then(|entity| entity.value);
        tokio::time::timeout(Duration::from_secs(5), async {
            // An update of cpu_usage, or (should this receiver lag behind
            // the round) its value once something arrives.
            while got("cpu_usage").is_none() {
                match events.recv().await {
                    Ok(HubEvent::Updated(spec, _)) if spec.id == "cpu_usage" => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("the hub closed"),
                    _ => {}
                }
            }
        })
        .await
        .expect("a second round within 5 s");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops promptly")
            .expect("does not panic");

        assert_eq!(got("under_voltage"), Some(Value::Bool(true)));
        assert_eq!(got("load_5m"), Some(Value::Number(0.58)));
        // The fixture does not change, so no CPU time passed between rounds.
        assert_eq!(got("cpu_usage"), Some(Value::Number(0.0)));
    }
}
