//! When daily triggers fire: the local clock (a trait, so tests can move
//! it) and the look at it that survives NTP steps, DST and leap seconds.

use std::time::{Duration, SystemTime};

/// The local time of day, so daily triggers can be tested in paused time.
pub trait Clock: Send + Sync {
    /// Seconds since local midnight.
    fn seconds_of_day(&self) -> f64;

    /// False while the wall clock has not been set (a Pi at 1970 before
    /// NTP): daily triggers wait for it.
    fn is_set(&self) -> bool {
        true
    }
}

/// The system's clock and time zone (`/etc/localtime`, `$TZ`).
pub struct LocalClock;

impl Clock for LocalClock {
    fn is_set(&self) -> bool {
        crate::time::clock_is_set(SystemTime::now())
    }

    fn seconds_of_day(&self) -> f64 {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // time_t without naming it: its width differs between musl versions.
        let seconds = now.as_secs().try_into().unwrap_or_default();
        // SAFETY: localtime_r writes only into `tm`, which lives on our stack.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let converted = unsafe { libc::localtime_r(&seconds, &mut tm) };
        if converted.is_null() {
            // No time zone information: UTC.
            return (now.as_secs() % 86_400) as f64 + f64::from(now.subsec_millis()) / 1000.0;
        }
        f64::from(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) + f64::from(now.subsec_millis()) / 1000.0
    }
}

pub(super) const DAY: f64 = 86_400.0;
/// A daily trigger this little before its time counts as there (a timer
/// may wake a little early by the wall clock)...
const DAILY_EARLY: f64 = 0.5;
/// ...and this long after it still fires (a late wake-up, the clock
/// stepped forward over it); more than `DAILY_RECHECK`, so no minute is missed.
const DAILY_LATE: f64 = 120.0;
/// Daily triggers look at the wall clock at least this often: a Pi has no
/// RTC, so NTP may step it after start, and DST shifts it.
pub(super) const DAILY_RECHECK: Duration = Duration::from_secs(60);
/// A daily trigger does not fire again this soon (monotonic), so a clock
/// set back (NTP, the end of DST) does not run it twice; a legitimate next
/// day is at least 23 hours away.
pub(super) const DAILY_REFIRE: Duration = Duration::from_secs(12 * 3600);

/// A daily trigger's look at the wall clock, `now` seconds after local
/// midnight: whether its time is here, and how long to wait before looking
/// again (never 0, never more than `DAILY_RECHECK`, never a panic on an odd
/// clock such as a leap second's 23:59:60).
pub(super) fn daily(now: f64, minute_of_day: u32, since_fired: Option<Duration>) -> (bool, Duration) {
    // In [0, DAY): the midnight wrap is the same as any other time.
    let ahead = (f64::from(minute_of_day) * 60.0 - now).rem_euclid(DAY);
    // A NaN clock compares false: not reached, look again later.
    if ahead <= DAILY_EARLY || ahead >= DAY - DAILY_LATE {
        let again = since_fired.is_some_and(|since| since < DAILY_REFIRE);
        return (!again, DAILY_RECHECK);
    }
    let wait = Duration::try_from_secs_f64(ahead).unwrap_or(DAILY_RECHECK);
    (false, wait.min(DAILY_RECHECK))
}
