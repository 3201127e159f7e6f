//! Property tests for everything read from outside: the config file, MQTT
//! command messages and HTTP requests. Each property states what must happen
//! (accepted with the right meaning, or refused with a clear error), not
//! only that nothing panics.
//!
//! `MAJORTOM_FUZZ_CASES` sets the cases per property (default 256, which
//! keeps `cargo test` fast); `scripts/fuzz.sh` runs 100 000 each.
//! `MAJORTOM_FUZZ_SEED` (64 hex digits) replays a run; every failure prints
//! the seed it ran with.
//!
//! Modules, in reading order:
//! - `config`: arbitrary text and structured mutations of valid configs
//!   through `Config::from_toml`, and `majortom check`'s description;
//! - `mqtt`: `/set` payloads through `parse_command` against an oracle, and
//!   arbitrary topics through `Topics::command_target`;
//! - `http`: arbitrary requests through the real router, in process;
//! - `fleet`: arbitrary status and info messages from any number of
//!   neighbours through the fleet table.

mod config;
mod fleet;
mod http;
mod mqtt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestRng, TestRunner};

/// Cases per property: `$MAJORTOM_FUZZ_CASES`, else a number small enough
/// for the normal test suite.
fn cases() -> u32 {
    std::env::var("MAJORTOM_FUZZ_CASES")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(256)
}

/// The seed from `$MAJORTOM_FUZZ_SEED`, else a fresh one.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    match std::env::var("MAJORTOM_FUZZ_SEED") {
        Ok(hex) if hex.len() == 64 => {
            for (i, byte) in seed.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("MAJORTOM_FUZZ_SEED: 64 hex digits");
            }
        }
        _ => {
            // Time and the test's thread are enough to vary runs.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let thread = format!("{:?}", std::thread::current().id());
            for (i, byte) in seed.iter_mut().enumerate() {
                let mix = nanos.rotate_left(i as u32 * 7) ^ (thread.len() as u128 * 0x9e37_79b9);
                *byte = (mix >> ((i % 16) * 8)) as u8;
            }
        }
    }
    seed
}

/// Runs `test` on `cases()` values of `strategy`, prints how many it ran and
/// how long that took, and panics with the smallest failing input (and the
/// seed to replay it) if the property does not hold.
pub fn check<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let seed = seed();
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let ran = AtomicU64::new(0);
    let started = Instant::now();
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "property {name}: {} cases in {:.1} s",
        ran.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if let Err(error) = result {
        panic!("property {name} failed (MAJORTOM_FUZZ_SEED={seed_hex}): {error}");
    }
}
