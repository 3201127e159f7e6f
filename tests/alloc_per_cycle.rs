//! Allocations per round of the system source (issue 19): once warmed up, a
//! round (read every file, parse it, filter the values, set them on the
//! hub) allocates nothing.
//!
//! Its own test binary, because a `#[global_allocator]` is one per binary.
//! The allocator counts per thread, so the harness and other tests running
//! in parallel do not disturb the count of the thread that runs the rounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use majortom::filters::{FilterSpec, WindowKind};
use majortom::hub::{Hub, HubEvent, DEFAULT_HISTORY_LEN};
use majortom::sources::system::SystemSource;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no counter, and must not panic
    // inside the allocator.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
    ALLOCATIONS.with(Cell::get)
}

const WARM_UP: u32 = 3;
const ROUNDS: u32 = 100;

/// Runs `WARM_UP` rounds, then `ROUNDS` more one second apart in the
/// source's eyes, and returns the allocations of the latter per round and
/// the hub the rounds went to.
fn allocations_per_round(root: &Path) -> (Vec<u64>, std::sync::Arc<Hub>) {
    // Every kind of filter that keeps state, on entities every root has.
    let filters = vec![
        (
            "load_1m".to_owned(),
            vec![FilterSpec::SlidingWindow {
                size: 30,
                kind: WindowKind::Median,
            }],
        ),
        (
            "memory_used".to_owned(),
            vec![
                FilterSpec::SlidingWindow {
                    size: 5,
                    kind: WindowKind::Average,
                },
                FilterSpec::Round(1),
                FilterSpec::Heartbeat(60.0),
            ],
        ),
        ("uptime".to_owned(), vec![FilterSpec::Throttle(2.0)]),
    ];
    let mut source = SystemSource::probe(root, Duration::from_secs(1)).with_filters(&filters);
    let hub = Hub::new(DEFAULT_HISTORY_LEN);
    for spec in source.entities() {
        hub.register(spec);
    }
    // A sink's subscription that never reads: the change channel wraps
    // around it as it would around a lagging sink.
    let _events = hub.subscribe();
    let start = tokio::time::Instant::now();
    let at = |n: u32| start + Duration::from_secs(u64::from(n));
    for n in 0..WARM_UP {
        source.round(at(n), &hub);
    }
    let per_round = (WARM_UP..WARM_UP + ROUNDS)
        .map(|n| {
            let before = allocations();
            source.round(at(n), &hub);
            allocations() - before
        })
        .collect();
    (per_round, hub)
}

fn assert_none(root: &Path, ids: &[&str]) {
    let (per_round, hub) = allocations_per_round(root);
    for id in ids {
        assert!(
            hub.get(id).is_some_and(|entity| entity.value.is_some()),
            "{id} has no value under {}: the rounds did not read it",
            root.display()
        );
    }
    let total: u64 = per_round.iter().sum();
    assert_eq!(
        total,
        0,
        "allocations in {ROUNDS} rounds under {} (per round: {per_round:?})",
        root.display()
    );
}

#[test]
fn the_counter_should_see_an_allocation() {
    let before = allocations();
    let boxed = std::hint::black_box(Box::new(7u64));
    assert_eq!(allocations() - before, 1);
    drop(boxed);
}

#[test]
fn a_round_on_a_pi_fixture_should_not_allocate() {
    // Every entity kind, on plain files (the link-count check each read).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysroot/pi4");
    assert_none(
        &root,
        &[
            "cpu_usage",
            "load_1m",
            "memory_used",
            "disk_used",
            "uptime",
            "network_rx",
            "cpu_temperature",
            "cpu_frequency",
            "under_voltage",
        ],
    );
}

#[test]
fn a_round_on_this_machines_proc_should_not_allocate() {
    // The real procfs, whose values move between rounds.
    assert_none(
        Path::new("/"),
        &[
            "cpu_usage",
            "load_1m",
            "memory_used",
            "disk_used",
            "uptime",
            "network_rx",
        ],
    );
}

#[test]
fn the_hub_should_have_been_told_every_round() {
    // Guards the test itself: rounds that set nothing would allocate nothing.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysroot/minimal");
    let mut source = SystemSource::probe(&root, Duration::from_secs(1));
    let hub = Hub::new(DEFAULT_HISTORY_LEN);
    for spec in source.entities() {
        hub.register(spec);
    }
    let mut events = hub.subscribe();
    source.round(tokio::time::Instant::now(), &hub);
    let mut updated = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, HubEvent::Updated(..)) {
            updated += 1;
        }
    }
    // The first round has every value but the three rates.
    assert_eq!(updated, source.entities().len() - 3);
}
