//! Allocations per sensor round (issue 19): once warmed up, the sensors'
//! rounds (an IIO device, a file sensor and a DS18B20 on fixture trees, each
//! through `Sensor::run` as the agent runs it: the ticker, the reading
//! thread's hand-off or the inline read, the parse, `hub.set`) allocate
//! nothing, on any thread.
//!
//! Its own test binary with a single test, because the counter is global:
//! the IIO and DS18B20 readers run on their own threads, so a per-thread
//! count (as `alloc_per_cycle.rs` keeps) would not see them. While the one
//! test runs, the harness's main thread only waits for it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use majortom::hub::{Hub, HubEvent, DEFAULT_HISTORY_LEN};
use majortom::sources::sensors::ds18b20::Ds18b20Reader;
use majortom::sources::sensors::file::FileReader;
use majortom::sources::sensors::iio::IioReader;
use majortom::sources::sensors::{Calibration, Quantity, Sensor, SensorReader};
use tokio_util::sync::CancellationToken;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a static atomic that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`; `ptr` came from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`; `ptr` came from this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

const WARM_UP: u32 = 3;
const ROUNDS: u32 = 30;
/// The runner's shortest interval, so that the rounds take 3 s.
const INTERVAL: Duration = Duration::from_millis(100);

fn fixture(tree: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysroot")
        .join(tree)
}

fn sensor(name: &str, reader: Box<dyn SensorReader>) -> Sensor {
    Sensor {
        name: name.to_owned(),
        label: name.to_owned(),
        interval: INTERVAL,
        calibration: Calibration::default().with_offset(Quantity::Temperature, -0.5),
        filters: Vec::new(),
        reader,
    }
}

/// Waits until each of `ids` has been set `rounds` more times (each id is
/// its sensor's last quantity, so its update ends that sensor's round).
/// Allocates nothing itself.
async fn rounds_of(events: &mut tokio::sync::broadcast::Receiver<HubEvent>, ids: &[&str; 3], rounds: u32) {
    let mut seen = [0u32; 3];
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen.iter().any(|n| *n < rounds) {
            match events.recv().await {
                Ok(HubEvent::Updated(spec, _)) => {
                    if let Some(at) = ids.iter().position(|id| *id == spec.id.as_str()) {
                        seen[at] += 1;
                    }
                }
                Ok(HubEvent::Availability(spec, false)) => panic!("{} became unavailable", spec.id),
                Ok(_) => {}
                Err(error) => panic!("hub events: {error}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{rounds} rounds of {ids:?} within 30 s: {seen:?}"));
}

#[test]
fn sensor_rounds_should_not_allocate_in_steady_state() {
    // Guards the test itself: allocations on another thread are counted.
    let before = allocations();
    std::thread::spawn(|| drop(std::hint::black_box(Box::new(7u64))))
        .join()
        .expect("joined");
    assert!(
        allocations() - before >= 1,
        "the counter missed another thread's allocation"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let iio = IioReader::open(&fixture("iio"), "bme280").expect("the bme280 fixture");
        let file = FileReader::new(
            fixture("pi4").join("sys/class/thermal/thermal_zone0/temp"),
            None,
            Quantity::Temperature,
        );
        let ds18b20 = Ds18b20Reader::new(&fixture("w1"), "28-0316a2795cff");
        let sensors = [
            sensor("living", Box::new(iio)),
            sensor("board", Box::new(file)),
            sensor("garden", Box::new(ds18b20)),
        ];
        let hub = Hub::new(DEFAULT_HISTORY_LEN);
        for sensor in &sensors {
            for spec in sensor.entities() {
                hub.register(spec);
            }
        }
        let mut events = hub.subscribe();
        let cancel = CancellationToken::new();
        let tasks: Vec<_> = sensors
            .into_iter()
            .map(|sensor| tokio::spawn(sensor.run(Arc::clone(&hub), cancel.clone())))
            .collect();
        let last_of_each = ["living_pressure", "board", "garden"];

        rounds_of(&mut events, &last_of_each, WARM_UP).await;
        let before = allocations();
        rounds_of(&mut events, &last_of_each, ROUNDS).await;
        let counted = allocations() - before;

        cancel.cancel();
        for task in tasks {
            task.await.expect("a sensor's task ends cleanly");
        }
        let number = |id: &str| {
            hub.get(id)
                .and_then(|entity| entity.value)
                .and_then(|value| value.as_number())
        };
        // The readings are the fixtures' (calibrated by −0.5 °C): the rounds
        // really read and parsed them.
        let close = |id: &str, expected: f64| {
            let got = number(id);
            assert!(
                got.is_some_and(|value| (value - expected).abs() < 1e-9),
                "{id}: {got:?}, not {expected}"
            );
        };
        close("garden", 23.125 - 0.5);
        close("living_temperature", 21.53 - 0.5);
        assert!(number("board").is_some_and(|t| t > 0.0), "{:?}", number("board"));

        assert_eq!(counted, 0, "allocations in {ROUNDS} rounds of three sensors");
    });
}
