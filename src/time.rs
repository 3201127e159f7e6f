//! RFC 3339 timestamps without a date-time dependency, and the one tick
//! grid that every periodic task keeps to.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, Interval, MissedTickBehavior};

thread_local! {
    /// Where [`aligned_interval`]'s grid starts: the first call's instant
    /// on this thread. The agent's runtime is single-threaded, so that is
    /// one origin for all its tasks; each test, on its own thread, gets its
    /// own (and timings as if its first interval were a plain one).
    static GRID_ORIGIN: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// An interval that ticks at once, then on the multiples of `period`
/// counted from one origin shared by the runtime's tasks. Tasks with the
/// same period (or periods that are multiples of each other) then come due
/// in the same millisecond and wake the runtime once between them, instead
/// of each on its own phase: on an idle Pi, the wake-up costs more than the
/// work. A late tick (a slow read, a suspended Pi) fires once, and the next
/// is back on the grid (`MissedTickBehavior::Skip`).
pub fn aligned_interval(period: Duration) -> Interval {
    let now = Instant::now();
    let origin = GRID_ORIGIN.with(|cell| {
        let origin = cell.get().unwrap_or(now);
        cell.set(Some(origin));
        origin
    });
    // Started at the origin: the first tick is due (at once), and `Skip`
    // puts every later one on the origin's grid (tokio's own arithmetic).
    let mut interval = tokio::time::interval_at(origin, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    interval
}

/// Before this (2025-01-01) the wall clock has not been set: a Pi has no
/// RTC and reads 1970 (or the last shutdown, with fake-hwclock) until NTP
/// sets it.
pub const CLOCK_SET_AFTER: u64 = 1_735_689_600;

/// True once the wall clock looks set.
pub fn clock_is_set(now: SystemTime) -> bool {
    now.duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() >= CLOCK_SET_AFTER)
}

/// `2026-11-23T12:34:56.789Z`; times before 1970 print as the epoch.
pub fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn aligned_intervals_started_apart_should_tick_at_once_then_together() {
        let period = Duration::from_secs(1);
        // Under a paused clock, waiting would move it: an unmoved clock
        // means the tick was ready at once.
        let started = Instant::now();
        let mut first = aligned_interval(period);
        first.tick().await;
        assert_eq!(Instant::now(), started, "the first tick is at once");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let mut second = aligned_interval(period);
        second.tick().await;
        assert_eq!(Instant::now(), started, "a later starter's first tick is at once too");
        let mut grid_point = started;
        for round in 1..=3 {
            let (a, b) = (first.tick().await, second.tick().await);
            assert_eq!(a, b, "round {round}: the two intervals come due at different instants");
            grid_point = a;
        }
        // A stall: one late tick at once, then back on the grid.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let stalled = Instant::now();
        first.tick().await;
        assert_eq!(Instant::now(), stalled, "the late tick is at once");
        let next = first.tick().await;
        assert!(next > stalled && next - stalled < period, "{:?}", next - stalled);
        assert_eq!(
            (next - grid_point).as_nanos() % period.as_nanos(),
            0,
            "off the grid after a stall"
        );
    }

    #[test]
    fn timestamps_should_format_as_utc_rfc3339() {
        let check = |secs: u64, millis: u64, expected: &str| {
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            assert_eq!(rfc3339(at), expected);
        };
        check(0, 0, "1970-01-01T00:00:00.000Z");
        check(951_782_400, 5, "2000-02-29T00:00:00.005Z");
        check(1_795_437_296, 789, "2026-11-23T12:34:56.789Z");
        check(4_107_542_399, 999, "2100-02-28T23:59:59.999Z");
    }
}
