//! Bounded exponential backoff with jitter for reconnecting.
//!
//! rumqttc's `poll()` returns an error at once when the broker is down, so a
//! loop without a delay spins at 100 % CPU; every reconnect waits here.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        // Seeded from the clock and pid so that a fleet restarted together does
        // not reconnect in lock step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1;
        Backoff::with_seed(initial, max, seed)
    }

    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt: `initial × 2^n` capped at `max`,
    /// then "equal jitter": somewhere between half of it and all of it.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            0
        } else {
            self.next_random() % (jitter_nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Called once a connection has proved steady.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// A new cap for the delays to come (a clash between two clients waits
    /// longer than a broker that is away).
    pub fn set_max(&mut self, max: Duration) {
        self.max = max;
    }

    /// The cap of the next delay (its jitter takes it down to half).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(16)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// xorshift64: plenty for jitter, and no dependency.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_should_grow_exponentially_within_jitter_bounds_up_to_the_cap() {
        let mut backoff = Backoff::with_seed(Duration::from_millis(500), Duration::from_secs(30), 42);
        let mut ceiling = Duration::from_millis(500);
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(Duration::from_secs(30));
        }
    }

    #[test]
    fn reset_should_start_again_from_the_initial_delay() {
        let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 7);
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_should_vary_between_attempts() {
        let mut backoff = Backoff::with_seed(Duration::from_secs(30), Duration::from_secs(30), 99);
        let delays: std::collections::HashSet<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 5, "jitter produced {delays:?}");
    }
}
